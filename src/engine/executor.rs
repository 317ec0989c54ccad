//! Runs the steps of a validated workflow: sequencing, `when`, `parallel`, retries, timeouts, polling waits,
//! failure routing and `finally`. Every transition goes through `emit`: journal first (fsync), then the
//! in-memory state, then the observer. Only this file sleeps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Map, Value};

use super::journal::{Entry, ErrorInfo, Event, Journal, RunStatus};
use super::pace::{Evidence, Pace};
use super::retry::retry_after;
use super::scope::RunScope;
use super::state::{RunState, StepStatus};
use super::within::Within;
use super::{Clock, EngineError, Observer};
use crate::actions::approval::{self, Answer, Approvals, Approver, Decision};
use crate::actions::{self, ActionError, Ctx, Poll, Recorder, RunInfo};
use crate::workflow::{ActionKind, ActionStep, FailureClass, OnFailure, Step, StepKind, Workflow};

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
    /// AWS's limits on concurrent jobs, shared by every branch and item.
    pub quotas: super::quota::QuotaSlots,
    /// How long jobs that report no progress take, from earlier ones: times their polls.
    pub forecast: super::forecast::Forecast,
    /// Who answers approval steps in this process.
    pub approver: &'a dyn Approver,
    /// Set when an approval step journaled that it waits: the run stops (no `finally`, no `run_finished`).
    pub paused: std::sync::atomic::AtomicBool,
}

/// The least time a wait gets for an attempt, even when its timeout is spent (plans count it in a wait's bound).
pub(crate) const LAST_LOOK: Duration = Duration::from_secs(30);

pub(super) type StepFuture<'f> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'f>>;

impl<'a> Executor<'a> {
    /// Journals an event (durable at once if it starts, resumes or ends the run; else grouped with the next durable
    /// one: `Journal::append_with`; what guards an AWS call goes through `emit_durable`), applies it, tells the
    /// observer.
    pub fn emit(&self, event: Event) -> Result<Entry, EngineError> {
        let durable = matches!(
            event,
            Event::RunStarted { .. }
                | Event::RunResumed { .. }
                | Event::RunFinished { .. }
                | Event::ApprovalRequested { .. }
                | Event::ApprovalDecided { .. }
        );
        self.emit_with(event, durable)
    }

