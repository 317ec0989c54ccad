//! The fleet workflow (workflows/dr-fleet.yaml) on the simulator for 100, 500 and 2,000 instances of varied sizes:
//! the simulated makespan against the lower bound the job durations and AWS's quotas allow, API calls per instance,
//! throttling errors, how soon waits notice their job's end (and the describe calls they spend), wall time, peak
//! memory and engine time per step. Each size runs twice in one state folder: `cold` (no history) and `warm` (the
//! first run's job durations known). Journal on (fsync'd), simulator in memory.
//!
//! Run with `scripts/bench-fleet` (`BENCH_FLEET=100,500` to choose the sizes). Prints figures; asserts nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use drflow::cloud::sim::{Scenario, Sim};
use drflow::engine::journal::RunStatus;
use drflow::engine::{Quiet, StepStatus};
use drflow::session::{Backend, Ended, Job, Session};
use drflow::workflow::{self, Source};

/// Every item at once: AWS's quotas (and the rate limiter) bound the work, not the workflow.
const CONCURRENCY: usize = 10_000;
/// AWS Backup's copies into one destination region (the engine keeps it without configuration).
const COPY_QUOTA: f64 = 100.0;
/// StartBackupJob and StartCopyJob: AWS Backup writes, 5 per second (the rate limiter's start).
const STARTS_PER_SEC: f64 = 5.0;

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_FLEET")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 500, 2000]);
    let text = std::fs::read_to_string("workflows/dr-fleet.yaml")
        .expect("run from the repository")
        .replace("max_concurrency: 10", &format!("max_concurrency: {CONCURRENCY}"));
    let wf = workflow::parse(Source::new("workflows/dr-fleet.yaml", text), drflow::actions::catalog()).expect("valid");
    println!(
        "dr-fleet on the simulator (in memory, journal fsync'd), every item at once; instances of 8-64 GiB \
         (log-uniform), backup 8 m and copy 12 m per 8 GiB, each job ±10%"
    );
    println!(
        "{:>6} {:>4} {:>10} {:>11} {:>6} {:>11} {:>10} {:>7} {:>8} {:>8} {:>8}",
        "items",
        "run",
        "makespan",
        "lower bound",
        "ratio",
        "calls/item",
        "throttled",
        "failed",
        "wall s",
        "peak MB",
        "µs/step"
    );
    for n in sizes {
        let mut scenario = String::from("durations: {spread: 0.1}\ninstances:\n");
        for i in 0..n {
            scenario.push_str(&format!(
                "  - {{id: i-{i:017x}, region: us-east-1, size_gib: {}, tags: {{drflow:protect: \"true\"}}}}\n",
                size_gib(i)
            ));
        }
        // The same state folder twice: the second run has the first one's history (copy durations per instance).
        let dir = tempfile::tempdir().unwrap();
        for run in ["cold", "warm"] {
            let sim = Sim::new(Scenario::from_yaml_str(&scenario, None).unwrap());
            bench_one(&wf, &sim, dir.path(), n, run);
        }
    }
}

/// An instance's size: 8 to 64 GiB, spread evenly on a log scale.
fn size_gib(i: usize) -> u64 {
    let u = ((i as u64).wrapping_mul(0x9e3779b97f4a7c15) >> 11) as f64 / (1u64 << 53) as f64;
    (8.0 * 8f64.powf(u)).round() as u64
}

