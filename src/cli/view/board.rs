//! The live view's picture of a fleet, fed with journal entries: per `for_each` group, per stage (a step of the
//! body, all items together: `fleet[*].backup`) how many items are done, running, waiting for a quota slot or
//! failed; per group the items finished, the throughput and the ETA by the run's clock (`ts_ms`: simulated under
//! `--simulate`), the items longest in their current stage and the failed items. No drawing here (see `live`).
//!
//! Each entry costs a few hash-map and ordered-set operations, whatever the number of items: the slowest items
//! come from the front of each stage's set of items in flight, ordered by when they entered the stage.

use std::collections::{BTreeSet, HashMap};

use super::layout::{GroupLayout, Layout};
use crate::engine::ITEM_COUNT;
use crate::engine::journal::{Entry, Event};
use crate::report::fleet::split;

/// Where one item is in one stage.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Running(i64),
    Queued(i64),
    Done,
    Failed,
    Skipped,
}

impl Phase {
    fn since(self) -> Option<i64> {
        match self {
            Phase::Running(t) | Phase::Queued(t) => Some(t),
            _ => None,
        }
    }
}

/// One step of a group's body, over all items.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stage {
    /// `GROUP[*].STEP`.
    pub id: String,
    pub done: usize,
    pub running: usize,
    pub queued: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Items in this stage now (running or queued), by the time they entered it.
    in_flight: BTreeSet<(i64, String)>,
}

impl Stage {
    /// Items past this stage: done, failed or skipped.
    pub(crate) fn finished(&self) -> usize {
        self.done + self.failed + self.skipped
    }

    fn leave(&mut self, key: &str, phase: Phase) {
        match phase {
            Phase::Running(_) => self.running -= 1,
            Phase::Queued(_) => self.queued -= 1,
            _ => return,
        }
        if let Some(t) = phase.since() {
            self.in_flight.remove(&(t, key.to_string()));
        }
    }

    fn enter(&mut self, key: &str, phase: Phase) {
        match phase {
            Phase::Running(_) => self.running += 1,
            Phase::Queued(_) => self.queued += 1,
            Phase::Done => self.done += 1,
            Phase::Failed => self.failed += 1,
            Phase::Skipped => self.skipped += 1,
        }
        if let Some(t) = phase.since() {
            self.in_flight.insert((t, key.to_string()));
        }
    }
}

#[derive(Debug, Default)]
struct Item {
    /// Stage index → phase.
    phases: HashMap<usize, Phase>,
    ended: bool,
}

/// An item of the group in flight for long: its key, its stage (`wait_copy`) and for how long (ms).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slow {
    pub key: String,
    pub stage: String,
    pub ms: i64,
}

/// One `for_each` group.
#[derive(Debug, Default)]
pub(crate) struct Group {
    pub id: String,
    /// The number of items, from the group's start (`inputs.item_count`); `None` in an older journal.
    pub count: Option<usize>,
    pub stages: Vec<Stage>,
    stage_index: HashMap<String, usize>,
    layout: GroupLayout,
    items: HashMap<String, Item>,
    pub succeeded: usize,
    pub skipped: usize,
    /// Failed items in the order they failed, with the stage that failed them.
    pub failed: Vec<(String, String)>,
    pub started_ms: Option<i64>,
    /// The run's clock: the latest entry's time.
    pub now_ms: i64,
}

impl Group {
    fn new(id: &str, layout: GroupLayout) -> Group {
        let mut g = Group {
            id: id.to_string(),
            layout,
            ..Group::default()
        };
        for s in g.layout.stages.clone() {
            g.stage(&s);
        }
        g
    }

    /// The stage's index, added if new (a step not in the layout, e.g. of a nested `for_each`).
    fn stage(&mut self, rest: &str) -> usize {
        if let Some(i) = self.stage_index.get(rest) {
            return *i;
        }
        self.stages.push(Stage {
            id: format!("{}[*].{rest}", self.id),
            ..Stage::default()
        });
        self.stage_index.insert(rest.to_string(), self.stages.len() - 1);
        self.stages.len() - 1
    }

