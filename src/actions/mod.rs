//! Actions: what a step can do. Each action is one value in its own file that owns everything about it: its
//! declaration (inputs, outputs, the AWS operations it calls, its preflight checks), how it is called or polled, and
//! what it creates and deletes (for reports). Adding an action touches its file and the list in `registry.rs`.
//!
//! An action is either a *call* (one request-response per attempt) or a *wait* (an optional `begin`, then `poll`
//! until done; the engine owns the sleeping between polls). Actions talk only to the `cloud` traits.

pub mod approval;
mod backup;
mod cloudformation;
mod core;
pub mod detached;
mod ec2;
mod effects;
mod error;
mod registry;
pub mod sfn;
mod sns;
mod ssm;
mod values;

use std::path::Path;

use async_trait::async_trait;
use serde_json::{Map, Value};

pub use effects::{Effects, Resource, ResourceKind, StepFacts};
pub use error::ActionError;
pub use registry::{all, catalog, of};
pub(crate) use ssm::version_limit_way_out;

use crate::cloud::Cloud;
use crate::workflow::ActionSpec;

pub type Values = Map<String, Value>;

/// One action.
#[async_trait]
pub trait Action: Send + Sync {
    fn spec(&self) -> &'static ActionSpec;

    /// A call action's one attempt.
    async fn call(&self, _ctx: &Ctx<'_>, _inputs: &Values) -> Result<Values, ActionError> {
        Err(ActionError::Input(format!(
            "`{}` is not a call action",
            self.spec().name
        )))
    }

    /// Starts what a wait action waits for, if anything (idempotent: guarded by the token and the journal).
    async fn begin(&self, _ctx: &Ctx<'_>, _inputs: &Values) -> Result<(), ActionError> {
        Ok(())
    }

    /// Looks once at what a wait action waits for.
    async fn poll(&self, _ctx: &Ctx<'_>, _inputs: &Values) -> Result<Poll, ActionError> {
        Err(ActionError::Input(format!(
            "`{}` is not a wait action",
            self.spec().name
        )))
    }

    /// What a step of this action created and deleted, from its journaled inputs, outputs and recorded facts.
    /// `created` holds what earlier steps of the run created (a stack's deletion terminates its instances).
    fn effects(&self, _step: &StepFacts<'_>, _created: &[Resource]) -> Effects {
        Effects::default()
    }

    /// What `drflow plan` says a step of it will change before `--check` looks (e.g. "the AMIs it deregisters"),
    /// for an action that can tell it with read-only calls (`preview`); `None` for the others.
    fn previews(&self) -> Option<&'static str> {
        None
    }

    /// What a step would change if it ran now, found with read-only calls only (`drflow plan --check`); `None`
    /// when the action cannot tell.
    async fn preview(&self, _ctx: &Ctx<'_>, _inputs: &Values) -> Option<Result<String, ActionError>> {
        None
    }

    /// Read-only checks made before a run changes anything (`drflow run` and `plan --check`), with what of the
    /// step's inputs is known before its first step (`known`: others are left out). `ctx.cloud` acts with the
    /// step's credentials; `run` is the run's client with every role's (for a check in another account). An error
    /// stops the run before its first step.
    async fn gate(&self, _ctx: &Ctx<'_>, _run: &Cloud, _known: &Values) -> Result<(), ActionError> {
        Ok(())
    }

    /// Whether `gate` checks anything for a step with these known inputs: `plan --check` lists those checks.
    fn has_gate(&self, _known: &Values) -> bool {
        false
    }

    /// Whether it changes anything in the account: whether any operation it calls does.
    fn mutates(&self) -> bool {
        self.spec().calls.iter().any(|c| crate::cloud::operations::mutates(c))
    }

    /// Its AWS Step Functions form (`drflow export`), or why it has none: the export then refuses the step.
    fn sfn(&self) -> Result<sfn::Form, &'static str> {
        Err("it has no Step Functions form yet")
    }
}

/// Journals a fact as soon as it is known (e.g. a job id), so a resumed run re-attaches instead of starting over.
#[async_trait]
pub trait Recorder: Send + Sync {
    /// On disk when this returns.
    async fn record(&self, key: &str, value: &Value);
    /// A fact journaled for this step, by this attempt or an earlier one (possibly in a process that died).
    fn recorded(&self, key: &str) -> Option<Value>;
}

/// What an action gets besides its inputs.
pub struct Ctx<'a> {
    pub cloud: &'a Cloud,
    /// Region code; empty for actions that call no AWS API.
    pub region: &'a str,
    /// Idempotency token for this step of this run: the same across attempts and resumes.
    pub token: &'a str,
    pub recorder: &'a dyn Recorder,
    /// Folder of the workflow file, for relative paths.
    pub base_dir: &'a Path,
    /// The run this step belongs to, as far as it has gone (for notifications).
    pub run: &'a RunInfo,
    /// Decisions of approval steps (`drflow.approve`): the plan to show, who answers, the journal.
    pub approvals: &'a dyn approval::Approvals,
}

/// What a step knows of its run: for notifications.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    pub run_id: String,
    pub workflow: String,
    /// The first step that failed the run so far, and why.
    pub failure: Option<(String, String)>,
    /// Where the run's report will be written.
    pub report: std::path::PathBuf,
}

impl RunInfo {
    /// A plain-text summary of the run so far.
    pub fn summary(&self) -> String {
        let mut out = format!("drflow run {} of workflow {}: ", self.run_id, self.workflow);
        match &self.failure {
            Some((step, error)) => out.push_str(&format!("FAILED at step `{step}`: {error}\n")),
            None => out.push_str("no step has failed so far\n"),
        }
        out.push_str(&format!("report: {}\n", self.report.display()));
        out
    }
}

impl Ctx<'_> {
    pub fn recorded_str(&self, key: &str) -> Option<String> {
        self.recorder.recorded(key).and_then(|v| v.as_str().map(str::to_string))
    }

    /// A start call made once per step: the id an earlier attempt (or a process that died) journaled under `key`,
    /// else what `start` answers, journaled at once. The outputs are `{key: id}`.
    pub async fn start_once<F>(&self, key: &'static str, start: impl FnOnce() -> F) -> Result<Values, ActionError>
    where
        F: std::future::Future<Output = Result<String, ActionError>>,
    {
        let id = match self.recorded_str(key) {
            Some(id) => id,
            None => {
                let id = start().await?;
                self.recorder.record(key, &Value::String(id.clone())).await;
                id
            }
        };
        Ok(values::values([(key, Value::String(id))]))
    }
}

/// Outcome of one poll of a wait action.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Done(Values),
    /// Not yet; the text says where it stands (e.g. `RUNNING 40%`).
    Pending(String),
    /// Not yet, `percent` done: the engine times the next poll from the observed rate.
    Progress(String, f64),
    /// Not yet, with no progress told but the size of the work (`bytes`) and what it is for (`resource`): the
    /// engine times the next poll from how long work of that size (and that resource's earlier work) took.
    Sized {
        status: String,
        bytes: u64,
        resource: Option<String>,
    },
}
