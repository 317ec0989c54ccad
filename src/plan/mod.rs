//! Dry-run planning: what a run will do, before it touches anything.
//!
//! - `compute`: the plan (steps in order, regions, API calls, resolved inputs, retry and timeout budgets, an upper
//!   bound of the run's duration), from the workflow, its inputs and regions alone: no AWS call, no backend.
//! - `render_text` / `render_json`: `drflow plan` output (`render_bounds`: the bounds as text); the JSON document (`drflow-plan/1`) is documented in
//!   `render_json`.
//! - `bounds`: upper bounds of a step's duration and AWS API calls, from its timeout, retry and poll policies.
//! - `checks`: `drflow plan --check`, read-only preflight checks against the account.
//! - `discover`: `drflow plan --check` runs the read-only discovery steps a `for_each`'s items come from.
//! - `quotas`: the AWS quotas a `for_each`'s steps count against, and whether they bind across its items.
//! - `policy`: `drflow policy`, the least-privilege IAM policy of a run.
//! - `graph`: `drflow graph`, Mermaid or DOT.

pub mod bounds;
pub mod checks;
mod compute;
pub mod discover;
pub mod graph;
mod model;
pub mod policy;
mod quotas;
mod render_bounds;
pub mod render_json;
pub mod render_text;

pub use compute::{Known, compute, compute_known, compute_rest};
pub use model::*;

use serde_json::{Map, Value};

use crate::workflow::{BindError, Workflow};

/// The plan of a run with these `--input` and `--region` pairs (every required input must be given), for the
/// caller's `account` when known, with the `outputs` of the discovery steps `plan --check` ran (by step id).
pub fn for_run(
    wf: &Workflow,
    file: &str,
    given: &[(String, String)],
    regions: &[(String, String)],
    account: Option<&str>,
    outputs: Option<&Map<String, Value>>,
) -> Result<Plan, BindError> {
    let bound = wf.bind(given, regions)?;
    let known = Known {
        inputs: &bound.inputs,
        regions: &bound.regions,
        account,
        outputs,
    };
    Ok(compute_known(wf, file, &known, given))
}
