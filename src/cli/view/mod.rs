//! How a run shows itself: a live view (one line per step, spinner while waiting) on a terminal, plain lines
//! otherwise, or the journal entries as JSON lines.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::Output;
use crate::engine::Observer;
use crate::engine::journal::{Entry, Event};
use crate::workflow::format_duration;

pub trait View: Observer {
    fn finish(&self) {}
}

pub fn observer(output: Output) -> Box<dyn View> {
    match output {
        Output::Json => Box::new(Json),
        Output::Plain => Box::new(Plain::default()),
        Output::Auto if std::io::stdout().is_terminal() => Box::new(Live::default()),
        Output::Auto => Box::new(Plain::default()),
    }
}

/// What an event means for one step's line, or `None` if it says nothing new.
fn describe(e: &Event, started_ms: i64, ts_ms: i64) -> Option<(Mark, String)> {
    let took = || format_duration(Duration::from_millis((ts_ms - started_ms).max(0) as u64));
    Some(match e {
        Event::StepStarted {
            action: Some(a),
            region,
            ..
        } => (
            Mark::Running,
            format!("{a}{}", region.as_ref().map(|r| format!(" in {r}")).unwrap_or_default()),
        ),
        Event::StepStarted { .. } => (Mark::Running, "group".into()),
        Event::Queued { quota, .. } => (Mark::Running, format!("waiting for a free slot: {quota}")),
        Event::AttemptStarted { attempt, .. } if *attempt > 1 => (Mark::Running, format!("attempt {attempt}")),
        Event::Recorded { key, value, .. } => (
            Mark::Running,
            format!("{key} {}", crate::workflow::expr::to_text(value)),
        ),
        Event::Polled {
            status, polls, attempt, ..
        } => (
            Mark::Running,
            format!("waiting: {status} (poll {polls}, attempt {attempt}, {})", took()),
        ),
        Event::AttemptFailed {
            attempt,
            error,
            retry_in_ms,
            ..
        } => (
            Mark::Running,
            match retry_in_ms {
                Some(ms) => format!(
                    "attempt {attempt} failed ({}); retrying in {}",
                    error.code,
                    format_duration(Duration::from_millis(*ms))
                ),
                None => format!("attempt {attempt} failed ({})", error.code),
            },
        ),
        Event::StepSucceeded { .. } => (Mark::Done, format!("done in {}", took())),
        Event::StepFailed { error, .. } => (Mark::Failed, format!("failed after {}: {}", took(), error.message)),
        Event::StepSkipped { reason, .. } => (Mark::Skipped, format!("skipped: {reason}")),
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Running,
    Done,
    Failed,
    Skipped,
}

impl Mark {
    fn symbol(self) -> &'static str {
        match self {
            Mark::Running => "…",
            Mark::Done => "✓",
            Mark::Failed => "✗",
            Mark::Skipped => "-",
        }
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

impl Observer for Plain {
    fn event(&self, entry: &Entry) {
        let Some(step) = entry.event.step() else {
            if let Event::RunResumed { .. } = entry.event {
                println!("resuming from the journal");
            }
            return;
        };
        let started = *self
            .started
            .lock()
            .expect("lock")
            .entry(step.to_string())
            .or_insert(entry.ts_ms);
        if let Some((mark, text)) = describe(&entry.event, started, entry.ts_ms) {
            println!("{} {step:<22} {text}", mark.symbol());
        }
    }
}

impl View for Plain {}

#[derive(Default)]
struct Live {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, i64)>>,
}

impl Observer for Live {
    fn event(&self, entry: &Entry) {
        let Some(step) = entry.event.step() else { return };
        let mut bars = self.bars.lock().expect("lock");
        let (bar, started) = bars
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
}

impl View for Live {
    fn finish(&self) {
        for (bar, _) in self.bars.lock().expect("lock").values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
