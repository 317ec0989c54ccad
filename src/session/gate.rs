//! Checks made before a new run's first step, with read-only calls only: each step's action says what it must find
//! (a KMS key that exists and may be used, a vault in another account that accepts copies) from what of its inputs
//! is known before the run (inputs, regions, accounts). A check that fails stops the run before anything changes.

use std::path::Path;

use serde_json::{Map, Value};

use super::SessionError;
use crate::actions::{self, Values};
use crate::cloud::Cloud;
use crate::workflow::{Bindings, Ref, Scope, Workflow};

/// What is known before the first step.
struct Before<'a> {
    bindings: &'a Bindings,
    account: Option<&'a str>,
}

impl Scope for Before<'_> {
    fn value(&self, r: &Ref) -> Result<Value, String> {
        match r {
            Ref::Input(n) => self
                .bindings
                .inputs
                .get(n)
                .cloned()
                .ok_or_else(|| format!("no input `{n}`")),
            Ref::Region(n) => self
                .bindings
                .regions
                .get(n)
                .cloned()
                .ok_or_else(|| format!("no region `{n}`")),
            Ref::Account { fixed: Some(a), .. } => Ok(Value::String(a.clone())),
            Ref::AccountId | Ref::Account { fixed: None, .. } => self
                .account
                .map(|a| Value::String(a.to_string()))
                .ok_or_else(|| "the account is not known yet".to_string()),
            other => Err(format!("`{}` is known only during the run", other.dotted())),
        }
    }
}

/// Runs every step's gate; the first refusal, naming the step, is the error.
pub(crate) async fn check(
    wf: &Workflow,
    bindings: &Bindings,
    account: Option<&str>,
    cloud: &Cloud,
) -> Result<(), SessionError> {
    let scope = Before { bindings, account };
    let dir = wf.dir();
    for step in wf.all_steps() {
        let Some(a) = step.action() else { continue };
        // A step that will not run needs nothing; one whose condition is known only later is checked.
        if let Some(when) = &step.when
            && when.test(&scope) == Ok(false)
        {
            continue;
        }
        let known: Values = a
            .with
            .iter()
            .filter_map(|(k, v)| v.eval(&scope).ok().map(|v| (k.clone(), v)))
            .collect::<Map<String, Value>>();
        let Some(name) = &a.region else { continue };
        let code = bindings.regions.get(name).and_then(Value::as_str).unwrap_or_default();
        actions::detached::gate(actions::of(a.action), cloud, name, code, Path::new(&dir), &known)
            .await
            .map_err(|e| SessionError::Refused(format!("step `{}`: {e}", step.id)))?;
    }
    Ok(())
}
