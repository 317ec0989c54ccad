//! The scheduler loop on tokio's paused clock, with fake runs that take a set time: it fires every entry at its
//! cron times (in the entry's time zone), skips (or queues) a fire time while the entry's last run is still going,
//! and on a stop request lets running runs finish within the grace period or tells them to checkpoint.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drflow::schedule::{
    Backend, Clock, CronSchedule, EndStatus, Entry, Event, Launcher, Overlap, RunEnd, RunFuture, Scheduler, Stop,
    TokioClock,
};
use tokio::sync::mpsc;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn entry(name: &str, cron: &str, tz: &str, overlap: Overlap) -> Entry {
    Entry {
        name: name.into(),
        workflow: PathBuf::from("unused.yaml"),
        schedule: CronSchedule::new(cron, tz).unwrap(),
        inputs: Vec::new(),
        regions: Vec::new(),
        backend: Backend::Simulate { scenario: None },
        overlap,
        notify: None,
    }
}

/// (entry, scheduled, started, ended, status) of every run.
type RunLog = Arc<Mutex<Vec<(String, DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, EndStatus)>>>;

/// A run of entry `name` takes `durations[name]` of (paused) time, or ends early when told to stop.
struct FakeRuns {
    clock: Arc<TokioClock>,
    durations: Vec<(String, Duration)>,
    log: RunLog,
    /// Runs an earlier scheduler left unfinished, per entry.
    leftover: Vec<(String, Vec<String>)>,
}

impl FakeRuns {
    fn took(&self, name: &str) -> Duration {
        self.durations.iter().find(|(n, _)| n == name).map(|(_, d)| *d).unwrap()
    }
}

impl Launcher for FakeRuns {
    fn launch(&self, entry: &Entry, scheduled: DateTime<Utc>, mut stop: Stop) -> RunFuture {
        let clock = self.clock.clone();
        let log = self.log.clone();
        let name = entry.name.clone();
        let took = self
            .durations
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| *d)
            .unwrap();
        Box::pin(async move {
            let started = clock.now();
            let status = tokio::select! {
                () = tokio::time::sleep(took) => EndStatus::Succeeded,
                () = stop.requested() => EndStatus::Interrupted,
            };
            log.lock()
                .unwrap()
                .push((name, scheduled, started, clock.now(), status));
            RunEnd {
                run_id: Some(format!("run-{}", started.format("%H%M"))),
                status,
                message: String::new(),
            }
        })
    }

    fn unfinished(&self, entry: &Entry) -> Vec<String> {
        self.leftover
            .iter()
            .find(|(n, _)| *n == entry.name)
            .map(|(_, ids)| ids.clone())
            .unwrap_or_default()
    }

    /// A resumed run takes the entry's duration too; it is logged as `ENTRY:RUN_ID`.
    fn resume(&self, entry: &Entry, run_id: &str, mut stop: Stop) -> RunFuture {
        let clock = self.clock.clone();
        let log = self.log.clone();
        let name = format!("{}:{run_id}", entry.name);
        let took = self.took(&entry.name);
        let run_id = run_id.to_string();
        Box::pin(async move {
            let started = clock.now();
            let status = tokio::select! {
                () = tokio::time::sleep(took) => EndStatus::Succeeded,
                () = stop.requested() => EndStatus::Interrupted,
            };
            log.lock().unwrap().push((name, started, started, clock.now(), status));
            RunEnd {
                run_id: Some(run_id),
                status,
                message: String::new(),
            }
        })
    }
}

struct Harness {
    clock: Arc<TokioClock>,
    runs: RunLog,
    events: Vec<Event>,
}

/// Runs the scheduler from `start`; `stops` are (delay, signal) stop requests.
async fn run(
    start: &str,
    entries: Vec<Entry>,
    durations: &[(&str, u64)],
    grace: Duration,
    stops: &[(u64, &str)],
) -> Harness {
    run_with_leftovers(start, entries, durations, grace, stops, &[]).await
}

/// `run`, with runs an earlier scheduler left unfinished: (entry, run ids).
async fn run_with_leftovers(
    start: &str,
    entries: Vec<Entry>,
    durations: &[(&str, u64)],
    grace: Duration,
    stops: &[(u64, &str)],
    leftover: &[(&str, &[&str])],
) -> Harness {
    let clock = Arc::new(TokioClock::starting_at(t(start)));
    let log = Arc::new(Mutex::new(Vec::new()));
    let launcher = Arc::new(FakeRuns {
        clock: clock.clone(),
        durations: durations
            .iter()
            .map(|(n, m)| (n.to_string(), Duration::from_secs(m * 60)))
            .collect(),
        log: log.clone(),
        leftover: leftover
            .iter()
            .map(|(n, ids)| (n.to_string(), ids.iter().map(|i| i.to_string()).collect()))
            .collect(),
    });
    let (tx, rx) = mpsc::channel(4);
    let plan: Vec<(u64, String)> = stops.iter().map(|(m, s)| (*m, s.to_string())).collect();
    tokio::spawn(async move {
        let mut at = 0;
        for (m, s) in plan {
            tokio::time::sleep(Duration::from_secs((m - at) * 60)).await;
            at = m;
            tx.send(s).await.unwrap();
        }
        // Keep the channel open.
        std::future::pending::<()>().await;
    });
    let scheduler = Scheduler {
        entries: &entries,
        clock: clock.as_ref(),
        launcher,
        grace,
    };
    let mut events = Vec::new();
    scheduler.run(rx, &mut |e| events.push(e.clone())).await;
    Harness {
        clock,
        runs: log,
        events,
    }
}

