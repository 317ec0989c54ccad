//! `drflow schedule FILE`: runs the file's entries on their cron schedules in the foreground, until SIGTERM or
//! SIGINT; `--next N` prints the next fire times instead. Each run goes on a thread of its own with its own
//! runtime (a paused clock for the simulator, as in `drflow run --simulate`), writes its report when it ends, and
//! prints its one-line verdict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::engine::Observer;
use crate::engine::journal::{Entry as JournalEntry, Event as JournalEvent};
use crate::error::Error;
use crate::schedule::{
    EndStatus, Entry, Event, Invalid, Launcher, RunEnd, RunFuture, ScheduleFile, Scheduler, Stop, SystemClock,
};
use crate::session::{Ended, Job, Session};
use crate::workflow::{self, format_duration};

#[derive(clap::Args, Debug)]
pub struct ScheduleArgs {
    /// The schedule file (YAML): entries with a name, workflow, inputs, backend, cron expression and time zone.
    pub file: PathBuf,
    /// Print the next N fire times of every entry (in its time zone and UTC) and exit; runs nothing.
    #[arg(long, value_name = "N")]
    pub next: Option<usize>,
    /// After SIGTERM/SIGINT, give running runs this long to finish before checkpointing them (e.g. 5m).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = workflow::parse_duration)]
    pub grace: Duration,
}

pub fn schedule(state_dir: &Path, args: ScheduleArgs) -> Result<u8, Error> {
    let file = match crate::schedule::file::load(&args.file) {
        Ok(f) => f,
        Err(Invalid(problems)) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            eprintln!("error: {} problem(s) in the schedule file", problems.len());
            return Ok(3);
        }
    };
    if let Some(n) = args.next {
        print_next(&file, n, Utc::now());
        return Ok(0);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Environment(format!("cannot start the async runtime: {e}")))?;
    let state_dir = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    rt.block_on(async {
        let stops = crate::schedule::signal::listen()
            .map_err(|e| Error::Environment(format!("cannot listen for signals: {e}")))?;
        let launcher = Arc::new(RunLauncher {
            state_dir: state_dir.clone(),
            sim: Arc::new(Mutex::new(())),
        });
        let scheduler = Scheduler {
            entries: &file.entries,
            clock: &SystemClock,
            launcher,
            grace: args.grace,
        };
        let mut log = |e: &Event| log_event(&file, &state_dir, e);
        scheduler.run(stops, &mut log).await;
        Ok::<(), Error>(())
    })?;
    Ok(0)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn print_next(file: &ScheduleFile, n: usize, now: DateTime<Utc>) {
    for e in &file.entries {
        let tz = e.schedule.tz();
        println!(
            "{}  cron \"{}\"  timezone {}  workflow {}",
            e.name,
            e.schedule.expression(),
            tz.name(),
            e.workflow.display()
        );
        let times = e.schedule.upcoming(now, n);
        if times.is_empty() {
            println!("  never fires");
        }
        for t in times {
            let local = t.with_timezone(&tz);
            println!("  {}   {}", local.format("%Y-%m-%d %H:%M:%S %Z (%:z)"), stamp(t));
        }
    }
}

fn log_event(file: &ScheduleFile, state_dir: &Path, e: &Event) {
    match e {
        Event::Started { at, entries } => {
            println!(
                "{} schedule: {entries} entr{} from {} (state dir {}); stop with SIGTERM or Ctrl-C",
                stamp(*at),
                if *entries == 1 { "y" } else { "ies" },
                file.path.display(),
                state_dir.display()
            );
            for x in &file.entries {
                let next = x
                    .schedule
                    .next_after(*at)
                    .map(|t| {
                        format!(
                            "{} ({})",
                            stamp(t),
                            t.with_timezone(&x.schedule.tz()).format("%H:%M %Z")
                        )
                    })
                    .unwrap_or_else(|| "never".into());
                println!("{} [{}] next run {next}", stamp(*at), x.name);
            }
        }
        Event::Resumed { entry, run_id, at } => {
            println!("{} [{entry}] resuming run {run_id} before new fire times", stamp(*at));
        }
        Event::Fired { entry, scheduled, at } => {
            println!("{} [{entry}] fired for {}", stamp(*at), stamp(*scheduled));
        }
        Event::Skipped {
            entry,
            scheduled,
            running_since,
        } => println!(
            "{} [{entry}] skipped the run due at {}: the run started at {} is still going (overlap: skip)",
            stamp(Utc::now()),
            stamp(*scheduled),
            stamp(*running_since)
        ),
        Event::Queued { entry, scheduled } => println!(
            "{} [{entry}] the run due at {} waits for the current one to end (overlap: queue)",
            stamp(Utc::now()),
            stamp(*scheduled)
        ),
        Event::Finished { entry, at, end } => {
            if end.status == EndStatus::NotStarted {
                eprintln!("{} [{entry}] error: the run did not start: {}", stamp(*at), end.message);
            }
            if let Some(x) = file.entries.iter().find(|x| x.name == *entry)
                && let Some(next) = x.schedule.next_after(*at)
            {
                println!("{} [{entry}] next run {}", stamp(*at), stamp(next));
            }
        }
        Event::Stopping {
            at,
            signal,
            running,
            grace,
        } => println!(
            "{} schedule: {signal}: starting no more runs{}",
            stamp(*at),
            match running {
                0 => String::new(),
                n if grace.is_zero() => format!("; checkpointing {n} running run(s)"),
                n => format!(
                    "; {n} running run(s) get {} to finish (signal again to checkpoint now)",
                    format_duration(*grace)
                ),
            }
        ),
        Event::Checkpointing { at, running } => {
            if *running > 0 {
                println!("{} schedule: checkpointing {running} running run(s)", stamp(*at));
            }
        }
        Event::Stopped { at } => println!("{} schedule: stopped", stamp(*at)),
    }
}

