//! The plan's data: what a run will do, as computed by `compute` without calling AWS. Serialized as the
//! `drflow-plan/1` JSON document (schema in `render_json`); field order here is the order in the JSON.

use std::time::Duration;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// The `format` field of the JSON document. Bumped only on incompatible changes.
pub const FORMAT: &str = "drflow-plan/1";

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format: &'static str,
    /// The workflow's `name`.
    pub workflow: String,
    /// The workflow file as given on the command line.
    pub file: String,
    /// Every input after defaults, in the workflow's order.
    #[serde(serialize_with = "ordered")]
    pub inputs: Vec<(String, Value)>,
    /// Inputs that took their default (shown as such in the text).
    #[serde(skip)]
    pub defaulted: Vec<String>,
    /// Required inputs that were not given (only `drflow policy` accepts that: they become wildcards).
    #[serde(skip)]
    pub missing: Vec<String>,
    /// Region names and codes after `--region` overrides.
    #[serde(serialize_with = "ordered")]
    pub regions: Vec<(String, String)>,
    /// The roles some regions' calls assume (another account): region name → role ARN.
    #[serde(serialize_with = "ordered", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<(String, String)>,
    pub steps: Vec<PlannedStep>,
    pub finally: Vec<PlannedStep>,
    /// Upper bound of the run's duration: the sum over `steps` and `finally` of each step's `max_duration_ms`;
    /// `None` (unbounded) while a `for_each` has items known only at run time.
    #[serde(rename = "max_duration_ms", serialize_with = "opt_ms")]
    pub max_duration: Option<Duration>,
    /// Upper bound of the AWS API calls of the run; `None` (unbounded) as `max_duration`.
    pub max_api_calls: Option<u64>,
    /// The same, per operation (`service:Operation`), in the order the steps first call them.
    #[serde(serialize_with = "ordered")]
    pub max_api_calls_by_operation: Vec<(String, Option<u64>)>,
    /// Preflight checks, with `--check` only (`null` otherwise).
    pub checks: Option<Checks>,
}

impl Plan {
    /// Every planned step, depth first, main steps then `finally`.
    pub fn all_steps(&self) -> Vec<&PlannedStep> {
        let mut out = Vec::new();
        for s in self.steps.iter().chain(&self.finally) {
            s.walk(&mut out);
        }
        out
    }

    /// Action steps that will or may run (not skipped), depth first.
    pub fn active_actions(&self) -> Vec<(&PlannedStep, &ActionPlan)> {
        self.all_steps()
            .into_iter()
            .filter(|s| s.skipped.is_none())
            .filter_map(|s| s.action().map(|a| (s, a)))
            .collect()
    }

