//! One home for a run: bind its inputs and regions, choose the backend and its runtime, learn the caller's account,
//! take the lock and open the journal (through the engine), execute, and conclude with a report and a verdict.
//! `drflow run`, `drflow resume`, `drflow schedule`, the tests and the benchmark all start runs here.

mod accounts;
mod backend;
mod gate;
mod verdict;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use accounts::{attach, attach_each};
pub use backend::Backend;
pub use verdict::{Verdict, WAITING_FOR_APPROVAL, conclude};

use crate::actions::approval::{Approver, Unattended};
use crate::cloud::Cloud;
use crate::engine::{self, Clock, EngineError, Observer, Outcome, RunRequest};
use crate::workflow::{BindError, Bindings, LoadError, Ref, Workflow};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A command-line mistake found before the run (an unreadable scenario, the wrong backend for a resume).
    #[error("{0}")]
    Usage(String),
    /// The runtime, the simulator's files, or AWS credentials.
    #[error("{0}")]
    Environment(String),
    /// A check before the first step failed (a KMS key that does not exist, a vault that refuses copies): nothing
    /// was changed.
    #[error("refused before any change: {0}")]
    Refused(String),
}

/// What a session runs.
#[derive(Debug, Clone)]
pub enum Job {
    /// A new run with these bindings; `run_id` picks its id (a scheduler announces it first), by default one is made
    /// from the clock.
    Start { bindings: Bindings, run_id: Option<String> },
    /// The rest of an unfinished run, from its journal: the workflow must be the file it started from (checked by
    /// digest, unless `force`).
    Resume { run_id: String, force: bool },
}

type RunFuture<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Outcome, EngineError>> + 'a>>;

/// How a run ended, as far as this process saw it.
#[derive(Debug)]
pub enum Ended {
    Finished(Box<Outcome>),
    /// Stopped on request (a scheduler's signal): every transition is in the journal and the lock is released;
    /// `drflow resume RUN_ID` continues it. `journaled` is false when it stopped before its journal existed.
    Interrupted {
        run_id: String,
        journaled: bool,
    },
}

/// Where runs are kept, and what they run against.
#[derive(Clone)]
pub struct Session {
    pub state_dir: PathBuf,
    pub backend: Backend,
    /// A client to use instead of connecting (tests and benchmarks that hold a simulator of their own).
    client: Option<Cloud>,
    /// Who answers approval steps (`drflow.approve`); by default nobody: such a run stops, waiting for approval.
    approver: Arc<dyn Approver>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state_dir", &self.state_dir)
            .field("backend", &self.backend)
            .finish()
    }
}

impl Session {
    pub fn new(state_dir: impl Into<PathBuf>, backend: Backend) -> Session {
        Session {
            state_dir: state_dir.into(),
            backend,
            client: None,
            approver: Arc::new(Unattended),
        }
    }

    /// Approval steps are answered by `approver` (a terminal, `drflow approve`'s decision, `--auto-approve`).
    pub fn with_approver(mut self, approver: Arc<dyn Approver>) -> Session {
        self.approver = approver;
        self
    }

    /// Runs against this client instead of the backend's own (e.g. a simulator the caller inspects afterwards).
    pub fn with_client(mut self, cloud: Cloud) -> Session {
        self.client = Some(cloud);
        self
    }

    /// Runs `job` (a new run of `wf`, or the rest of an unfinished one) until it ends, or until `stop` resolves
    /// (then it is checkpointed). Builds the backend's runtime and blocks on it.
    pub fn run(
        &self,
        wf: &Workflow,
        job: Job,
        observer: &dyn Observer,
        stop: impl Future<Output = ()>,
    ) -> Result<Ended, SessionError> {
        self.backend
            .runtime()?
            .block_on(self.run_async(wf, job, observer, stop))
    }

