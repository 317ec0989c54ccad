//! How a run shows itself: a live view on a terminal (a line per step, a spinner while it waits; the steps of a
//! `for_each` aggregated, a progress bar per stage), plain lines otherwise (one per step event, an item's steps
//! named with its key), or the journal entries as JSON lines.

mod board;
mod describe;
mod layout;
mod live;
mod summary;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use super::Output;
use crate::engine::Observer;
use crate::engine::journal::{Entry, Event};
use crate::workflow::Workflow;
use describe::describe;

pub trait View: Observer {
    /// What the journal held when a resumed run starts again (only new entries reach `event`).
    fn seed(&self, _entries: &[Entry]) {}
    fn finish(&self) {}
    /// Runs `f` (a question on the terminal) with the live view out of its way.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// The view of a run of `wf` (the live view reads its `for_each` groups' steps).
pub fn observer(output: Output, wf: &Workflow) -> std::sync::Arc<dyn View> {
    match output {
        Output::Json => std::sync::Arc::new(Json),
        Output::Plain => std::sync::Arc::new(Plain::default()),
        Output::Auto if std::io::stdout().is_terminal() => std::sync::Arc::new(live::Live::new(layout::Layout::of(wf))),
        Output::Auto => std::sync::Arc::new(Plain::default()),
    }
}

struct Json;

impl Observer for Json {
    fn event(&self, entry: &Entry) {
        println!("{}", serde_json::to_string(entry).expect("entries serialize"));
    }
}

impl View for Json {}

#[derive(Default)]
struct Plain {
    started: Mutex<HashMap<String, i64>>,
}

impl Plain {
    /// The line an entry prints, if any.
    fn line(&self, entry: &Entry) -> Option<String> {
        let Some(step) = entry.event.step() else {
            return matches!(entry.event, Event::RunResumed { .. }).then(|| "resuming from the journal".to_string());
        };
        let started = *self
            .started
            .lock()
            .expect("lock")
            .entry(step.to_string())
            .or_insert(entry.ts_ms);
        let (mark, text) = describe(&entry.event, started, entry.ts_ms)?;
        Some(format!("{} {step:<22} {text}", mark.symbol()))
    }
}

impl Observer for Plain {
    fn event(&self, entry: &Entry) {
        if let Some(line) = self.line(entry) {
            println!("{line}");
        }
    }
}

impl View for Plain {}

#[cfg(test)]
mod tests {
    use super::board::tests::{entry, started, succeeded};
    use super::*;

    #[test]
    fn plain_names_an_items_steps_with_its_key_one_line_per_event() {
        let plain = Plain::default();
        let lines: Vec<Option<String>> = [
            entry(0, started("fleet[i-0abc].wait_copy")),
            entry(
                0,
                Event::Queued {
                    step: "fleet[i-0abc].wait_copy".into(),
                    quota: "copy jobs into us-west-2".into(),
                },
            ),
            entry(61_000, succeeded("fleet[i-0abc].wait_copy")),
        ]
        .iter()
        .map(|e| plain.line(e))
        .collect();
        assert_eq!(
            lines,
            [
                Some("… fleet[i-0abc].wait_copy x.y".to_string()),
                Some("… fleet[i-0abc].wait_copy waiting for a free slot: copy jobs into us-west-2".to_string()),
                Some("✓ fleet[i-0abc].wait_copy done in 1m1s".to_string()),
            ]
        );
    }
}