    pub fn region_code(&self, name: &str) -> Option<&str> {
        self.regions.iter().find(|(n, _)| n == name).map(|(_, c)| c.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub name: Option<String>,
    pub when: Option<When>,
    /// Why the step will not run; `null` when it will or may run.
    pub skipped: Option<String>,
    pub on_failure: Route,
    #[serde(flatten)]
    pub body: Body,
    /// For a `for_each` group (its body is `steps`): the items and how many run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEachPlan>,
    /// Worst case of this step (`bounds`): a call's attempts × timeout + retry delays; a wait's timeout + retry
    /// delays + last looks; a parallel group's longest branch; a sequence's sum; a `for_each`'s waves × one item's;
    /// 0 when skipped; `None` (unbounded) for a `for_each` whose items are known only at run time.
    #[serde(rename = "max_duration_ms", serialize_with = "opt_ms")]
    pub max_duration: Option<Duration>,
    /// Upper bound of its AWS API calls (`bounds`): branches and steps add up, a `for_each` counts each item.
    pub max_api_calls: Option<u64>,
    /// The same per operation, for the plan's totals.
    #[serde(skip)]
    pub operations: Vec<(String, Option<u64>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ForEachPlan {
    pub items: Planned,
    pub max_concurrency: usize,
    /// How many items the list has, when the plan knows it.
    pub count: Option<usize>,
    pub tolerated_failures: Option<u32>,
    pub tolerated_failure_percentage: Option<f64>,
    /// The discovery steps `plan --check` ran to learn the items (empty: none ran).
    pub discovered_by: Vec<String>,
    /// The AWS quotas its steps' jobs count against, with the workflow's `quotas:` overrides.
    pub quotas: Vec<QuotaPlan>,
    /// How many items run at once at most: `max_concurrency`, or a quota's limit where it binds and is lower.
    pub concurrency: usize,
    /// How many waves of `concurrency` items the bound counts (`None`: the count is not known yet).
    pub waves: Option<u64>,
    /// Upper bound of one item (its steps in sequence).
    #[serde(rename = "max_item_duration_ms", serialize_with = "opt_ms")]
    pub max_item_duration: Option<Duration>,
    pub max_item_api_calls: Option<u64>,
    #[serde(serialize_with = "ordered")]
    pub max_item_api_calls_by_operation: Vec<(String, Option<u64>)>,
}

/// A quota that applies to steps of a `for_each`.
#[derive(Debug, Clone, Serialize)]
pub struct QuotaPlan {
    /// As `quotas:` names it, e.g. `backup_copies`.
    pub name: &'static str,
    /// What is counted, e.g. "AWS Backup copy jobs into one destination region".
    pub what: &'static str,
    /// The limit the run keeps: the workflow's `quotas:` value, else AWS's default.
    pub limit: u32,
    /// AWS's default.
    pub aws_default: u32,
    /// What the count is kept per: an input of the step (`destination_region`) or `region`.
    pub per: String,
    /// The value it is kept per, as far as the plan knows it (`${{ item }}`: each item its own).
    pub key: String,
    /// Whether the items share the key, so that the limit caps how many items hold it at once.
    pub binds: bool,
    /// The steps whose jobs count against it.
    pub steps: Vec<String>,
}

impl PlannedStep {
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a PlannedStep>) {
        out.push(self);
        match &self.body {
            Body::Action(_) => {}
            Body::Parallel { branches: children } | Body::Sequence { steps: children } => {
                for c in children {
                    c.walk(out);
                }
            }
        }
    }

    pub fn action(&self) -> Option<&ActionPlan> {
        match &self.body {
            Body::Action(a) => Some(a.as_ref()),
            _ => None,
        }
    }

    /// Sets the `preview` of the action steps `previews` names (step id → what `plan --check` found).
    pub fn set_previews(&mut self, previews: &std::collections::BTreeMap<String, String>) {
        if let Some(text) = previews.get(&self.id)
            && let Body::Action(a) = &mut self.body
        {
            a.preview = Some(text.clone());
        }
        if let Body::Parallel { branches: c } | Body::Sequence { steps: c } = &mut self.body {
            for s in c {
                s.set_previews(previews);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct When {
    /// The condition as written, e.g. `${{ inputs.deploy_stack }}`.
    pub condition: String,
    pub decision: Decision,
    /// E.g. "`when: ${{ inputs.deploy_stack }}` is false", or "decided at run time: ...".
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Depends only on inputs and regions, and is true.
    Run,
    /// Depends only on inputs and regions, and is false.
    Skip,
    /// Depends on steps' outcomes (or the run id): decided when the step is reached.
    RunTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "route", rename_all = "snake_case")]
pub enum Route {
    Abort,
    Continue,
    Goto { step: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Action(Box<ActionPlan>),
    Parallel { branches: Vec<PlannedStep> },
    Sequence { steps: Vec<PlannedStep> },
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionPlan {
    pub action: &'static str,
    /// `call` or `wait`.
    pub kind: &'static str,
    /// Whether the action changes anything in the account.
    pub mutates: bool,
    pub region: Option<RegionRef>,
    /// The AWS API calls it may make (`service:Operation`).
    pub calls: Vec<&'static str>,
    #[serde(serialize_with = "ordered")]
    pub inputs: Vec<(String, Planned)>,
    pub retry: RetryBudget,
    #[serde(rename = "timeout_ms", serialize_with = "ms")]
    pub timeout: Duration,
    /// Polling of wait actions; `null` for calls.
    pub poll: Option<PollPlan>,
    /// For a step that makes an AWS Backup recovery point: when it expires (its lifecycle).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// For a step that can tell what it will change with read-only calls (`ec2.prune_images`): what `plan --check`
    /// found, else that it is known after discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// What its bounds count (`bounds`).
    pub bound: ActionBound,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionBound {
    /// Attempts counted: a call's `(max_attempts + 1) × operations` (1 without retries); a wait's
    /// `max_attempts + 1`.
    pub attempts: u32,
    /// A wait's polls at most; `null` for calls.
    pub polls: Option<u64>,
    /// The shortest time between a wait's polls the bound assumes; `null` for calls.
    #[serde(rename = "poll_gap_ms", serialize_with = "opt_ms")]
    pub poll_gap: Option<Duration>,
    /// Whether the wait's polls are paced by its job's progress or size (at least 5 s apart, maybe sooner than
    /// its policy).
    pub paced: bool,
}

impl ActionPlan {
    pub fn input(&self, name: &str) -> Option<&Planned> {
        self.inputs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub fn region_code(&self) -> Option<&str> {
        self.region.as_ref().map(|r| r.code.as_str())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionRef {
    pub name: String,
    pub code: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RetryBudget {
    /// Retries after the first attempt.
    pub max_attempts: u32,
    /// `max_attempts + 1`.
    pub attempts: u32,
    /// Error classes retried (`transient`, `throttling`, `timeout`, `all`, or AWS error codes).
    pub errors: Vec<String>,
    #[serde(rename = "interval_ms", serialize_with = "ms")]
    pub interval: Duration,
    pub backoff_rate: f64,
    #[serde(rename = "max_delay_ms", serialize_with = "opt_ms")]
    pub max_delay: Option<Duration>,
    /// `none` or `full`.
    pub jitter: &'static str,
    /// Upper bound of the delays between attempts, all retries together.
    #[serde(rename = "max_total_delay_ms", serialize_with = "ms")]
    pub max_total_delay: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct PollPlan {
    #[serde(rename = "interval_ms", serialize_with = "ms")]
    pub interval: Duration,
    pub backoff_rate: f64,
    #[serde(rename = "max_interval_ms", serialize_with = "ms")]
    pub max_interval: Duration,
}

/// A resolved `with:` value: known now, or only at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// Known from inputs and regions (or a literal).
    Known(Value),
    /// Only known at run time.
    Unknown(Unknown),
    /// A map with some entries only known at run time.
    Map(Vec<(String, Planned)>),
    /// A list with some items only known at run time.
    List(Vec<Planned>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Unknown {
    /// Steps whose outcome it needs (empty: only the run id, known when the run starts, or a missing input).
    pub after: Vec<String>,
    /// The value as written, e.g. `${{ steps.backup.outputs.job_id }}`.
    pub expression: String,
    /// The string with `*` in place of what is not known yet (for IAM resource patterns).
    pub pattern: String,
}

impl Planned {
    /// The value as a string, when known and a string.
    pub fn known_str(&self) -> Option<&str> {
        match self {
            Planned::Known(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// A string pattern with `*` for the parts not known yet (`*` for anything that is not a string).
    pub fn pattern(&self) -> String {
        match self {
            Planned::Known(Value::String(s)) => s.clone(),
            Planned::Unknown(u) => u.pattern.clone(),
            _ => "*".to_string(),
        }
    }

    /// Why the value is not known yet, in words ("known after backup").
    pub fn unknown_reason(&self) -> Option<String> {
        match self {
            Planned::Known(_) => None,
            Planned::Unknown(u) => Some(known_after_text(&u.after)),
            Planned::Map(_) | Planned::List(_) => Some("partly known only at run time".to_string()),
        }
    }
}

pub fn known_after_text(after: &[String]) -> String {
    if after.is_empty() {
        "known when the run starts".to_string()
    } else {
        format!("known after {}", after.join(", "))
    }
}

impl Serialize for Planned {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Planned::Known(v) => m.serialize_entry("value", v)?,
            Planned::Unknown(u) => {
                m.serialize_entry("known_after", &u.after)?;
                m.serialize_entry("expression", &u.expression)?;
            }
            Planned::Map(entries) => m.serialize_entry("map", &Ordered(entries))?,
            Planned::List(items) => m.serialize_entry("list", items)?,
        }
        m.end()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Checks {
    /// `aws` or `sim`.
    pub backend: &'static str,
    /// The caller's account, from the caller identity check (what `account.id` is in the run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// How many results are `failed`.
    pub failed: usize,
    pub results: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: CheckKind,
    /// What was looked at: an instance id, a vault or parameter name, a template path, a stack name.
    pub subject: String,
    pub region: Option<String>,
    pub status: CheckStatus,
    pub reason: String,
    /// The steps the check is made for.
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    CallerIdentity,
    Instance,
    BackupVault,
    SsmParameter,
    Template,
    Stack,
    SnsTopic,
    /// A read-only discovery step run to learn a `for_each`'s items.
    Discovery,
    /// What a step that changes things would change if it ran now, found read-only (`Action::preview`).
    Preview,
    /// What a step checks before the run changes anything (`Action::gate`): a KMS key, a vault in another account.
    BeforeRun,
}

impl CheckKind {
    pub fn title(self) -> &'static str {
        match self {
            CheckKind::CallerIdentity => "caller identity",
            CheckKind::Instance => "instance",
            CheckKind::BackupVault => "backup vault",
            CheckKind::SsmParameter => "SSM parameter",
            CheckKind::Template => "template",
            CheckKind::Stack => "stack",
            CheckKind::SnsTopic => "SNS topic",
            CheckKind::Discovery => "discovery step",
            CheckKind::Preview => "preview of step",
            CheckKind::BeforeRun => "before-run check of step",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Worth knowing, not a problem (e.g. a parameter the run will create).
    Note,
    Failed,
    /// Could not be made before the run (a value known only at run time, a skipped step).
    Skipped,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Note => "note",
            CheckStatus::Failed => "FAILED",
            CheckStatus::Skipped => "skipped",
        }
    }
}

/// Serializes pairs as a JSON object, keeping their order.
struct Ordered<'a, V>(&'a [(String, V)]);

impl<V: Serialize> Serialize for Ordered<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn ordered<S: Serializer, V: Serialize>(pairs: &[(String, V)], s: S) -> Result<S::Ok, S::Error> {
    Ordered(pairs).serialize(s)
}

fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}
