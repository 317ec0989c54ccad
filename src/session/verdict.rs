//! The end of a run: its report written beside its journal, and the one verdict every caller prints and exits with
//! (`drflow run`, `drflow resume`, a scheduled run).

use std::path::{Path, PathBuf};

use crate::engine::Outcome;
use crate::engine::journal::RunStatus;
use crate::report::{self, Report};
use crate::workflow::Workflow;

/// What a finished run amounts to.
#[derive(Debug)]
pub struct Verdict {
    pub run_id: String,
    /// The run succeeded (and, for a rehearsal, passed).
    pub passed: bool,
    /// 0 when it passed, 1 otherwise (the documented exit codes).
    pub exit_code: u8,
    /// Why the run failed (`step ... failed: ...`), if it did.
    pub error: Option<String>,
    /// The last line to print: a rehearsal's `REHEARSAL PASSED ...`, else `run ID succeeded` / `run ID failed: ...`.
    pub line: String,
    /// The report, when it could be written, and its files.
    pub report: Option<Report>,
    pub files: Vec<PathBuf>,
    /// Why the report could not be written (the run's result stands).
    pub report_error: Option<String>,
}

impl Verdict {
    pub fn is_rehearsal(&self) -> bool {
        self.report.as_ref().is_some_and(|r| r.rehearsal.is_some())
    }

    /// The HTML report, to name in the output.
    pub fn html(&self) -> Option<&PathBuf> {
        self.files.iter().find(|f| f.extension().is_some_and(|e| e == "html"))
    }
}

/// The exit code of a run that stopped at an approval step, waiting for `drflow approve` or `drflow reject`: not a
/// failure, not a success.
pub const WAITING_FOR_APPROVAL: u8 = 7;

/// Writes the run's report beside its journal and decides its verdict.
pub fn conclude(state_dir: &Path, wf: &Workflow, outcome: &Outcome) -> Verdict {
    let written = report::write_for_run(state_dir, &outcome.run_id, Some(wf));
    let (report, files, report_error) = match written {
        Ok((r, f)) => (Some(r), f, None),
        Err(e) => (None, Vec::new(), Some(e)),
    };
    let run_id = outcome.run_id.clone();
    if let Some(step) = &outcome.waiting {
        return Verdict {
            line: format!(
                "run {run_id} is waiting for approval at step `{step}`: `drflow approve {run_id}` or `drflow reject \
                 {run_id} --reason ...`"
            ),
            run_id,
            passed: false,
            exit_code: WAITING_FOR_APPROVAL,
            error: None,
            report,
            files,
            report_error,
        };
    }
    let error = match outcome.status {
        RunStatus::Succeeded => None,
        RunStatus::Failed => Some(outcome.error.clone().unwrap_or_else(|| "unknown error".into())),
    };
    let rehearsal = report.as_ref().and_then(|r| r.rehearsal.as_ref().map(|h| (r, h)));
    let (passed, line) = match (&error, rehearsal) {
        (_, Some((r, h))) => (error.is_none() && h.verdict == "passed", r.summary.clone()),
        (None, None) => (true, format!("run {run_id} succeeded")),
        (Some(e), None) => (false, format!("run {run_id} failed: {e}")),
    };
    Verdict {
        run_id,
        passed,
        exit_code: if passed { 0 } else { 1 },
        error,
        line,
        report,
        files,
        report_error,
    }
}