    /// Items the view has seen so far.
    pub(crate) fn seen(&self) -> usize {
        self.items.len()
    }

    /// The number of items: as announced, or as seen.
    pub(crate) fn total(&self) -> usize {
        self.count.unwrap_or(0).max(self.seen())
    }

    pub(crate) fn finished(&self) -> usize {
        self.succeeded + self.skipped + self.failed.len()
    }

    /// Items started and not finished.
    pub(crate) fn in_flight(&self) -> usize {
        self.seen() - self.finished()
    }

    /// Items finished per minute since the group started, by the run's clock.
    pub(crate) fn per_minute(&self) -> Option<f64> {
        let elapsed = self.now_ms - self.started_ms?;
        (elapsed > 0 && self.finished() > 0).then(|| self.finished() as f64 * 60_000.0 / elapsed as f64)
    }

    /// The time left at this throughput, in ms.
    pub(crate) fn eta_ms(&self) -> Option<i64> {
        let rate = self.per_minute()?;
        let left = self.total().saturating_sub(self.finished());
        Some((left as f64 / rate * 60_000.0).round() as i64)
    }

    /// The `n` items longest in their current stage (longest first): from the front of each stage's set.
    pub(crate) fn slowest(&self, n: usize) -> Vec<Slow> {
        let mut all: Vec<(i64, &str, usize)> = Vec::new();
        for (i, s) in self.stages.iter().enumerate() {
            all.extend(s.in_flight.iter().take(n).map(|(t, k)| (*t, k.as_str(), i)));
        }
        all.sort();
        let mut out: Vec<Slow> = Vec::with_capacity(n);
        for (t, key, i) in all {
            // An item in a nested group is in two stages at once: the one it entered last is its current one.
            if out.len() == n {
                break;
            }
            if out.iter().any(|s| s.key == key) {
                continue;
            }
            out.push(Slow {
                key: key.to_string(),
                stage: self.stage_name(i).to_string(),
                ms: self.now_ms - t,
            });
        }
        out
    }

    /// A stage's step id without the group: `backup`.
    pub(crate) fn stage_name(&self, i: usize) -> &str {
        self.stages[i]
            .id
            .strip_prefix(&self.id)
            .and_then(|r| r.strip_prefix("[*]."))
            .unwrap_or(&self.stages[i].id)
    }

    fn end_item(&mut self, key: &str, how: Phase, stage: &str) {
        let Some(item) = self.items.get_mut(key) else { return };
        if item.ended {
            return;
        }
        item.ended = true;
        match how {
            Phase::Failed => self.failed.push((key.to_string(), stage.to_string())),
            Phase::Skipped => self.skipped += 1,
            _ => self.succeeded += 1,
        }
    }

