//! Approvals from the command line: a person on the terminal the run runs on (y/N after the plan of the rest of the
//! run), `drflow approve RUN_ID` / `drflow reject RUN_ID --reason ...` from any shell for a run waiting for approval,
//! and `--auto-approve`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use super::view::View;
use crate::actions::approval::{Answer, Approver, AutoApprove, How, Known};
use crate::plan;
use crate::workflow::Workflow;

/// Asks on the terminal when stdin and stderr are both terminals; otherwise nobody answers (the run waits).
pub(super) struct Terminal {
    wf: Workflow,
    file: String,
    view: Arc<dyn View>,
}

impl Terminal {
    pub(super) fn new(wf: Workflow, file: String, view: Arc<dyn View>) -> Terminal {
        Terminal { wf, file, view }
    }
}

impl Approver for Terminal {
    fn plan_after(&self, step: &str, known: &Known) -> String {
        plan_after(&self.wf, &self.file, step, known)
    }

    fn ask(&self, step: &str, message: &str, plan: &str) -> Option<Answer> {
        if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
            return None;
        }
        let mut answer = None;
        self.view.suspend(&mut || answer = prompt(step, message, plan));
        answer
    }
}

/// Asks y/N and an optional reason on stderr/stdin. `None` when stdin closes before an answer.
fn prompt(step: &str, message: &str, plan: &str) -> Option<Answer> {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{plan}");
    let _ = write!(err, "[{step}] {message} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).ok()? == 0 {
        return None;
    }
    let approved = matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    let _ = write!(
        err,
        "{} Reason (optional, Enter for none): ",
        if approved { "Approved." } else { "Rejected." }
    );
    let _ = err.flush();
    let mut reason = String::new();
    let _ = std::io::stdin().lock().read_line(&mut reason);
    let reason = reason.trim();
    Some(Answer {
        approved,
        how: How::Terminal,
        reason: (!reason.is_empty()).then(|| reason.to_string()),
    })
}

/// The plan of the rest of the run after `step`, as `drflow plan` prints it, under its own title.
pub(super) fn plan_after(wf: &Workflow, file: &str, step: &str, known: &Known) -> String {
    let k = plan::Known {
        inputs: &known.inputs,
        regions: &known.regions,
        account: known.account.as_deref(),
        outputs: Some(&known.outputs),
    };
    let rest = plan::compute_rest(wf, file, &k, step);
    let text = plan::render_text::render(&rest);
    // Its first two lines are `drflow plan`'s title and "nothing was changed"; its last paragraph explains bounds.
    let body: Vec<&str> = text
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("  Upper bounds:"))
        .collect();
    format!(
        "What the rest of this run will do, after `{step}` ({} of {file}):\n{}",
        wf.name,
        body.join("\n")
    )
}

/// `drflow approve` / `drflow reject`: this decision answers the step the run waits at; any later approval step of
/// the same run is asked on the terminal as usual (or waits again).
pub(super) struct Given {
    pub step: String,
    pub answer: Answer,
    pub then: Terminal,
}

impl Approver for Given {
    fn plan_after(&self, step: &str, known: &Known) -> String {
        self.then.plan_after(step, known)
    }

    fn ask(&self, step: &str, message: &str, plan: &str) -> Option<Answer> {
        if step == self.step {
            return Some(self.answer.clone());
        }
        self.then.ask(step, message, plan)
    }
}

/// `--auto-approve`: every approval step is approved (journaled as `auto`), with the plan journaled as usual.
pub(super) struct Auto(pub Terminal);

impl Approver for Auto {
    fn plan_after(&self, step: &str, known: &Known) -> String {
        self.0.plan_after(step, known)
    }

    fn ask(&self, step: &str, message: &str, plan: &str) -> Option<Answer> {
        AutoApprove.ask(step, message, plan)
    }
}
