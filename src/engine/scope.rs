//! Values of `${{ }}` references during a run.

use serde_json::Value;

use super::state::{RunState, StepStatus};
use crate::workflow::Workflow;
use crate::workflow::expr::Scope;

pub struct RunScope<'a> {
    state: &'a RunState,
    wf: &'a Workflow,
}

impl<'a> RunScope<'a> {
    pub fn new(wf: &'a Workflow, state: &'a RunState) -> Self {
        RunScope { state, wf }
    }
}

impl Scope for RunScope<'_> {
    fn lookup(&self, path: &[String]) -> Result<Value, String> {
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["inputs", name] => self
                .state
                .inputs
                .get(*name)
                .cloned()
                .ok_or_else(|| format!("no input `{name}`")),
            ["regions", name] => self
                .state
                .regions
                .get(*name)
                .cloned()
                .ok_or_else(|| format!("no region `{name}`")),
            ["run", "id"] => Ok(Value::String(self.state.run_id.clone())),
            ["steps", step, rest @ ..] => {
                let status = self.state.status(step);
                match (rest, status) {
                    (["status"], s) => Ok(Value::String(s.map_or("not_run", StepStatus::name).to_string())),
                    (["error"], Some(StepStatus::Failed { error, .. })) => Ok(Value::String(error.message.clone())),
                    (["error"], _) => Ok(Value::String(String::new())),
                    (["outputs", name, deeper @ ..], Some(StepStatus::Succeeded(outputs))) => {
                        let mut v = outputs
                            .get(*name)
                            .ok_or_else(|| format!("step `{step}` has no output `{name}`"))?;
                        for key in deeper {
                            v = v
                                .get(*key)
                                .ok_or_else(|| format!("`{}` has no `{key}`", path.join(".")))?;
                        }
                        Ok(v.clone())
                    }
                    (["outputs", ..], Some(StepStatus::Skipped(_))) => Err(format!("step `{step}` was skipped")),
                    (["outputs", ..], Some(StepStatus::Failed { .. })) => Err(format!("step `{step}` failed")),
                    (["outputs", ..], _) => Err(format!("step `{step}` has not run")),
                    _ => Err(format!("`{}` is not a reference", path.join("."))),
                }
            }
            _ => {
                let _ = self.wf;
                Err(format!("`{}` is not a reference", path.join(".")))
            }
        }
    }
}