fn fired(h: &Harness, name: &str) -> Vec<DateTime<Utc>> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Fired { entry, at, .. } if entry == name => Some(*at),
            _ => None,
        })
        .collect()
}

fn skipped(h: &Harness, name: &str) -> Vec<DateTime<Utc>> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Skipped { entry, scheduled, .. } if entry == name => Some(*scheduled),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fires_each_entry_on_time_and_skips_overlapping_runs() {
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![
            entry("every5", "*/5 * * * *", "UTC", Overlap::Skip),
            // On the hour in New York: 05:00, 06:00 UTC (EST).
            entry("hourly-ny", "0 * * * *", "America/New_York", Overlap::Skip),
            // 01:30 in Berlin = 00:30 UTC.
            entry("berlin", "30 1 * * *", "Europe/Berlin", Overlap::Skip),
        ],
        &[("every5", 7), ("hourly-ny", 1), ("berlin", 2)],
        Duration::ZERO,
        &[(63, "SIGTERM")],
    )
    .await;
    // Runs of 7 minutes every 5: every other fire time is skipped while the last run is going.
    let every5 = fired(&h, "every5");
    let expected: Vec<DateTime<Utc>> = ["00:05", "00:15", "00:25", "00:35", "00:45", "00:55"]
        .iter()
        .map(|hm| t(&format!("2026-03-07T{hm}:00Z")))
        .collect();
    assert_eq!(every5, expected);
    let expected_skips: Vec<DateTime<Utc>> = ["00:10", "00:20", "00:30", "00:40", "00:50", "01:00"]
        .iter()
        .map(|hm| t(&format!("2026-03-07T{hm}:00Z")))
        .collect();
    assert_eq!(skipped(&h, "every5"), expected_skips);
    assert_eq!(fired(&h, "hourly-ny"), [t("2026-03-07T01:00:00Z")]);
    assert_eq!(fired(&h, "berlin"), [t("2026-03-07T00:30:00Z")]);
    assert!(skipped(&h, "hourly-ny").is_empty() && skipped(&h, "berlin").is_empty());

    // Each run started exactly at its fire time and ran its full length.
    let runs = h.runs.lock().unwrap().clone();
    assert!(
        runs.iter().all(|(_, scheduled, started, ..)| scheduled == started),
        "{runs:?}"
    );
    let last = runs.iter().find(|r| r.1 == t("2026-03-07T00:55:00Z")).unwrap();
    assert_eq!((last.3, last.4), (t("2026-03-07T01:02:00Z"), EndStatus::Succeeded));
    let ny = runs.iter().find(|r| r.0 == "hourly-ny").unwrap();
    assert_eq!((ny.3, ny.4), (t("2026-03-07T01:01:00Z"), EndStatus::Succeeded));
    assert!(matches!(h.events.last(), Some(Event::Stopped { .. })));
    assert_eq!(h.clock.now(), t("2026-03-07T01:03:00Z"));
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_checkpoints_running_runs_at_once_without_grace() {
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![entry("slow", "*/10 * * * *", "UTC", Overlap::Skip)],
        &[("slow", 30)],
        Duration::ZERO,
        &[(15, "SIGTERM")],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1, t("2026-03-07T00:10:00Z"));
    assert_eq!(
        (runs[0].3, runs[0].4),
        (t("2026-03-07T00:15:00Z"), EndStatus::Interrupted)
    );
    let stopping = h
        .events
        .iter()
        .position(|e| matches!(e, Event::Stopping { running: 1, .. }))
        .unwrap();
    assert!(
        matches!(h.events[stopping + 1], Event::Checkpointing { running: 1, .. }),
        "{:?}",
        h.events
    );
    let finished = h.events.iter().find_map(|e| match e {
        Event::Finished { end, .. } => Some(end.clone()),
        _ => None,
    });
    assert_eq!(finished.unwrap().status, EndStatus::Interrupted);
    // Nothing fires after the stop request (00:20 would have).
    assert_eq!(fired(&h, "slow").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_grace_period_lets_a_run_finish_or_checkpoints_it_when_it_ends() {
    // The run (00:10–00:40) finishes within 30 minutes of grace after a stop at 00:15.
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![entry("slow", "*/10 * * * *", "UTC", Overlap::Skip)],
        &[("slow", 30)],
        Duration::from_secs(30 * 60),
        &[(15, "SIGTERM")],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    assert_eq!(
        (runs[0].3, runs[0].4),
        (t("2026-03-07T00:40:00Z"), EndStatus::Succeeded)
    );
    assert!(!h.events.iter().any(|e| matches!(e, Event::Checkpointing { .. })));

    // With 5 minutes of grace it is checkpointed at 00:20.
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![entry("slow", "*/10 * * * *", "UTC", Overlap::Skip)],
        &[("slow", 30)],
        Duration::from_secs(5 * 60),
        &[(15, "SIGTERM")],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    assert_eq!(
        (runs[0].3, runs[0].4),
        (t("2026-03-07T00:20:00Z"), EndStatus::Interrupted)
    );

    // A second request during the grace period checkpoints at once.
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![entry("slow", "*/10 * * * *", "UTC", Overlap::Skip)],
        &[("slow", 30)],
        Duration::from_secs(60 * 60),
        &[(15, "SIGTERM"), (17, "SIGINT")],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    assert_eq!(
        (runs[0].3, runs[0].4),
        (t("2026-03-07T00:17:00Z"), EndStatus::Interrupted)
    );
}

#[tokio::test(start_paused = true)]
async fn overlap_queue_runs_one_missed_fire_time_when_the_last_run_ends() {
    let h = run(
        "2026-03-07T00:00:00Z",
        vec![entry("q", "*/5 * * * *", "UTC", Overlap::Queue)],
        &[("q", 12)],
        Duration::ZERO,
        &[(31, "SIGTERM")],
    )
    .await;
    let runs = h.runs.lock().unwrap().clone();
    let starts: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs.iter().map(|r| (r.1, r.2)).collect();
    // 00:05 runs until 00:17; 00:10 is queued and starts at 00:17; 00:15 is skipped (one is queued already).
    assert_eq!(
        starts,
        [
            (t("2026-03-07T00:05:00Z"), t("2026-03-07T00:05:00Z")),
            (t("2026-03-07T00:10:00Z"), t("2026-03-07T00:17:00Z")),
            (t("2026-03-07T00:20:00Z"), t("2026-03-07T00:29:00Z")),
        ]
    );
    assert_eq!(skipped(&h, "q"), [t("2026-03-07T00:15:00Z"), t("2026-03-07T00:25:00Z")]);
}

#[tokio::test(start_paused = true)]
async fn fire_times_follow_the_entrys_time_zone_across_a_dst_change() {
    // Berlin switches to summer time on 2026-03-29: 03:00 local is 02:00 UTC before and 01:00 UTC after.
    let h = run(
        "2026-03-27T12:00:00Z",
        vec![entry("berlin", "0 3 * * *", "Europe/Berlin", Overlap::Skip)],
        &[("berlin", 10)],
        Duration::ZERO,
        &[(3 * 24 * 60, "SIGTERM")],
    )
    .await;
    assert_eq!(
        fired(&h, "berlin"),
        [
            t("2026-03-28T02:00:00Z"),
            t("2026-03-29T01:00:00Z"),
            t("2026-03-30T01:00:00Z")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_restarted_scheduler_first_resumes_what_it_left_once_each() {
    let h = run_with_leftovers(
        "2026-03-07T00:00:00Z",
        vec![
            entry("rehearsal", "*/5 * * * *", "UTC", Overlap::Skip),
            entry("other", "*/5 * * * *", "UTC", Overlap::Skip),
        ],
        &[("rehearsal", 7), ("other", 1)],
        Duration::ZERO,
        &[(22, "SIGTERM")],
        &[("rehearsal", &["old-1", "old-2"])],
    )
    .await;
    let resumed: Vec<(String, DateTime<Utc>)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Resumed { entry, run_id, at } => Some((format!("{entry}:{run_id}"), *at)),
            _ => None,
        })
        .collect();
    // One after the other, before any new fire time of that entry, each once.
    assert_eq!(
        resumed,
        [
            ("rehearsal:old-1".to_string(), t("2026-03-07T00:00:00Z")),
            ("rehearsal:old-2".to_string(), t("2026-03-07T00:07:00Z")),
        ]
    );
    let runs = h.runs.lock().unwrap().clone();
    let ended = |name: &str| runs.iter().find(|r| r.0 == name).map(|r| (r.3, r.4));
    assert_eq!(
        ended("rehearsal:old-1"),
        Some((t("2026-03-07T00:07:00Z"), EndStatus::Succeeded))
    );
    assert_eq!(
        ended("rehearsal:old-2"),
        Some((t("2026-03-07T00:14:00Z"), EndStatus::Succeeded))
    );
    // The fire times that passed meanwhile follow `overlap: skip`; the first new run is after the resumes (and
    // itself overlaps 00:20).
    assert_eq!(
        skipped(&h, "rehearsal"),
        [
            t("2026-03-07T00:05:00Z"),
            t("2026-03-07T00:10:00Z"),
            t("2026-03-07T00:20:00Z")
        ]
    );
    assert_eq!(fired(&h, "rehearsal")[0], t("2026-03-07T00:15:00Z"));
    // An entry with nothing left over fires on time.
    assert_eq!(fired(&h, "other")[0], t("2026-03-07T00:05:00Z"));
}
