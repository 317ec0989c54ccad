//! A deterministic, in-process simulated AWS: the `sim` backend of `Cloud`.
//!
//! Used by `drflow run --simulate` and by tests on tokio's paused clock. Time is simulated (`tokio::time::Instant`):
//! a backup job that runs 8 minutes completes as soon as the caller has slept 8 minutes, which on a paused clock
//! costs no wall time. Every call goes through one pipeline (`Sim::call`):
//!
//! 1. it is recorded in the call log and counted (before any fault fires);
//! 2. the scenario's faults decide on extra latency, an injected error (the call is not performed), a lost response
//!    or a crash; faults with a `probability` draw from the world's seeded generator;
//! 3. unless a fault refused it, the (region, operation) token bucket may throttle it;
//! 4. after the latency, the service performs it against the world; a lost response then replaces its answer
//!    with the fault's error (the call log marks it `performed` and `response_lost`);
//! 5. a persisted world is saved (atomically), and a crash fault aborts the process.
//!
//! Modules, from the bottom up; each imports only modules listed before it, so there are no import cycles:
//!
//! - `error`, `clock`, `ids` (the account, default and generated ids, id and region shape checks), `records` (the
//!   call log and every resource record, with the rules that derive their state), `rng` (the seeded generator of
//!   probabilistic faults): nothing of the simulator;
//! - `scenario` (the YAML; uses `ids`), `throttle` (token buckets; `scenario`);
//! - `world` (owns the records, counters and the id generator), then `faults` and `persist`, which work on it;
//! - this module: `Sim`, `Ctx` and the call pipeline;
//! - `template` (CloudFormation templates) and the services `backup`, `ec2`, `ssm`, `cloudformation`, `sts`: they
//!   import from the layers above, never from each other (only `cloudformation` uses `template`).

// The error type is `CloudError`, fixed by the `Cloud` traits; boxing it inside the simulator would buy nothing.
#![allow(clippy::result_large_err)]

mod backup;
mod backup_plans;
mod clock;
mod cloudformation;
mod ec2;
mod error;
mod faults;
mod history;
mod ids;
mod kms;
mod persist;
mod records;
mod rng;
mod scenario;
mod sns;
mod ssm;
mod sts;
mod template;
mod throttle;
mod tracked;
mod world;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use error::SimError;
pub use records::Call;
pub use scenario::{
    DEFAULT_SEED, Durations, EXAMPLE_SCENARIO, FailJob, Fault, FaultError, ImageSpec, ImpairInstance, InstanceSpec,
    JobKind, ParameterSpec, Scenario, StatusCheck, Throttle, VaultSpec,
};

use self::clock::Clock;
use self::faults::Injected;
use self::world::{Region, World};
use super::{Cloud, CloudError};

/// The simulated AWS. Cheap to clone: clones share the world.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Inner>,
}

impl Drop for Inner {
    /// The last handle saves a persistent world's latest counters.
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            // Its time is the last call's (the clock may be read outside the runtime here).
            let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
            let _ = persist::append_changes(path, &mut state.world);
        }
    }
}

struct Inner {
    scenario: Scenario,
    /// Where the world is saved after every call, if persistent.
    path: Option<PathBuf>,
    state: Mutex<State>,
}

struct State {
    world: World,
    clock: Clock,
    /// When the world was last saved (wall time).
    saved_at: std::time::Instant,
    /// Bytes of the last snapshot, and of the change log written since: a new snapshot when the log outgrows it.
    snapshot_bytes: u64,
    log_bytes: u64,
}

/// A persistent world is saved after every call that changed a resource (before its answer), and after others at
/// most this often (wall time): they change only counters (throttling buckets, fault counts, random draws).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The change log may grow to this much before a new snapshot, however small the last snapshot was.
const LOG_MIN: u64 = 1 << 20;

/// What a service operation sees: the world at one instant.
pub(crate) struct Ctx<'a> {
    pub world: &'a mut World,
    pub scenario: &'a Scenario,
    pub now: Duration,
    pub service: &'static str,
    pub operation: &'static str,
    pub region: String,
}

