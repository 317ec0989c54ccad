//! `drflow run` and `drflow resume`: a session runs the workflow; this prints what happened and its verdict.

use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use std::sync::Arc;

use super::view;
use super::{BackendArgs, DecideArgs, Output, ResumeArgs, RunArgs, approve};
use crate::actions::approval::{Answer, Approver, How};
use crate::engine::journal::RunStatus;
use crate::engine::{Outcome, StepStatus};
use crate::error::Error;
use crate::session::{Backend, Ended, Job, Session};
use crate::workflow::{self, Workflow, Written, format_duration};

pub fn run(args: RunArgs, state_dir: &Path) -> Result<u8, Error> {
    let wf = load_workflow(&args.workflow)?;
    let bindings = wf.bind(&args.inputs, &args.regions)?;
    let wall = Instant::now();
    let observer = view::observer(args.output, &wf);
    let terminal = approve::Terminal::new(
        load_quietly(&args.workflow)?,
        args.workflow.display().to_string(),
        observer.clone(),
    );
    let approver: Arc<dyn Approver> = if args.auto_approve {
        Arc::new(approve::Auto(terminal))
    } else {
        Arc::new(terminal)
    };
    let session = Session::new(state_dir, args.backend.backend()).with_approver(approver);
    let job = Job::Start { bindings, run_id: None };
    let ended = session.run(&wf, job, observer.as_ref(), std::future::pending());
    observer.finish();
    finish(&session, &wf, ended?, wall, args.output)
}

pub fn resume(args: ResumeArgs, state_dir: &Path) -> Result<u8, Error> {
    let auto = args.auto_approve;
    let how = Continue {
        run_id: args.run_id,
        force: args.force,
        workflow: args.workflow,
        backend: args.backend,
        output: args.output,
    };
    continue_run(how, state_dir, |_, terminal| {
        if auto {
            Arc::new(approve::Auto(terminal))
        } else {
            Arc::new(terminal)
        }
    })
}

/// `drflow approve RUN_ID` (`approved`) or `drflow reject RUN_ID --reason ...`: the run must be waiting for
/// approval; this process journals the decision at the step it waits at and continues the run to its end.
pub fn decide(args: DecideArgs, approved: bool, reason: Option<String>, state_dir: &Path) -> Result<u8, Error> {
    let (state, _) = crate::engine::load_run(state_dir, &args.run_id)?;
    let step = match (&state.finished, &state.waiting) {
        (None, Some(step)) => step.clone(),
        (Some((status, _)), _) => {
            return Err(Error::NotWaiting(format!(
                "run {} is not waiting for approval: it already {}",
                args.run_id,
                format!("{status:?}").to_lowercase()
            )));
        }
        (None, None) => {
            return Err(Error::NotWaiting(format!(
                "run {} is not waiting for approval (it is unfinished: `drflow resume {}` continues it)",
                args.run_id, args.run_id
            )));
        }
    };
    let how = Continue {
        run_id: args.run_id,
        force: args.force,
        workflow: args.workflow,
        backend: args.backend,
        output: args.output,
    };
    continue_run(how, state_dir, move |_, terminal| {
        Arc::new(approve::Given {
            step,
            answer: Answer {
                approved,
                how: How::Command,
                reason,
            },
            then: terminal,
        })
    })
}

/// What `resume`, `approve` and `reject` continue, and how.
struct Continue {
    run_id: String,
    force: bool,
    workflow: Option<std::path::PathBuf>,
    backend: BackendArgs,
    output: Output,
}

fn continue_run(
    args: Continue,
    state_dir: &Path,
    approver: impl FnOnce(&Workflow, approve::Terminal) -> Arc<dyn Approver>,
) -> Result<u8, Error> {
    let (state, entries) = crate::engine::load_run(state_dir, &args.run_id)?;
    let file = args.workflow.clone().unwrap_or_else(|| state.file.clone().into());
    let wf = load_workflow(&file)?;
    // The backend is the one the run started on; the options may only refine it (a scenario, a profile).
    let backend = match (state.backend.as_str(), args.backend.backend()) {
        ("sim", b @ Backend::Simulate { .. }) => b,
        ("sim", Backend::Aws { .. }) => Backend::Simulate { scenario: None },
        (_, Backend::Simulate { .. }) => {
            return Err(Error::Usage(format!(
                "run {} ran against {}; it cannot be resumed on the simulator",
                args.run_id, state.backend
            )));
        }
        (_, b) => b,
    };
    let wall = Instant::now();
    let observer = view::observer(args.output, &wf);
    let terminal = approve::Terminal::new(load_quietly(&file)?, file.display().to_string(), observer.clone());
    let session = Session::new(state_dir, backend).with_approver(approver(&wf, terminal));
    observer.seed(&entries);
    let job = Job::Resume {
        run_id: args.run_id.clone(),
        force: args.force,
    };
    let ended = session.run(&wf, job, observer.as_ref(), std::future::pending());
    observer.finish();
    finish(&session, &wf, ended?, wall, args.output)
}

impl BackendArgs {
    /// `--simulate` / `--scenario FILE` choose the simulator; otherwise AWS, with `--profile`.
    pub fn backend(&self) -> Backend {
        if self.simulate || self.scenario.is_some() {
            Backend::Simulate {
                scenario: self.scenario.clone(),
            }
        } else {
            Backend::Aws {
                profile: self.profile.clone(),
            }
        }
    }
}

