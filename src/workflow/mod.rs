//! The workflow language: YAML → `RawWorkflow` (serde) → validated `Workflow`, with every problem located.

mod bind;
mod diagnostic;
mod duration;
pub mod expr;
mod model;
mod policy;
pub mod quota;
mod raw;
pub mod refs;
mod regions;
mod source;
pub(crate) mod spec;
mod validate;

use std::path::Path;

pub use bind::{BindError, Bindings};
pub use diagnostic::{Code, Problem, did_you_mean};
pub use duration::{format_duration, parse_duration};
pub use model::*;
pub use policy::{ErrorMatch, FailureClass, Jitter, PollPolicy, RetryPolicy};
pub use quota::{Quota, QuotaKey, Quotas};
pub use refs::{Ref, Scope};
pub use regions::{AWS_REGIONS, EXTRA_REGIONS_VAR, RegionProblem, check_region};
pub use source::Source;
pub use spec::{ActionKind, ActionSpec, Catalog, InputKind, InputSpec, OutputSpec, Preflight, Role, Writes, Written};

/// Reads and validates a workflow file; `catalog` names the actions it may use.
pub fn load(path: &Path, catalog: Catalog) -> Result<Workflow, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    parse(Source::new(path, text), catalog).map_err(LoadError::Invalid)
}

/// Validates a workflow's text.
pub fn parse(source: Source, catalog: Catalog) -> Result<Workflow, Vec<Problem>> {
    validate::parse(source, catalog)
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the workflow has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
}

/// JSON Schema of the workflow format, for editors.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawWorkflow)).expect("a schema is JSON")
}
