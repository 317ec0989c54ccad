//! The one user-facing error type, its exit codes, and the one place errors are printed.
//!
//! Exit codes (also in the README):
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the run (or a plan check) failed: a step failed, or a check before its first step did (a KMS key that does not exist, a vault that refuses copies: nothing changed); `drflow check`: a published AMI is not fresh |
//! | 2 | usage: bad command line, unknown or invalid `--input`, unreadable file |
//! | 3 | the workflow file is invalid (every problem is printed) |
//! | 4 | another run holds the lock for this workflow and lock key |
//! | 5 | resume refused: unknown run, finished run, or changed workflow without `--force`; `approve`/`reject` of a run that does not wait |
//! | 6 | internal or environment error: journal (unreadable, or events that do not fit), state directory, simulator, AWS configuration (credentials, a region's role that cannot be assumed); `drflow check`: the protected instances could not be found, or `--out` could not be written |
//! | 7 | the run waits for approval (a `drflow.approve` step with no terminal to ask): not a failure; `drflow approve RUN_ID` or `drflow reject RUN_ID --reason ...` continues it |

use std::io::IsTerminal;

use crate::engine::EngineError;
use crate::session::SessionError;
use crate::workflow::{BindError, LoadError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{file}: {} problem(s)", problems.len())]
    Invalid { file: String, problems: Vec<Problem> },
    /// `--input` / `--region` values (or a schedule entry's) that do not fit the workflow.
    #[error("{0}")]
    Bind(#[from] BindError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("run {run_id} failed: {message}")]
    RunFailed { run_id: String, message: String },
    #[error("{0}")]
    Environment(String),
    /// A check before a run's first step failed: nothing was changed.
    #[error("the run was refused before any change: {0}")]
    Refused(String),
    /// `drflow approve` / `reject` of a run that does not wait for approval.
    #[error("{0}")]
    NotWaiting(String),
}

/// The exit code of a run that stopped at an approval step, waiting for `drflow approve` or `drflow reject`.
pub use crate::session::WAITING_FOR_APPROVAL;

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Read { .. } => Error::Usage(e.to_string()),
            LoadError::Invalid(problems) => Error::Invalid {
                file: problems.first().map(|p| p.location()).unwrap_or_default(),
                problems,
            },
        }
    }
}

impl From<SessionError> for Error {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Load(e) => e.into(),
            SessionError::Bind(e) => Error::Bind(e),
            SessionError::Engine(e) => Error::Engine(e),
            SessionError::Usage(m) => Error::Usage(m),
            SessionError::Environment(m) => Error::Environment(m),
            SessionError::Refused(m) => Error::Refused(m),
        }
    }
}

/// Prints what validation found questionable but not wrong (the workflow still runs), to stderr.
pub fn print_warnings(problems: &[Problem]) {
    print_problems(problems);
}

/// Workflow problems with their source excerpts, in colour on a terminal (unless `NO_COLOR`).
fn print_problems(problems: &[Problem]) {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for p in problems {
        if color {
            eprintln!("{:?}", miette::Report::new(p.clone()));
        } else {
            eprint!("{}", p.render_plain());
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Bind(_) => 2,
            Error::Invalid { .. } => 3,
            Error::RunFailed { .. } | Error::Refused(_) => 1,
            Error::Environment(_) => 6,
            Error::NotWaiting(_) => 5,
            Error::Engine(e) => match e {
                EngineError::Lock(crate::engine::LockError::Held { .. }) => 4,
                EngineError::RunNotFound(..)
                | EngineError::AlreadyFinished(..)
                | EngineError::WorkflowChanged { .. } => 5,
                _ => 6,
            },
        }
    }

    /// Prints the error to stderr: workflow problems with their source excerpts, the rest on one line.
    pub fn print(&self) {
        match self {
            Error::Invalid { problems, .. } => {
                print_problems(problems);
                let errors = problems.iter().filter(|p| !p.warning).count();
                eprintln!("error: {errors} problem(s) in the workflow");
            }
            Error::Bind(e) => {
                for line in &e.problems {
                    eprintln!("error: {line}");
                }
            }
            other => eprintln!("error: {other}"),
        }
    }
}
