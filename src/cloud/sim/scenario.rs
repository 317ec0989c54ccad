//! The scenario: what the simulated world starts with and how it misbehaves. Read from YAML; every field defaulted.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::backup_plans::BackupPlanSpec;
use super::error::SimError;
use super::ids::{is_ami_id, looks_like_region};

/// The `seed` of a scenario that sets none.
pub const DEFAULT_SEED: u64 = 0;

/// A simulation scenario. `Scenario::default()` is the default world with no faults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Every region gets a `Default` vault, a base AMI and instance `i-0123456789abcdef0`. `false` starts empty.
    pub default_world: bool,
    /// Regions created up front (any other region is created on first use).
    pub regions: Vec<String>,
    pub instances: Vec<InstanceSpec>,
    pub vaults: Vec<VaultSpec>,
    /// SNS topics (`{name, region}`: ARN `arn:aws:sns:REGION:123456789012:NAME`).
    pub topics: Vec<VaultSpec>,
    pub parameters: Vec<ParameterSpec>,
    pub images: Vec<ImageSpec>,
    pub durations: Durations,
    /// Added to every call before it is answered (simulated time).
    #[serde(deserialize_with = "duration::de")]
    pub latency: Duration,
    pub faults: Vec<Fault>,
    /// Seeds the random draws of faults with a `probability`. Used when the world is created: a persisted world
    /// keeps its generator's state and continues its sequence across processes.
    pub seed: u64,
    pub fail_jobs: Vec<FailJob>,
    pub throttling: Vec<Throttle>,
    /// Instances launched by stacks whose status checks end `impaired` instead of `ok`.
    pub impair_instances: Vec<ImpairInstance>,
    /// AWS's limits on concurrent jobs, as the simulated account has them.
    pub quotas: SimQuotas,
    /// AWS Backup plans and their selections (read by ListBackupSelections / GetBackupSelection).
    pub backup_plans: Vec<BackupPlanSpec>,
    /// What a Backup plan with a copy rule made before the world was created: recovery points in the past, with or
    /// without DR copies (`super::history`).
    pub plan_history: Vec<super::history::HistorySpec>,
    /// KMS keys (ids, ARNs or aliases) DescribeKey does not find. Every other key exists, enabled and
    /// customer-managed, except `alias/aws/ebs`, the AWS managed key.
    pub missing_kms_keys: Vec<String>,
    /// Role ARNs whose AssumeRole is refused (AccessDenied), e.g. a trust policy that does not name the caller.
    pub denied_roles: Vec<String>,
}

/// AWS's limits on concurrent jobs. AWS Backup queues what is beyond its limits (a queued job stays CREATED until a
/// slot frees); EC2 refuses a CopyImage beyond them (`ResourceLimitExceeded`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimQuotas {
    /// AWS Backup copy jobs running into one destination region.
    pub backup_copies: usize,
    /// EC2 AMI copies in progress into one region.
    pub image_copies: usize,
    /// EBS snapshot copies in progress into one region (one per simulated AMI).
    pub snapshot_copies: usize,
}

