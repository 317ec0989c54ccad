//! Runs the steps of a validated workflow: sequencing, `when`, `parallel`, retries, timeouts, polling waits,
//! failure routing and `finally`. Every transition goes through `emit`: journal first (fsync), then the
//! in-memory state, then the observer. Only this file sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use super::journal::{Entry, ErrorInfo, Event, Journal, RunStatus};
use super::lock::{self, LockError};
use super::retry::retry_after;
use super::scope::RunScope;
use super::state::{RunState, StepStatus};
use super::within::Within;
use super::{Clock, EngineError, Observer};
use crate::actions::{self, ActionError, Ctx, Poll, Recorder, RunInfo};
use crate::workflow::{ActionKind, ActionStep, FailureClass, ForEach, OnFailure, Step, StepKind, Workflow};

/// Why a step (and so possibly the run) failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub step: String,
    pub error: ErrorInfo,
}

pub(crate) struct Executor<'a> {
    pub wf: &'a Workflow,
    pub cloud: crate::cloud::Cloud,
    pub clock: Clock,
    pub observer: &'a dyn Observer,
    pub journal: Mutex<Journal>,
    /// Where runs and locks are kept (a `for_each` item is locked by its key).
    pub state_dir: std::path::PathBuf,
    pub state: Mutex<RunState>,
    pub rng: Mutex<fastrand::Rng>,
    /// Set when the journal cannot be written: the run must stop, since it could not be resumed safely.
    pub broken: Mutex<Option<String>>,
}

/// The least time a wait gets for an attempt, even when its timeout is spent.
const LAST_LOOK: Duration = Duration::from_secs(30);

type StepFuture<'f> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'f>>;

impl<'a> Executor<'a> {
    pub fn emit(&self, event: Event) -> Result<Entry, EngineError> {
        let entry = {
            let mut j = self.journal.lock().expect("journal lock");
            j.append(self.clock.now_ms(), event).map_err(|e| {
                *self.broken.lock().expect("lock") = Some(e.to_string());
                EngineError::Journal(e)
            })?
        };
        // The executor makes only allowed transitions; a refusal here is a bug, and the journal already has it.
        if let Err(e) = self.state.lock().expect("state lock").apply(&entry) {
            *self.broken.lock().expect("lock") = Some(e.to_string());
            return Err(EngineError::Replay(e));
        }
        self.observer.event(&entry);
        Ok(entry)
    }

    /// Emits, turning a journal failure into a step failure (the run then stops).
    fn emit_or_fail(&self, step: &str, event: Event) -> Result<(), Failure> {
        self.emit(event).map(|_| ()).map_err(|e| Failure {
            step: step.to_string(),
            error: info("JournalError", "other", e.to_string()),
        })
    }

    /// Runs the main steps, then `finally`; returns the run's result.
    pub async fn run(&self) -> Result<(), EngineError> {
        let top = Within::default();
        let main = self.sequence(&self.wf.steps, &top).await;
        let fin = self.sequence(&self.wf.finally, &top).await;
        if let Some(b) = self.broken.lock().expect("lock").clone() {
            return Err(EngineError::JournalBroken(b));
        }
        let failure = main.err().or(fin.err());
        let (status, error) = match failure {
            None => (RunStatus::Succeeded, None),
            Some(f) => (
                RunStatus::Failed,
                Some(format!("step `{}` failed: {}", f.step, f.error.message)),
            ),
        };
        self.emit(Event::RunFinished { status, error })?;
        Ok(())
    }