    /// `run`, inside a runtime the caller provides (a paused one for the simulator).
    pub async fn run_async(
        &self,
        wf: &Workflow,
        job: Job,
        observer: &dyn Observer,
        stop: impl Future<Output = ()>,
    ) -> Result<Ended, SessionError> {
        let (run, run_id) = match job {
            Job::Start { bindings, run_id } => {
                let clock = Clock::start();
                let run_id = run_id.unwrap_or_else(|| engine::new_run_id(clock.now()));
                let cloud = self.client(&bindings.region_codes()).await?;
                let cloud = accounts::attach(wf, &bindings.regions, &run_id, cloud).await?.limited();
                let account = match &cloud.account {
                    Some(a) => Some(a.clone()),
                    None => account_of_caller(wf, &cloud, &bindings).await?,
                };
                gate::check(wf, &bindings, account.as_deref(), &cloud).await?;
                let request = RunRequest {
                    workflow: wf,
                    cloud,
                    state_dir: self.state_dir.clone(),
                    bindings,
                    account,
                    observer,
                    clock,
                    approver: self.approver.as_ref(),
                };
                let started = engine::start(request, Some(run_id.clone()));
                (Box::pin(started) as RunFuture<'_>, run_id)
            }
            Job::Resume { run_id, force } => {
                let (state, _) = engine::load_run(&self.state_dir, &run_id)?;
                if state.backend != self.backend.name() {
                    return Err(SessionError::Usage(format!(
                        "run {run_id} ran against {}; it cannot be resumed on {}",
                        state.backend,
                        self.backend.describe()
                    )));
                }
                let codes: Vec<String> = state
                    .regions
                    .values()
                    .filter_map(|v| v.as_str())
                    .map(str::to_string)
                    .collect();
                let cloud = self.client(&codes).await?;
                let cloud = accounts::attach(wf, &state.regions, &state.run_id, cloud)
                    .await?
                    .limited();
                let dir = &self.state_dir;
                let how = engine::Resume {
                    force,
                    observer,
                    clock: Clock::start(),
                    approver: self.approver.as_ref(),
                };
                let resumed = async move { engine::resume_with(wf, cloud, dir, &run_id, how).await };
                (Box::pin(resumed) as RunFuture<'_>, state.run_id)
            }
        };
        tokio::select! {
            outcome = run => Ok(Ended::Finished(Box::new(outcome?))),
            () = stop => Ok(self.interrupted(run_id)),
        }
    }

    /// The caller's client, not yet limited (the clients of roles join it first: `accounts::attach`).
    async fn client(&self, regions: &[String]) -> Result<Cloud, SessionError> {
        match &self.client {
            Some(c) => Ok(c.clone()),
            None => self.backend.connect(&self.state_dir, regions).await,
        }
    }

    /// Publishes a notification to an SNS topic (in the region its ARN names) through this session's backend,
    /// retrying throttling and 5xx as a step would. Returns the message id.
    pub fn notify(&self, topic_arn: &str, subject: &str, message: &str) -> Result<String, SessionError> {
        let region = crate::cloud::arn_region(topic_arn)
            .ok_or_else(|| SessionError::Usage(format!("`{topic_arn}` is not an SNS topic ARN")))?
            .to_string();
        let req = crate::cloud::Publish {
            topic_arn: topic_arn.to_string(),
            subject: Some(subject.chars().take(100).collect()),
            message: message.to_string(),
        };
        self.backend.runtime()?.block_on(async {
            let cloud = self.client(std::slice::from_ref(&region)).await?.limited();
            retried(|| cloud.sns.publish(&region, &req))
                .await
                .map_err(|e| SessionError::Environment(e.to_string()))
        })
    }

    /// Writes a finished run's report and decides its verdict.
    pub fn conclude(&self, wf: &Workflow, outcome: &Outcome) -> Verdict {
        conclude(&self.state_dir, wf, outcome)
    }

    fn interrupted(&self, run_id: String) -> Ended {
        let journaled = engine::journal_path(&self.state_dir, &run_id).exists();
        Ended::Interrupted { run_id, journaled }
    }

    /// Runs that started and never finished (crashed, killed or checkpointed), oldest first, with their workflow
    /// file and lock.
    pub fn unfinished(&self) -> Result<Vec<engine::RunState>, SessionError> {
        let mut runs: Vec<engine::RunState> = engine::list_runs(&self.state_dir)?
            .into_iter()
            .filter(|r| r.finished.is_none())
            .collect();
        runs.reverse();
        Ok(runs)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }
}

/// The caller's account, when the workflow uses `account.id`: asked once, before the first step (a missing or
/// expired login fails here, not in the middle of the run).
async fn account_of_caller(wf: &Workflow, cloud: &Cloud, bindings: &Bindings) -> Result<Option<String>, SessionError> {
    if !wf.references().any(Ref::needs_caller_account) {
        return Ok(None);
    }
    // The workflow's first region (the primary one, by convention).
    let region = wf
        .regions
        .first()
        .and_then(|(name, _)| bindings.regions.get(name))
        .and_then(|v| v.as_str())
        .unwrap_or("us-east-1")
        .to_string();
    match retried(|| cloud.sts.get_caller_identity(&region)).await {
        Ok(id) => Ok(Some(id.account)),
        Err(e) => Err(SessionError::Environment(format!(
            "cannot tell which AWS account this is (the workflow uses account.id): {e}"
        ))),
    }
}

/// A call the session makes outside any step (the caller's account, a schedule's notification), with throttling
/// and 5xx retried as ASL's defaults would, five times: 1 s, 2 s, 4 s, 8 s, 16 s.
async fn retried<T, F>(call: impl Fn() -> F) -> Result<T, crate::cloud::CloudError>
where
    F: Future<Output = Result<T, crate::cloud::CloudError>>,
{
    let policy = crate::workflow::RetryPolicy {
        max_attempts: 5,
        ..Default::default()
    };
    let mut tries = 0;
    loop {
        tries += 1;
        match call().await {
            Err(e) if e.kind.is_transient() => match policy.next_delay(tries, 1.0) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(e),
            },
            answer => return answer,
        }
    }
}
