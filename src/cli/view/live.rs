//! The live view on a terminal: a spinner line per step; a `for_each` group's items are not lines of their own
//! but its board: under the group's line, a headline (items finished, in flight, throughput, ETA), a progress bar
//! per stage with its counts, and the slowest and failed items by name. An item's entry redraws its stage's bar and
//! the group's two text lines, whatever the number of items (indicatif limits the terminal's redraws).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::board::{Board, Change};
use super::describe::{Mark, describe};
use super::layout::Layout;
use super::summary;
use super::{Observer, View};
use crate::engine::journal::Entry;

pub(crate) struct Live {
    multi: MultiProgress,
    inner: Mutex<Inner>,
}

struct Inner {
    /// Lines of steps outside any item, and when each started.
    steps: HashMap<String, (ProgressBar, i64)>,
    board: Board,
    /// The bars of each board group, by its index.
    fleets: Vec<FleetBars>,
}

struct FleetBars {
    head: ProgressBar,
    stages: Vec<ProgressBar>,
    notes: ProgressBar,
}

fn text_line() -> ProgressStyle {
    ProgressStyle::with_template("  {msg}").expect("valid template")
}

fn stage_bar() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix:<26} [{bar:30.cyan/blue}] {pos:>5}/{len:<5} {msg}")
        .expect("valid template")
        .progress_chars("█▉▊▋▌▍▎▏ ")
}

impl Live {
    pub(crate) fn new(layout: Layout) -> Live {
        Live::with_target(layout, ProgressDrawTarget::stderr())
    }

    pub(crate) fn with_target(layout: Layout, target: ProgressDrawTarget) -> Live {
        Live {
            multi: MultiProgress::with_draw_target(target),
            inner: Mutex::new(Inner {
                steps: HashMap::new(),
                board: Board::new(layout),
                fleets: Vec::new(),
            }),
        }
    }

    /// The line of a step outside any item.
    fn step_line(&self, inner: &mut Inner, step: &str, entry: &Entry) {
        let (bar, started) = inner
            .steps
            .entry(step.to_string())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner:.cyan} {prefix:<22} {msg} {elapsed:.dim}")
                        .expect("valid template")
                        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓"),
                );
                bar.set_prefix(step.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                (bar, entry.ts_ms)
            })
            .clone();
        let Some((mark, text)) = describe(&entry.event, started, entry.ts_ms) else {
            return;
        };
        if mark == Mark::Running {
            bar.set_message(text);
        } else {
            bar.set_style(ProgressStyle::with_template("{prefix:<24} {msg}").expect("valid template"));
            bar.set_prefix(format!("{} {step}", mark.symbol()));
            bar.finish_with_message(text);
        }
    }

    /// Draws what a board change touched: the group's lines, and the stage's bar.
    fn fleet(&self, inner: &mut Inner, c: Change) {
        while inner.fleets.len() <= c.group {
            let g = &inner.board.groups[inner.fleets.len()];
            // Under the group's own line when there is one, else at the end.
            let head = ProgressBar::new(0).with_style(text_line());
            let head = match inner.steps.get(&g.id) {
                Some((line, _)) => self.multi.insert_after(line, head),
                None => self.multi.add(head),
            };
            let notes = self
                .multi
                .insert_after(&head, ProgressBar::new(0).with_style(text_line()));
            inner.fleets.push(FleetBars {
                head,
                stages: Vec::new(),
                notes,
            });
        }
        let g = &inner.board.groups[c.group];
        let bars = &mut inner.fleets[c.group];
        let total = g.total() as u64;
        while bars.stages.len() < g.stages.len() {
            let after = bars.stages.last().unwrap_or(&bars.head);
            let bar = self
                .multi
                .insert_after(after, ProgressBar::new(total).with_style(stage_bar()));
            bar.set_prefix(g.stages[bars.stages.len()].id.clone());
            bar.set_message(summary::stage(&g.stages[bars.stages.len()]));
            bars.stages.push(bar);
        }
        let stages: Vec<usize> = match c.stage {
            Some(s) => vec![s],
            // The group's count may have come: every bar's length.
            None => (0..g.stages.len()).collect(),
        };
        for s in stages {
            let bar = &bars.stages[s];
            if bar.length() != Some(total) {
                bar.set_length(total);
            }
            bar.set_position(g.stages[s].finished() as u64);
            bar.set_message(summary::stage(&g.stages[s]));
        }
        bars.head.set_message(summary::headline(g));
        bars.notes.set_message(summary::notes(g));
    }
}

