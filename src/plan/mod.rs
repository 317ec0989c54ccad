//! Dry-run planning: what a run will do, before it touches anything.
//!
//! - `compute`: the plan (steps in order, regions, API calls, resolved inputs, retry and timeout budgets, an upper
//!   bound of the run's duration), from the workflow, its inputs and regions alone: no AWS call, no backend.
//! - `render_text` / `render_json`: `drflow plan` output; the JSON document (`drflow-plan/1`) is documented in
//!   `render_json`.
//! - `checks`: `drflow plan --check`, read-only preflight checks against the account.
//! - `policy`: `drflow policy`, the least-privilege IAM policy of a run.
//! - `graph`: `drflow graph`, Mermaid or DOT.

pub mod checks;
mod compute;
pub mod graph;
mod model;
pub mod policy;
pub mod render_json;
pub mod render_text;

use serde_json::{Map, Value};

pub use compute::{Known, compute, expr_text, template_text};
pub use model::*;

use crate::engine::{self, EngineError};
use crate::workflow::Workflow;

/// Inputs for `drflow policy`: a required input that is not given is left out (the plan lists it in
/// `Plan::missing`, and ARNs use `*` for it) instead of being an error.
pub fn inputs_allowing_missing(wf: &Workflow, given: &[(String, String)]) -> Result<Map<String, Value>, EngineError> {
    engine::resolve_inputs(wf, given, true)
}

/// The plan of a run with these `--input` and `--region` pairs (every required input must be given).
pub fn for_run(
    wf: &Workflow,
    file: &str,
    given: &[(String, String)],
    regions: &[(String, String)],
) -> Result<Plan, EngineError> {
    let inputs = engine::prepare_inputs(wf, given)?;
    let regions = engine::prepare_regions(wf, regions)?;
    Ok(compute(wf, file, &inputs, &regions, given))
}
