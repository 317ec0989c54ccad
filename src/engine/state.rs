//! What a run knows so far, rebuilt from journal entries: live runs and resumed runs apply the same events.
//!
//! A step's state is a small state machine; `apply` accepts only the transitions the engine makes:
//!
//! ```text
//! not run ──started──▶ running ──succeeded──▶ succeeded
//!    │                  │  ▲                    
//!    │                  └──┘ attempt started / failed, polled, recorded
//!    │                  └─────failed──────────▶ failed
//!    └──skipped──▶ skipped
//! ```
//!
//! A finished step takes no further event, and nothing follows the run's end. A journal whose events do not fit
//! (say, an attempt after a success) is refused with the journal line that breaks the rules, never half-applied.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::journal::{Entry, ErrorInfo, Event, RunStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum StepStatus {
    Running,
    Succeeded(Map<String, Value>),
    Failed { error: ErrorInfo, route: String },
    Skipped(String),
}

impl StepStatus {
    pub fn name(&self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded(_) => "succeeded",
            StepStatus::Failed { .. } => "failed",
            StepStatus::Skipped(_) => "skipped",
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self, StepStatus::Running)
    }
}

#[derive(Debug, Default, Clone)]
pub struct StepState {
    /// `None`: not run yet.
    pub status: Option<StepStatus>,
    pub attempts: u32,
    /// Failed attempts in all.
    pub failures: u32,
    /// Failed attempts in a row of one call (the same AWS operation failing again), since the step last made
    /// progress (a wait's good poll, an attempt that got past the call that failed before): what the retry budget
    /// counts, as if each call had its own ASL retrier.
    pub in_a_row: u32,
    /// The call the last failed attempt failed at.
    pub last_failed: Option<String>,
    pub recorded: Map<String, Value>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub last_status: Option<String>,
    /// The quota the step waits for, until its first attempt starts.
    pub queued: Option<String>,
    /// An approval step's decision, once journaled (a resumed run does not ask again).
    pub approval: Option<crate::actions::approval::Decision>,
}