impl Default for SimQuotas {
    fn default() -> Self {
        SimQuotas {
            backup_copies: 100,
            image_copies: 300,
            snapshot_copies: 20,
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            default_world: true,
            regions: Vec::new(),
            instances: Vec::new(),
            vaults: Vec::new(),
            topics: Vec::new(),
            parameters: Vec::new(),
            images: Vec::new(),
            durations: Durations::default(),
            latency: Duration::ZERO,
            faults: Vec::new(),
            seed: DEFAULT_SEED,
            fail_jobs: Vec::new(),
            throttling: Vec::new(),
            impair_instances: Vec::new(),
            quotas: SimQuotas::default(),
            backup_plans: Vec::new(),
            plan_history: Vec::new(),
            missing_kms_keys: Vec::new(),
            denied_roles: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceSpec {
    pub id: String,
    pub region: String,
    /// Defaults to the region's base AMI (created if missing).
    #[serde(default)]
    pub image_id: Option<String>,
    /// Defaults to `running`.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The size of its volumes, GiB (default 8): its backup and copy jobs take time in proportion.
    #[serde(default)]
    pub size_gib: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSpec {
    pub name: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSpec {
    pub name: String,
    pub region: String,
    pub value: String,
    /// `text` (default) or `aws:ec2:image`; not validated against the images.
    #[serde(default = "text")]
    pub data_type: String,
    /// How many versions it has, all with `value` (default 1): e.g. 100, SSM's limit.
    #[serde(default)]
    pub versions: Option<i64>,
    /// Labels on its oldest version (LabelParameterVersion): with 100 versions, the next write fails with
    /// ParameterMaxVersionLimitExceeded.
    #[serde(default)]
    pub labels: Vec<String>,
}

fn text() -> String {
    "text".to_string()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    pub id: String,
    pub region: String,
    /// Defaults to `available`. Fixed: a scenario image never changes state (unless `available_after` is set).
    #[serde(default)]
    pub state: Option<String>,
    /// `pending` until this simulated time (since the world was created), then `available`. Excludes `state`.
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub available_after: Option<Duration>,
    #[serde(default)]
    pub name: Option<String>,
    /// How old the image already is when the world is made: its creation date is that long before the world's
    /// (e.g. `3d` for a stale DR AMI).
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub age: Option<Duration>,
    /// Its tags, e.g. `drflow:instance` (what `ec2.prune_images` looks for) or `aws:backup:source-resource` (an
    /// AMI AWS Backup manages). A scenario image has one EBS snapshot.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// How long simulated work takes. Strings like `30s`, `8m`, `2h`, `1h 30m`, or a number of seconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Durations {
    /// Backup job: CREATED for this long, then RUNNING.
    #[serde(deserialize_with = "duration::de")]
    pub backup_created: Duration,
    /// Backup job: RUNNING for this long, then COMPLETED (or FAILED).
    #[serde(deserialize_with = "duration::de")]
    pub backup_running: Duration,
    #[serde(deserialize_with = "duration::de")]
    pub copy_created: Duration,
    #[serde(deserialize_with = "duration::de")]
    pub copy_running: Duration,
    /// CreateImage: pending for this long, then available.
    #[serde(deserialize_with = "duration::de")]
    pub image: Duration,
    /// CopyImage: pending for this long, then available.
    #[serde(deserialize_with = "duration::de")]
    pub copy_image: Duration,
    /// Stack create/update: *_IN_PROGRESS for this long.
    #[serde(deserialize_with = "duration::de")]
    pub stack: Duration,
    /// Stack delete: DELETE_IN_PROGRESS for this long, then the stack is gone.
    #[serde(deserialize_with = "duration::de")]
    pub stack_delete: Duration,
    /// The instance size (GiB) the job durations above are for: a backup or copy job of an instance of another
    /// size runs for its duration times size / `reference_gib`.
    pub reference_gib: u64,
    /// Each job runs for its duration times a factor between 1 - `spread` and 1 + `spread`, drawn from its id (0 to
    /// 0.9): jobs of the same size differ as much.
    pub spread: f64,
}

impl Durations {
    /// `base` for an instance of `size_gib`, times a factor in 1 ± `spread` drawn from `id`.
    pub(crate) fn scaled(&self, base: Duration, size_gib: u64, id: &str) -> Duration {
        // FNV-1a, then a finaliser (splitmix64) so that ids differing in one character draw unrelated factors.
        let mut h = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
        h ^= h >> 31;
        let unit = (h >> 11) as f64 / (1u64 << 53) as f64;
        let factor = 1.0 + self.spread.clamp(0.0, 0.9) * (2.0 * unit - 1.0);
        base.mul_f64(size_gib as f64 / self.reference_gib.max(1) as f64 * factor)
    }
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            backup_created: Duration::from_secs(10),
            backup_running: Duration::from_secs(8 * 60),
            copy_created: Duration::from_secs(10),
            copy_running: Duration::from_secs(12 * 60),
            image: Duration::from_secs(5 * 60),
            copy_image: Duration::from_secs(10 * 60),
            stack: Duration::from_secs(2 * 60),
            stack_delete: Duration::from_secs(60),
            reference_gib: super::records::DEFAULT_SIZE_GIB,
            spread: 0.0,
        }
    }
}

/// A fault injected into calls of the operations `operation` matches. Calls are counted per actual
/// `service:Operation` (and, for a fault with a `region`, per region): calls number `nth` .. `nth + count - 1` of
/// each such operation (1-based) are affected, each one with `probability` if set.
///
/// Calls are counted in the world, so with a persisted world the count continues across processes: a fault that
/// fired before a crash does not fire again after the resume. The random draws come from the world's generator
/// (seeded by the scenario's `seed`), which a persisted world keeps too.
///
/// When several faults hit one call, their latencies add up, and the first of them (in scenario order) with an
/// `error` or `lose_response` decides the answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `service:Operation`, e.g. `backup:DescribeBackupJob`, or a glob in which `*` matches any characters: `*`
    /// (every call), `backup:Start*`, `*:Start*`, `cloudformation:*Stack`.
    pub operation: String,
    /// Only count (and affect) calls in this region.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "one")]
    pub nth: u64,
    /// How many calls (of each matching operation, from `nth` on) are affected; `0` means no limit. Omitted: 1, or
    /// no limit when `probability` is set. See `Fault::window`.
    #[serde(default)]
    pub count: Option<u64>,
    /// Each call in the window is hit with this probability (0 to 1); a call that is not hit is left alone.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Answer with this error instead of performing the call; with `lose_response`, the error answered after
    /// performing it.
    #[serde(default)]
    pub error: Option<FaultError>,
    /// Wait this long (simulated) before answering.
    #[serde(default, deserialize_with = "duration::de_opt")]
    pub latency: Option<Duration>,
    /// Perform the call, save the world, then `abort()` the process before answering (a `kill -9`).
    #[serde(default)]
    pub crash: bool,
    /// Perform the call (the world changes as without the fault), then answer `error` instead of the call's answer
    /// (default: `InternalError`, a transient error): AWS did the work, the response was lost. A call that is not
    /// performed anyway (throttled, an unknown region, or refused by an earlier `error` fault) is not affected.
    #[serde(default)]
    pub lose_response: bool,
}

/// The error a `lose_response` fault answers when it names none.
pub(crate) const LOST_RESPONSE_CODE: &str = "InternalError";

impl Fault {
    /// Whether `operation` (a glob) matches this `service:Operation`.
    pub(crate) fn matches(&self, key: &str) -> bool {
        glob_match(&self.operation, key)
    }

    /// How many calls from `nth` on are affected; `None`: no limit.
    pub(crate) fn window(&self) -> Option<u64> {
        match (self.count, self.probability) {
            (Some(0), _) | (None, Some(_)) => None,
            (Some(n), _) => Some(n),
            (None, None) => Some(1),
        }
    }

    /// Whether the `n`th call (1-based) of an operation is in the window (before any `probability`).
    pub(crate) fn in_window(&self, n: u64) -> bool {
        n >= self.nth && self.window().is_none_or(|count| n - self.nth < count)
    }
}

/// `*` matches any run of characters (also none, also `:`); every other character matches itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    crate::cloud::backup_plan::wildcard(pattern, text)
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultError {
    pub code: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// The `nth` (1-based) job of that kind started in this world ends FAILED with `message`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailJob {
    pub kind: JobKind,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Backup jobs (StartBackupJob): FAILED, and the AMI goes `failed`.
    Backup,
    /// Copy jobs (StartCopyJob): FAILED, and the DR AMI goes `failed`.
    Copy,
    /// AMIs from CreateImage and CopyImage: they go `failed` instead of `available`.
    Image,
}

impl JobKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Copy => "copy",
            JobKind::Image => "image",
        }
    }
}

