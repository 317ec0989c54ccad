//! The scheduler loop: fires entries at their cron times, never two runs of one entry at once, and stops cleanly.
//!
//! Time and runs are injected, so the loop is tested on tokio's paused clock with fake runs:
//! - a `Clock` says what time it is and sleeps (`SystemClock` for real, `TokioClock` on tokio's clock);
//! - a `Launcher` starts one run of an entry and resolves when it has ended — finished, or checkpointed when the
//!   `Stop` it was given fires.
//!
//! Restarting: runs an earlier scheduler left unfinished (killed, restarted, checkpointed) are resumed first, once
//! each, one at a time per entry, before the entry's new fire times (a rehearsal interrupted by a restart still tears
//! down its stack). Fire times that pass meanwhile follow the entry's `overlap`.
//!
//! Stopping: the first stop request (SIGTERM or SIGINT) stops firing; runs still going get `grace` to finish,
//! then are told to checkpoint (a second request checkpoints at once). The loop returns when every run has ended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::file::{Entry, Overlap};

/// The longest the loop sleeps at once, so that a wall clock that jumps (NTP, a suspended host) is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that starts at `base` and follows tokio's clock (paused in tests: hours pass in milliseconds).
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Call inside the runtime.
    pub fn starting_at(base: DateTime<Utc>) -> TokioClock {
        TokioClock {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.base + chrono::Duration::from_std(self.start.elapsed()).unwrap_or_default()
    }

    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Told to a run when it must checkpoint and end (its journal keeps it resumable).
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A `Stop` that never fires (and its sender, to fire it by hand).
    pub fn channel() -> (watch::Sender<bool>, Stop) {
        let (tx, rx) = watch::channel(false);
        (tx, Stop(rx))
    }

    /// Resolves once the run must stop.
    pub async fn requested(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                // The scheduler is gone and never asked: never resolve.
                std::future::pending::<()>().await;
            }
        }
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    Succeeded,
    Failed,
    /// Checkpointed on a stop request: `drflow resume RUN_ID` continues it.
    Interrupted,
    /// It could not start (unreadable workflow, another run holds the lock, ...).
    NotStarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    pub run_id: Option<String>,
    pub status: EndStatus,
    pub message: String,
}

pub type RunFuture = Pin<Box<dyn Future<Output = RunEnd> + Send>>;

pub trait Launcher: Send + Sync {
    /// Starts a run of `entry` for its fire time `scheduled`; the future resolves when the run has ended.
    fn launch(&self, entry: &Entry, scheduled: DateTime<Utc>, stop: Stop) -> RunFuture;

    /// Runs of `entry` that never finished (left by an earlier scheduler), oldest first.
    fn unfinished(&self, _entry: &Entry) -> Vec<String> {
        Vec::new()
    }

    /// Continues one of them; the future resolves when it has ended.
    fn resume(&self, entry: &Entry, run_id: &str, stop: Stop) -> RunFuture;
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        at: DateTime<Utc>,
        entries: usize,
    },
    /// An unfinished run of the entry, left by an earlier scheduler, is being resumed.
    Resumed {
        entry: String,
        run_id: String,
        at: DateTime<Utc>,
    },
    /// A run of the entry was launched for its fire time `scheduled`.
    Fired {
        entry: String,
        scheduled: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The fire time passed while the entry's last run (started at `running_since`) was still going.
    Skipped {
        entry: String,
        scheduled: DateTime<Utc>,
        running_since: DateTime<Utc>,
    },
    /// Kept (`overlap: queue`): it runs when the entry's current run ends.
    Queued {
        entry: String,
        scheduled: DateTime<Utc>,
    },
    Finished {
        entry: String,
        at: DateTime<Utc>,
        end: RunEnd,
    },
    /// A stop request: no more runs are started; `running` runs get the grace period.
    Stopping {
        at: DateTime<Utc>,
        signal: String,
        running: usize,
        grace: Duration,
    },
    /// Running runs are told to checkpoint now.
    Checkpointing {
        at: DateTime<Utc>,
        running: usize,
    },
    Stopped {
        at: DateTime<Utc>,
    },
}

pub struct Scheduler<'a> {
    pub entries: &'a [Entry],
    pub clock: &'a dyn Clock,
    pub launcher: Arc<dyn Launcher>,
    /// Time given to running runs to finish after the first stop request.
    pub grace: Duration,
}

