//! A large fleet's steps, condensed for the HTML report's timeline and steps table: the steps of a `for_each`'s
//! items become one row per stage (`fleet[*].backup`: from the first item's start to the last one's end, the
//! counts by status), where the fleet section has the items one by one.

use std::collections::BTreeMap;

use super::fleet::split;
use super::model::{StepRow, dur};

/// Up to this many items, every item's steps have their own rows.
pub(crate) const DETAIL_ITEMS: usize = 20;

/// The rows, with the item steps of each group of more than `limit` items in one row per stage; `None` when no
/// group is that large.
pub(crate) fn condense(steps: &[StepRow], limit: usize) -> Option<Vec<StepRow>> {
    let mut keys: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for r in steps {
        if let Some((group, key, _)) = split(&r.id) {
            keys.entry(group).or_default().insert(key);
        }
    }
    let large: Vec<&str> = keys.iter().filter(|(_, k)| k.len() > limit).map(|(g, _)| *g).collect();
    if large.is_empty() {
        return None;
    }
    let mut out: Vec<StepRow> = Vec::new();
    // Stage id → its row in `out`, and the counts by status.
    let mut stages: BTreeMap<String, (usize, BTreeMap<String, usize>)> = BTreeMap::new();
    for r in steps {
        let stage = match split(&r.id) {
            Some((group, _, rest)) if large.contains(&group) => {
                if rest.is_empty() {
                    format!("{group}[*]")
                } else {
                    format!("{group}[*].{rest}")
                }
            }
            _ => {
                out.push(r.clone());
                continue;
            }
        };
        let (at, counts) = stages.entry(stage.clone()).or_insert_with(|| {
            let mut row = r.clone();
            row.id = stage;
            row.status = "not_run".into();
            row.started_ms = None;
            row.ended_ms = None;
            row.start_offset_ms = None;
            row.end_offset_ms = None;
            row.attempts = 0;
            row.failed_attempts = 0;
            row.error = None;
            row.skip_reason = None;
            row.inputs.clear();
            row.outputs.clear();
            row.recorded.clear();
            out.push(row);
            (out.len() - 1, BTreeMap::new())
        });
        *counts.entry(r.status.clone()).or_default() += 1;
        let row = &mut out[*at];
        row.attempts += r.attempts;
        row.failed_attempts += r.failed_attempts;
        let min = |a: Option<i64>, b: Option<i64>| a.into_iter().chain(b).min();
        let max = |a: Option<i64>, b: Option<i64>| a.into_iter().chain(b).max();
        row.started_ms = min(row.started_ms, r.started_ms);
        row.start_offset_ms = min(row.start_offset_ms, r.start_offset_ms);
        row.ended_ms = max(row.ended_ms, r.ended_ms);
        row.end_offset_ms = max(row.end_offset_ms, r.end_offset_ms);
    }
    for (at, counts) in stages.values() {
        let row = &mut out[*at];
        let has = |s: &str| counts.contains_key(s);
        // The worst of its items: a failure shows, then work left running, then success.
        row.status = ["failed", "running", "succeeded", "skipped", "not_run"]
            .into_iter()
            .find(|s| has(s))
            .unwrap_or("not_run")
            .to_string();
        if has("running") {
            row.ended_ms = None;
            row.end_offset_ms = None;
        }
        row.duration_ms = row.started_ms.zip(row.ended_ms).map(|(a, b)| b - a);
        let words: Vec<String> = counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.replace('_', " ")))
            .collect();
        let items: usize = counts.values().sum();
        let text = format!(
            "{items} items: {}{}",
            words.join(", "),
            row.duration_ms
                .map(|d| format!("; first start to last end {}", dur(d)))
                .unwrap_or_default()
        );
        if row.status == "failed" {
            row.error = Some(text);
        } else {
            row.skip_reason = Some(text);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, status: &str, from: i64, to: i64) -> StepRow {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": null, "action": "x.y", "region": null, "phase": "steps", "depth": 0,
            "status": status, "started_ms": from, "ended_ms": to, "start_offset_ms": from, "end_offset_ms": to,
            "duration_ms": to - from, "attempts": 1, "failed_attempts": 0, "error": null, "skip_reason": null,
            "inputs": {}, "outputs": {}, "recorded": {}
        }))
        .unwrap()
    }

    #[test]
    fn a_large_fleets_item_steps_become_a_row_per_stage() {
        let mut steps = vec![row("discover", "succeeded", 0, 5), row("fleet", "succeeded", 5, 100)];
        for (k, status) in [("a", "succeeded"), ("b", "failed"), ("c", "succeeded")] {
            steps.push(row(&format!("fleet[{k}].backup"), "succeeded", 5, 20));
            steps.push(row(&format!("fleet[{k}].copy"), status, 30, 90));
        }
        assert_eq!(condense(&steps, 3), None, "three items: each has its rows");
        let rows = condense(&steps, 2).unwrap();
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["discover", "fleet", "fleet[*].backup", "fleet[*].copy"]);
        let copy = &rows[3];
        assert_eq!(copy.status, "failed");
        assert_eq!(
            (copy.start_offset_ms, copy.end_offset_ms, copy.attempts),
            (Some(30), Some(90), 3)
        );
        assert_eq!(
            copy.error.as_deref(),
            Some("3 items: 1 failed, 2 succeeded; first start to last end 60ms")
        );
    }
}
