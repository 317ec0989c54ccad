//! drflow: a workflow engine for AWS disaster recovery.
//!
//! Layers, each in its own folder: `workflow` (YAML → validated `Workflow`), `engine` (runs it, journals it),
//! `actions` (one module per AWS service), `cloud` (the narrow AWS surface, with `sim` and `aws` backends),
//! and `cli` on top.

pub mod actions;
pub mod check;
pub mod cli;
pub mod cloud;
pub mod engine;
pub mod error;
pub mod export;
pub mod plan;
pub mod report;
pub mod schedule;
pub mod session;
pub mod workflow;