    /// An event of one item's step; returns the stage it changed.
    fn item_event(&mut self, key: &str, rest: &str, ts: i64, event: &Event) -> Option<usize> {
        self.items.entry(key.to_string()).or_default();
        if rest.is_empty() {
            // The item itself: skipped when another run holds its lock.
            if let Event::StepSkipped { .. } = event {
                self.end_item(key, Phase::Skipped, "");
            }
            return None;
        }
        let stage = self.stage(rest);
        let old = self.items[key].phases.get(&stage).copied();
        let new = match (event, old) {
            // A resumed run announces again a step that was running.
            (Event::StepStarted { .. }, Some(Phase::Running(_) | Phase::Queued(_))) => return None,
            (Event::StepStarted { .. }, _) => Phase::Running(ts),
            (Event::Queued { .. }, Some(Phase::Running(t))) => Phase::Queued(t),
            (Event::AttemptStarted { .. }, Some(Phase::Queued(t))) => Phase::Running(t),
            (Event::StepSucceeded { .. }, _) => Phase::Done,
            (Event::StepFailed { .. }, _) => Phase::Failed,
            (Event::StepSkipped { .. }, _) => Phase::Skipped,
            _ => return None,
        };
        if let Some(old) = old {
            self.stages[stage].leave(key, old);
        }
        self.stages[stage].enter(key, new);
        self.items.get_mut(key).expect("added above").phases.insert(stage, new);
        // An item ends with its body's last top-level step, or with a top-level step that fails it.
        let top = self.layout.top.iter().position(|s| s == rest);
        let last = top.is_some() && top == self.layout.top.len().checked_sub(1);
        match event {
            Event::StepFailed { route, .. } if top.is_some() && route == "abort" => {
                self.end_item(key, Phase::Failed, rest)
            }
            Event::StepSucceeded { .. } | Event::StepSkipped { .. } | Event::StepFailed { .. } if last => {
                self.end_item(key, Phase::Done, rest)
            }
            _ => {}
        }
        Some(stage)
    }
}

/// What an entry changed: a group, and which of its stages (`None`: the group only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Change {
    pub group: usize,
    pub stage: Option<usize>,
}

/// Every `for_each` group of a run.
#[derive(Debug, Default)]
pub(crate) struct Board {
    layout: Layout,
    pub groups: Vec<Group>,
    index: HashMap<String, usize>,
}

impl Board {
    pub(crate) fn new(layout: Layout) -> Board {
        Board {
            layout,
            ..Board::default()
        }
    }

    /// Whether a step id is an item's (`GROUP[KEY]...`): the board shows it, not a line of its own.
    pub(crate) fn is_item(step: &str) -> bool {
        split(step).is_some()
    }

