//! The fleet workflow (workflows/dr-fleet.yaml) on the simulator for 100, 500 and 2,000 instances: the simulated
//! makespan against the lower bound the workflow's concurrency allows, API calls per instance, throttling errors,
//! wall time, peak memory and engine time per step. Journal on (fsync'd), simulator in memory.
//!
//! Run with `scripts/bench-fleet` (`BENCH_FLEET=100,500` to choose the sizes). Prints figures; asserts nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use drflow::cloud::sim::{Scenario, Sim};
use drflow::engine::journal::RunStatus;
use drflow::engine::{Quiet, StepStatus};
use drflow::session::{Backend, Ended, Job, Session};
use drflow::workflow::{self, Source};

const CONCURRENCY: usize = 100;

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
        "dr-fleet on the simulator (in memory, journal fsync'd), max_concurrency {CONCURRENCY}, default job durations"
    );
    println!(
        "{:>6} {:>10} {:>11} {:>6} {:>12} {:>10} {:>9} {:>8} {:>9} {:>8}",
        "items",
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
        let mut scenario = String::from("default_world: true\ninstances:\n");
        for i in 0..n {
            scenario.push_str(&format!(
                "  - {{id: i-{i:017x}, region: us-east-1, tags: {{drflow:protect: \"true\"}}}}\n"
            ));
        }
        let sim = Sim::new(Scenario::from_yaml_str(&scenario, None).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let session = Session::new(dir.path(), Backend::Simulate { scenario: None }).with_client(sim.cloud());
        let bindings = wf.bind(&[], &[]).unwrap();
        let wall = Instant::now();
        let job = Job::Start { bindings, run_id: None };
        let ended = rt.block_on(session.run_async(&wf, job, &Quiet, std::future::pending()));
        let wall = wall.elapsed();
        let Ok(Ended::Finished(o)) = ended else {
            panic!("the run did not finish: {ended:?}")
        };
        assert_eq!(o.status, RunStatus::Succeeded, "{:?}", o.error);
        let makespan_ms = (o.state.last_ms - o.state.started_ms) as f64;
        // The lower bound this workflow allows: the fastest item's pipeline (its jobs' durations, nothing waited for)
        // per wave of `max_concurrency` items.
        let item_ms = o
            .state
            .steps
            .iter()
            .filter(|(id, _)| id.ends_with("].publish"))
            .filter_map(|(id, st)| {
                let key = &id[..id.len() - "publish".len()];
                let start = o.state.steps.get(&format!("{key}backup"))?.started_ms?;
                Some((st.finished_ms? - start) as f64)
            })
            .fold(f64::INFINITY, f64::min);
        let items = n + 1; // and the default world's tagged instance
        let waves = items.div_ceil(CONCURRENCY) as f64;
        let bound_ms = waves * item_ms;
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
        let steps = o.state.steps.len();
        println!(
            "{:>6} {:>10} {:>11} {:>6.2} {:>12.1} {:>10} {:>9} {:>8.2} {:>9.1} {:>8.0}",
            items,
            workflow::format_duration(std::time::Duration::from_millis(makespan_ms as u64)),
            workflow::format_duration(std::time::Duration::from_millis(bound_ms as u64)),
            makespan_ms / bound_ms,
            calls.len() as f64 / items as f64,
            throttled,
            failed,
            wall.as_secs_f64(),
            peak_rss_mb(),
            wall.as_secs_f64() * 1e6 / steps as f64,
        );
        let ops: Vec<String> = per_op
            .iter()
            .map(|(op, c)| format!("{op} {:.1}", *c as f64 / items as f64))
            .collect();
        println!("       calls per item: {}", ops.join(", "));
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
