//! `drflow schedule FILE`: runs the file's entries on their cron schedules in the foreground, until SIGTERM or
//! SIGINT; `--next N` prints the next fire times instead. Each run goes on a thread of its own with its own
//! runtime (a paused clock for the simulator, as in `drflow run --simulate`), writes its report when it ends, and
//! prints its one-line verdict.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::cloud::Cloud;
use crate::engine::journal::{Entry as JournalEntry, Event as JournalEvent, RunStatus};
use crate::engine::{self, Observer, RunRequest};
use crate::error::Error;
use crate::schedule::{
    Backend, EndStatus, Entry, Event, Invalid, Launcher, RunEnd, RunFuture, ScheduleFile, Scheduler, Stop, SystemClock,
};
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

/// Starts real runs: one thread and runtime per run.
struct RunLauncher {
    state_dir: PathBuf,
    /// Simulated runs share `STATE_DIR/sim/world.json`: one at a time (each takes milliseconds).
    sim: Arc<Mutex<()>>,
}

impl Launcher for RunLauncher {
    fn launch(&self, entry: &Entry, _scheduled: DateTime<Utc>, stop: Stop) -> RunFuture {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let entry = entry.clone();
        let state_dir = self.state_dir.clone();
        let sim = self.sim.clone();
        let name = entry.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("drflow-{}", entry.name))
            .spawn(move || {
                let _ = tx.send(run_entry(&entry, &state_dir, stop, &sim));
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

fn not_started(run_id: Option<String>, message: String) -> RunEnd {
    RunEnd {
        run_id,
        status: EndStatus::NotStarted,
        message,
    }
}

/// One scheduled run, start to end, on the calling thread.
fn run_entry(entry: &Entry, state_dir: &Path, mut stop: Stop, sim: &Mutex<()>) -> RunEnd {
    let wf = match workflow::load(&entry.workflow) {
        Ok(wf) => wf,
        Err(e) => return not_started(None, format!("{}: {e}", entry.workflow.display())),
    };
    let inputs = match engine::prepare_inputs(&wf, &entry.inputs) {
        Ok(i) => i,
        Err(e) => return not_started(None, e.to_string()),
    };
    let regions = match engine::prepare_regions(&wf, &entry.regions) {
        Ok(r) => r,
        Err(e) => return not_started(None, e.to_string()),
    };
    let simulate = matches!(entry.backend, Backend::Simulate { .. });
    let _one_sim_at_a_time = simulate.then(|| sim.lock().unwrap_or_else(|p| p.into_inner()));
    if stop.is_requested() {
        return not_started(None, "the scheduler is stopping".into());
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(simulate)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return not_started(None, format!("cannot start the async runtime: {e}")),
    };
    let observer = StepLog {
        entry: entry.name.clone(),
        started: Mutex::new(HashMap::new()),
    };
    let codes: Vec<String> = regions
        .values()
        .filter_map(|v| v.as_str())
        .map(str::to_string)
        .collect();
    let ran = rt.block_on(async {
        let clock = engine::Clock::start();
        let cloud = match connect(&entry.backend, state_dir, &codes).await {
            Ok(c) => c,
            Err(m) => return Err(not_started(None, m)),
        };
        let run_id = engine::new_run_id(clock.now());
        println!(
            "{} [{}] run {run_id} started: {} on {}",
            stamp(Utc::now()),
            entry.name,
            wf.name,
            if simulate { "the simulator" } else { "AWS" }
        );
        let request = RunRequest {
            workflow: &wf,
            cloud,
            state_dir: state_dir.to_path_buf(),
            inputs,
            regions,
            observer: &observer,
            clock,
        };
        tokio::select! {
            outcome = engine::start(request, Some(run_id.clone())) => Ok((run_id, Some(outcome))),
            // Dropping the run here is a checkpoint: every transition is already in the fsync'd journal, and the
            // run's lock is released with it.
            () = stop.requested() => Ok((run_id, None)),
        }
    });
    drop(rt);
    let (run_id, outcome) = match ran {
        Ok(x) => x,
        Err(end) => return end,
    };
    let name = &entry.name;
    match outcome {
        Some(Ok(outcome)) => {
            let report = super::report::write(&wf, &outcome);
            let (status, line) = match report.as_ref().map(|(r, _)| r) {
                Some(r) if r.rehearsal.is_some() => {
                    super::report::left_behind(r);
                    let passed = r.rehearsal.as_ref().is_some_and(|h| h.verdict == "passed");
                    (
                        if passed {
                            EndStatus::Succeeded
                        } else {
                            EndStatus::Failed
                        },
                        r.summary.clone(),
                    )
                }
                _ => match outcome.status {
                    RunStatus::Succeeded => (EndStatus::Succeeded, format!("run {run_id} succeeded")),
                    RunStatus::Failed => (
                        EndStatus::Failed,
                        format!(
                            "run {run_id} failed: {}",
                            outcome.error.clone().unwrap_or_else(|| "unknown error".into())
                        ),
                    ),
                },
            };
            if let Some((_, files)) = &report
                && let Some(html) = files.iter().find(|f| f.extension().is_some_and(|e| e == "html"))
            {
                println!("{} [{name}] report: {}", stamp(Utc::now()), html.display());
            }
            println!("{} [{name}] {line}", stamp(Utc::now()));
            RunEnd {
                run_id: Some(run_id),
                status,
                message: line,
            }
        }
        Some(Err(e)) => {
            let exists = engine::journal_path(state_dir, &run_id).exists();
            not_started(exists.then_some(run_id), e.to_string())
        }
        None => {
            if !engine::journal_path(state_dir, &run_id).exists() {
                return not_started(None, "stopped before the run began".into());
            }
            if let Ok((_, files)) = crate::report::write_for_run(state_dir, &run_id, Some(&wf))
                && let Some(html) = files.iter().find(|f| f.extension().is_some_and(|e| e == "html"))
            {
                println!("{} [{name}] report: {}", stamp(Utc::now()), html.display());
            }
            let resume = resume_command(entry, state_dir, &run_id);
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
    }
}

fn resume_command(entry: &Entry, state_dir: &Path, run_id: &str) -> String {
    let mut cmd = format!(
        "drflow --state-dir {} resume {run_id}",
        quote(&state_dir.display().to_string())
    );
    match &entry.backend {
        Backend::Simulate { scenario: Some(s) } => {
            cmd.push_str(&format!(" --scenario {}", quote(&s.display().to_string())));
        }
        Backend::Aws { profile: Some(p) } => cmd.push_str(&format!(" --profile {}", quote(p))),
        _ => {}
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

/// The same backends as `drflow run` (and the same persisted simulated account).
async fn connect(backend: &Backend, state_dir: &Path, regions: &[String]) -> Result<Cloud, String> {
    let args = match backend {
        Backend::Simulate { scenario } => super::BackendArgs {
            simulate: true,
            scenario: scenario.clone(),
            profile: None,
        },
        Backend::Aws { profile } => super::BackendArgs {
            simulate: false,
            scenario: None,
            profile: profile.clone(),
        },
    };
    super::run::backend(&args, args.simulate, state_dir, regions)
        .await
        .map_err(|e| e.to_string())
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
