//! Typed references: what a `${{ }}` can name, resolved once during validation. The run scope (engine) and the
//! planner evaluate these, never dotted strings.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    /// `inputs.NAME`
    Input(String),
    /// `regions.NAME`: the region's code.
    Region(String),
    /// `run.id`
    RunId,
    /// `run.workflow`: the workflow's name.
    RunWorkflow,
    /// `run.status`: `failed` once a step failed the run (a failure routed with `continue` does not), else
    /// `running` (so `finally` can tell).
    RunStatus,
    /// `run.error`: the error of the step that failed the run, else empty.
    RunError,
    /// `account.id`: the AWS account of the caller, known once the run has checked its credentials.
    AccountId,
    /// `accounts.NAME`: the account region NAME's calls act in. `fixed` is the account of the role it assumes
    /// (set by validation, from the role's ARN); without a role it is the caller's (`account.id`).
    Account { region: String, fixed: Option<String> },
    /// `item`: inside a `for_each`, the item (its key).
    Item,
    /// `steps.ID.outputs.NAME[.KEY...]`
    StepOutput {
        step: String,
        output: String,
        path: Vec<String>,
    },
    /// `steps.ID.status`: `succeeded`, `failed`, `skipped`, `running` or `not_run`.
    StepStatus(String),
    /// `steps.ID.error`: the error message of a failed step, else empty.
    StepError(String),
}

impl Ref {
    /// The typed form of a dotted path, by the grammar alone (whether the input, region or step exists is for
    /// validation to check). `None` when the path is no reference at all.
    pub fn from_path(path: &[String]) -> Option<Ref> {
        let segs: Vec<&str> = path.iter().map(String::as_str).collect();
        Some(match segs.as_slice() {
            ["inputs", name] => Ref::Input(name.to_string()),
            ["regions", name] => Ref::Region(name.to_string()),
            ["run", "id"] => Ref::RunId,
            ["run", "workflow"] => Ref::RunWorkflow,
            ["run", "status"] => Ref::RunStatus,
            ["run", "error"] => Ref::RunError,
            ["account", "id"] => Ref::AccountId,
            ["accounts", name] => Ref::Account {
                region: name.to_string(),
                fixed: None,
            },
            ["item"] => Ref::Item,
            ["steps", step, "outputs", output, rest @ ..] => Ref::StepOutput {
                step: step.to_string(),
                output: output.to_string(),
                path: rest.iter().map(|s| s.to_string()).collect(),
            },
            ["steps", step, "status"] => Ref::StepStatus(step.to_string()),
            ["steps", step, "error"] => Ref::StepError(step.to_string()),
            _ => return None,
        })
    }

    /// Whether its value is the caller's account, which a run asks STS for before its first step.
    pub fn needs_caller_account(&self) -> bool {
        matches!(self, Ref::AccountId | Ref::Account { fixed: None, .. })
    }

    /// The step whose result it reads, if any.
    pub fn step(&self) -> Option<&str> {
        match self {
            Ref::StepOutput { step, .. } | Ref::StepStatus(step) | Ref::StepError(step) => Some(step),
            _ => None,
        }
    }

    /// The reference as written in a workflow.
    pub fn dotted(&self) -> String {
        match self {
            Ref::Input(n) => format!("inputs.{n}"),
            Ref::Region(n) => format!("regions.{n}"),
            Ref::RunId => "run.id".into(),
            Ref::RunWorkflow => "run.workflow".into(),
            Ref::RunStatus => "run.status".into(),
            Ref::RunError => "run.error".into(),
            Ref::AccountId => "account.id".into(),
            Ref::Account { region, .. } => format!("accounts.{region}"),
            Ref::Item => "item".into(),
            Ref::StepOutput { step, output, path } => {
                let mut s = format!("steps.{step}.outputs.{output}");
                for p in path {
                    s.push('.');
                    s.push_str(p);
                }
                s
            }
            Ref::StepStatus(step) => format!("steps.{step}.status"),
            Ref::StepError(step) => format!("steps.{step}.error"),
        }
    }
}

/// Supplies the values of references: the run's state at run time, what is known beforehand for a plan.
pub trait Scope {
    fn value(&self, r: &Ref) -> Result<Value, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn typed_from_the_grammar_and_back() {
        for text in [
            "inputs.instance_id",
            "regions.dr",
            "run.id",
            "run.status",
            "run.error",
            "run.workflow",
            "account.id",
            "accounts.dr",
            "item",
            "steps.deploy.outputs.outputs.InstanceId",
            "steps.a.status",
            "steps.a.error",
        ] {
            let r = Ref::from_path(&path(text)).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(r.dotted(), text);
        }
        assert_eq!(
            Ref::from_path(&path("steps.wait.outputs.image_id")).unwrap().step(),
            Some("wait")
        );
        for bad in [
            "inputs",
            "inputs.a.b",
            "steps.a",
            "steps.a.outputs",
            "run.name",
            "env.HOME",
        ] {
            assert_eq!(Ref::from_path(&path(bad)), None, "{bad}");
        }
    }
}
