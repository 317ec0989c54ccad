//! The command line: parses arguments, hands a run to a `Session`, prints.

mod approve;
mod check;
mod export;
mod inspect;
mod plan;
mod report;
mod run;
mod schedule;
mod show;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::Error;

#[derive(Parser, Debug)]
#[command(name = "drflow", version, about = "A workflow engine for AWS disaster recovery", long_about = None)]
pub struct Cli {
    /// Where runs, journals and locks are kept.
    #[arg(long, global = true, env = "DRFLOW_STATE_DIR", default_value = ".drflow")]
    pub state_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a workflow.
    Run(RunArgs),
    /// Continue a run that crashed or was killed, from its journal.
    Resume(ResumeArgs),
    /// Check workflow files; print every problem with its location.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// List the actions a step can use, with inputs, outputs and IAM actions.
    Actions,
    /// List runs in the state directory, newest first.
    Runs,
    /// Show a run's steps, attempts, durations and outputs.
    Show {
        run_id: String,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
    },
    /// Print or write a run's report (the files written into its folder when it ended, built afresh).
    Report {
        run_id: String,
        /// Default: the extension of --out, else md.
        #[arg(long, value_enum)]
        format: Option<report::ReportFormat>,
        /// Write to this file instead of printing.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run workflows on cron schedules in the foreground, until SIGTERM or Ctrl-C.
    Schedule(schedule::ScheduleArgs),
    /// Show what a run would do, without running it; `--check` adds read-only preflight checks.
    Plan(plan::PlanArgs),
    /// Print the least-privilege IAM policy a run needs.
    Policy(plan::PolicyArgs),
    /// Print the workflow as a Mermaid flowchart (or DOT with --format dot).
    Graph(plan::GraphArgs),
    /// Check that every protected instance's published AMIs are fresh, in both regions (read-only; exit 1 if not).
    Check(check::CheckArgs),
    /// Print shell completions (bash, zsh or fish), e.g. `drflow completions bash > /etc/bash_completion.d/drflow`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Approve the step a run waits at (waiting for approval), and continue the run to its end, here.
    Approve {
        #[command(flatten)]
        args: DecideArgs,
        /// Why (journaled with the decision).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject the step a run waits at: the run ends failed (rejected), after its `finally` steps, here.
    Reject {
        #[command(flatten)]
        args: DecideArgs,
        /// Why (journaled with the decision, and the run's error).
        #[arg(long)]
        reason: String,
    },
    /// Print the workflow as an AWS Step Functions state machine (ASL), or a CloudFormation template deploying it.
    Export(export::ExportArgs),
}

/// The run an approval decision is for, and how to continue it.
#[derive(clap::Args, Debug)]
pub struct DecideArgs {
    pub run_id: String,
    /// Continue even if the workflow file changed since the run started.
    #[arg(long)]
    pub force: bool,
    /// The workflow file, if it moved since the run started.
    #[arg(long)]
    pub workflow: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args, Debug, Clone)]
pub struct BackendArgs {
    /// Run against the built-in simulated AWS instead of a real account.
    #[arg(long)]
    pub simulate: bool,
    /// Simulator scenario (world contents, durations, injected faults). Implies --simulate.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// AWS profile (real AWS only).
    #[arg(long, env = "AWS_PROFILE")]
    pub profile: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    pub workflow: PathBuf,
    /// Workflow input, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", value_parser = pair)]
    pub inputs: Vec<(String, String)>,
    /// Override a named region, NAME=CODE (repeatable), e.g. --region dr=eu-west-1.
    #[arg(long = "region", value_name = "NAME=CODE", value_parser = pair)]
    pub regions: Vec<(String, String)>,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,
    /// Approve every `drflow.approve` step without asking (journaled as auto-approved).
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    pub run_id: String,
    /// Resume even if the workflow file changed since the run started.
    #[arg(long)]
    pub force: bool,
    /// The workflow file, if it moved since the run started.
    #[arg(long)]
    pub workflow: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long, value_enum, default_value_t = Output::Auto)]
    pub output: Output,
    /// Approve every `drflow.approve` step without asking (journaled as auto-approved).
    #[arg(long)]
    pub auto_approve: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A live view on a terminal, plain lines otherwise.
    Auto,
    /// One line per event.
    Plain,
    /// Journal entries as JSON lines.
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// Entry point of the binary: runs the command and prints any error in one place.
pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            e.print();
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8, Error> {
    let state_dir = cli.state_dir;
    match cli.command {
        Command::Run(args) => run::run(args, &state_dir),
        Command::Resume(args) => run::resume(args, &state_dir),
        Command::Approve { args, reason } => run::decide(args, true, reason, &state_dir),
        Command::Reject { args, reason } => run::decide(args, false, Some(reason), &state_dir),
        Command::Validate { files } => inspect::validate(&files),
        Command::Schema => inspect::schema(),
        Command::Actions => inspect::actions(),
        Command::Runs => show::runs(&state_dir),
        Command::Show { run_id, output } => show::show(&state_dir, &run_id, output),
        Command::Report { run_id, format, out } => report::report(&state_dir, &run_id, format, out),
        Command::Schedule(args) => schedule::schedule(&state_dir, args),
        Command::Plan(args) => plan::plan(args, &state_dir),
        Command::Policy(args) => plan::policy(args),
        Command::Graph(args) => plan::graph(args),
        Command::Check(args) => check::check(args, &state_dir),
        Command::Export(args) => export::export(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let out = &mut std::io::stdout();
            match shell {
                Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "drflow", out),
                Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "drflow", out),
                Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "drflow", out),
            }
            Ok(0)
        }
    }
}

/// `drflow actions | head` must end quietly when `head` closes the pipe, as other Unix tools do: Rust ignores
/// SIGPIPE, so a write to a closed pipe would fail and `println!` would panic. Restore the default action.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to its default at start-up, before any thread is spawned.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