    fn group(&mut self, id: &str) -> usize {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        let layout = self.layout.groups.get(id).cloned().unwrap_or_default();
        self.groups.push(Group::new(id, layout));
        self.index.insert(id.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// Applies one entry; `None` when it is not a fleet's.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Option<Change> {
        let step = entry.event.step()?;
        let change = match split(step) {
            Some((group, key, rest)) => {
                let g = self.group(group);
                let stage = self.groups[g].item_event(key, rest, entry.ts_ms, &entry.event);
                Change { group: g, stage }
            }
            None if self.layout.groups.contains_key(step) || self.index.contains_key(step) => {
                let g = self.group(step);
                if let Event::StepStarted { inputs, .. } = &entry.event {
                    let group = &mut self.groups[g];
                    group.started_ms.get_or_insert(entry.ts_ms);
                    if let Some(n) = inputs.as_ref().and_then(|i| i.get(ITEM_COUNT)).and_then(|n| n.as_u64()) {
                        group.count = Some(n as usize);
                    }
                }
                Change { group: g, stage: None }
            }
            None => return None,
        };
        let group = &mut self.groups[change.group];
        group.started_ms.get_or_insert(entry.ts_ms);
        group.now_ms = group.now_ms.max(entry.ts_ms);
        Some(change)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::engine::journal::{ErrorInfo, Version};

    pub(crate) fn entry(ts_ms: i64, event: Event) -> Entry {
        Entry {
            v: Version::CURRENT,
            seq: 0,
            ts_ms,
            event,
        }
    }

    pub(crate) fn started(step: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            action: Some("x.y".into()),
            region: None,
            inputs: None,
        }
    }

    pub(crate) fn succeeded(step: &str) -> Event {
        Event::StepSucceeded {
            step: step.into(),
            outputs: Map::new(),
        }
    }

    pub(crate) fn failed(step: &str, route: &str) -> Event {
        Event::StepFailed {
            step: step.into(),
            error: ErrorInfo {
                code: "BackupJobFailed".into(),
                kind: "other".into(),
                message: "no".into(),
                operation: None,
            },
            route: route.into(),
        }
    }

    pub(crate) fn fleet_start(count: usize) -> Event {
        Event::StepStarted {
            step: "fleet".into(),
            action: None,
            region: None,
            inputs: Some(Map::from_iter([(ITEM_COUNT.to_string(), Value::from(count))])),
        }
    }

    /// The layout of dr-fleet's body, shortened: backup, copy, publish.
    pub(crate) fn layout() -> Layout {
        let steps: Vec<String> = ["backup", "copy", "publish"].map(String::from).into();
        Layout {
            groups: HashMap::from([(
                "fleet".to_string(),
                GroupLayout {
                    stages: steps.clone(),
                    top: steps,
                },
            )]),
        }
    }

    fn counts(s: &Stage) -> [usize; 5] {
        [s.done, s.running, s.queued, s.failed, s.skipped]
    }

    #[test]
    fn counts_each_stage_and_the_items_through_a_sequence_of_events() {
        let mut b = Board::new(layout());
        assert_eq!(
            b.apply(&entry(0, fleet_start(4))),
            Some(Change { group: 0, stage: None })
        );
        assert_eq!(b.apply(&entry(0, started("discover"))), None, "not a fleet's step");
        let g = |b: &Board| -> [[usize; 5]; 3] {
            let s = &b.groups[0].stages;
            [counts(&s[0]), counts(&s[1]), counts(&s[2])]
        };
        for k in ["a", "b", "c"] {
            b.apply(&entry(0, started(&format!("fleet[{k}].backup"))));
        }
        assert_eq!(b.groups[0].stages[0].id, "fleet[*].backup");
        assert_eq!(g(&b)[0], [0, 3, 0, 0, 0]);
        b.apply(&entry(60_000, succeeded("fleet[a].backup")));
        b.apply(&entry(60_000, started("fleet[a].copy")));
        b.apply(&entry(
            60_000,
            Event::Queued {
                step: "fleet[a].copy".into(),
                quota: "copy jobs".into(),
            },
        ));
        assert_eq!(g(&b)[..2], [[1, 2, 0, 0, 0], [0, 0, 1, 0, 0]]);
        b.apply(&entry(
            90_000,
            Event::AttemptStarted {
                step: "fleet[a].copy".into(),
                attempt: 1,
            },
        ));
        assert_eq!(g(&b)[1], [0, 1, 0, 0, 0], "the attempt clears the wait");
        // A failure that aborts ends the item; one routed `continue` on a middle step does not.
        b.apply(&entry(120_000, failed("fleet[b].backup", "abort")));
        b.apply(&entry(120_000, failed("fleet[c].backup", "continue")));
        assert_eq!(g(&b)[0], [1, 0, 0, 2, 0]);
        assert_eq!(b.groups[0].failed, [("b".to_string(), "backup".to_string())]);
        b.apply(&entry(150_000, succeeded("fleet[a].copy")));
        b.apply(&entry(150_000, started("fleet[a].publish")));
        b.apply(&entry(180_000, succeeded("fleet[a].publish")));
        b.apply(&entry(
            180_000,
            Event::StepSkipped {
                step: "fleet[d]".into(),
                reason: "locked".into(),
            },
        ));
        let f = &b.groups[0];
        assert_eq!((f.succeeded, f.failed.len(), f.skipped, f.total()), (1, 1, 1, 4));
        assert_eq!(f.in_flight(), 1, "c goes on");
        assert_eq!(g(&b)[2], [1, 0, 0, 0, 0]);
        // 3 items in 3 minutes: one a minute, one left.
        assert_eq!(f.per_minute(), Some(1.0));
        assert_eq!(f.eta_ms(), Some(60_000));
    }

    #[test]
    fn a_resumed_step_announced_again_is_counted_once() {
        let mut b = Board::new(layout());
        b.apply(&entry(0, fleet_start(1)));
        b.apply(&entry(0, started("fleet[a].backup")));
        b.apply(&entry(5_000, Event::RunResumed { forced: false }));
        b.apply(&entry(5_000, started("fleet[a].backup")));
        assert_eq!(b.groups[0].stages[0].running, 1);
        assert_eq!(
            b.groups[0].slowest(3)[0].ms,
            5_000,
            "in the stage since its first start"
        );
    }

    #[test]
    fn the_slowest_items_are_those_longest_in_their_current_stage() {
        let mut b = Board::new(layout());
        b.apply(&entry(0, fleet_start(5)));
        for (t, k) in [(0, "a"), (10, "b"), (20, "c"), (30, "d"), (40, "e")] {
            b.apply(&entry(t, started(&format!("fleet[{k}].backup"))));
        }
        // a moves on to the next stage at 50: it is now the newest there.
        b.apply(&entry(50, succeeded("fleet[a].backup")));
        b.apply(&entry(50, started("fleet[a].copy")));
        b.apply(&entry(100, succeeded("fleet[c].backup")));
        let slow = b.groups[0].slowest(3);
        let got: Vec<(&str, &str, i64)> = slow.iter().map(|s| (s.key.as_str(), s.stage.as_str(), s.ms)).collect();
        assert_eq!(got, [("b", "backup", 90), ("d", "backup", 70), ("e", "backup", 60)]);
    }

    #[test]
    fn without_a_count_the_total_is_the_items_seen_and_stages_come_as_they_appear() {
        let mut b = Board::new(Layout::default());
        b.apply(&entry(0, started("fleet[a].disks[d1].snap")));
        b.apply(&entry(0, started("fleet[b].backup")));
        let g = &b.groups[0];
        assert_eq!(g.total(), 2);
        assert_eq!(g.per_minute(), None);
        assert_eq!(g.eta_ms(), None);
        let ids: Vec<&str> = g.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["fleet[*].disks[d1].snap", "fleet[*].backup"]);
    }

