//! The integration tests, as one binary (the AWS SDK is linked once): the simulator on a paused clock, the real
//! `drflow` binary, and the local AWS emulator (`tests/emulator/`). `common` holds the shared helpers: the run
//! builder, the emulator fixture, the binary.

mod common;

mod approval;
mod check;
mod cli;
mod cross_account;
mod e2e_emulator;
mod emulator_selftest;
mod engine_semantics;
mod export;
mod export_accounts;
mod export_discover;
mod export_failover;
mod export_follow;
mod export_prune;
mod export_regions;
mod fleet;
mod follow_plan;
mod pipeline_sim;
mod plan;
mod plan_emulator;
mod prune;
mod rehearsal_emulator;
mod rehearsal_sim;
mod reliability;
mod report_html;
mod retention_notify;
mod schedule_cli;
mod schedule_runner;
mod stacks_lint;