impl Ctx<'_> {
    /// An error of this call.
    pub(crate) fn err(&self, code: &str, message: impl Into<String>) -> CloudError {
        CloudError::new(self.service, self.operation, &self.region, code, message)
    }

    /// The call's region.
    pub(crate) fn here(&mut self) -> &mut Region {
        self.world.region_mut(&self.region)
    }

    /// Unix seconds of a simulated instant.
    pub(crate) fn wall(&self, at: Duration) -> i64 {
        clock::wall(self.world.created_unix, at)
    }

    /// Runs `start` once per idempotency token: a later call of this operation in this region with the same
    /// token answers the id the first one returned, without starting anything. An empty token is no token.
    pub(crate) fn idempotent(
        &mut self,
        token: &str,
        start: impl FnOnce(&mut Self) -> Result<String, CloudError>,
    ) -> Result<String, CloudError> {
        if token.is_empty() {
            return start(self);
        }
        let key = format!("{}:{token}", self.operation);
        if let Some(id) = self.here().tokens.get(&key) {
            return Ok(id.clone());
        }
        let id = start(self)?;
        self.here().tokens.insert(key, id.clone());
        Ok(id)
    }
}

/// Whether a call changes the world, by the one table of operations.
fn is_mutating(service: &str, operation: &str) -> bool {
    crate::cloud::operations::mutates_call(service, operation)
}

impl Sim {
    pub fn new(scenario: Scenario) -> Sim {
        let world = World::build(&scenario);
        Sim::with_world(scenario, world, None)
    }

    /// Persisted world: loads `path` if it exists (continuing its simulated clock), else builds it from the
    /// scenario. Saved after every call, mutating or not (atomic write: temporary file + rename), so call counts
    /// and the call log survive too. A loaded world keeps its contents and its `default_world` setting; scenario
    /// items it lacks (by id/name) are added. The scenario still drives faults, throttling, latency and the
    /// durations of work started from now on.
    pub fn persistent(path: &Path, scenario: Scenario) -> Result<Sim, SimError> {
        scenario
            .validate()
            .map_err(|message| SimError::Invalid { path: None, message })?;
        let world = if path.exists() {
            let mut world = persist::load(path)?;
            world.populate(&scenario, false);
            // Simulated time runs ahead of real time; re-anchor the world so that its "now" is this session's
            // wall-clock start, as the run's own clock is (`engine::Clock`). Otherwise dates the simulator reports
            // (AMI creation, job and parameter times) drift ahead of the journal's with every session, and a
            // rehearsal's RPO (run clock minus AMI creation date) comes out wrong on a reused world.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            world.created_unix = now - i64::try_from(world.elapsed.as_secs()).unwrap_or(0);
            world
        } else {
            // A new world: no calls yet (a call log left from another world goes).
            let _ = std::fs::remove_file(persist::calls_path(path));
            World::build(&scenario)
        };
        let sim = Sim::with_world(scenario, world, Some(path.to_path_buf()));
        {
            let mut state = sim.lock();
            sim.save(&mut state)?;
        }
        Ok(sim)
    }

    fn with_world(scenario: Scenario, world: World, path: Option<PathBuf>) -> Sim {
        let clock = Clock::starting_at(world.elapsed);
        Sim {
            inner: Arc::new(Inner {
                scenario,
                path,
                state: Mutex::new(State {
                    world,
                    clock,
                    saved_at: std::time::Instant::now(),
                    snapshot_bytes: 0,
                    log_bytes: 0,
                }),
            }),
        }
    }

    /// The `Cloud` handle (backend name `sim`); every service is this simulator.
    pub fn cloud(&self) -> Cloud {
        Cloud {
            backend: "sim",
            backup: Arc::new(self.clone()),
            ec2: Arc::new(self.clone()),
            ssm: Arc::new(self.clone()),
            cloudformation: Arc::new(self.clone()),
            sns: Arc::new(self.clone()),
            sts: Arc::new(self.clone()),
            kms: Arc::new(self.clone()),
            limiter: None,
            account: None,
            roles: Arc::default(),
        }
    }

