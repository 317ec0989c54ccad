//! A fleet's work over time, for the report's chart: per stage (an action step of a `for_each` body, all items
//! together), how many items were in it on average during each of a fixed number of intervals of the run (the
//! time items spent in the stage during the interval, over its length). Downsampled by construction: `samples`
//! figures per stage whatever the number of items; a step adds to the intervals it spans.

use std::collections::HashMap;

use super::fleet::split;
use super::model::StepRow;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    /// The length of an interval, in ms.
    pub interval_ms: i64,
    /// `GROUP[*].STEP`, in the order the report lists the steps.
    pub stages: Vec<String>,
    /// Per stage, per interval: the items in the stage, on average over the interval.
    pub counts: Vec<Vec<f64>>,
}

impl Series {
    /// The most items in flight (all stages, on average) in one interval.
    pub(crate) fn peak(&self) -> f64 {
        (0..self.samples())
            .map(|i| self.counts.iter().map(|c| c[i]).sum::<f64>())
            .fold(0.0, f64::max)
    }

    pub(crate) fn samples(&self) -> usize {
        self.counts.first().map_or(0, Vec::len)
    }
}

/// The series of a run lasting `duration_ms`, or `None` without item steps. A step still running counts until the
/// run's end.
pub(crate) fn series(steps: &[StepRow], duration_ms: i64, samples: usize) -> Option<Series> {
    let samples = samples.max(1);
    let interval_ms = (duration_ms.max(1) + samples as i64 - 1) / samples as i64;
    let mut stages: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    // Per stage, per interval: the time items spent in it (ms).
    let mut busy: Vec<Vec<f64>> = Vec::new();
    for r in steps {
        let Some((group, _, rest)) = split(&r.id) else { continue };
        if rest.is_empty() || r.action.is_none() || r.status == "skipped" {
            continue;
        }
        let Some(start) = r.start_offset_ms else { continue };
        let end = r
            .end_offset_ms
            .unwrap_or(duration_ms)
            .clamp(start, duration_ms.max(start));
        let stage = format!("{group}[*].{rest}");
        let i = *index.entry(stage.clone()).or_insert_with(|| {
            stages.push(stage);
            busy.push(vec![0.0; samples]);
            stages.len() - 1
        });
        let first = ((start / interval_ms) as usize).min(samples - 1);
        let last = ((end / interval_ms) as usize).min(samples - 1);
        for (b, slot) in busy[i].iter_mut().enumerate().take(last + 1).skip(first) {
            let (from, to) = (b as i64 * interval_ms, (b as i64 + 1) * interval_ms);
            *slot += (end.min(to) - start.max(from)).max(0) as f64;
        }
    }
    if stages.is_empty() {
        return None;
    }
    let counts = busy
        .into_iter()
        .map(|b| b.into_iter().map(|ms| ms / interval_ms as f64).collect())
        .collect();
    Some(Series {
        interval_ms,
        stages,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str, from: i64, to: Option<i64>) -> StepRow {
        StepRow {
            id: id.into(),
            name: None,
            action: Some("x.y".into()),
            region: None,
            phase: "steps".into(),
            depth: 0,
            status: status.into(),
            started_ms: Some(from),
            ended_ms: to,
            start_offset_ms: Some(from),
            end_offset_ms: to,
            duration_ms: to.map(|t| t - from),
            attempts: 1,
            failed_attempts: 0,
            error: None,
            skip_reason: None,
            inputs: Default::default(),
            outputs: Default::default(),
            recorded: Default::default(),
        }
    }

    #[test]
    fn counts_the_items_of_each_stage_per_interval() {
        let steps = [
            row("discover", "succeeded", 0, Some(10)),
            row("fleet[a].backup", "succeeded", 0, Some(25)),
            row("fleet[b].backup", "succeeded", 10, Some(20)),
            row("fleet[a].copy", "succeeded", 25, Some(40)),
            // Still running at the end of the run: counted to the end.
            row("fleet[b].copy", "running", 20, None),
            row("fleet[c].backup", "skipped", 0, Some(0)),
        ];
        let s = series(&steps, 100, 10).unwrap();
        assert_eq!(s.interval_ms, 10);
        assert_eq!(s.stages, ["fleet[*].backup", "fleet[*].copy"]);
        // a backs up over 0..25, b over 10..20.
        assert_eq!(s.counts[0], [1.0, 2.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // a copies over 25..40, b from 20 to the end.
        assert_eq!(s.counts[1], [0.0, 0.0, 1.5, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        assert_eq!(s.peak(), 2.0);
        assert_eq!(series(&steps[..1], 100, 10), None);
    }

    #[test]
    fn two_thousand_items_make_as_many_points_as_asked() {
        let steps: Vec<StepRow> = (0..2_000)
            .flat_map(|i| {
                let t = i as i64 * 1_000;
                [
                    row(&format!("fleet[i-{i}].backup"), "succeeded", t, Some(t + 600_000)),
                    row(
                        &format!("fleet[i-{i}].copy"),
                        "succeeded",
                        t + 600_000,
                        Some(t + 900_000),
                    ),
                ]
            })
            .collect();
        let s = series(&steps, 3_000_000, 200).unwrap();
        assert_eq!((s.stages.len(), s.samples()), (2, 200));
        // 600 items back up at once (10 min at one start a second) and 300 copy (5 min): 900 in flight at most.
        assert!((s.counts[0][100] - 600.0).abs() < 1.0, "{}", s.counts[0][100]);
        assert!((s.counts[1][100] - 300.0).abs() < 1.0, "{}", s.counts[1][100]);
        assert!((s.peak() - 900.0).abs() < 1.0, "{}", s.peak());
    }
}
