//! One step's line: what an event says about it, and its mark.

use std::time::Duration;

use crate::engine::journal::Event;
use crate::workflow::format_duration;

/// What an event means for one step's line, or `None` if it says nothing new.
pub(crate) fn describe(e: &Event, started_ms: i64, ts_ms: i64) -> Option<(Mark, String)> {
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
        Event::ApprovalRequested { message, .. } => (Mark::Running, format!("waiting for approval: {message}")),
        Event::ApprovalDecided { decision: d, .. } => (
            Mark::Running,
            format!(
                "{} by {} ({}){}",
                if d.approved { "approved" } else { "rejected" },
                d.who(),
                serde_json::to_value(d.how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                d.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        ),
        _ => return None,
    })
}

#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mark {
    Running,
    Done,
    Failed,
    Skipped,
}

impl Mark {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Mark::Running => "…",
            Mark::Done => "✓",
            Mark::Failed => "✗",
            Mark::Skipped => "-",
        }
    }
}