fn bench_one(wf: &workflow::Workflow, sim: &Sim, dir: &std::path::Path, n: usize, run: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let session = Session::new(dir, Backend::Simulate { scenario: None }).with_client(sim.cloud());
    let bindings = wf.bind(&[], &[]).unwrap();
    let wall = Instant::now();
    let job = Job::Start { bindings, run_id: None };
    let ended = rt.block_on(session.run_async(wf, job, &Quiet, std::future::pending()));
    let wall = wall.elapsed();
    let Ok(Ended::Finished(o)) = ended else {
        panic!("the run did not finish: {ended:?}")
    };
    assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
    let steps = &o.state.steps;
    let makespan_ms = (o.state.last_ms - o.state.started_ms) as f64;
    let items = n + 1; // and the default world's tagged instance
    // Each item's jobs, from the simulator: backup and copy durations (created → ended).
    let jobs = sim.job_times();
    let job_ms = |start_step: &str| -> Option<f64> {
        let id = match &steps.get(start_step)?.status {
            Some(StepStatus::Succeeded(out)) => out.get("job_id")?.as_str()?.to_string(),
            _ => return None,
        };
        let (created, done) = jobs.get(&id)?;
        Some((*done - *created).as_millis() as f64)
    };
    let keys: Vec<String> = steps
        .keys()
        .filter(|id| id.ends_with("].publish"))
        .map(|id| id[..id.len() - "publish".len()].to_string())
        .collect();
    let pairs: Vec<(f64, f64)> = keys
        .iter()
        .filter_map(|k| Some((job_ms(&format!("{k}backup"))?, job_ms(&format!("{k}copy"))?)))
        .collect();
    // The lower bound: no item is done before its own backup and copy; the copies of the items whose backups end at
    // or after any time t share COPY_QUOTA slots from t on (for every t: a backup's end); the starts share AWS
    // Backup's write rate.
    let longest = pairs.iter().map(|(b, c)| b + c).fold(0.0, f64::max);
    let copies: f64 = pairs.iter().map(|(_, c)| c).sum();
    let mut by_backup = pairs.clone();
    by_backup.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut left = copies;
    let mut slots_bound: f64 = 0.0;
    for (b, c) in &by_backup {
        slots_bound = slots_bound.max(b + left / COPY_QUOTA);
        left -= c;
    }
    let quickest = pairs.iter().map(|(b, c)| b + c).fold(f64::INFINITY, f64::min);
    let starts = 2.0 * (items as f64 - 1.0) / STARTS_PER_SEC * 1000.0;
    let bound_ms = longest.max(slots_bound).max(starts + quickest);
    // How soon each wait noticed its job's end, as a share of the job; and the job time per describe call.
    let lag = |start: &str, wait: &str| -> Vec<f64> {
        keys.iter()
            .filter_map(|k| {
                let begun = steps.get(&format!("{k}{start}"))?.finished_ms? as f64;
                let noticed = steps.get(&format!("{k}{wait}"))?.finished_ms? as f64;
                let took = job_ms(&format!("{k}{start}"))?;
                Some((noticed - begun - took).max(0.0) / took)
            })
            .collect()
    };
    let calls = sim.calls();
    let mut per_op: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        *per_op.entry(c.operation.as_str()).or_default() += 1;
    }
    let throttled = calls
        .iter()
        .filter(|c| c.error.as_deref().is_some_and(|e| e.contains("Throttl")))
        .count();
    let failed = match o.state.status("fleet") {
        Some(StepStatus::Succeeded(out)) => out["failed"].as_u64().unwrap_or(0),
        _ => u64::MAX,
    };
    println!(
        "{:>6} {:>4} {:>10} {:>11} {:>6.2} {:>11.1} {:>10} {:>7} {:>8.2} {:>8.1} {:>8.0}",
        items,
        run,
        workflow::format_duration(std::time::Duration::from_millis(makespan_ms as u64)),
        workflow::format_duration(std::time::Duration::from_millis(bound_ms as u64)),
        makespan_ms / bound_ms,
        calls.len() as f64 / items as f64,
        throttled,
        failed,
        wall.as_secs_f64(),
        peak_rss_mb(),
        wall.as_secs_f64() * 1e6 / steps.len() as f64,
    );
    let ops: Vec<String> = per_op
        .iter()
        .map(|(op, c)| format!("{op} {:.1}", *c as f64 / items as f64))
        .collect();
    println!("            calls per item: {}", ops.join(", "));
    let backups: f64 = pairs.iter().map(|(b, _)| b).sum();
    for (kind, start, wait, describes, job_total) in [
        ("backup", "backup", "wait_backup", "DescribeBackupJob", backups),
        ("copy", "copy", "wait_copy", "DescribeCopyJob", copies),
    ] {
        let mut l = lag(start, wait);
        l.sort_by(f64::total_cmp);
        if l.is_empty() {
            continue;
        }
        let mean = l.iter().sum::<f64>() / l.len() as f64;
        let p95 = l[(l.len() * 95 / 100).min(l.len() - 1)];
        // Describes, and the lists that answer many at once.
        let list = if kind == "backup" {
            "ListBackupJobs"
        } else {
            "ListCopyJobs"
        };
        let polls = per_op.get(describes).copied().unwrap_or(0) + per_op.get(list).copied().unwrap_or(0);
        let per_call = job_total / 1000.0 / polls.max(1) as f64;
        println!(
            "            {kind:<6} wait: noticed {:.1}% of the job late on average, {:.1}% at p95, max {:.1}%; one poll call per {:.0} s of job",
            100.0 * mean,
            100.0 * p95,
            100.0 * l[l.len() - 1],
            per_call
        );
    }
}

/// The process's peak resident memory so far (Linux: VmHWM).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
