//! Actions: what a step can do. One module per AWS service; each action declares its inputs, outputs,
//! the IAM actions it needs and whether it changes anything, and talks only to the `cloud` traits.
//!
//! An action is either a *call* (one request-response per attempt) or a *wait* (an optional `begin`, then
//! `poll` until done; the engine owns the sleeping between polls).

mod backup;
mod cloudformation;
mod core;
mod ec2;
mod spec;
mod ssm;

use std::path::Path;

use serde_json::{Map, Value};

pub use spec::{ActionKind, ActionSpec, InputKind, InputSpec, OutputSpec};

use crate::cloud::{Cloud, CloudError, ErrorKind};
use crate::engine::retry::FailureClass;

pub type Values = Map<String, Value>;

/// Every action, in documentation order.
pub fn all() -> &'static [&'static ActionSpec] {
    &ALL
}

static ALL: [&ActionSpec; 14] = [
    &backup::START_BACKUP_JOB,
    &backup::WAIT_BACKUP_JOB,
    &backup::START_COPY_JOB,
    &backup::WAIT_COPY_JOB,
    &ec2::WAIT_IMAGE,
    &ec2::CREATE_IMAGE,
    &ec2::COPY_IMAGE,
    &ec2::VERIFY_INSTANCE,
    &ssm::PUT_PARAMETER,
    &ssm::GET_PARAMETER,
    &cloudformation::DEPLOY_STACK,
    &cloudformation::DELETE_STACK,
    &core::ECHO,
    &core::FAIL,
];

pub fn find(name: &str) -> Option<&'static ActionSpec> {
    all().iter().copied().find(|a| a.name == name)
}

/// Journals a fact as soon as it is known (e.g. a job id), so a resumed run re-attaches instead of starting over.
pub trait Recorder: Send + Sync {
    fn record(&self, key: &str, value: &Value);
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
}

impl Ctx<'_> {
    pub fn recorded_str(&self, key: &str) -> Option<String> {
        self.recorder.recorded(key).and_then(|v| v.as_str().map(str::to_string))
    }
}

/// Outcome of one poll of a wait action.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    Done(Values),
    /// Not yet; the text says where it stands (e.g. `RUNNING 40%`).
    Pending(String),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Cloud(Box<CloudError>),
    /// A resource reached a state it will not leave, e.g. a FAILED backup job.
    #[error("{message}")]
    Failed { code: String, message: String },
    /// The inputs are unusable at run time.
    #[error("{0}")]
    Input(String),
    /// A write did not stick (read-back differs); worth retrying.
    #[error("{0}")]
    NotVerified(String),
}

impl From<CloudError> for ActionError {
    fn from(e: CloudError) -> Self {
        ActionError::Cloud(Box::new(e))
    }
}

impl ActionError {
    pub fn failed(code: &str, message: impl Into<String>) -> ActionError {
        ActionError::Failed {
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn class(&self) -> FailureClass {
        let (kind, code) = match self {
            ActionError::Cloud(e) => (e.kind, e.code.clone()),
            ActionError::Failed { code, .. } => (ErrorKind::Other, code.clone()),
            ActionError::Input(_) => (ErrorKind::Validation, "InvalidInput".to_string()),
            ActionError::NotVerified(_) => (ErrorKind::Transient, "NotVerified".to_string()),
        };
        FailureClass {
            kind,
            code,
            timed_out: false,
        }
    }
}

/// Runs a call action once.
pub async fn call(spec: &ActionSpec, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
    match spec.name {
        "backup.start_backup_job" => backup::start_backup_job(ctx, inputs).await,
        "backup.start_copy_job" => backup::start_copy_job(ctx, inputs).await,
        "ec2.create_image" => ec2::create_image(ctx, inputs).await,
        "ec2.copy_image" => ec2::copy_image(ctx, inputs).await,
        "ssm.put_parameter" => ssm::put_parameter(ctx, inputs).await,
        "ssm.get_parameter" => ssm::get_parameter(ctx, inputs).await,
        "drflow.echo" => core::echo(inputs),
        "drflow.fail" => core::fail(inputs),
        other => Err(ActionError::Input(format!("`{other}` is not a call action"))),
    }
}

/// Starts what a wait action waits for, if anything (idempotent: guarded by the token and the journal).
pub async fn begin(spec: &ActionSpec, ctx: &Ctx<'_>, inputs: &Values) -> Result<(), ActionError> {
    match spec.name {
        "cloudformation.deploy_stack" => cloudformation::begin_deploy(ctx, inputs).await,
        "cloudformation.delete_stack" => cloudformation::begin_delete(ctx, inputs).await,
        _ => Ok(()),
    }
}

/// Looks once at what a wait action waits for.
pub async fn poll(spec: &ActionSpec, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
    match spec.name {
        "backup.wait_backup_job" => backup::poll_backup_job(ctx, inputs).await,
        "backup.wait_copy_job" => backup::poll_copy_job(ctx, inputs).await,
        "ec2.wait_image" => ec2::poll_image(ctx, inputs).await,
        "ec2.verify_instance" => ec2::poll_verify_instance(ctx, inputs).await,
        "cloudformation.deploy_stack" => cloudformation::poll_deploy(ctx, inputs).await,
        "cloudformation.delete_stack" => cloudformation::poll_delete(ctx, inputs).await,
        other => Err(ActionError::Input(format!("`{other}` is not a wait action"))),
    }
}

/// Input accessors: validation guarantees presence and type for literals; templates are checked here.
pub(crate) fn str_in<'a>(inputs: &'a Values, name: &str) -> Result<&'a str, ActionError> {
    match inputs.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ActionError::Input(format!("input `{name}` is empty"))),
        Some(other) => Err(ActionError::Input(format!(
            "input `{name}` must be a string, got {other}"
        ))),
        None => Err(ActionError::Input(format!("input `{name}` is missing"))),
    }
}

pub(crate) fn opt_str<'a>(inputs: &'a Values, name: &str) -> Option<&'a str> {
    inputs.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(crate) fn bool_in(inputs: &Values, name: &str) -> bool {
    match inputs.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// A map input as string pairs (tags, stack parameters).
pub(crate) fn map_in(inputs: &Values, name: &str) -> std::collections::BTreeMap<String, String> {
    inputs
        .get(name)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), crate::workflow::expr::to_text(v)))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn values(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Values {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The account id in an ARN such as an IAM role's (`arn:aws:iam::123456789012:role/x`).
pub(crate) fn account_of(arn: &str) -> Result<&str, ActionError> {
    arn.split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| ActionError::Input(format!("cannot read an account id from `{arn}`")))
}