impl Scheduler<'_> {
    /// Runs until a stop request (a message on `stops`, e.g. the name of a signal) and every run has ended.
    pub async fn run(&self, mut stops: mpsc::Receiver<String>, log: &mut (dyn FnMut(&Event) + Send)) {
        let n = self.entries.len();
        let start = self.clock.now();
        log(&Event::Started { at: start, entries: n });
        let mut next: Vec<Option<DateTime<Utc>>> = self.entries.iter().map(|e| e.schedule.next_after(start)).collect();
        let mut running: Vec<Option<DateTime<Utc>>> = vec![None; n];
        let mut queued: Vec<Option<DateTime<Utc>>> = vec![None; n];
        let (stop_tx, stop) = Stop::channel();
        let mut runs: JoinSet<(usize, RunEnd)> = JoinSet::new();
        // Set by the first stop request: when running runs must checkpoint.
        let mut stopping: Option<tokio::time::Instant> = None;
        let mut checkpointing = false;
        let mut stops_open = true;
        // What earlier schedulers left unfinished: resumed first, one at a time per entry.
        let mut resumes: Vec<std::collections::VecDeque<String>> = self
            .entries
            .iter()
            .map(|e| self.launcher.unfinished(e).into())
            .collect();
        for (i, pending) in resumes.iter_mut().enumerate() {
            if let Some(run_id) = pending.pop_front() {
                self.resume(&mut runs, i, &run_id, &stop, &mut running);
                log(&Event::Resumed {
                    entry: self.entries[i].name.clone(),
                    run_id,
                    at: self.clock.now(),
                });
            }
        }
        loop {
            if stopping.is_none() {
                let now = self.clock.now();
                for i in 0..n {
                    let Some(due) = next[i].filter(|t| *t <= now) else {
                        continue;
                    };
                    // Fire once, however many fire times passed (a suspended host); the next is after now.
                    next[i] = self.entries[i].schedule.next_after(now.max(due));
                    let entry = &self.entries[i];
                    match (running[i], entry.overlap) {
                        (None, _) => {
                            self.launch(&mut runs, i, due, &stop, &mut running);
                            log(&Event::Fired {
                                entry: entry.name.clone(),
                                scheduled: due,
                                at: now,
                            });
                        }
                        (Some(_), Overlap::Queue) if queued[i].is_none() => {
                            queued[i] = Some(due);
                            log(&Event::Queued {
                                entry: entry.name.clone(),
                                scheduled: due,
                            });
                        }
                        (Some(since), _) => log(&Event::Skipped {
                            entry: entry.name.clone(),
                            scheduled: due,
                            running_since: since,
                        }),
                    }
                }
            } else if runs.is_empty() {
                log(&Event::Stopped { at: self.clock.now() });
                return;
            }
            let now = self.clock.now();
            let wait = next
                .iter()
                .flatten()
                .min()
                .map_or(MAX_SLEEP, |t| (*t - now).to_std().unwrap_or(Duration::ZERO))
                .min(MAX_SLEEP);
            let grace_left = stopping.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(tokio::time::Instant::now())
            });
            tokio::select! {
                biased;
                Some(done) = runs.join_next() => {
                    let (i, end) = done.unwrap_or_else(|e| (usize::MAX, RunEnd {
                        run_id: None,
                        status: EndStatus::Failed,
                        message: format!("the run's task failed: {e}"),
                    }));
                    if i == usize::MAX {
                        continue;
                    }
                    running[i] = None;
                    log(&Event::Finished { entry: self.entries[i].name.clone(), at: self.clock.now(), end });
                    if stopping.is_none() && let Some(run_id) = resumes[i].pop_front() {
                        self.resume(&mut runs, i, &run_id, &stop, &mut running);
                        log(&Event::Resumed { entry: self.entries[i].name.clone(), run_id, at: self.clock.now() });
                    } else if let Some(due) = queued[i].take().filter(|_| stopping.is_none()) {
                        self.launch(&mut runs, i, due, &stop, &mut running);
                        log(&Event::Fired { entry: self.entries[i].name.clone(), scheduled: due, at: self.clock.now() });
                    }
                }
                request = stops.recv(), if stops_open => {
                    let Some(signal) = request else {
                        stops_open = false;
                        continue;
                    };
                    if stopping.is_none() {
                        stopping = Some(tokio::time::Instant::now() + self.grace);
                        queued.iter_mut().for_each(|q| *q = None);
                        log(&Event::Stopping { at: self.clock.now(), signal, running: runs.len(), grace: self.grace });
                        if self.grace.is_zero() && !runs.is_empty() {
                            checkpointing = true;
                            let _ = stop_tx.send(true);
                            log(&Event::Checkpointing { at: self.clock.now(), running: runs.len() });
                        }
                    } else if !checkpointing {
                        checkpointing = true;
                        let _ = stop_tx.send(true);
                        log(&Event::Checkpointing { at: self.clock.now(), running: runs.len() });
                    }
                }
                _ = tokio::time::sleep(grace_left), if stopping.is_some() && !checkpointing => {
                    checkpointing = true;
                    let _ = stop_tx.send(true);
                    log(&Event::Checkpointing { at: self.clock.now(), running: runs.len() });
                }
                _ = self.clock.sleep(wait), if stopping.is_none() => {}
            }
        }
    }

    fn resume(
        &self,
        runs: &mut JoinSet<(usize, RunEnd)>,
        i: usize,
        run_id: &str,
        stop: &Stop,
        running: &mut [Option<DateTime<Utc>>],
    ) {
        running[i] = Some(self.clock.now());
        let run = self.launcher.resume(&self.entries[i], run_id, stop.clone());
        runs.spawn(async move { (i, run.await) });
    }

    fn launch(
        &self,
        runs: &mut JoinSet<(usize, RunEnd)>,
        i: usize,
        due: DateTime<Utc>,
        stop: &Stop,
        running: &mut [Option<DateTime<Utc>>],
    ) {
        running[i] = Some(self.clock.now());
        let run = self.launcher.launch(&self.entries[i], due, stop.clone());
        runs.spawn(async move { (i, run.await) });
    }
}