/// Starts real runs: one thread and runtime per run, each a `Session` on the entry's backend.
struct RunLauncher {
    state_dir: PathBuf,
    /// Simulated runs share `STATE_DIR/sim/world.json`: one at a time (each takes milliseconds).
    sim: Arc<Mutex<()>>,
}

/// What a scheduled run does: start a new run, or continue one an earlier scheduler left.
#[derive(Clone)]
enum Task {
    Start,
    Resume(String),
}

impl RunLauncher {
    fn spawn(&self, entry: &Entry, task: Task, stop: Stop) -> RunFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let entry = entry.clone();
        let session = Session::new(self.state_dir.clone(), entry.backend.clone());
        let sim = self.sim.clone();
        let name = entry.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("drflow-{}", entry.name))
            .spawn(move || {
                let _ = tx.send(run_entry(&entry, &session, task, stop, &sim));
            });
        Box::pin(async move {
            if let Err(e) = spawned {
                return not_started(None, format!("cannot start a thread for {name}: {e}"));
            }
            rx.await
                .unwrap_or_else(|_| not_started(None, "the run's thread panicked".to_string()))
        })
    }
}

impl Launcher for RunLauncher {
    fn launch(&self, entry: &Entry, _scheduled: DateTime<Utc>, stop: Stop) -> RunFuture {
        self.spawn(entry, Task::Start, stop)
    }

    /// Unfinished runs of this entry: same workflow file, backend, inputs and regions.
    fn unfinished(&self, entry: &Entry) -> Vec<String> {
        let Ok(wf) = super::run::load_workflow(&entry.workflow) else {
            return Vec::new();
        };
        let Ok(bindings) = wf.bind(&entry.inputs, &entry.regions) else {
            return Vec::new();
        };
        let session = Session::new(self.state_dir.clone(), entry.backend.clone());
        let file = entry.workflow.display().to_string();
        session
            .unfinished()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| {
                r.file == file
                    && r.backend == entry.backend.name()
                    && r.inputs == bindings.inputs
                    && r.regions == bindings.regions
            })
            .map(|r| r.run_id)
            .collect()
    }

    fn resume(&self, entry: &Entry, run_id: &str, stop: Stop) -> RunFuture {
        self.spawn(entry, Task::Resume(run_id.to_string()), stop)
    }
}

fn not_started(run_id: Option<String>, message: String) -> RunEnd {
    RunEnd {
        run_id,
        status: EndStatus::NotStarted,
        message,
    }
}

