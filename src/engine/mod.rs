//! The engine: runs a validated `Workflow` against a `Cloud`, journaling every transition so that
//! `resume` can continue a run that crashed without starting a second backup or copy job.

mod executor;
mod for_each;
mod forecast;
pub mod journal;
mod lock;
mod pace;
mod quota;
pub mod retry;
mod scope;
pub mod state;
mod within;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::actions::approval::Approver;
use crate::cloud::Cloud;
use crate::workflow::{Bindings, Workflow};
pub use executor::Failure;
/// What plans need to bound a step's duration and polls: a wait's last look, the least time between paced polls.
pub(crate) use executor::LAST_LOOK;
pub use for_each::ITEM_COUNT;
use journal::{Event, Journal, JournalError, RunStatus};
pub use lock::LockError;
pub(crate) use pace::MIN_POLL;
pub use state::{ReplayError, RunState, StepState, StepStatus};

/// Sees every journal entry as it is written (terminal view, JSON output).
pub trait Observer: Send + Sync {
    fn event(&self, entry: &journal::Entry);
}

/// Observes nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&self, _: &journal::Entry) {}
}

/// The run's clock: wall time at start plus tokio's elapsed time (simulated under a paused clock).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: SystemTime,
    start: tokio::time::Instant,
}

impl Clock {
    /// Must be called inside the runtime (after pausing it, for simulated time).
    pub fn start() -> Clock {
        Clock {
            base: SystemTime::now(),
            start: tokio::time::Instant::now(),
        }
    }

    /// The same clock, moved forward if needed so that it never reads earlier than `ms` (Unix milliseconds): a
    /// resumed run's journal stays in order even when the run it continues ran on simulated time.
    pub fn not_before(self, ms: i64) -> Clock {
        let behind = ms - self.now_ms();
        if behind <= 0 {
            return self;
        }
        Clock {
            base: self.base + std::time::Duration::from_millis(behind as u64),
            start: self.start,
        }
    }

    pub fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }

    pub fn now_ms(&self) -> i64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the journal could not be written, so the run stopped: {0}")]
    JournalBroken(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("no run `{0}` in {1}")]
    RunNotFound(String, String),
    #[error("run {0} already finished ({1}); nothing to resume")]
    AlreadyFinished(String, String),
    #[error(
        "{file} changed since run {run_id} started (digest {was} → {now}); resuming could run different steps. Use --force to resume anyway"
    )]
    WorkflowChanged {
        run_id: String,
        file: String,
        was: String,
        now: String,
    },
    #[error(transparent)]
    Replay(#[from] ReplayError),
}

/// Where runs live: `<state_dir>/runs/<run_id>/journal.jsonl`.
pub fn journal_path(state_dir: &Path, run_id: &str) -> PathBuf {
    state_dir.join("runs").join(run_id).join("journal.jsonl")
}

/// `drflow-` and 32 hex digits of SHA-256(run id, step id): the same for every attempt and resume of a step,
/// valid as a Backup IdempotencyToken, an EC2 ClientToken and a CloudFormation ClientRequestToken.
pub fn idempotency_token(run_id: &str, step_id: &str) -> String {
    let digest = Sha256::digest(format!("{run_id}/{step_id}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("drflow-{hex}")
}

/// A fresh run id: UTC time and 4 random hex digits, e.g. `20261127-031500-a1b2`.
pub fn new_run_id(now: SystemTime) -> String {
    let t = humantime::format_rfc3339_seconds(now).to_string();
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    format!("{}-{}-{:04x}", &digits[..8], &digits[8..14], fastrand::u16(..))
}

pub struct RunRequest<'a> {
    pub workflow: &'a Workflow,
    pub cloud: Cloud,
    pub state_dir: PathBuf,
    pub bindings: Bindings,
    /// The caller's AWS account, when known (`account.id`).
    pub account: Option<String>,
    pub observer: &'a dyn Observer,
    pub clock: Clock,
    /// Who answers approval steps (`Unattended`: nobody, the run waits).
    pub approver: &'a dyn Approver,
}

#[derive(Debug)]
pub struct Outcome {
    pub run_id: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub state: RunState,
    pub journal: PathBuf,
    /// The approval step the run stopped at, waiting for a decision (then `status` means nothing yet).
    pub waiting: Option<String>,
}

/// Starts a new run.
pub async fn start(req: RunRequest<'_>, run_id: Option<String>) -> Result<Outcome, EngineError> {
    let wf = req.workflow;
    let run_id = run_id.unwrap_or_else(|| new_run_id(req.clock.now()));
    let lock_key = lock_key(wf, &req.bindings);
    let _lock = lock::acquire(&req.state_dir, &wf.name, &lock_key, &run_id)?;
    lock::check_waiting(&req.state_dir, &wf.name, &lock_key, |other| {
        load_run(&req.state_dir, other).is_ok_and(|(s, _)| s.finished.is_none() && s.waiting.is_some())
    })?;
    let path = journal_path(&req.state_dir, &run_id);
    let journal = Journal::create(&path)?;
    let exec = executor::Executor {
        wf,
        cloud: req.cloud,
        clock: req.clock,
        observer: req.observer,
        journal: Mutex::new(journal),
        state_dir: req.state_dir.clone(),
        state: Mutex::new(RunState::default()),
        rng: Mutex::new(fastrand::Rng::new()),
        broken: Mutex::new(None),
        quotas: quota::QuotaSlots::new(wf.quotas.clone()),
        forecast: forecast::Forecast::load(&req.state_dir),
        approver: req.approver,
        paused: Default::default(),
    };
    exec.emit(Event::RunStarted {
        run_id: run_id.clone(),
        workflow: wf.name.clone(),
        file: wf.source.path.display().to_string(),
        digest: wf.source.digest(),
        inputs: req.bindings.inputs,
        regions: req.bindings.regions,
        backend: exec.cloud.backend.to_string(),
        lock: lock_key,
        account: req.account,
    })?;
    finish(exec, path).await
}

/// Continues a run from its journal. `workflow` must be the file the run started from (checked by digest).
/// Nobody answers its approval steps: see [`resume_with`].
pub async fn resume(
    workflow: &Workflow,
    cloud: Cloud,
    state_dir: &Path,
    run_id: &str,
    force: bool,
    observer: &dyn Observer,
    clock: Clock,
) -> Result<Outcome, EngineError> {
    let how = Resume {
        force,
        observer,
        clock,
        approver: &crate::actions::approval::Unattended,
    };
    resume_with(workflow, cloud, state_dir, run_id, how).await
}

/// How a run is resumed.
pub struct Resume<'a> {
    pub force: bool,
    pub observer: &'a dyn Observer,
    pub clock: Clock,
    /// Who answers its approval steps (e.g. `drflow approve RUN_ID`'s decision).
    pub approver: &'a dyn Approver,
}