/// The `nth` (1-based) instance launched by a stack in this world reports `check` as `impaired` once its status
/// checks stop `initializing` (DescribeInstanceStatus), as an instance that cannot boot would.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImpairInstance {
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default)]
    pub check: StatusCheck,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCheck {
    /// The instance status check (the guest OS is unreachable).
    #[default]
    Instance,
    /// The system status check (the host is failing).
    System,
}

/// Overrides the token bucket of one operation (each region has its own bucket).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// `service:Operation`.
    pub operation: String,
    pub capacity: f64,
    pub refill_per_second: f64,
}

/// A commented scenario using every field.
pub const EXAMPLE_SCENARIO: &str = include_str!("scenario.example.yaml");

/// Every `service:Operation` the simulator answers: the one table of operations (`cloud::operations`).
pub(crate) fn operations() -> Vec<String> {
    crate::cloud::operations::OPERATIONS
        .iter()
        .map(|o| format!("{}:{}", o.service, o.name))
        .collect()
}

impl Scenario {
    pub fn from_yaml_file(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Scenario::from_yaml_str(&text, Some(path))
    }

    /// Parses and validates; `path` only names the source in errors.
    pub fn from_yaml_str(text: &str, path: Option<&Path>) -> Result<Scenario, SimError> {
        let name = path.unwrap_or(Path::new("<scenario>"));
        // An empty file is the default scenario.
        let scenario: Scenario = if text.trim().is_empty() {
            Scenario::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| SimError::yaml(name, &e))?
        };
        scenario.validate().map_err(|message| SimError::Invalid {
            path: path.map(Path::to_path_buf),
            message,
        })?;
        Ok(scenario)
    }

    /// Checks what serde cannot: operation names, one action per fault, positive counts and rates.
    pub fn validate(&self) -> Result<(), String> {
        let known = |op: &str, what: &str| {
            if operations().iter().any(|o| o == op) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: unknown operation `{op}`; expected one of: {}",
                    operations().join(", ")
                ))
            }
        };
        let matches_some = |pattern: &str, what: &str| {
            if !pattern.contains('*') {
                return known(pattern, what);
            }
            if operations().iter().any(|op| glob_match(pattern, op)) {
                Ok(())
            } else {
                Err(format!(
                    "{what}: `{pattern}` matches no operation; operations are: {}",
                    operations().join(", ")
                ))
            }
        };
        let d = &self.durations;
        if !(0.0..=0.9).contains(&d.spread) {
            return Err(format!("durations.spread must be between 0 and 0.9, not {}", d.spread));
        }
        if d.reference_gib == 0 {
            return Err("durations.reference_gib must be at least 1".into());
        }
        if let Some(i) = self.instances.iter().find(|i| i.size_gib == Some(0)) {
            return Err(format!("instance {}: size_gib must be at least 1", i.id));
        }
        for (i, f) in self.faults.iter().enumerate() {
            let what = format!("faults[{i}]");
            matches_some(&f.operation, &what)?;
            // `error` is an action of its own, or what `lose_response` answers.
            let actions = usize::from(f.error.is_some() && !f.lose_response)
                + usize::from(f.latency.is_some())
                + usize::from(f.crash)
                + usize::from(f.lose_response);
            if actions != 1 {
                return Err(format!(
                    "{what}: set exactly one of `error`, `latency`, `crash: true`, `lose_response: true` \
                     (`lose_response` may come with the `error` to answer)"
                ));
            }
            if f.nth == 0 {
                return Err(format!("{what}: `nth` starts at 1"));
            }
            if let Some(p) = f.probability
                && !(p.is_finite() && (0.0..=1.0).contains(&p))
            {
                return Err(format!("{what}: `probability` must be between 0 and 1, not {p}"));
            }
            if let Some(e) = &f.error
                && e.code.trim().is_empty()
            {
                return Err(format!("{what}: `error.code` is empty"));
            }
        }
        for (i, t) in self.throttling.iter().enumerate() {
            let what = format!("throttling[{i}]");
            known(&t.operation, &what)?;
            let valid = t.capacity.is_finite()
                && t.capacity >= 1.0
                && t.refill_per_second.is_finite()
                && t.refill_per_second >= 0.0;
            if !valid {
                return Err(format!(
                    "{what}: `capacity` must be at least 1 and `refill_per_second` at least 0"
                ));
            }
        }
        for (i, j) in self.fail_jobs.iter().enumerate() {
            if j.nth == 0 {
                return Err(format!("fail_jobs[{i}]: `nth` starts at 1"));
            }
        }
        for (i, x) in self.impair_instances.iter().enumerate() {
            if x.nth == 0 {
                return Err(format!("impair_instances[{i}]: `nth` starts at 1"));
            }
        }
        for (i, p) in self.parameters.iter().enumerate() {
            if !matches!(p.data_type.as_str(), "text" | "aws:ec2:image") {
                return Err(format!("parameters[{i}]: data_type must be `text` or `aws:ec2:image`"));
            }
            if !(1..=100).contains(&p.versions.unwrap_or(1)) {
                return Err(format!(
                    "parameters[{i}]: versions must be 1 to 100 (SSM keeps the last 100)"
                ));
            }
        }
        let regions = self
            .regions
            .iter()
            .chain(self.instances.iter().map(|x| &x.region))
            .chain(self.vaults.iter().map(|x| &x.region))
            .chain(self.parameters.iter().map(|x| &x.region))
            .chain(self.images.iter().map(|x| &x.region))
            .chain(self.backup_plans.iter().map(|x| &x.region))
            .chain(self.plan_history.iter().flat_map(|x| [&x.region, &x.dr_region]));
        for r in regions {
            if !looks_like_region(r) {
                return Err(format!("`{r}` is not a region code (like us-east-1)"));
            }
        }
        for (i, img) in self.images.iter().enumerate() {
            if !is_ami_id(&img.id) {
                return Err(format!(
                    "images[{i}]: id `{}` must be `ami-` followed by hex digits",
                    img.id
                ));
            }
            if img.state.is_some() && img.available_after.is_some() {
                return Err(format!("images[{i}]: set `state` or `available_after`, not both"));
            }
        }
        for (i, p) in self.backup_plans.iter().enumerate() {
            p.validate(&format!("backup_plans[{i}]"))?;
        }
        for (i, h) in self.plan_history.iter().enumerate() {
            h.validate(&format!("plan_history[{i}]"))?;
        }
        for (i, inst) in self.instances.iter().enumerate() {
            if !inst.id.starts_with("i-") {
                return Err(format!("instances[{i}]: id `{}` must start with `i-`", inst.id));
            }
        }
        Ok(())
    }
}