impl StepState {
    /// What `in_a_row` becomes when a failure of `operation` (the call that failed, if any) is counted: one more if
    /// the same call failed last time with nothing in between, else 1.
    pub fn in_a_row_after(&self, operation: Option<&str>) -> u32 {
        if self.in_a_row > 0 && self.last_failed.as_deref() == operation {
            self.in_a_row + 1
        } else {
            1
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct RunState {
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    pub digest: String,
    pub backend: String,
    pub lock: String,
    pub inputs: Map<String, Value>,
    pub regions: Map<String, Value>,
    /// The caller's AWS account, when the run checked its credentials (`account.id`).
    pub account: Option<String>,
    pub steps: HashMap<String, StepState>,
    /// Step ids in the order they started.
    pub order: Vec<String>,
    pub finished: Option<(RunStatus, Option<String>)>,
    /// The approval step the run waits at (its process stopped there), until it is resumed.
    pub waiting: Option<String>,
    pub started_ms: i64,
    pub last_ms: i64,
    pub next_seq: u64,
}

/// A journal entry that does not fit the run's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("journal line {line}: {message}")]
pub struct ReplayError {
    /// The entry's sequence number: its line in the journal file.
    pub line: u64,
    pub message: String,
}

impl RunState {
    pub fn replay(entries: &[Entry]) -> Result<RunState, ReplayError> {
        let mut s = RunState::default();
        for e in entries {
            s.apply(e)?;
        }
        Ok(s)
    }

    /// Applies one entry, or refuses it (and changes nothing) when it does not fit.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), ReplayError> {
        self.check(entry).map_err(|message| ReplayError {
            line: entry.seq,
            message,
        })?;
        self.last_ms = entry.ts_ms;
        self.next_seq = entry.seq + 1;
        if let Some(step) = entry.event.step()
            && !self.steps.contains_key(step)
        {
            self.order.push(step.to_string());
        }
        match &entry.event {
            Event::RunStarted {
                run_id,
                workflow,
                file,
                digest,
                inputs,
                regions,
                backend,
                lock,
                account,
            } => {
                self.run_id = run_id.clone();
                self.workflow = workflow.clone();
                self.file = file.clone();
                self.digest = digest.clone();
                self.inputs = inputs.clone();
                self.regions = regions.clone();
                self.backend = backend.clone();
                self.lock = lock.clone();
                self.account = account.clone();
                self.started_ms = entry.ts_ms;
            }
            Event::RunResumed { .. } => self.waiting = None,
            Event::RateLimits { .. } | Event::Unknown => {}
            Event::ApprovalRequested { step, .. } => self.waiting = Some(step.clone()),
            Event::ApprovalDecided { step, decision } => {
                self.step_mut(step).approval = Some(decision.clone());
            }
            Event::StepStarted { step, .. } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Running);
                st.started_ms.get_or_insert(entry.ts_ms);
            }
            Event::StepSkipped { step, reason } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Skipped(reason.clone()));
                st.started_ms.get_or_insert(entry.ts_ms);
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::AttemptStarted { step, attempt } => {
                let st = self.step_mut(step);
                st.attempts = *attempt;
                st.queued = None;
            }
            Event::Queued { step, quota } => self.step_mut(step).queued = Some(quota.clone()),
            Event::Recorded { step, key, value } => {
                self.step_mut(step).recorded.insert(key.clone(), value.clone());
            }
            Event::Polled { step, status, .. } => {
                let st = self.step_mut(step);
                st.last_status = Some(status.clone());
                st.in_a_row = 0;
                st.last_failed = None;
            }
            Event::AttemptFailed { step, error, .. } => {
                let st = self.step_mut(step);
                st.failures += 1;
                st.in_a_row = st.in_a_row_after(error.operation.as_deref());
                st.last_failed = error.operation.clone();
            }
            Event::StepSucceeded { step, outputs } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Succeeded(outputs.clone()));
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::StepFailed { step, error, route } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Failed {
                    error: error.clone(),
                    route: route.clone(),
                });
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::RunFinished { status, error } => self.finished = Some((*status, error.clone())),
        }
        Ok(())
    }

    /// Whether the entry is a transition the engine can make from here.
    fn check(&self, entry: &Entry) -> Result<(), String> {
        let started = !self.run_id.is_empty();
        if let Some((status, _)) = &self.finished {
            return Err(format!(
                "`{}` after the run finished ({})",
                entry.event.kind(),
                format!("{status:?}").to_lowercase()
            ));
        }
        match &entry.event {
            Event::RunStarted { .. } if started => return Err("the run starts a second time".into()),
            Event::RunStarted { .. } => return Ok(()),
            _ if !started => return Err(format!("`{}` before the run started", entry.event.kind())),
            _ => {}
        }
        let Some(step) = entry.event.step() else {
            return Ok(());
        };
        let status = self.status(step);
        let kind = entry.event.kind();
        if self.waiting.as_deref() == Some(step) {
            return Err(format!(
                "`{kind}` of step `{step}`, which waits for approval (only a resumed run continues it)"
            ));
        }
        if matches!(entry.event, Event::ApprovalDecided { .. })
            && self.steps.get(step).is_some_and(|s| s.approval.is_some())
        {
            return Err(format!("a second decision for step `{step}`"));
        }
        match (&entry.event, status) {
            // A step starts once; a resumed run re-announces a step that was running when the process died.
            (Event::StepStarted { .. } | Event::StepSkipped { .. }, None | Some(StepStatus::Running)) => Ok(()),
            (
                Event::AttemptStarted { .. }
                | Event::Queued { .. }
                | Event::Recorded { .. }
                | Event::Polled { .. }
                | Event::AttemptFailed { .. }
                | Event::StepSucceeded { .. }
                | Event::StepFailed { .. }
                | Event::ApprovalRequested { .. }
                | Event::ApprovalDecided { .. },
                Some(StepStatus::Running),
            ) => Ok(()),
            (_, None) => Err(format!("`{kind}` of step `{step}`, which has not started")),
            (_, Some(s)) => Err(format!("`{kind}` of step `{step}`, which already {}", s.name())),
        }
    }

    /// The step that failed the run so far (the one that failed first; a failure routed with `continue` does not
    /// count), and its error message.
    pub fn failure_so_far(&self) -> Option<(String, String)> {
        self.steps
            .iter()
            .filter_map(|(id, st)| match &st.status {
                Some(StepStatus::Failed { error, route }) if route != "continue" => {
                    Some((st.finished_ms, id.clone(), error.message.clone()))
                }
                _ => None,
            })
            .min()
            .map(|(_, id, message)| (id, message))
    }

    fn step_mut(&mut self, id: &str) -> &mut StepState {
        self.steps.entry(id.to_string()).or_default()
    }

    pub fn status(&self, id: &str) -> Option<&StepStatus> {
        self.steps.get(id).and_then(|s| s.status.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, event: Event) -> Entry {
        Entry {
            v: super::super::journal::Version::CURRENT,
            seq,
            ts_ms: seq as i64 * 1000,
            event,
        }
    }

    fn start() -> Event {
        Event::RunStarted {
            run_id: "r".into(),
            workflow: "w".into(),
            file: "w.yaml".into(),
            digest: "d".into(),
            inputs: Map::new(),
            regions: Map::new(),
            backend: "sim".into(),
            lock: "l".into(),
            account: None,
        }
    }

    fn step_started(step: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            action: None,
            region: None,
            inputs: None,
        }
    }

    #[test]
    fn replays_a_step_through_its_states() {
        let entries = vec![
            entry(1, start()),
            entry(2, step_started("a")),
            entry(
                3,
                Event::AttemptStarted {
                    step: "a".into(),
                    attempt: 1,
                },
            ),
            entry(
                4,
                Event::AttemptFailed {
                    step: "a".into(),
                    attempt: 1,
                    error: ErrorInfo {
                        code: "Throttling".into(),
                        kind: "throttling".into(),
                        message: "slow down".into(),
                        operation: Some("backup:DescribeBackupJob".into()),
                    },
                    retry_in_ms: Some(1000),
                },
            ),
            entry(
                5,
                Event::Polled {
                    step: "a".into(),
                    attempt: 2,
                    polls: 1,
                    status: "RUNNING".into(),
                },
            ),
            entry(
                6,
                Event::StepSucceeded {
                    step: "a".into(),
                    outputs: Map::new(),
                },
            ),
        ];
        let s = RunState::replay(&entries).unwrap();
        let a = &s.steps["a"];
        assert_eq!(
            (a.failures, a.in_a_row),
            (1, 0),
            "a good poll resets the failures in a row"
        );
        assert_eq!(s.status("a").map(StepStatus::name), Some("succeeded"));
    }

    #[test]
    fn refuses_events_that_do_not_fit_and_names_the_line() {
        let after_success = vec![
            entry(1, start()),
            entry(2, step_started("a")),
            entry(
                3,
                Event::StepSucceeded {
                    step: "a".into(),
                    outputs: Map::new(),
                },
            ),
            entry(
                4,
                Event::AttemptStarted {
                    step: "a".into(),
                    attempt: 2,
                },
            ),
        ];
        let e = RunState::replay(&after_success).unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(
            e.to_string(),
            "journal line 4: `attempt_started` of step `a`, which already succeeded"
        );
        let not_started = vec![
            entry(1, start()),
            entry(
                2,
                Event::AttemptStarted {
                    step: "b".into(),
                    attempt: 1,
                },
            ),
        ];
        assert_eq!(
            RunState::replay(&not_started).unwrap_err().message,
            "`attempt_started` of step `b`, which has not started"
        );
        let twice = vec![entry(1, start()), entry(2, start())];
        assert_eq!(RunState::replay(&twice).unwrap_err().line, 2);
        let before = vec![entry(1, step_started("a"))];
        assert!(
            RunState::replay(&before)
                .unwrap_err()
                .message
                .contains("before the run started")
        );
    }

    fn decision(approved: bool) -> crate::actions::approval::Decision {
        crate::actions::approval::Decision {
            approved,
            how: crate::actions::approval::How::Command,
            reason: None,
            os_user: "alice".into(),
            aws_arn: "arn:aws:iam::123456789012:user/alice".into(),
            aws_account: "123456789012".into(),
            decided_at: "2026-11-28T13:00:00Z".into(),
            plan: "the rest".into(),
        }
    }

    #[test]
    fn a_run_waits_for_approval_until_it_is_resumed_and_takes_one_decision() {
        let requested = || Event::ApprovalRequested {
            step: "approve".into(),
            message: "go?".into(),
            plan: "the rest".into(),
        };
        let attempt = |n| Event::AttemptStarted {
            step: "approve".into(),
            attempt: n,
        };
        let decided = || Event::ApprovalDecided {
            step: "approve".into(),
            decision: decision(true),
        };
        let head = vec![
            entry(1, start()),
            entry(2, step_started("approve")),
            entry(3, attempt(1)),
            entry(4, requested()),
        ];
        let waiting = RunState::replay(&head).unwrap();
        assert_eq!(waiting.waiting.as_deref(), Some("approve"));
        assert!(waiting.finished.is_none());
        // Nothing happens to the waiting step before a resume.
        let mut early = head.clone();
        early.push(entry(5, attempt(2)));
        let err = RunState::replay(&early).unwrap_err();
        assert_eq!(err.line, 5);
        assert!(err.message.contains("waits for approval"), "{}", err.message);
        // Resumed: it goes on, with one decision.
        let mut resumed = head.clone();
        resumed.extend([
            entry(5, Event::RunResumed { forced: false }),
            entry(6, step_started("approve")),
            entry(7, attempt(2)),
            entry(8, decided()),
        ]);
        let state = RunState::replay(&resumed).unwrap();
        assert_eq!(state.waiting, None);
        assert_eq!(state.steps["approve"].approval, Some(decision(true)));
        resumed.push(entry(9, decided()));
        let err = RunState::replay(&resumed).unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (9, "a second decision for step `approve`")
        );
    }
}