/// `resume`, with an approver.
pub async fn resume_with(
    workflow: &Workflow,
    cloud: Cloud,
    state_dir: &Path,
    run_id: &str,
    how: Resume<'_>,
) -> Result<Outcome, EngineError> {
    let Resume {
        force,
        observer,
        clock,
        approver,
    } = how;
    let path = journal_path(state_dir, run_id);
    if !path.exists() {
        return Err(EngineError::RunNotFound(run_id.into(), state_dir.display().to_string()));
    }
    let entries = journal::read(&path)?;
    let state = RunState::replay(&entries)?;
    if let Some((status, _)) = &state.finished {
        return Err(EngineError::AlreadyFinished(
            run_id.into(),
            format!("{status:?}").to_lowercase(),
        ));
    }
    let now = workflow.source.digest();
    if now != state.digest && !force {
        return Err(EngineError::WorkflowChanged {
            run_id: run_id.into(),
            file: workflow.source.path.display().to_string(),
            was: state.digest[..12.min(state.digest.len())].to_string(),
            now: now[..12].to_string(),
        });
    }
    let _lock = lock::acquire(state_dir, &workflow.name, &state.lock, run_id)?;
    // Waiting for approval no more: it goes on (and marks itself again if it stops at another approval).
    lock::clear_waiting(state_dir, &workflow.name, &state.lock, run_id);
    let journal = Journal::reopen(&path, state.next_seq)?;
    let clock = clock.not_before(state.last_ms);
    let exec = executor::Executor {
        wf: workflow,
        cloud,
        clock,
        observer,
        journal: Mutex::new(journal),
        state_dir: state_dir.to_path_buf(),
        state: Mutex::new(state),
        rng: Mutex::new(fastrand::Rng::new()),
        broken: Mutex::new(None),
        quotas: quota::QuotaSlots::new(workflow.quotas.clone()),
        forecast: forecast::Forecast::load(state_dir),
        approver,
        paused: Default::default(),
    };
    // Jobs the run left running still count against AWS's quotas.
    exec.quotas.reclaim(quota::in_flight(&entries));
    drop(entries);
    exec.emit(Event::RunResumed { forced: force })?;
    finish(exec, path).await
}

async fn finish(exec: executor::Executor<'_>, path: PathBuf) -> Result<Outcome, EngineError> {
    exec.run().await?;
    let state = exec.state.into_inner().expect("state lock");
    let (status, error) = state.finished.clone().unwrap_or((RunStatus::Failed, None));
    let waiting = if state.finished.is_none() {
        state.waiting.clone()
    } else {
        None
    };
    Ok(Outcome {
        run_id: state.run_id.clone(),
        status,
        error,
        state,
        journal: path,
        waiting,
    })
}

fn lock_key(wf: &Workflow, bindings: &Bindings) -> String {
    let state = RunState {
        inputs: bindings.inputs.clone(),
        regions: bindings.regions.clone(),
        ..RunState::default()
    };
    match &wf.lock {
        Some(t) => t
            .eval(&scope::RunScope::new(&state))
            .map(|v| crate::workflow::expr::to_text(&v))
            .unwrap_or_else(|_| "default".into()),
        None => serde_json::to_string(&bindings.inputs).unwrap_or_default(),
    }
}

/// Every run in the state directory, newest first.
pub fn list_runs(state_dir: &Path) -> Result<Vec<RunState>, EngineError> {
    let dir = state_dir.join("runs");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let path = e.path().join("journal.jsonl");
        if path.exists() {
            out.push(RunState::replay(&journal::read(&path)?)?);
        }
    }
    out.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.run_id.cmp(&a.run_id)));
    Ok(out)
}

pub fn load_run(state_dir: &Path, run_id: &str) -> Result<(RunState, Vec<journal::Entry>), EngineError> {
    let path = journal_path(state_dir, run_id);
    if !path.exists() {
        return Err(EngineError::RunNotFound(run_id.into(), state_dir.display().to_string()));
    }
    let entries = journal::read(&path)?;
    Ok((RunState::replay(&entries)?, entries))
}