    /// `emit`, durable at once or not as the caller says: an attempt of an action that changes something in AWS
    /// is durable before the call is made.
    pub fn emit_with(&self, event: Event, durable: bool) -> Result<Entry, EngineError> {
        let entry = {
            let mut j = self.journal.lock().expect("journal lock");
            j.append_with(self.clock.now_ms(), event, durable).map_err(|e| {
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

    /// `emit`, on disk before this returns (it guards an AWS side effect): written at once, then fsync'd after the
    /// other steps ready to run have had their turn, so the steps of a fleet that reach a guarded call together
    /// share one fsync (group commit) instead of one each.
    pub async fn emit_durable(&self, event: Event) -> Result<Entry, EngineError> {
        let entry = self.emit_with(event, false)?;
        tokio::task::yield_now().await;
        let synced = self.journal.lock().expect("journal lock").sync_through(entry.seq);
        synced.map_err(|e| {
            *self.broken.lock().expect("lock") = Some(e.to_string());
            EngineError::Journal(e)
        })?;
        Ok(entry)
    }

    /// Emits, turning a journal failure into a step failure (the run then stops).
    pub(super) fn emit_or_fail(&self, step: &str, event: Event) -> Result<(), Failure> {
        self.emit(event).map(|_| ()).map_err(|e| Failure {
            step: step.to_string(),
            error: info("JournalError", "other", e.to_string()),
        })
    }

    /// Runs the main steps, then `finally`; returns the run's result.
    pub async fn run(&self) -> Result<(), EngineError> {
        let top = Within::default();
        let main = self.sequence(&self.wf.steps, &top).await;
        if self.is_paused() {
            // Waiting for approval: the run stops here; `drflow approve` / `reject` resumes it (and then `finally`
            // runs, once, at its real end).
            self.journal.lock().expect("journal lock").sync()?;
            return Ok(());
        }
        let fin = self.sequence(&self.wf.finally, &top).await;
        if let Some(b) = self.broken.lock().expect("lock").clone() {
            return Err(EngineError::JournalBroken(b));
        }
        self.forecast.save();
        let failure = main.err().or(fin.err());
        let (status, error) = match failure {
            None => (RunStatus::Succeeded, None),
            Some(f) => (
                RunStatus::Failed,
                Some(format!("step `{}` failed: {}", f.step, f.error.message)),
            ),
        };
        if let Some(limiter) = &self.cloud.limiter {
            self.emit(Event::RateLimits {
                operations: limiter.stats(),
            })?;
        }
        self.emit(Event::RunFinished { status, error })?;
        Ok(())
    }

    pub(super) fn sequence<'s>(&'s self, steps: &'s [Step], within: &'s Within) -> StepFuture<'s> {
        Box::pin(async move {
            let mut failed: Option<Failure> = None;
            let mut i = 0;
            while i < steps.len() {
                let step = &steps[i];
                match self.step(step, within).await {
                    Ok(()) => i += 1,
                    // Waiting for approval is no failure: the run stops, nothing is routed.
                    Err(f) if self.is_paused() => return Err(f),
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
                        Some(f) if self.is_paused() => Err(f),
                        Some(f) => self.fail(step, &id, child_failed(&f)),
                    }
                }
                StepKind::Sequence(children) => {
                    self.emit_or_fail(&id, started(&id))?;
                    match self.sequence(children, within).await {
                        Ok(()) => self.succeed(&id, Map::new()),
                        Err(f) if self.is_paused() => Err(f),
                        Err(f) => self.fail(step, &id, child_failed(&f)),
                    }
                }
                StepKind::ForEach(fe) => self.for_each(step, &id, fe, within).await,
            }
        })
    }

    pub(super) fn succeed(&self, id: &str, outputs: Map<String, Value>) -> Result<(), Failure> {
        self.emit_or_fail(
            id,
            Event::StepSucceeded {
                step: id.to_string(),
                outputs,
            },
        )
    }

    pub(super) fn fail(&self, step: &Step, id: &str, error: ErrorInfo) -> Result<(), Failure> {
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
        let result = self.attempts(step, id, a, &inputs, &region).await;
        // The wait for a job is over, however it ended: the job no longer counts against its quotas.
        if let Some(job) = a.action.releases.and_then(|k| inputs.get(k)).and_then(Value::as_str) {
            self.quotas.release(job);
        }
        result
    }

    /// A free slot of every quota the step's job counts against, waiting in line (journaled as `queued`) when one
    /// is taken. A step whose job was already started (by an earlier attempt or process) takes its slots at once.
    async fn take_slots(
        &self,
        id: &str,
        a: &ActionStep,
        inputs: &Map<String, Value>,
        region: &str,
    ) -> Result<Vec<super::quota::Slot>, Failure> {
        let started = a.action.holds.is_some_and(|k| {
            let state = self.state.lock().expect("state lock");
            state.steps.get(id).is_some_and(|s| s.recorded.contains_key(k))
        });
        let mut slots = Vec::new();
        let mut queued = false;
        for q in a.action.quotas {
            let Some(key) = super::quota::key_of(q, inputs, region) else {
                continue;
            };
            if let Some(slot) = self.quotas.try_take(q, &key).filter(|_| !started) {
                slots.push(slot);
                continue;
            }
            if !started && !queued {
                queued = true;
                let limit = self.quotas.limit(q);
                self.emit_or_fail(
                    id,
                    Event::Queued {
                        step: id.to_string(),
                        quota: format!("{} ({key}): {limit} at a time", q.what),
                    },
                )?;
            }
            let priority = a
                .action
                .quota_priority
                .and_then(|k| inputs.get(k))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            slots.push(self.quotas.take(q, &key, started, priority).await);
        }
        Ok(slots)
    }

    /// The attempts of an action step, retried by its policy, until it succeeds or fails for good.
    async fn attempts(
        &self,
        step: &Step,
        id: &str,
        a: &ActionStep,
        inputs: &Map<String, Value>,
        region: &str,
    ) -> Result<(), Failure> {
        let mut slots = self.take_slots(id, a, inputs, region).await?;
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
            // An attempt that may change something in AWS is on disk before it does.
            let started = Event::AttemptStarted {
                step: id.to_string(),
                attempt,
            };
            let emitted = if actions::of(a.action).mutates() {
                self.emit_durable(started).await
            } else {
                self.emit_with(started, false)
            };
            emitted.map_err(|e| Failure {
                step: id.to_string(),
                error: info("JournalError", "other", e.to_string()),
            })?;
            let recorder = StepRecorder { exec: self, step: id };
            let approvals = StepApprovals { exec: self, step: id };
            let run = self.run_info(a.action.advisory);
            // A region that assumes a role (another account) has its own client.
            let cloud = a
                .region
                .as_deref()
                .map_or(&self.cloud, |name| self.cloud.for_region(name));
            let ctx = Ctx {
                cloud,
                region,
                token: &token,
                recorder: &recorder,
                base_dir: &base_dir,
                run: &run,
                approvals: &approvals,
            };
            let outcome = timeout_besides_tokens(limit, self.attempt(id, a, &ctx, inputs, attempt)).await;
            let (class, error) = match outcome {
                Some(Ok(outputs)) => {
                    // The job started: its quota slots are held until the wait for it ends.
                    if let Some(job) = a.action.holds.and_then(|k| outputs.get(k)).and_then(Value::as_str) {
                        self.quotas.hold(job, std::mem::take(&mut slots));
                    }
                    return self.succeed(id, outputs);
                }
                // Journaled as waiting (`approval_requested`): the step stays running and the run stops.
                Some(Err(ActionError::AwaitingApproval)) => {
                    return Err(Failure {
                        step: id.to_string(),
                        error: info("AwaitingApproval", "other", "waiting for approval".into()),
                    });
                }
                Some(Err(e)) => {
                    // When the run acts in more than one account, an AWS error names the one it was made in.
                    let e = match e {
                        ActionError::Cloud(c) if !self.cloud.roles.is_empty() => {
                            ActionError::Cloud(Box::new(c.in_account(cloud.account.as_deref())))
                        }
                        other => other,
                    };
                    (e.class(), error_info(&e))
                }
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
                // The wait started when its job did (the step before started it): the job's age is measured from here.
                let since = {
                    let state = self.state.lock().expect("state lock");
                    state
                        .steps
                        .get(id)
                        .and_then(|s| s.started_ms)
                        .unwrap_or_else(|| self.clock.now_ms())
                };
                let mut sized: Option<(u64, Option<String>)> = None;
                loop {
                    polls += 1;
                    let (status, evidence) = match action.poll(ctx, inputs).await? {
                        Poll::Done(outputs) => {
                            if let Some((bytes, resource)) = &sized {
                                let took = (self.clock.now_ms() - since).max(0) as u64;
                                self.forecast.observe(a.action.name, resource.as_deref(), *bytes, took);
                            }
                            return Ok(outputs);
                        }
                        Poll::Pending(status) => (status, Evidence::Nothing),
                        Poll::Progress(status, percent) => (status, Evidence::Percent(percent)),
                        Poll::Sized {
                            status,
                            bytes,
                            resource,
                        } => {
                            let evidence = match self.forecast.expect(a.action.name, resource.as_deref(), bytes) {
                                Some(e) => Evidence::Expected {
                                    since_ms: since,
                                    total_ms: e.total_ms,
                                    spread: e.spread,
                                },
                                None => Evidence::Unforeseen,
                            };
                            sized = Some((bytes, resource));
                            (status, evidence)
                        }
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
                    let delay = pace.next(self.clock.now_ms(), evidence, a.poll.delay(polls));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The run as far as it has gone, for notifications.
    /// `with_failure`: also the first failure so far (a look at every step: only notifications need it).
    fn run_info(&self, with_failure: bool) -> RunInfo {
        let state = self.state.lock().expect("state lock");
        let journal = self.journal.lock().expect("journal lock").path().to_path_buf();
        RunInfo {
            run_id: state.run_id.clone(),
            workflow: state.workflow.clone(),
            failure: if with_failure { state.failure_so_far() } else { None },
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

impl Executor<'_> {
    pub(super) fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// An approval step's view of its run: the plan of the rest, the decisions journaled, this process's approver.
struct StepApprovals<'e, 'a> {
    exec: &'e Executor<'a>,
    step: &'e str,
}

impl Approvals for StepApprovals<'_, '_> {
    fn plan(&self) -> String {
        let known = {
            let state = self.exec.state.lock().expect("state lock");
            let outputs = state
                .steps
                .iter()
                .filter_map(|(id, st)| match &st.status {
                    Some(StepStatus::Succeeded(o)) => Some((id.clone(), Value::Object(o.clone()))),
                    _ => None,
                })
                .collect();
            approval::Known {
                inputs: state.inputs.clone(),
                regions: state.regions.clone(),
                account: state.account.clone(),
                outputs,
            }
        };
        self.exec.approver.plan_after(self.step, &known)
    }

    fn journaled(&self) -> Option<Decision> {
        let state = self.exec.state.lock().expect("state lock");
        state.steps.get(self.step).and_then(|s| s.approval.clone())
    }

    fn ask(&self, message: &str, plan: &str) -> Option<Answer> {
        self.exec.approver.ask(self.step, message, plan)
    }

    fn decided(&self, decision: &Decision) {
        let _ = self.exec.emit(Event::ApprovalDecided {
            step: self.step.to_string(),
            decision: decision.clone(),
        });
    }

    fn wait(&self, message: &str, plan: &str) {
        if self
            .exec
            .emit(Event::ApprovalRequested {
                step: self.step.to_string(),
                message: message.to_string(),
                plan: plan.to_string(),
            })
            .is_ok()
        {
            self.exec.paused.store(true, std::sync::atomic::Ordering::SeqCst);
            let state = self.exec.state.lock().expect("state lock");
            super::lock::mark_waiting(&self.exec.state_dir, &self.exec.wf.name, &state.lock, &state.run_id);
        }
    }
}

struct StepRecorder<'e, 'a> {
    exec: &'e Executor<'a>,
    step: &'e str,
}

#[async_trait::async_trait]
impl Recorder for StepRecorder<'_, '_> {
    async fn record(&self, key: &str, value: &Value) {
        let _ = self
            .exec
            .emit_durable(Event::Recorded {
                step: self.step.to_string(),
                key: key.to_string(),
                value: value.clone(),
            })
            .await;
    }

    fn recorded(&self, key: &str) -> Option<Value> {
        let state = self.exec.state.lock().expect("state lock");
        state.steps.get(self.step).and_then(|s| s.recorded.get(key).cloned())
    }
}

pub(super) fn started(id: &str) -> Event {
    Event::StepStarted {
        step: id.to_string(),
        action: None,
        region: None,
        inputs: None,
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

pub(super) fn info(code: &str, kind: &str, message: String) -> ErrorInfo {
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

/// `fut`'s output if it ends within `limit`, not counting the time its AWS calls waited for the rate limiter's
/// tokens (a fleet's thousandth start may queue for minutes behind the others: that is not the attempt hanging).
async fn timeout_besides_tokens<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
    let waited = std::sync::Arc::new(crate::cloud::limiter::TokenWait::default());
    let fut = crate::cloud::limiter::TOKEN_WAIT.scope(waited.clone(), fut);
    tokio::pin!(fut);
    let mut deadline = tokio::time::Instant::now() + limit;
    let mut counted = Duration::ZERO;
    loop {
        tokio::select! {
            out = &mut fut => return Some(out),
            () = tokio::time::sleep_until(deadline) => {
                let w = waited.total();
                if w <= counted {
                    return None;
                }
                deadline += w - counted;
                counted = w;
            }
        }
    }
}

/// Awaits all futures concurrently on this task (branches borrow the executor, so no spawning); a wake polls only
/// the future it is for. The results are in the futures' order.
pub(super) async fn futures_join<'f>(futs: impl Iterator<Item = StepFuture<'f>>) -> Vec<Result<(), Failure>> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut set: FuturesUnordered<_> = futs.enumerate().map(|(i, f)| async move { (i, f.await) }).collect();
    let mut out: Vec<Option<Result<(), Failure>>> = (0..set.len()).map(|_| None).collect();
    while let Some((i, r)) = set.next().await {
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.expect("every branch finished")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::limiter::Limiter;

    #[tokio::test(start_paused = true)]
    async fn waits_for_rate_limiter_tokens_do_not_count_against_an_attempt_timeout() {
        let limiter = Limiter::new();
        // Thirty starts through a bucket of a few per second: seconds of waiting for tokens, well beyond 1 s.
        let starts = async {
            let mut waited = Duration::ZERO;
            for _ in 0..30 {
                waited += limiter.acquire("us-east-1", "backup", "StartBackupJob").await;
            }
            waited
        };
        let waited = timeout_besides_tokens(Duration::from_secs(1), starts).await;
        assert!(waited.is_some_and(|w| w > Duration::from_secs(3)), "{waited:?}");
        // Time spent otherwise still counts.
        let hangs = tokio::time::sleep(Duration::from_secs(2));
        assert_eq!(timeout_besides_tokens(Duration::from_secs(1), hangs).await, None);
    }
}
