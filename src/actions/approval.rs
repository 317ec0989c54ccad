//! What a `drflow.approve` step needs from whoever runs it: a decision (a person on a terminal, `drflow approve` /
//! `drflow reject` from another shell, or `--auto-approve`), the plan of the rest of the run to show, and a journal
//! to write the decision into. The engine implements [`Approvals`] for each step; the command line provides the
//! [`Approver`] (the actions layer knows neither terminals nor plans).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How a decision was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Typed on the terminal the run runs on.
    Terminal,
    /// `drflow approve RUN_ID` / `drflow reject RUN_ID` from any shell.
    Command,
    /// `--auto-approve` on `run` or `resume`.
    Auto,
}

/// An answer, before drflow adds who gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub approved: bool,
    pub how: How,
    pub reason: Option<String>,
}

/// A decision as journaled (`approval_decided`, journal 1.4): what, how, who, when, and the plan that was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub approved: bool,
    pub how: How,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    /// The OS user of the process that decided (`USER`, else the uid's name).
    pub os_user: String,
    /// The AWS caller identity of that process (sts:GetCallerIdentity).
    pub aws_arn: String,
    pub aws_account: String,
    /// Wall-clock time of the decision, RFC 3339 (the entry's `ts_ms` is the run's clock: simulated time under
    /// `--simulate`).
    pub decided_at: String,
    /// The plan of the rest of the run, as shown to the person who decided.
    pub plan: String,
}

impl Decision {
    /// `alice (arn:aws:iam::123456789012:user/alice)`.
    pub fn who(&self) -> String {
        format!("{} ({})", self.os_user, self.aws_arn)
    }
}

/// What the run knows when it asks: to plan the rest of it.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub inputs: Map<String, Value>,
    pub regions: Map<String, Value>,
    pub account: Option<String>,
    /// Outputs of the steps that succeeded so far, by step id.
    pub outputs: Map<String, Value>,
}

/// Who answers approval steps in this process; set by whoever starts or resumes the run.
pub trait Approver: Send + Sync {
    /// The plan of the steps after `step` (and `finally`), as text.
    fn plan_after(&self, _step: &str, _known: &Known) -> String {
        String::new()
    }
    /// An answer now, or `None`: nobody can answer in this process (no terminal), so the run waits.
    fn ask(&self, step: &str, message: &str, plan: &str) -> Option<Answer>;
}

/// Nobody answers: an approval step stops the run, waiting for `drflow approve` or `drflow reject`.
pub struct Unattended;

impl Approver for Unattended {
    fn ask(&self, _: &str, _: &str, _: &str) -> Option<Answer> {
        None
    }
}

/// `--auto-approve`: every approval step is approved, journaled as such.
pub struct AutoApprove;

impl Approver for AutoApprove {
    fn ask(&self, _: &str, _: &str, _: &str) -> Option<Answer> {
        Some(Answer {
            approved: true,
            how: How::Auto,
            reason: Some("--auto-approve".into()),
        })
    }
}

/// What an approval step sees of its run (the engine's side): the plan, the journal, the approver.
pub trait Approvals: Send + Sync {
    /// The plan of the rest of the run after this step.
    fn plan(&self) -> String;
    /// The decision an earlier attempt or process journaled for this step, if any.
    fn journaled(&self) -> Option<Decision>;
    /// Asks this process's approver.
    fn ask(&self, message: &str, plan: &str) -> Option<Answer>;
    /// Journals the decision (durably, before the step goes on).
    fn decided(&self, decision: &Decision);
    /// Journals that the step waits for a decision; the run stops after it (its process exits).
    fn wait(&self, message: &str, plan: &str);
}

/// Outside a run (a plan's discovery): nobody asks, nothing is journaled.
pub struct NoApprovals;

impl Approvals for NoApprovals {
    fn plan(&self) -> String {
        String::new()
    }
    fn journaled(&self) -> Option<Decision> {
        None
    }
    fn ask(&self, _: &str, _: &str) -> Option<Answer> {
        None
    }
    fn decided(&self, _: &Decision) {}
    fn wait(&self, _: &str, _: &str) {}
}

/// The OS user of this process: `USER` (or `LOGNAME`), else the name of its uid, else `uid N`.
pub fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var)
            && !u.is_empty()
        {
            return u;
        }
    }
    #[cfg(unix)]
    {
        // SAFETY: getuid cannot fail; getpwuid returns a pointer into static storage or null, read at once.
        unsafe {
            let uid = libc::getuid();
            let pw = libc::getpwuid(uid);
            if !pw.is_null() && !(*pw).pw_name.is_null() {
                return std::ffi::CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned();
            }
            return format!("uid {uid}");
        }
    }
    #[allow(unreachable_code)]
    "unknown".into()
}