    /// Every call received, in order (across sessions of a persisted world).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().world.calls.clone()
    }

    /// Every backup and copy job: id → when it was created and when it ended (or will end), in simulated time since
    /// the world was created. For measuring how soon waits notice the end.
    pub fn job_times(&self) -> std::collections::BTreeMap<String, (Duration, Duration)> {
        let state = self.lock();
        state
            .world
            .regions
            .values()
            .flat_map(|r| r.backup_jobs.values().chain(r.copy_jobs.values()))
            .map(|j| (j.id.clone(), (j.created_at, j.done_at)))
            .collect()
    }

    /// Simulated time since the world was created (across sessions of a persisted world).
    pub fn elapsed(&self) -> Duration {
        self.lock().clock.now()
    }

    /// Makes sure these regions exist (with the default vault and instance, unless `default_world: false`).
    /// Codes that are not region codes are ignored (calls to them fail with `InvalidRegion`). A persisted world
    /// is saved with them on the next call.
    pub fn ensure_regions(&self, regions: &[String]) {
        let mut state = self.lock();
        for r in regions.iter().filter(|r| ids::looks_like_region(r)) {
            state.world.region_mut(r);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the world as it was after the last complete mutation: keep going.
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, state: &mut State) -> Result<(), SimError> {
        let Some(path) = &self.inner.path else { return Ok(()) };
        state.world.elapsed = state.clock.now();
        state.saved_at = std::time::Instant::now();
        // What changed goes to the log; a new snapshot once the log is as big as the last one (so the bytes
        // written stay proportional to the changes).
        if state.snapshot_bytes > 0 && state.log_bytes < state.snapshot_bytes.max(LOG_MIN) {
            state.log_bytes += persist::append_changes(path, &mut state.world)?;
        } else {
            state.snapshot_bytes = persist::save(path, &mut state.world)?;
            state.log_bytes = 0;
        }
        Ok(())
    }

    /// The world saved at `path` (its snapshot and change log), as JSON: for tests and tools that look inside.
    pub fn saved_world(path: &Path) -> Result<serde_json::Value, SimError> {
        let world = persist::load(path)?;
        Ok(serde_json::to_value(&world).expect("the world serialises"))
    }

    /// Saves a persistent world now (its counters may be up to `SAVE_EVERY` behind otherwise); dropping the last
    /// handle does too.
    pub fn flush(&self) -> Result<(), SimError> {
        let mut state = self.lock();
        self.save(&mut state)
    }

    /// The pipeline every call goes through (see the module documentation).
    pub(crate) async fn call<T>(
        &self,
        service: &'static str,
        operation: &'static str,
        region: &str,
        op: impl FnOnce(&mut Ctx<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let scenario = &self.inner.scenario;
        let mutating = is_mutating(service, operation);
        let (index, plan, early) = {
            let mut state = self.lock();
            let now = state.clock.now();
            let world = &mut state.world;
            let index = world.calls.len();
            world.calls.push(Call {
                service: service.to_string(),
                operation: operation.to_string(),
                region: region.to_string(),
                at: now,
                mutating,
                error: None,
                performed: false,
                response_lost: false,
            });
            let plan = faults::plan(scenario, world, service, operation, region);
            let early = if !ids::looks_like_region(region) {
                Some(CloudError::new(
                    service,
                    operation,
                    region,
                    "InvalidRegion",
                    format!("`{region}` is not a region code (like us-east-1)"),
                ))
            } else if matches!(plan.answer, Some(Injected::Refuse(_))) {
                None
            } else {
                throttle::take(
                    scenario,
                    &mut world.buckets,
                    (service, operation, region),
                    mutating,
                    now,
                )
                .err()
            };
            (index, plan, early)
        };
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        let mut state = self.lock();
        let (mut performed, mut lost) = (false, false);
        let result = match (early, plan.answer) {
            (Some(e), _) | (None, Some(Injected::Refuse(e))) => Err(e),
            (None, lose) => {
                let now = state.clock.now();
                let mut ctx = Ctx {
                    world: &mut state.world,
                    scenario,
                    now,
                    service,
                    operation,
                    region: region.to_string(),
                };
                let answer = op(&mut ctx);
                performed = true;
                match lose {
                    Some(Injected::LoseResponse(e)) => {
                        lost = true;
                        Err(e)
                    }
                    _ => answer,
                }
            }
        };
        let call = &mut state.world.calls[index];
        (call.performed, call.response_lost) = (performed, lost);
        if let Err(e) = &result {
            call.error = Some(e.code.clone());
        }
        let call = state.world.calls[index].clone();
        state.world.elapsed = state.clock.now();
        let must_save = (performed && mutating) || plan.crash || state.saved_at.elapsed() >= SAVE_EVERY;
        let saved = match &self.inner.path {
            Some(path) => {
                persist::append_call(path, &call).and_then(|()| if must_save { self.save(&mut state) } else { Ok(()) })
            }
            None => Ok(()),
        };
        if let Err(e) = saved {
            return Err(CloudError::new(
                service,
                operation,
                region,
                "SimPersistenceFailure",
                format!("could not save the simulated world: {e}"),
            ));
        }
        if plan.crash {
            eprintln!("drflow sim: crash fault on {service}:{operation} in {region}: aborting the process");
            std::process::abort();
        }
        result
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::cloud::StartBackupJob;

    pub(crate) const EAST: &str = "us-east-1";
    pub(crate) const WEST: &str = "us-west-2";

    pub(crate) fn sim() -> Sim {
        Sim::new(Scenario::default())
    }

    pub(crate) fn instance_arn(region: &str) -> String {
        format!(
            "arn:aws:ec2:{region}:{}:instance/{}",
            ids::ACCOUNT,
            ids::DEFAULT_INSTANCE
        )
    }

    pub(crate) fn role() -> String {
        format!(
            "arn:aws:iam::{}:role/service-role/AWSBackupDefaultServiceRole",
            ids::ACCOUNT
        )
    }

    /// A StartBackupJob of the default instance in us-east-1 into its Default vault.
    pub(crate) fn backup_req(token: &str) -> StartBackupJob {
        StartBackupJob {
            vault: "Default".into(),
            resource_arn: instance_arn(EAST),
            iam_role_arn: role(),
            idempotency_token: token.into(),
            lifecycle: None,
            backup_options: Default::default(),
        }
    }

    pub(crate) async fn sleep(secs: u64) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::cloud::JobState;

    fn scenario(yaml: &str) -> Scenario {
        Scenario::from_yaml_str(yaml, None).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn records_every_call_with_its_error() {
        let sim = sim();
        let cloud = sim.cloud();
        assert_eq!(cloud.backend, "sim");
        sleep(5).await;
        cloud.ec2.describe_images(EAST, &["ami-0abc".into()]).await.unwrap();
        cloud.ec2.describe_images(EAST, &["nope".into()]).await.unwrap_err();
        cloud.ssm.get_parameter("us-east1", "/x").await.unwrap_err();
        let calls = sim.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].operation, "DescribeImages");
        assert_eq!(calls[0].at, Duration::from_secs(5));
        assert!(!calls[0].mutating && calls[0].error.is_none());
        assert_eq!(calls[1].error.as_deref(), Some("InvalidAMIID.Malformed"));
        assert_eq!(calls[2].error.as_deref(), Some("InvalidRegion"));
        assert!(
            is_mutating("backup", "StartCopyJob")
                && is_mutating("ssm", "PutParameter")
                && !is_mutating("cloudformation", "ValidateTemplate")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn error_fault_answers_the_injected_error() {
        let sim = Sim::new(scenario(
            "faults: [{operation: 'backup:DescribeBackupVault', nth: 2, error: {code: ServiceUnavailableException, message: down}}]",
        ));
        let backup = sim.cloud().backup;
        assert!(backup.describe_backup_vault(EAST, "Default").await.is_ok());
        let e = backup.describe_backup_vault(EAST, "Default").await.unwrap_err();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.service.as_str()),
            ("ServiceUnavailableException", "down", "backup")
        );
        assert!(e.kind.is_transient());
        assert!(backup.describe_backup_vault(EAST, "Default").await.is_ok());
        let codes: Vec<_> = sim.calls().into_iter().map(|c| c.error).collect();
        assert_eq!(codes, [None, Some("ServiceUnavailableException".to_string()), None]);
    }

    #[tokio::test(start_paused = true)]
    async fn error_fault_on_a_mutating_call_changes_nothing() {
        let sim = Sim::new(scenario(
            "faults: [{operation: 'backup:StartBackupJob', error: {code: InternalFailure}}]",
        ));
        let backup = sim.cloud().backup;
        let req = backup_req("t1");
        assert_eq!(
            backup.start_backup_job(EAST, &req).await.unwrap_err().code,
            "InternalFailure"
        );
        // The retry with the same token starts the job (the failed call did not).
        let id = backup.start_backup_job(EAST, &req).await.unwrap();
        assert_eq!(
            backup.describe_backup_job(EAST, &id).await.unwrap().state,
            JobState::Created
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_fault_and_default_latency_take_simulated_time() {
        let sim = Sim::new(scenario(
            "latency: 1s\nfaults: [{operation: 'ec2:DescribeInstances', nth: 2, latency: 30s}]",
        ));
        let ec2 = sim.cloud().ec2;
        let started = tokio::time::Instant::now();
        ec2.describe_instances(EAST, &[]).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        ec2.describe_instances(EAST, &[]).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(32));
        assert_eq!(sim.elapsed(), Duration::from_secs(32));
        // Recorded when received, before the latency.
        assert_eq!(sim.calls()[1].at, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_per_region_and_operation() {
        let sim = Sim::new(scenario(
            "throttling: [{operation: 'ssm:GetParameter', capacity: 2, refill_per_second: 1}]",
        ));
        let ssm = sim.cloud().ssm;
        ssm.get_parameter(EAST, "/a").await.unwrap();
        ssm.get_parameter(EAST, "/a").await.unwrap();
        let e = ssm.get_parameter(EAST, "/a").await.unwrap_err();
        assert_eq!(e.code, "ThrottlingException");
        assert!(e.kind.is_transient());
        ssm.get_parameter(WEST, "/a").await.unwrap();
        sleep(1).await;
        ssm.get_parameter(EAST, "/a").await.unwrap();
        assert_eq!(sim.calls()[2].error.as_deref(), Some("ThrottlingException"));
    }

    const CRASH_CHILD: &str = "DRFLOW_SIM_CRASH_CHILD";

    /// Runs only as the child of `crash_fault_saves_the_world_then_aborts` (the variable names its world file).
    #[tokio::test(start_paused = true)]
    async fn crash_child() {
        let Some(path) = std::env::var_os(CRASH_CHILD) else {
            return;
        };
        let sim = Sim::persistent(
            Path::new(&path),
            scenario("faults: [{operation: 'backup:StartBackupJob', crash: true}]"),
        );
        let req = backup_req("tok");
        sleep(30).await;
        let _ = sim.unwrap().cloud().backup.start_backup_job(EAST, &req).await;
        unreachable!("the crash fault aborts the process");
    }

    #[tokio::test(start_paused = true)]
    async fn crash_fault_saves_the_world_then_aborts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cloud::sim::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_CHILD, &path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        #[cfg(unix)]
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(6),
            "{out:?}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("crash fault on backup:StartBackupJob"),
            "{out:?}"
        );

        // The call took effect and was saved before the abort; the fault does not fire again.
        let sim = Sim::persistent(
            &path,
            scenario("faults: [{operation: 'backup:StartBackupJob', crash: true}]"),
        );
        let sim = sim.unwrap();
        assert_eq!(sim.elapsed(), Duration::from_secs(30));
        assert_eq!(sim.calls().len(), 1);
        let req = backup_req("tok");
        let id = sim.cloud().backup.start_backup_job(EAST, &req).await.unwrap();
        assert_eq!(sim.lock().world.regions[EAST].backup_jobs.len(), 1);
        assert_eq!(
            sim.cloud().backup.describe_backup_job(EAST, &id).await.unwrap().job_id,
            id
        );
    }

    /// The layering in the module documentation, checked on the sources: a module names only modules of lower
    /// layers (so two modules never import each other, directly or in a cycle).
    #[test]
    fn modules_import_downward_only() {
        // (layer, module, source); `mod` is this file (`Sim`, `Ctx`), named by the services as `super::{Ctx, Sim}`.
        let modules: &[(u8, &str, &str)] = &[
            (0, "error", include_str!("error.rs")),
            (0, "clock", include_str!("clock.rs")),
            (0, "ids", include_str!("ids.rs")),
            (0, "records", include_str!("records.rs")),
            (0, "rng", include_str!("rng.rs")),
            (0, "backup_plans", include_str!("backup_plans.rs")),
            (1, "scenario", include_str!("scenario.rs")),
            (2, "throttle", include_str!("throttle.rs")),
            (3, "world", include_str!("world.rs")),
            (4, "faults", include_str!("faults.rs")),
            (4, "persist", include_str!("persist.rs")),
            (5, "mod", include_str!("mod.rs")),
            (6, "template", include_str!("template.rs")),
            (6, "backup", include_str!("backup.rs")),
            (6, "ec2", include_str!("ec2.rs")),
            (6, "ssm", include_str!("ssm.rs")),
            (6, "sts", include_str!("sts.rs")),
            (7, "cloudformation", include_str!("cloudformation.rs")),
        ];
        let layer = |name: &str| modules.iter().find(|m| m.1 == name).map(|m| m.0);
        let path = regex::Regex::new(r"\b(?:super|crate::cloud::sim|self)::([a-z_0-9]+)\b").unwrap();
        let bare = regex::Regex::new(r"(?m)(?:^|[^:\w])([a-z_0-9]+)::").unwrap();
        let parent = regex::Regex::new(r"\bsuper::(?:\{[^}]*\b(?:Sim|Ctx)\b|Sim\b|Ctx\b)").unwrap();
        for &(level, name, text) in modules {
            let mut named: Vec<&str> = path.captures_iter(text).map(|c| c.get(1).unwrap().as_str()).collect();
            if name == "mod" {
                // Paths to child modules need no prefix here: `faults::plan(..)`.
                named.extend(bare.captures_iter(text).map(|c| c.get(1).unwrap().as_str()));
            } else if parent.is_match(text) {
                named.push("mod");
            }
            for other in named.into_iter().filter(|o| *o != name) {
                if let Some(l) = layer(other) {
                    assert!(l < level, "`{name}` (layer {level}) names `{other}` (layer {l})");
                }
            }
        }
    }

    /// The world without its call log and call counts (which differ whenever faults do).
    fn resources(sim: &Sim) -> serde_json::Value {
        let state = sim.lock();
        let w = &state.world;
        serde_json::json!({"regions": w.regions, "ids": w.ids, "started": w.started, "buckets": w.buckets})
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_performs_the_call_then_answers_the_error() {
        let lossy = Sim::new(scenario(
            "faults: [{operation: 'backup:StartBackupJob', lose_response: true}]",
        ));
        let plain = sim();
        sleep(3).await;
        let e = lossy
            .cloud()
            .backup
            .start_backup_job(EAST, &backup_req("t1"))
            .await
            .unwrap_err();
        assert_eq!((e.code.as_str(), e.service.as_str()), ("InternalError", "backup"));
        assert!(e.kind.is_transient());
        let id = plain
            .cloud()
            .backup
            .start_backup_job(EAST, &backup_req("t1"))
            .await
            .unwrap();
        // The world changed exactly as without the fault: the same job (same id), AMI and counters.
        assert_eq!(resources(&lossy), resources(&plain));
        assert!(lossy.lock().world.regions[EAST].backup_jobs.contains_key(&id));
        let call = &lossy.calls()[0];
        assert!(call.performed && call.response_lost, "{call:?}");
        assert_eq!(call.error.as_deref(), Some("InternalError"));
        let call = &plain.calls()[0];
        assert!(
            call.performed && !call.response_lost && call.error.is_none(),
            "{call:?}"
        );
        // The fault is spent: the retry (same token) gets the job the lost call started.
        let retry = lossy.cloud().backup.start_backup_job(EAST, &backup_req("t1")).await;
        assert_eq!(retry.unwrap(), id);
        assert_eq!(lossy.lock().world.regions[EAST].backup_jobs.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_only_affects_calls_that_are_performed() {
        let sim = Sim::new(scenario(
            "throttling: [{operation: 'ssm:PutParameter', capacity: 1, refill_per_second: 0}]\n\
             faults:\n\
             - {operation: 'ssm:PutParameter', nth: 2, error: {code: AccessDeniedException}}\n\
             - {operation: 'ssm:*', count: 0, lose_response: true, error: {code: RequestTimeout, message: timed out}}",
        ));
        let ssm = sim.cloud().ssm;
        let req = crate::cloud::PutParameter {
            name: "/dr/x".into(),
            value: "v1".into(),
            data_type: "text".into(),
            description: None,
            overwrite: false,
            tags: Default::default(),
        };
        // 1: performed (stored), response lost. 2: refused by the earlier error fault. 3: throttled.
        for code in ["RequestTimeout", "AccessDeniedException", "ThrottlingException"] {
            assert_eq!(ssm.put_parameter(EAST, &req).await.unwrap_err().code, code);
        }
        // 4: a read, performed, its answer lost; 5: an unknown region.
        assert_eq!(ssm.get_parameter(EAST, "/dr/x").await.unwrap_err().message, "timed out");
        assert_eq!(
            ssm.get_parameter("moon", "/dr/x").await.unwrap_err().code,
            "InvalidRegion"
        );
        let log: Vec<_> = sim
            .calls()
            .into_iter()
            .map(|c| (c.performed, c.response_lost))
            .collect();
        assert_eq!(
            log,
            [
                (true, true),
                (false, false),
                (false, false),
                (true, true),
                (false, false)
            ]
        );
        let stored = &sim.lock().world.regions[EAST].parameters["/dr/x"];
        assert_eq!((stored.latest().value.as_str(), stored.versions.len()), ("v1", 1));
    }

    #[tokio::test(start_paused = true)]
    async fn probabilistic_faults_continue_their_sequence_in_a_resumed_world() {
        let yaml = "seed: 7\nfaults: [{operation: 'sts:GetCallerIdentity', probability: 0.5, error: {code: X}}]";
        async fn outcomes(sim: &Sim, n: usize) -> Vec<bool> {
            let mut hits = Vec::new();
            for _ in 0..n {
                hits.push(sim.cloud().sts.get_caller_identity(EAST).await.is_err());
            }
            hits
        }
        // One process, 40 calls.
        let whole = outcomes(&Sim::new(scenario(yaml)), 40).await;
        assert!((10..30).contains(&whole.iter().filter(|h| **h).count()), "{whole:?}");
        assert_eq!(outcomes(&Sim::new(scenario(yaml)), 40).await, whole, "deterministic");
        let other = outcomes(&Sim::new(scenario(&yaml.replace("seed: 7", "seed: 8"))), 40).await;
        assert_ne!(other, whole);

        // A persisted world: 15 calls, then the process ends (the world is saved after every call, as before a crash
        // fault's abort), then 25 calls in the next process.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sim/world.json");
        let mut resumed = outcomes(&Sim::persistent(&path, scenario(yaml)).unwrap(), 15).await;
        // The generator is the world's: a changed seed applies to new worlds only.
        let next = Sim::persistent(&path, scenario(&yaml.replace("seed: 7", "seed: 8"))).unwrap();
        resumed.extend(outcomes(&next, 25).await);
        assert_eq!(resumed, whole);
    }

    /// 30% ThrottlingException on every call, and 30% lost responses on every call that starts work.
    const CHAOS: &str = r#"
faults:
  - {operation: "*", probability: 0.3, error: {code: ThrottlingException, message: Rate exceeded}}
  - {operation: "backup:Start*", probability: 0.3, lose_response: true}
  - {operation: "ec2:CreateImage", probability: 0.3, lose_response: true}
  - {operation: "ec2:CopyImage", probability: 0.3, lose_response: true}
  - {operation: "ec2:DeregisterImage", probability: 0.3, lose_response: true}
  - {operation: "ec2:DeleteSnapshot", probability: 0.3, lose_response: true}
  - {operation: "ec2:Modify*Attribute", probability: 0.3, lose_response: true}
  - {operation: "cloudformation:*Stack", probability: 0.3, lose_response: true}
  - {operation: "ssm:PutParameter", probability: 0.3, lose_response: true}
  - {operation: "sns:Publish", probability: 0.3, lose_response: true}
"#;

    #[tokio::test(start_paused = true)]
    async fn chaos_scenario_throttles_every_call_and_loses_start_responses() {
        // The lost responses cover exactly the thirteen calls that change things (start work, write, delete, notify).
        let chaos = scenario(CHAOS);
        let ops = scenario::operations();
        let mutating = |op: &str| {
            let (service, name) = op.split_once(':').unwrap();
            is_mutating(service, name)
        };
        for op in &ops {
            let lost = chaos.faults.iter().any(|f| f.lose_response && f.matches(op));
            assert_eq!(lost, mutating(op), "{op}");
        }
        let starts = ops.iter().filter(|op| mutating(op));
        assert_eq!(starts.count(), 13);
        let sim = Sim::new(chaos);
        let cloud = sim.cloud();
        let put = crate::cloud::PutParameter {
            name: "/dr/x".into(),
            value: "v".into(),
            data_type: "text".into(),
            description: None,
            overwrite: true,
            tags: Default::default(),
        };
        for _ in 0..1000 {
            // A second apart, so the default token buckets never throttle.
            sleep(1).await;
            let _ = cloud.ssm.get_parameter(EAST, "/dr/x").await;
            let _ = cloud.ssm.put_parameter(EAST, &put).await;
        }
        let calls = sim.calls();
        let share = |op: &str, what: &dyn Fn(&Call) -> bool| {
            let of_op: Vec<&Call> = calls.iter().filter(|c| c.operation == op).collect();
            of_op.iter().filter(|c| what(c)).count() as f64 / of_op.len() as f64
        };
        let throttled = |c: &Call| c.error.as_deref() == Some("ThrottlingException");
        for op in ["GetParameter", "PutParameter"] {
            let s = share(op, &throttled);
            assert!((0.25..0.35).contains(&s), "{op}: {s}");
        }
        // Reads never lose their response; 30% of the start calls that are not throttled do.
        assert_eq!(share("GetParameter", &|c| c.response_lost), 0.0);
        let lost = share("PutParameter", &|c| c.response_lost);
        assert!((0.7 * 0.25..0.7 * 0.35).contains(&lost), "{lost}");
        assert!(
            calls
                .iter()
                .filter(|c| c.response_lost)
                .all(|c| c.performed && c.error.as_deref() == Some("InternalError"))
        );
        // Every PutParameter that was not throttled was performed: one version each (SSM keeps the last 100).
        let performed = calls
            .iter()
            .filter(|c| c.operation == "PutParameter" && c.performed)
            .count();
        let param = &sim.lock().world.regions[EAST].parameters["/dr/x"];
        assert_eq!(param.latest().version as usize, performed);
        assert_eq!(param.versions.len(), performed.min(100));
    }

    #[tokio::test(start_paused = true)]
    async fn ensure_regions_creates_defaults() {
        let sim = sim();
        sim.ensure_regions(&[WEST.to_string()]);
        let state = sim.lock();
        assert!(state.world.regions[WEST].vaults.contains("Default"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_save_appends_what_changed_and_a_reload_sees_the_same_world() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        let sim = Sim::persistent(&path, Scenario::default()).unwrap();
        let snapshot = std::fs::metadata(&path).unwrap().len();
        let mut jobs = Vec::new();
        for n in 0..20 {
            let id = sim
                .cloud()
                .backup
                .start_backup_job(EAST, &backup_req(&format!("t{n}")))
                .await
                .unwrap();
            jobs.push(id);
        }
        // Twenty saves: the snapshot as it was, the log holding the changes (each line much smaller than the world).
        assert_eq!(std::fs::metadata(&path).unwrap().len(), snapshot);
        let log = std::fs::read_to_string(persist::log_path(&path)).unwrap();
        assert_eq!(log.lines().count(), 20);
        let expected = serde_json::to_value(&sim.lock().world).unwrap();
        drop(sim);
        let again = persist::load(&path).unwrap();
        assert_eq!(serde_json::to_value(&again).unwrap(), expected);
        // A log line of another generation (left by a crash between a new snapshot and the log's clearing) is
        // ignored.
        let mut stale: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
        stale["generation"] = serde_json::json!(0);
        stale["created_unix"] = serde_json::json!(1);
        std::fs::write(persist::log_path(&path), format!("{log}{stale}\n")).unwrap();
        assert_eq!(serde_json::to_value(persist::load(&path).unwrap()).unwrap(), expected);
        let sim = Sim::persistent(&path, Scenario::default()).unwrap();
        let job = sim.cloud().backup.describe_backup_job(EAST, &jobs[19]).await.unwrap();
        assert_eq!(job.job_id, jobs[19]);
    }

    #[tokio::test(start_paused = true)]
    async fn persisted_world_continues_its_clock_and_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/world.json");
        let yaml = "faults: [{operation: 'backup:DescribeBackupJob', nth: 1, error: {code: InternalFailure}}]";
        let req = backup_req("tok");
        let id = {
            let sim = Sim::persistent(&path, scenario(yaml)).unwrap();
            assert!(path.exists());
            sleep(60).await;
            let id = sim.cloud().backup.start_backup_job(EAST, &req).await.unwrap();
            // The fault fires on the first DescribeBackupJob of the world.
            assert!(sim.cloud().backup.describe_backup_job(EAST, &id).await.is_err());
            sleep(120).await;
            id
        };
        // No tmp file left behind.
        let mut names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["calls.jsonl", "world.json", "world.log"].map(std::ffi::OsString::from)
        );

        let yaml = format!("{yaml}\nvaults: [{{name: Late, region: us-east-1}}]");
        let sim = Sim::persistent(&path, scenario(&yaml)).unwrap();
        // Scenario items the saved world lacks are added.
        assert!(sim.cloud().backup.describe_backup_vault(EAST, "Late").await.is_ok());
        // The clock continues from the last save (time between processes does not count).
        assert_eq!(sim.elapsed(), Duration::from_secs(60));
        assert_eq!(sim.calls().len(), 3);
        let backup = sim.cloud().backup;
        // Not fired again: the count is persisted.
        let job = backup.describe_backup_job(EAST, &id).await.unwrap();
        assert_eq!(job.state, JobState::Created);
        // Same token: same job, also after a restart.
        assert_eq!(backup.start_backup_job(EAST, &req).await.unwrap(), id);
        sleep(10 * 60).await;
        assert_eq!(
            backup.describe_backup_job(EAST, &id).await.unwrap().state,
            JobState::Completed
        );
        assert_eq!(sim.elapsed(), Duration::from_secs(660));
        drop(sim);

        // Garbage is a parse error with a location.
        std::fs::write(&path, "{\"format\": 1,\n  oops").unwrap();
        let e = Sim::persistent(&path, Scenario::default()).err().unwrap();
        assert!(matches!(e, SimError::Parse { .. }), "{e}");
        assert!(e.to_string().contains("world.json:2:"), "{e}");
        std::fs::write(&path, "{\"format\": 99}").unwrap();
        let e = Sim::persistent(&path, Scenario::default()).err().unwrap();
        assert!(matches!(e, SimError::Version { found: 99, .. }), "{e}");
    }
}