/// Durations in YAML: `30s`, `8m`, `2h`, `1h 30m`, `500ms` (humantime), or a plain number of seconds.
pub(crate) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Float(f64),
        Text(String),
    }

    fn convert<E: serde::de::Error>(raw: Raw) -> Result<Duration, E> {
        match raw {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Float(f) => Duration::try_from_secs_f64(f).map_err(|_| E::custom(format!("invalid duration {f}"))),
            Raw::Text(t) => parse(&t).map_err(E::custom),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text.trim())
            .map_err(|e| format!("invalid duration `{text}` ({e}); write e.g. `30s`, `8m`, `2h`"))
    }

    pub(crate) fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        convert(Raw::deserialize(d)?)
    }

    pub(crate) fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<Raw>::deserialize(d)?.map(convert).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_scenario() {
        let s = Scenario::from_yaml_str(
            r#"
default_world: true
regions: [us-east-1]
instances: [{id: i-0aaaaaaaaaaaaaaaa, region: us-west-2}]
vaults: [{name: Dr, region: us-west-2}]
parameters: [{name: /app/ami, region: us-west-2, value: ami-0123, data_type: "aws:ec2:image"}]
images: [{id: ami-0bbbbbbbbbbbbbbbb, region: us-west-2, state: pending}]
durations: {backup_running: 30s, copy_running: 2m, stack: 90}
latency: 100ms
faults:
  - {operation: "backup:DescribeBackupJob", nth: 2, count: 3, error: {code: ThrottlingException, message: slow down}}
  - {operation: "ec2:DescribeImages", latency: 2s}
  - {operation: "ssm:PutParameter", crash: true}
fail_jobs: [{kind: copy, nth: 1, message: boom}]
throttling: [{operation: "ec2:DescribeImages", capacity: 2, refill_per_second: 0.5}]
"#,
            None,
        )
        .unwrap();
        assert_eq!(s.durations.backup_running, Duration::from_secs(30));
        assert_eq!(s.durations.backup_created, Duration::from_secs(10));
        assert_eq!(s.durations.stack, Duration::from_secs(90));
        assert_eq!(s.latency, Duration::from_millis(100));
        assert_eq!(s.faults[0].count, Some(3));
        assert_eq!(s.faults[1].latency, Some(Duration::from_secs(2)));
        assert_eq!(s.faults[1].nth, 1);
        assert_eq!(s.fail_jobs[0].kind, JobKind::Copy);
    }

    #[test]
    fn validates_globs_probabilities_counts_and_lost_responses() {
        let ok = |yaml: &str| Scenario::from_yaml_str(yaml, None).unwrap();
        let err = |yaml: &str| Scenario::from_yaml_str(yaml, None).unwrap_err().to_string();
        let s = ok("seed: 99\nfaults: [{operation: '*:Start*', probability: 0.3, lose_response: true}]");
        let f = &s.faults[0];
        assert_eq!(
            (s.seed, f.count, f.probability, f.window()),
            (99, None, Some(0.3), None)
        );
        assert!(f.matches("backup:StartCopyJob") && !f.matches("ec2:CopyImage"));
        let f =
            &ok("faults: [{operation: 'ec2:CopyImage', count: 0, lose_response: true, error: {code: X}}]").faults[0];
        assert_eq!((f.window(), f.in_window(1), f.in_window(1_000_000)), (None, true, true));
        let f = &ok("faults: [{operation: '*', nth: 3, count: 2, probability: 1, latency: 1s}]").faults[0];
        assert_eq!(f.window(), Some(2));
        assert_eq!(
            (2..=5).map(|n| f.in_window(n)).collect::<Vec<_>>(),
            [false, true, true, false]
        );
        assert_eq!(
            ok("faults: [{operation: '*', error: {code: X}}]").faults[0].window(),
            Some(1)
        );

        assert!(err("faults: [{operation: 'Start*', crash: true}]").contains("`Start*` matches no operation"));
        assert!(err("faults: [{operation: 'ec2:Start*', crash: true}]").contains("matches no operation"));
        for p in ["1.5", "-0.1", ".nan"] {
            let e = err(&format!(
                "faults: [{{operation: '*', probability: {p}, error: {{code: X}}}}]"
            ));
            assert!(e.contains("`probability` must be between 0 and 1"), "{e}");
        }
        for both in ["crash: true", "latency: 1s"] {
            let e = err(&format!("faults: [{{operation: '*', lose_response: true, {both}}}]"));
            assert!(e.contains("exactly one of"), "{e}");
        }
        assert!(err("faults: [{operation: '*', nth: 0, error: {code: X}}]").contains("`nth` starts at 1"));
        assert!(err("faults: [{operation: '*', lose_response: true, error: {code: ' '}}]").contains("empty"));
        assert!(err("seed: -1").contains("seed"));
    }

    #[test]
    fn the_example_parses() {
        let s = Scenario::from_yaml_str(EXAMPLE_SCENARIO, None).unwrap();
        assert_eq!(s.faults.len(), 7);
        assert!(s.faults[3].lose_response && s.faults[3].error.is_none());
        assert_eq!((s.faults[5].probability, s.faults[5].window()), (Some(0.05), None));
        assert_eq!(s.seed, DEFAULT_SEED);
        assert_eq!(s.images[1].available_after, Some(Duration::from_secs(15 * 60)));
        assert_eq!(s.durations, Durations::default());
        assert_eq!(s.backup_plans[0].selections[0].conditions.string_not_like.len(), 1);
    }

    #[test]
    fn empty_text_is_the_default_world() {
        assert_eq!(Scenario::from_yaml_str("", None).unwrap(), Scenario::default());
        assert!(Scenario::default().default_world);
    }

    #[test]
    fn unknown_fields_report_line_and_column() {
        let err = Scenario::from_yaml_str("durations:\n  stak: 2m\n", Some(Path::new("s.yaml"))).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("s.yaml:2:3: "), "{text}");
        assert!(text.contains("unknown field `stak`"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
    }

    #[test]
    fn rejects_unknown_operations_and_double_actions() {
        let err = Scenario::from_yaml_str("faults: [{operation: 'ec2:RunInstances', crash: true}]", None).unwrap_err();
        assert!(
            err.to_string().contains("unknown operation `ec2:RunInstances`"),
            "{err}"
        );
        let err = Scenario::from_yaml_str(
            "faults: [{operation: 'ec2:CopyImage', crash: true, error: {code: X}}]",
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
        let err = Scenario::from_yaml_str("durations: {stack: soon}", None).unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }
}