impl Observer for Live {
    fn event(&self, entry: &Entry) {
        let Some(step) = entry.event.step() else { return };
        let mut inner = self.inner.lock().expect("lock");
        if !Board::is_item(step) {
            self.step_line(&mut inner, step, entry);
        }
        if let Some(change) = inner.board.apply(entry) {
            self.fleet(&mut inner, change);
        }
    }
}

impl View for Live {
    fn suspend(&self, f: &mut dyn FnMut()) {
        self.multi.suspend(f)
    }

    /// A resumed fleet's board starts where the run was: its items finished before are counted.
    fn seed(&self, entries: &[Entry]) {
        let mut inner = self.inner.lock().expect("lock");
        let mut groups = std::collections::BTreeSet::new();
        for e in entries {
            if let Some(c) = inner.board.apply(e) {
                groups.insert(c.group);
            }
        }
        for group in groups {
            self.fleet(&mut inner, Change { group, stage: None });
        }
    }

    fn finish(&self) {
        let inner = self.inner.lock().expect("lock");
        let fleet_bars = inner
            .fleets
            .iter()
            .flat_map(|f| [&f.head, &f.notes].into_iter().chain(&f.stages));
        for bar in inner.steps.values().map(|(b, _)| b).chain(fleet_bars) {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::board::tests::{entry, fleet_start, layout, started, succeeded};
    use super::*;
    use crate::engine::journal::Event;

    /// The whole view (board and bars, drawn to a hidden target) through 2,000 items × 30 entries.
    #[test]
    fn draws_two_thousand_items_as_a_few_bars() {
        let live = Live::with_target(layout(), ProgressDrawTarget::hidden());
        let clock = std::time::Instant::now();
        live.event(&entry(0, fleet_start(2_000)));
        let mut t = 0;
        for stage in ["backup", "copy", "publish"] {
            for item in 0..2_000 {
                let step = format!("fleet[i-{item:017x}].{stage}");
                live.event(&entry(t, started(&step)));
                for polls in 1..=8 {
                    t += 50;
                    live.event(&entry(
                        t,
                        Event::Polled {
                            step: step.clone(),
                            attempt: 1,
                            polls,
                            status: "RUNNING".into(),
                        },
                    ));
                }
                live.event(&entry(t, succeeded(&step)));
            }
        }
        live.finish();
        let inner = live.inner.lock().unwrap();
        assert_eq!(inner.steps.len(), 1, "one line for the group, none per item");
        let bars = &inner.fleets[0];
        assert_eq!(bars.stages.len(), 3);
        for bar in &bars.stages {
            assert_eq!((bar.position(), bar.length()), (2_000, Some(2_000)));
        }
        assert_eq!(inner.board.groups[0].succeeded, 2_000);
        eprintln!("live view: 60,000 entries in {:?}", clock.elapsed());
    }

    #[test]
    fn a_resumed_fleet_starts_from_what_the_journal_held() {
        let live = Live::with_target(layout(), ProgressDrawTarget::hidden());
        let before = [
            entry(0, fleet_start(2)),
            entry(0, started("fleet[a].backup")),
            entry(10, succeeded("fleet[a].backup")),
            entry(10, started("fleet[a].copy")),
            entry(10, started("fleet[b].backup")),
        ];
        live.seed(&before);
        {
            let inner = live.inner.lock().unwrap();
            let bars = &inner.fleets[0];
            assert_eq!((bars.stages[0].position(), bars.stages[0].length()), (1, Some(2)));
            assert!(inner.steps.is_empty(), "no step lines from before the resume");
        }
        // The resumed run announces the group and the running steps again, then goes on.
        live.event(&entry(20, Event::RunResumed { forced: false }));
        live.event(&entry(20, fleet_start(2)));
        live.event(&entry(20, started("fleet[b].backup")));
        live.event(&entry(30, succeeded("fleet[b].backup")));
        let inner = live.inner.lock().unwrap();
        let g = &inner.board.groups[0];
        assert_eq!((g.stages[0].done, g.stages[0].running, g.stages[1].running), (2, 0, 1));
        assert_eq!(inner.fleets[0].stages[0].position(), 2);
    }
}