    /// 2,000 items × 30 events (start, polls, a quota wait, success, per stage), each entry applied, and each
    /// time the figures a redraw reads computed: a few operations per entry, not a pass over the items.
    #[test]
    fn two_thousand_items_cost_little_per_event() {
        let stages = ["backup", "wait_backup", "copy", "wait_copy", "publish"];
        let steps: Vec<String> = stages.map(String::from).into();
        let mut b = Board::new(Layout {
            groups: HashMap::from([(
                "fleet".to_string(),
                GroupLayout {
                    stages: steps.clone(),
                    top: steps,
                },
            )]),
        });
        let clock = std::time::Instant::now();
        let mut t = 0;
        let mut n = 0;
        b.apply(&entry(0, fleet_start(2_000)));
        for stage in stages {
            for item in 0..2_000 {
                let step = format!("fleet[i-{item:017x}].{stage}");
                let mut events = vec![
                    started(&step),
                    Event::Queued {
                        step: step.clone(),
                        quota: "q".into(),
                    },
                    Event::AttemptStarted {
                        step: step.clone(),
                        attempt: 1,
                    },
                ];
                for polls in 1..=2 {
                    events.push(Event::Polled {
                        step: step.clone(),
                        attempt: 1,
                        polls,
                        status: "RUNNING".into(),
                    });
                }
                events.push(succeeded(&step));
                for e in events {
                    t += 100;
                    let c = b.apply(&entry(t, e)).unwrap();
                    let g = &b.groups[c.group];
                    std::hint::black_box((g.slowest(3), g.eta_ms(), g.per_minute(), g.in_flight()));
                    n += 1;
                }
            }
        }
        let g = &b.groups[0];
        assert_eq!(n, 2_000 * 30);
        assert_eq!((g.succeeded, g.in_flight(), g.total()), (2_000, 0, 2_000));
        assert!(g.stages.iter().all(|s| s.done == 2_000 && s.in_flight.is_empty()));
        eprintln!(
            "board: {n} entries in {:?} ({:.1} µs each)",
            clock.elapsed(),
            clock.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
