//! `drflow export`: a workflow as an AWS Step Functions state machine (Amazon States Language, JSONPath), or as a
//! CloudFormation template that deploys it. The state machine behaves like `drflow run`: each action step in its
//! own Step Functions form (`Action::sfn`), retries as Retry, waits as polling loops, control constructs as
//! Choice / Parallel / Map / Catch. What cannot be expressed is refused, naming the step and where it is written.
//!
//! Regions: AWS SDK integrations call their own region only, so a step in another region goes through one small
//! cross-region function (`cross_region.py`, included in the template), unless `--single-region` refuses it.
//! Accounts: a step in a region reached through a role calls with a Task's `Credentials` (`accounts.rs`).
//!
//! Imports workflow, actions and plan::policy; only the CLI imports it.

mod accounts;
mod accounts_template;
mod build;
pub mod cloudformation;
pub mod copy_rule;
pub mod cron;
mod each;
mod expr;
mod form;
mod node;
mod retry;
mod status;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workflow::{BindError, Workflow};

/// The cross-region call function's default name (`--cross-region-function` gives another name or ARN).
pub const FUNCTION_NAME: &str = "drflow-cross-region";

/// The cross-region call function's Python handler: event `{"region", "service", "action", "parameters"}` → the
/// API's answer; AWS errors raised named by their code.
pub const CROSS_REGION_HANDLER: &str = include_str!("cross_region.py");

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The region name (of the workflow's) the state machine runs in; default `dr` if there is one, else the
    /// first.
    pub home: Option<String>,
    /// Refuse steps in other regions instead of calling them through the cross-region function.
    pub single_region: bool,
    /// The cross-region function's name or ARN.
    pub function: Option<String>,
    /// The SNS topic (name or ARN) approvals are asked on; default `drflow-approvals` in the state machine's
    /// region and account (the CloudFormation template creates its own).
    pub approval_topic: Option<String>,
}

/// The approvals topic's default name (`--approval-topic` gives another name or ARN).
pub const APPROVAL_TOPIC: &str = "drflow-approvals";

/// An exported state machine.
#[derive(Debug, Clone)]
pub struct Export {
    pub definition: Value,
    /// Region name and code the state machine runs in.
    pub home: (String, String),
    /// Region names and codes.
    pub regions: BTreeMap<String, String>,
    /// Whether a step calls AWS through the cross-region function.
    pub cross_region: bool,
    /// The roles (ARNs) Task states assume for steps in another account (their `Credentials`).
    pub roles: Vec<String>,
    /// Whether a step asks a person's approval on the approvals topic (`drflow.approve`).
    pub approvals: bool,
    /// Inputs with neither a value nor a default: each execution must give them.
    pub required: Vec<String>,
}

/// A step the export cannot express, where it is written and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub step: String,
    /// `FILE:LINE:COL` of the step's `id:`.
    pub location: String,
    pub reason: String,
}

impl Refusal {
    fn new(wf: &Workflow, step: &str, reason: String) -> Refusal {
        let text = &wf.source.text;
        let at = regex::Regex::new(&format!(
            r"(?m)^[\s-]*id:\s*['\x22]?{}['\x22]?\s*$",
            regex::escape(step)
        ))
        .ok()
        .and_then(|re| re.find(text))
        .map(|m| m.start() + m.as_str().find("id:").unwrap_or(0))
        .unwrap_or(0);
        let (line, col) = wf.source.line_col(at);
        Refusal {
            step: step.to_string(),
            location: format!("{}:{line}:{col}", wf.source.name()),
            reason,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: step `{}`: {}", self.location, self.step, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{} cannot be exported to Step Functions:\n{}", .0.len(), .0.iter().map(|r| format!("  {r}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<Refusal>),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("{0}")]
    Usage(String),
}

/// The state machine's definition (ASL, JSONPath) of a workflow, with the inputs and regions given.
pub fn asl(
    wf: &Workflow,
    inputs: &[(String, String)],
    regions: &[(String, String)],
    opts: &Options,
) -> Result<Export, ExportError> {
    let bound = wf.bind_partial(inputs, regions)?;
    let regions: BTreeMap<String, String> = bound
        .regions
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    let home_name = match &opts.home {
        Some(h) if regions.contains_key(h) => h.clone(),
        Some(h) => {
            return Err(ExportError::Usage(format!(
                "--state-machine-region {h}: the workflow has no region named `{h}` (it has {})",
                regions.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        None if regions.contains_key("dr") => "dr".to_string(),
        None => wf
            .regions
            .first()
            .map(|(n, _)| n.clone())
            .ok_or_else(|| ExportError::Usage("the workflow names no region".into()))?,
    };
    let home = regions[&home_name].clone();
    let required = wf
        .inputs
        .iter()
        .filter(|i| !bound.inputs.contains_key(&i.name))
        .map(|i| i.name.clone())
        .collect();
    let mut b = build::Builder::new(wf, opts, regions.clone(), home.clone());
    let definition = b.definition(&bound.inputs);
    let events = std::mem::take(&mut b.events);
    b.check_history(&events, "the execution");
    if !b.refusals.is_empty() {
        return Err(ExportError::Refused(b.refusals));
    }
    Ok(Export {
        definition,
        home: (home_name, home),
        regions,
        cross_region: b.cross_region,
        roles: b.roles.iter().cloned().collect(),
        approvals: b.approvals,
        required,
    })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_accounts;
