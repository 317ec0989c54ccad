//! The workflow language: YAML → `RawWorkflow` (serde) → validated `Workflow`, with every problem located.

mod diagnostic;
mod duration;
pub mod expr;
mod model;
mod raw;
mod source;
mod validate;

use std::path::Path;

pub use diagnostic::{Code, Problem};
pub use duration::{format_duration, parse_duration};
pub use model::*;
pub use source::Source;

/// Reads and validates a workflow file.
pub fn load(path: &Path) -> Result<Workflow, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    parse(Source::new(path, text)).map_err(LoadError::Invalid)
}

/// Validates a workflow's text.
pub fn parse(source: Source) -> Result<Workflow, Vec<Problem>> {
    validate::parse(source)
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