    fn sequence<'s>(&'s self, steps: &'s [Step], within: &'s Within) -> StepFuture<'s> {
        Box::pin(async move {
            let mut failed: Option<Failure> = None;
            let mut i = 0;
            while i < steps.len() {
                let step = &steps[i];
                match self.step(step, within).await {
                    Ok(()) => i += 1,
                    Err(f) => match &step.on_failure {
                        OnFailure::Continue => i += 1,
                        OnFailure::Goto(target) => {
                            failed.get_or_insert(f);
                            i = steps.iter().position(|s| s.id == *target).unwrap_or(steps.len());
                        }
                        OnFailure::Abort => return Err(failed.unwrap_or(f)),
                    },
                }
                if self.broken.lock().expect("lock").is_some() {
                    break;
                }
            }
            failed.map_or(Ok(()), Err)
        })
    }

    fn step<'s>(&'s self, step: &'s Step, within: &'s Within) -> StepFuture<'s> {
        Box::pin(async move {
            let id = within.id(&step.id);
            // A resumed run does not redo what is finished.
            match self.state.lock().expect("state lock").status(&id) {
                Some(StepStatus::Succeeded(_)) | Some(StepStatus::Skipped(_)) => return Ok(()),
                Some(StepStatus::Failed { error, .. }) => {
                    return Err(Failure {
                        step: id,
                        error: error.clone(),
                    });
                }
                _ => {}
            }
            if let Some(cond) = &step.when {
                let verdict = {
                    let state = self.state.lock().expect("state lock");
                    cond.test(&RunScope::within(&state, within))
                };
                match verdict {
                    Ok(true) => {}
                    Ok(false) => {
                        let reason = format!("`when: {}` is false", step.when_text.as_deref().unwrap_or("?"));
                        return self.emit_or_fail(
                            &id,
                            Event::StepSkipped {
                                step: id.clone(),
                                reason,
                            },
                        );
                    }
                    Err(e) => {
                        return self.fail(step, &id, info("InvalidCondition", "validation", format!("when: {e}")));
                    }
                }
            }
            match &step.kind {
                StepKind::Action(a) => self.action(step, &id, a, within).await,
                StepKind::Parallel(branches) => {
                    self.emit_or_fail(&id, started(&id))?;
                    // Every branch runs to its end; the group then fails with the first failure.
                    let results = futures_join(branches.iter().map(|b| self.step(b, within))).await;
                    match results.into_iter().find_map(Result::err) {
                        None => self.succeed(&id, Map::new()),
                        Some(f) => self.fail(step, &id, child_failed(&f)),
                    }
                }
                StepKind::Sequence(children) => {
                    self.emit_or_fail(&id, started(&id))?;
                    match self.sequence(children, within).await {
                        Ok(()) => self.succeed(&id, Map::new()),
                        Err(f) => self.fail(step, &id, child_failed(&f)),
                    }
                }
                StepKind::ForEach(fe) => self.for_each(step, &id, fe, within).await,
            }
        })
    }

    /// Runs the body once per item, `max_concurrency` items at a time; every item runs to its end, then the group
    /// fails if more items failed than it tolerates. An item another run is working on (its lock is held) is
    /// skipped. Outputs: `items` (key → step → outputs), `succeeded`, `failed`, `failed_items` (key → error) and
    /// `skipped_items` (key → why).
    async fn for_each(&self, step: &Step, id: &str, fe: &ForEach, within: &Within) -> Result<(), Failure> {
        self.emit_or_fail(id, started(id))?;
        let items = {
            let state = self.state.lock().expect("state lock");
            fe.items.eval(&RunScope::within(&state, within))
        };
        let items = match items {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let e = format!("for_each: expected a list, got {other}");
                return self.fail(step, id, info("InvalidInput", "validation", e));
            }
            Err(e) => return self.fail(step, id, info("InvalidInput", "validation", format!("for_each: {e}"))),
        };
        let keys: Vec<String> = items.iter().map(crate::workflow::expr::to_text).collect();
        if let Some(dup) = keys
            .iter()
            .enumerate()
            .find(|(i, k)| keys[..*i].contains(k))
            .map(|(_, k)| k)
        {
            let e = format!("for_each: the item `{dup}` is listed twice (items are keys: each must be unique)");
            return self.fail(step, id, info("InvalidInput", "validation", e));
        }
        let scopes: Vec<Within> = items
            .iter()
            .zip(&keys)
            .map(|(item, key)| within.enter(id, key, item.clone(), &fe.steps))
            .collect();
        let permits = tokio::sync::Semaphore::new(fe.max_concurrency);
        let skipped = Mutex::new(Map::new());
        let runs = scopes.iter().zip(&keys).map(|(scope, key)| -> StepFuture<'_> {
            let (permits, skipped) = (&permits, &skipped);
            Box::pin(async move {
                let _permit = permits.acquire().await.expect("the semaphore is never closed");
                // Two runs never work on the same item at once: the later one skips it, and says so.
                let item = format!("{id}[{key}]");
                if let Some(StepStatus::Skipped(reason)) = self.state.lock().expect("state lock").status(&item) {
                    skipped
                        .lock()
                        .expect("lock")
                        .insert(key.clone(), Value::String(reason.clone()));
                    return Ok(());
                }
                let run_id = self.state.lock().expect("state lock").run_id.clone();
                let _lock = match lock::acquire(&self.state_dir, &format!("{}~items", self.wf.name), key, &run_id) {
                    Ok(l) => l,
                    Err(LockError::Held { holder, .. }) => {
                        let reason = format!("another run works on `{key}`: {holder}");
                        skipped
                            .lock()
                            .expect("lock")
                            .insert(key.clone(), Value::String(reason.clone()));
                        return self.emit_or_fail(
                            &item,
                            Event::StepSkipped {
                                step: item.clone(),
                                reason,
                            },
                        );
                    }
                    Err(e) => {
                        return Err(Failure {
                            step: item,
                            error: info("LockError", "other", e.to_string()),
                        });
                    }
                };
                self.sequence(&fe.steps, scope).await
            })
        });
        let results = futures_join(runs).await;
        let mut outputs = Map::new();
        let mut failed = Map::new();
        {
            let state = self.state.lock().expect("state lock");
            let mut all = Vec::new();
            for s in &fe.steps {
                s.walk(&mut all);
            }
            for (key, scope) in keys.iter().zip(&scopes) {
                let steps: Map<String, Value> = all
                    .iter()
                    .filter_map(|s| match state.status(&scope.id(&s.id)) {
                        Some(StepStatus::Succeeded(o)) if s.action().is_some() => {
                            Some((s.id.clone(), Value::Object(o.clone())))
                        }
                        _ => None,
                    })
                    .collect();
                outputs.insert(key.clone(), Value::Object(steps));
            }
        }
        for (key, result) in keys.iter().zip(results) {
            if let Err(f) = result {
                failed.insert(
                    key.clone(),
                    Value::String(format!("step `{}`: {}", f.step, f.error.message)),
                );
            }
        }
        let (total, n_failed) = (keys.len(), failed.len());
        if fe.too_many(n_failed, total) {
            let first: Vec<String> = failed
                .iter()
                .take(3)
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                .collect();
            let e = format!(
                "{n_failed} of {total} items failed, more than tolerated ({}); {}",
                tolerance(fe),
                first.join("; ")
            );
            return self.fail(step, id, info("ItemsFailed", "other", e));
        }
        let mut out = Map::new();
        out.insert("items".into(), Value::Object(outputs));
        let skipped = skipped.into_inner().expect("lock");
        out.insert("succeeded".into(), Value::from(total - n_failed - skipped.len()));
        out.insert("failed".into(), Value::from(n_failed));
        out.insert("failed_items".into(), Value::Object(failed));
        out.insert("skipped_items".into(), Value::Object(skipped));
        self.succeed(id, out)
    }

    fn succeed(&self, id: &str, outputs: Map<String, Value>) -> Result<(), Failure> {
        self.emit_or_fail(
            id,
            Event::StepSucceeded {
                step: id.to_string(),
                outputs,
            },
        )
    }

    fn fail(&self, step: &Step, id: &str, error: ErrorInfo) -> Result<(), Failure> {
        let route = match &step.on_failure {
            OnFailure::Abort => "abort".to_string(),
            OnFailure::Continue => "continue".to_string(),
            OnFailure::Goto(t) => format!("goto:{t}"),
        };
        self.emit_or_fail(
            id,
            Event::StepFailed {
                step: id.to_string(),
                error: error.clone(),
                route,
            },
        )?;
        Err(Failure {
            step: id.to_string(),
            error,
        })
    }

    async fn action(&self, step: &Step, id: &str, a: &ActionStep, within: &Within) -> Result<(), Failure> {
        let resolved = {
            let state = self.state.lock().expect("state lock");
            let scope = RunScope::within(&state, within);
            a.with
                .iter()
                .map(|(k, t)| {
                    t.eval(&scope)
                        .map(|v| (k.clone(), v))
                        .map_err(|e| format!("input `{k}`: {e}"))
                })
                .collect::<Result<Map<String, Value>, String>>()
        };
        let region = a.region.as_ref().map(|r| self.region_code(r));
        self.emit_or_fail(
            id,
            Event::StepStarted {
                step: id.to_string(),
                action: Some(a.action.name.to_string()),
                region: region.clone(),
                inputs: resolved.as_ref().ok().cloned(),
            },
        )?;
        let inputs = match resolved {
            Ok(i) => i,
            Err(e) => return self.fail(step, id, info("InvalidInput", "validation", e)),
        };
        let region = region.unwrap_or_default();
        let token = super::idempotency_token(&self.state.lock().expect("state lock").run_id, id);
        let base_dir = self.wf.dir();
        loop {
            let before = {
                let state = self.state.lock().expect("state lock");
                state.steps.get(id).cloned().unwrap_or_default()
            };
            let attempt = before.attempts + 1;
            // A call's timeout limits each attempt. A wait's limits the whole wait, from the step's first start
            // (also across a resume): retrying a throttled poll re-attaches to the job and must not restart the clock.
            let waits = a.action.kind == ActionKind::Wait;
            // A wait whose time is spent (say, resumed hours later) still gets a last look: the job may be done.
            let limit = if waits {
                let spent = self.clock.now_ms() - before.started_ms.unwrap_or_else(|| self.clock.now_ms());
                let left = a.timeout.saturating_sub(Duration::from_millis(spent.max(0) as u64));
                left.max(LAST_LOOK.min(a.timeout))
            } else {
                a.timeout
            };
            self.emit_or_fail(
                id,
                Event::AttemptStarted {
                    step: id.to_string(),
                    attempt,
                },
            )?;
            let recorder = StepRecorder { exec: self, step: id };
            let run = self.run_info();
            let ctx = Ctx {
                cloud: &self.cloud,
                region: &region,
                token: &token,
                recorder: &recorder,
                base_dir: &base_dir,
                run: &run,
            };
            let outcome = tokio::time::timeout(limit, self.attempt(id, a, &ctx, &inputs, attempt))
                .await
                .ok();
            let (class, error) = match outcome {
                Some(Ok(outputs)) => return self.succeed(id, outputs),
                Some(Err(e)) => (e.class(), error_info(&e)),
                None => {
                    let took = crate::workflow::format_duration(a.timeout);
                    let message = if waits {
                        format!("the wait did not finish within {took}")
                    } else {
                        format!("attempt {attempt} did not finish within {took}")
                    };
                    let class = FailureClass {
                        throttling: false,
                        transient: true,
                        code: "States.Timeout".into(),
                        timed_out: true,
                    };
                    (class, info("States.Timeout", "timeout", message))
                }
            };
            if self.broken.lock().expect("lock").is_some() {
                return Err(Failure {
                    step: id.to_string(),
                    error,
                });
            }
            // The budget counts failures in a row of one call (each call has its own retrier, as in ASL); a wait's
            // good poll starts it anew. A call step's attempts are also bounded in all: a budget per call it makes.
            let in_a_row = before.in_a_row_after(error.operation.as_deref());
            let per_call = a.retry.max_attempts + 1;
            let calls = a.action.calls.len().max(1) as u32;
            let spent = !waits && before.failures + 1 >= per_call * calls;
            let sample = self.rng.lock().expect("rng").f64();
            let delay = retry_after(&a.retry, &class, in_a_row, waits, sample).filter(|_| !spent);
            self.emit_or_fail(
                id,
                Event::AttemptFailed {
                    step: id.to_string(),
                    attempt,
                    error: error.clone(),
                    retry_in_ms: delay.map(|d| d.as_millis() as u64),
                },
            )?;
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => return self.fail(step, id, error),
            }
        }
    }

    async fn attempt(
        &self,
        id: &str,
        a: &ActionStep,
        ctx: &Ctx<'_>,
        inputs: &Map<String, Value>,
        attempt: u32,
    ) -> Result<Map<String, Value>, ActionError> {
        let action = actions::of(a.action);
        match a.action.kind {
            ActionKind::Call => action.call(ctx, inputs).await,
            ActionKind::Wait => {
                action.begin(ctx, inputs).await?;
                let mut polls = 0;
                let mut last = String::new();
                let mut pace = Pace::default();
                loop {
                    polls += 1;
                    let (status, percent) = match action.poll(ctx, inputs).await? {
                        Poll::Done(outputs) => return Ok(outputs),
                        Poll::Pending(status) => (status, None),
                        Poll::Progress(status, percent) => (status, Some(percent)),
                    };
                    // Journal a poll when what it saw changed, not every time; and the first of each attempt,
                    // which tells a resumed run that the wait made progress since its last failure.
                    if status != last || polls == 1 {
                        let _ = self.emit(Event::Polled {
                            step: id.to_string(),
                            attempt,
                            polls,
                            status: status.clone(),
                        });
                        last = status;
                    }
                    if self.broken.lock().expect("lock").is_some() {
                        return Err(ActionError::failed("JournalError", "the journal cannot be written"));
                    }
                    let delay = pace.next(self.clock.now_ms(), percent, a.poll.delay(polls));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The run as far as it has gone, for notifications.
    fn run_info(&self) -> RunInfo {
        let state = self.state.lock().expect("state lock");
        let journal = self.journal.lock().expect("journal lock").path().to_path_buf();
        RunInfo {
            run_id: state.run_id.clone(),
            workflow: state.workflow.clone(),
            failure: state.failure_so_far(),
            report: journal.with_file_name("report.html"),
        }
    }

    fn region_code(&self, name: &str) -> String {
        let state = self.state.lock().expect("state lock");
        state
            .regions
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| name.to_string())
    }
}

struct StepRecorder<'e, 'a> {
    exec: &'e Executor<'a>,
    step: &'e str,
}

impl Recorder for StepRecorder<'_, '_> {
    fn record(&self, key: &str, value: &Value) {
        let _ = self.exec.emit(Event::Recorded {
            step: self.step.to_string(),
            key: key.to_string(),
            value: value.clone(),
        });
    }

    fn recorded(&self, key: &str) -> Option<Value> {
        let state = self.exec.state.lock().expect("state lock");
        state.steps.get(self.step).and_then(|s| s.recorded.get(key).cloned())
    }
}

fn started(id: &str) -> Event {
    Event::StepStarted {
        step: id.to_string(),
        action: None,
        region: None,
        inputs: None,
    }
}

/// Times polls from evidence: a job that reports how far it is done is polled again when the observed rate says it
/// will be done (never later than the poll policy's delay, never sooner than `MIN_POLL`), so completion is noticed
/// soon after it happens while long jobs cost few calls.
#[derive(Debug, Default)]
struct Pace {
    /// The first progress seen in this attempt: (run clock ms, percent).
    first: Option<(i64, f64)>,
}

/// The least time between two polls paced by progress.
const MIN_POLL: Duration = Duration::from_secs(5);

impl Pace {
    fn next(&mut self, now_ms: i64, percent: Option<f64>, policy: Duration) -> Duration {
        let Some(p) = percent else { return policy };
        let Some((t0, p0)) = self.first else {
            self.first = Some((now_ms, p));
            return policy;
        };
        let rate = (p - p0) / (now_ms - t0).max(1) as f64; // percent per ms
        if rate <= 0.0 {
            return policy;
        }
        let eta = Duration::from_millis(((100.0 - p).max(0.0) / rate) as u64) + Duration::from_secs(1);
        policy.min(eta.max(MIN_POLL))
    }
}

/// The tolerance of a `for_each`, in words.
fn tolerance(fe: &ForEach) -> String {
    match (fe.tolerated_failures, fe.tolerated_failure_percentage) {
        (None, None) => "none".into(),
        (Some(c), None) => c.to_string(),
        (None, Some(p)) => format!("{p}%"),
        (Some(c), Some(p)) => format!("{c} and {p}%"),
    }
}

fn child_failed(f: &Failure) -> ErrorInfo {
    ErrorInfo {
        code: f.error.code.clone(),
        kind: f.error.kind.clone(),
        message: format!("step `{}` failed: {}", f.step, f.error.message),
        operation: f.error.operation.clone(),
    }
}

fn info(code: &str, kind: &str, message: String) -> ErrorInfo {
    ErrorInfo {
        code: code.into(),
        kind: kind.into(),
        message,
        operation: None,
    }
}

fn error_info(e: &ActionError) -> ErrorInfo {
    let kind = serde_json::to_value(e.kind())
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".into());
    ErrorInfo {
        operation: e.operation(),
        ..info(&e.code(), &kind, e.to_string())
    }
}

/// Awaits all futures concurrently on this task (branches borrow the executor, so no spawning).
async fn futures_join<'f>(futs: impl Iterator<Item = StepFuture<'f>>) -> Vec<Result<(), Failure>> {
    let mut set: Vec<(usize, StepFuture<'f>)> = futs.enumerate().collect();
    let mut out: Vec<Option<Result<(), Failure>>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        set.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(r) => {
                out[*i] = Some(r);
                false
            }
            std::task::Poll::Pending => true,
        });
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(|r| r.expect("every branch finished")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pace_polls_at_the_expected_completion_within_the_policy() {
        let mut pace = Pace::default();
        let policy = Duration::from_secs(120);
        // Without progress, the policy decides.
        assert_eq!(pace.next(0, None, policy), policy);
        // The first sample only starts the measure.
        assert_eq!(pace.next(30_000, Some(10.0), policy), policy);
        // 10% more in 30 s: 60% left is 180 s away, more than the policy allows.
        assert_eq!(pace.next(60_000, Some(20.0), policy), policy);
        // 90% at 270 s: 10% left at 1% per 3 s is 30 s (+1 s).
        assert_eq!(pace.next(270_000, Some(90.0), policy), Duration::from_secs(31));
        // Never sooner than MIN_POLL.
        assert_eq!(pace.next(297_000, Some(99.9), policy), MIN_POLL);
    }
}