fn finish(session: &Session, wf: &Workflow, ended: Ended, wall: Instant, output: Output) -> Result<u8, Error> {
    let outcome = match ended {
        Ended::Finished(o) => *o,
        // Nothing stops `run` and `resume` but a signal, which ends the process.
        Ended::Interrupted { run_id, .. } => {
            return Err(Error::Environment(format!("run {run_id} was interrupted")));
        }
    };
    let human = output != Output::Json;
    if let Some(step) = &outcome.waiting {
        // The report says how far it went (`unfinished`); the lines say how to go on.
        if let Some(e) = session.conclude(wf, &outcome).report_error {
            eprintln!("warning: {e}");
        }
        return Ok(waiting(session, &outcome, step, human));
    }
    if human {
        summary(session, wf, &outcome, wall);
    }
    let verdict = session.conclude(wf, &outcome);
    if let Some(e) = &verdict.report_error {
        eprintln!("warning: {e}");
    }
    if let (true, Some(html)) = (human, verdict.html()) {
        println!("report: {}", html.display());
    }
    if let Some(r) = verdict.report.as_ref().filter(|r| r.rehearsal.is_some()) {
        super::report::left_behind(r);
    }
    let failed = verdict.error.clone().map(|message| Error::RunFailed {
        run_id: verdict.run_id.clone(),
        message,
    });
    if !verdict.is_rehearsal() {
        return match failed {
            Some(e) => Err(e),
            None => Ok(verdict.exit_code),
        };
    }
    // A rehearsal ends with its verdict line, after the error: the last line a cron mail or CI log shows.
    if let Some(e) = failed {
        e.print();
    }
    if human {
        println!("{}", verdict.line);
    } else {
        eprintln!("{}", verdict.line);
    }
    Ok(verdict.exit_code)
}

/// A run that stopped at an approval step: what to type to continue it. Exits with `WAITING_FOR_APPROVAL`.
fn waiting(session: &Session, outcome: &Outcome, step: &str, human: bool) -> u8 {
    let id = &outcome.run_id;
    let dir = session.state_dir();
    let state_dir = if dir == Path::new(".drflow") {
        String::new()
    } else {
        format!(" --state-dir {}", dir.display())
    };
    let lines = [
        format!("run {id} is waiting for approval at step `{step}` (nobody could be asked here: no terminal)"),
        format!("  approve: drflow{state_dir} approve {id} [--reason TEXT]"),
        format!("  reject:  drflow{state_dir} reject {id} --reason TEXT"),
        format!("  plan:    drflow{state_dir} show {id}"),
        format!("journal: {}", outcome.journal.display()),
    ];
    for l in lines {
        if human {
            println!("{l}");
        } else {
            eprintln!("{l}");
        }
    }
    crate::error::WAITING_FOR_APPROVAL
}

/// How long it took, and the AMI IDs it published.
fn summary(session: &Session, wf: &Workflow, outcome: &Outcome, wall: Instant) {
    let state = &outcome.state;
    let took = format_duration(std::time::Duration::from_millis(
        (state.last_ms - state.started_ms).max(0) as u64,
    ));
    let status = match outcome.status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    };
    if session.backend.is_simulated() {
        let wall = format_duration(wall.elapsed());
        println!(
            "run {} {status} after {took} of simulated time ({wall} wall time)",
            outcome.run_id
        );
    } else {
        println!("run {} {status} after {took}", outcome.run_id);
    }
    let mut published = Vec::new();
    // In the order steps started; a step of a `for_each` item is journaled as `GROUP[KEY].STEP`.
    for id in &state.order {
        let plain = id.rsplit('.').next().unwrap_or(id);
        let Some(step) = wf.find(plain) else { continue };
        let Some(a) = step.action() else { continue };
        if a.action.writes.map(|w| w.what) != Some(Written::Parameter) {
            continue;
        }
        if let Some(StepStatus::Succeeded(out)) = state.status(id) {
            let region = a
                .region
                .as_ref()
                .and_then(|r| state.regions.get(r))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let text = |k: &str| out.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
            published.push(format!(
                "  {region:<15} {} = {} (version {}{})",
                text("name"),
                text("value"),
                out.get("version").map(Value::to_string).unwrap_or_default(),
                match out.get("outcome").and_then(Value::as_str) {
                    Some("up_to_date") => ", up to date".to_string(),
                    Some("kept_newer") => ", kept: newer than the AMI offered".to_string(),
                    _ if out.get("changed") == Some(&Value::Bool(false)) => ", unchanged".to_string(),
                    _ => String::new(),
                }
            ));
        }
    }
    if !published.is_empty() {
        println!("AMI IDs written to SSM Parameter Store:");
        for p in published {
            println!("{p}");
        }
    }
    // What the workflow asks to print at the end (`drflow.echo` with `print: true`), e.g. what a person must do next.
    for id in &state.order {
        if let Some(StepStatus::Succeeded(out)) = state.status(id)
            && out.get("print") == Some(&Value::Bool(true))
        {
            match out.get("value") {
                Some(Value::String(text)) => println!("{}", text.trim_end()),
                Some(v) => println!("{v}"),
                None => {}
            }
        }
    }
    println!("journal: {}", outcome.journal.display());
}

/// The same workflow again (for the approver, which plans the rest of the run), its warnings already printed.
fn load_quietly(path: &Path) -> Result<Workflow, Error> {
    Ok(workflow::load(path, crate::actions::catalog())?)
}

/// The workflow file, validated against the actions this drflow has.
pub(super) fn load_workflow(path: &Path) -> Result<Workflow, Error> {
    let wf = workflow::load(path, crate::actions::catalog())?;
    crate::error::print_warnings(&wf.warnings);
    Ok(wf)
}