/// One scheduled run, start (or resume) to end, on the calling thread.
fn run_entry(entry: &Entry, session: &Session, task: Task, mut stop: Stop, sim: &Mutex<()>) -> RunEnd {
    let wf = match super::run::load_workflow(&entry.workflow) {
        Ok(wf) => wf,
        Err(e) => return not_started(None, format!("{}: {e}", entry.workflow.display())),
    };
    let _one_sim_at_a_time = session
        .backend
        .is_simulated()
        .then(|| sim.lock().unwrap_or_else(|p| p.into_inner()));
    if stop.is_requested() {
        return not_started(None, "the scheduler is stopping".into());
    }
    let observer = StepLog {
        entry: entry.name.clone(),
        started: Mutex::new(HashMap::new()),
    };
    let name = &entry.name;
    let job = match &task {
        Task::Start => {
            let bindings = match wf.bind(&entry.inputs, &entry.regions) {
                Ok(b) => b,
                Err(e) => return not_started(None, e.to_string()),
            };
            let run_id = crate::engine::new_run_id(std::time::SystemTime::now());
            println!(
                "{} [{name}] run {run_id} started: {} on {}",
                stamp(Utc::now()),
                wf.name,
                session.backend.describe()
            );
            Job::Start {
                bindings,
                run_id: Some(run_id),
            }
        }
        Task::Resume(run_id) => Job::Resume {
            run_id: run_id.clone(),
            force: false,
        },
    };
    let ended = session.run(&wf, job, &observer, stop.requested());
    match ended {
        Ok(Ended::Finished(outcome)) => {
            let verdict = session.conclude(&wf, &outcome);
            if let Some(e) = &verdict.report_error {
                eprintln!("{} [{name}] warning: {e}", stamp(Utc::now()));
            }
            if let Some(r) = verdict.report.as_ref().filter(|r| r.rehearsal.is_some()) {
                super::report::left_behind(r);
            }
            if let Some(html) = verdict.html() {
                println!("{} [{name}] report: {}", stamp(Utc::now()), html.display());
            }
            println!("{} [{name}] {}", stamp(Utc::now()), verdict.line);
            if let Some(n) = entry.notify.as_ref().filter(|n| n.always || !verdict.passed) {
                let subject = format!(
                    "drflow {name}: {} {}",
                    wf.name,
                    match (verdict.passed, verdict.exit_code) {
                        (true, _) => "passed",
                        // A person must decide: `drflow approve RUN_ID` or `drflow reject RUN_ID`.
                        (false, crate::session::WAITING_FOR_APPROVAL) => "waits for approval",
                        (false, _) => "FAILED",
                    }
                );
                let mut message = format!("{}\n", verdict.line);
                if let Some(e) = &verdict.error {
                    message.push_str(&format!("error: {e}\n"));
                }
                if let Some(html) = verdict.html() {
                    message.push_str(&format!("report: {}\n", html.display()));
                }
                notify(session, name, &n.topic_arn, &subject, &message);
            }
            RunEnd {
                run_id: Some(verdict.run_id),
                status: if verdict.passed {
                    EndStatus::Succeeded
                } else {
                    EndStatus::Failed
                },
                message: verdict.line,
            }
        }
        Ok(Ended::Interrupted { run_id, journaled }) => {
            if !journaled {
                return not_started(None, "stopped before the run began".into());
            }
            if let Ok((_, files)) = crate::report::write_for_run(&session.state_dir, &run_id, Some(&wf))
                && let Some(html) = files.iter().find(|f| f.extension().is_some_and(|e| e == "html"))
            {
                println!("{} [{name}] report: {}", stamp(Utc::now()), html.display());
            }
            let resume = resume_command(session, &run_id);
            println!(
                "{} [{name}] run {run_id} interrupted and checkpointed; continue it with: {resume}",
                stamp(Utc::now())
            );
            RunEnd {
                run_id: Some(run_id),
                status: EndStatus::Interrupted,
                message: resume,
            }
        }
        Err(e) => {
            if let Some(n) = &entry.notify {
                let subject = format!("drflow {name}: {} did not start", wf.name);
                notify(
                    session,
                    name,
                    &n.topic_arn,
                    &subject,
                    &format!("the run did not start: {e}\n"),
                );
            }
            let run_id = match &task {
                Task::Resume(id) => Some(id.clone()),
                Task::Start => None,
            };
            not_started(run_id, e.to_string())
        }
    }
}

/// Tells the entry's topic; a notification that fails is logged and changes nothing else.
fn notify(session: &Session, entry: &str, topic_arn: &str, subject: &str, message: &str) {
    match session.notify(topic_arn, subject, message) {
        Ok(id) => println!("{} [{entry}] notified {topic_arn} (message {id})", stamp(Utc::now())),
        Err(e) => eprintln!(
            "{} [{entry}] warning: could not notify {topic_arn}: {e}",
            stamp(Utc::now())
        ),
    }
}

fn resume_command(session: &Session, run_id: &str) -> String {
    let mut cmd = format!(
        "drflow --state-dir {} resume {run_id}",
        quote(&session.state_dir.display().to_string())
    );
    for arg in session.backend.args() {
        if arg != "--simulate" {
            cmd.push(' ');
            cmd.push_str(&quote(&arg));
        }
    }
    cmd
}

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@+,".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One line per finished step (and per failed attempt), prefixed by the entry's name.
struct StepLog {
    entry: String,
    started: Mutex<HashMap<String, i64>>,
}

impl Observer for StepLog {
    fn event(&self, e: &JournalEntry) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let took = |step: &str| {
            started
                .get(step)
                .map(|t| format_duration(Duration::from_millis((e.ts_ms - t).max(0) as u64)))
                .unwrap_or_default()
        };
        let line = match &e.event {
            JournalEvent::StepStarted { step, .. } => {
                started.entry(step.clone()).or_insert(e.ts_ms);
                return;
            }
            JournalEvent::StepSucceeded { step, .. } => format!("✓ {step} done in {}", took(step)),
            JournalEvent::StepFailed { step, error, .. } => {
                format!("✗ {step} failed after {}: {}", took(step), error.message)
            }
            JournalEvent::StepSkipped { step, reason } => format!("- {step} skipped: {reason}"),
            JournalEvent::AttemptFailed {
                step,
                attempt,
                error,
                retry_in_ms: Some(ms),
            } => format!(
                "  {step} attempt {attempt} failed, retrying in {}: {}",
                format_duration(Duration::from_millis(*ms)),
                error.message
            ),
            _ => return,
        };
        println!("  [{}] {line}", self.entry);
    }
}
