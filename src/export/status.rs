//! `steps.ID.status == 'succeeded'` in the exported state machine. The state keeps a step's outputs
//! (`$.steps.ID`), written when it succeeds: for a top-level step without `when` (a skipped step writes empty
//! outputs; a step inside a `parallel` or `for_each` has its outputs merged only when all of it succeeds) they are
//! there exactly when it succeeded. In a workflow with `finally`, a top-level step's failure ends the main steps with
//! the outputs of those before it kept (`build`'s guard), so `finally` can tell, e.g. undo a share only if it was
//! made. Other statuses (why a step did not succeed) are not kept: refused.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::expr::{Names, Rule, dot};
use crate::workflow::Workflow;

/// The steps whose success the state tells: top-level steps (main and `finally`) without `when`.
pub(crate) fn settled(wf: &Workflow) -> BTreeSet<String> {
    wf.steps
        .iter()
        .chain(&wf.finally)
        .filter(|s| s.when.is_none())
        .map(|s| s.id.clone())
        .collect()
}

/// `steps.STEP.status == VALUE` as a Choice rule.
pub(crate) fn equals(step: &str, value: &Value, names: &Names<'_>) -> Result<Rule, String> {
    if !names.settled.contains(step) {
        return Err(format!(
            "`steps.{step}.status`: the exported state machine tells only whether a top-level step without `when` \
             succeeded (by its outputs)"
        ));
    }
    if value.as_str() != Some("succeeded") {
        return Err(format!(
            "`steps.{step}.status` compared with {value}: only `== 'succeeded'` (or `!=`) is mapped to Step \
             Functions: the state keeps whether a step succeeded (its outputs), not why it did not"
        ));
    }
    Ok(Rule::Rule(json!({"Variable": dot("$.steps", step), "IsPresent": true})))
}
