//! Engine overhead per step on the simulator with zero latency, with the journal on (fsync per entry).
//!
//! Run with `scripts/bench`. Prints figures; asserts nothing about time.

use std::time::{Duration, Instant};

use drflow::cloud::sim::{Scenario, Sim};
use drflow::engine::{self, Quiet};
use drflow::session::{Backend, Ended, Job, Session};
use drflow::workflow::{self, Source};

fn workflow(steps: usize, action: &str) -> String {
    let mut y = String::from("version: 1\nname: bench\nregions: {primary: us-east-1}\nsteps:\n");
    for i in 0..steps {
        match action {
            "echo" => y.push_str(&format!(
                "  - id: s{i}\n    action: drflow.echo\n    with: {{value: \"v{i}\"}}\n"
            )),
            _ => y.push_str(&format!(
                "  - id: s{i}\n    action: ssm.get_parameter\n    region: primary\n    with: {{name: /bench/p}}\n"
            )),
        }
    }
    y
}

fn main() {
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let scenario =
        "throttling:\n  - {operation: \"ssm:GetParameter\", capacity: 1000000, refill_per_second: 1000000}\n";
    println!("drflow engine overhead (simulator, zero latency, journal fsync'd), best of {repeat} runs");
    println!(
        "{:<22} {:>6} {:>11} {:>11} {:>9} {:>11}",
        "step kind", "steps", "total ms", "µs/step", "entries", "journal KB"
    );
    for action in ["echo", "ssm.get_parameter"] {
        for steps in [10, 100, 1000] {
            let wf = workflow::parse(
                Source::new("bench.yaml", workflow(steps, action)),
                drflow::actions::catalog(),
            )
            .expect("valid");
            let mut best = Duration::MAX;
            let mut entries = 0;
            let mut bytes = 0;
            for _ in 0..repeat {
                let dir = tempfile::tempdir().unwrap();
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .start_paused(true)
                    .build()
                    .unwrap();
                let sim = Sim::new(Scenario::from_yaml_str(scenario, None).unwrap());
                let started = Instant::now();
                let session = Session::new(dir.path(), Backend::Simulate { scenario: None }).with_client(sim.cloud());
                let bindings = wf.bind(&[], &[]).unwrap();
                let job = Job::Start { bindings, run_id: None };
                let ended = rt.block_on(session.run_async(&wf, job, &Quiet, std::future::pending()));
                let Ok(Ended::Finished(outcome)) = ended else {
                    panic!("the run did not finish: {ended:?}")
                };
                best = best.min(started.elapsed());
                assert_eq!(
                    outcome.status,
                    engine::journal::RunStatus::Succeeded,
                    "{:?}",
                    outcome.error
                );
                entries = engine::journal::read(&outcome.journal).unwrap().len();
                bytes = std::fs::metadata(&outcome.journal).unwrap().len();
            }
            println!(
                "{:<22} {:>6} {:>11.1} {:>11.1} {:>9} {:>11.1}",
                action,
                steps,
                best.as_secs_f64() * 1000.0,
                best.as_secs_f64() * 1e6 / steps as f64,
                entries,
                bytes as f64 / 1024.0
            );
        }
    }
}
