//! Values of typed references during a run, from the run's state.

use serde_json::Value;

use super::state::{RunState, StepStatus};
use super::within::Within;
use crate::workflow::{Ref, Scope};

pub struct RunScope<'a> {
    state: &'a RunState,
    within: Option<&'a Within>,
}

impl<'a> RunScope<'a> {
    pub fn new(state: &'a RunState) -> Self {
        RunScope { state, within: None }
    }

    /// The scope of a step inside a `for_each` item: `item`, and its siblings' journal ids.
    pub(crate) fn within(state: &'a RunState, within: &'a Within) -> Self {
        RunScope {
            state,
            within: Some(within),
        }
    }

    fn id(&self, step: &str) -> String {
        self.within.map_or_else(|| step.to_string(), |w| w.resolve(step))
    }
}

impl Scope for RunScope<'_> {
    fn value(&self, r: &Ref) -> Result<Value, String> {
        let s = self.state;
        match r {
            Ref::Input(name) => s.inputs.get(name).cloned().ok_or_else(|| format!("no input `{name}`")),
            Ref::Region(name) => s
                .regions
                .get(name)
                .cloned()
                .ok_or_else(|| format!("no region `{name}`")),
            Ref::RunId => Ok(Value::String(s.run_id.clone())),
            Ref::RunWorkflow => Ok(Value::String(s.workflow.clone())),
            Ref::RunStatus => Ok(Value::String(
                if s.failure_so_far().is_some() {
                    "failed"
                } else {
                    "running"
                }
                .to_string(),
            )),
            Ref::RunError => Ok(Value::String(s.failure_so_far().map(|f| f.1).unwrap_or_default())),
            Ref::Account { fixed: Some(a), .. } => Ok(Value::String(a.clone())),
            Ref::AccountId | Ref::Account { fixed: None, .. } => s
                .account
                .clone()
                .map(Value::String)
                .ok_or_else(|| "the AWS account is not known: the run did not check its credentials".to_string()),
            Ref::Item => self
                .within
                .and_then(Within::item)
                .cloned()
                .ok_or_else(|| "`item` is only defined inside a `for_each`".to_string()),
            Ref::StepStatus(step) => Ok(Value::String(
                s.status(&self.id(step)).map_or("not_run", StepStatus::name).to_string(),
            )),
            Ref::StepError(step) => Ok(Value::String(match s.status(&self.id(step)) {
                Some(StepStatus::Failed { error, .. }) => error.message.clone(),
                _ => String::new(),
            })),
            Ref::StepOutput { step, output, path } => match s.status(&self.id(step)) {
                Some(StepStatus::Succeeded(outputs)) => {
                    let mut v = outputs
                        .get(output)
                        .ok_or_else(|| format!("step `{step}` has no output `{output}`"))?;
                    for key in path {
                        v = v.get(key).ok_or_else(|| format!("`{}` has no `{key}`", r.dotted()))?;
                    }
                    Ok(v.clone())
                }
                Some(StepStatus::Skipped(_)) => Err(format!("step `{step}` was skipped")),
                Some(StepStatus::Failed { .. }) => Err(format!("step `{step}` failed")),
                _ => Err(format!("step `{step}` has not run")),
            },
        }
    }
}
