//! The validated workflow: what the engine runs. Built only by `validate`, so the engine never sees
//! unchecked data.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::expr::{Expr, Template};
use super::policy::{PollPolicy, RetryPolicy};
use super::refs::{Ref, Scope};
use super::source::Source;
use super::spec::ActionSpec;

#[derive(Debug)]
pub struct Workflow {
    pub name: String,
    pub description: Option<String>,
    pub source: Arc<Source>,
    pub inputs: Vec<InputDef>,
    /// Region names and their default codes, in file order.
    pub regions: Vec<(String, String)>,
    /// Whether two region names may resolve to the same code (`allow_shared_regions: true`).
    pub allow_shared_regions: bool,
    /// The roles some regions' calls assume (another account), by region name, in file order.
    pub roles: Vec<(String, RegionRole)>,
    pub lock: Option<Template>,
    /// AWS's limits on concurrent jobs, with the workflow's overrides.
    pub quotas: super::Quotas,
    pub steps: Vec<Step>,
    pub finally: Vec<Step>,
    /// What validation found questionable but not wrong (e.g. a setting AWS would ignore).
    pub warnings: Vec<super::diagnostic::Problem>,
}

/// The role a region's calls assume: `regions: NAME: {region, role_arn, external_id, session_name, duration}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionRole {
    pub role_arn: String,
    /// The role's account, from its ARN.
    pub account: String,
    pub external_id: Option<String>,
    /// Prefix of the session name; the run id follows it.
    pub session_name: String,
    /// How long one set of credentials lasts (STS DurationSeconds).
    pub duration: Duration,
}

impl RegionRole {
    /// Default `session_name` prefix.
    pub const SESSION_PREFIX: &'static str = "drflow";
    /// Default credential lifetime (STS's own default).
    pub const DURATION: Duration = Duration::from_secs(3600);

    /// The role session's name for a run: CloudTrail records it with every call made with these credentials.
    pub fn session(&self, run_id: &str) -> String {
        let mut name = format!("{}-{run_id}", self.session_name);
        name.truncate(64);
        name
    }
}

/// The account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`), when it is one.
pub fn role_account(arn: &str) -> Option<&str> {
    let rest = ["arn:aws:iam::", "arn:aws-us-gov:iam::", "arn:aws-cn:iam::"]
        .iter()
        .find_map(|p| arn.strip_prefix(p))?;
    let (account, role) = rest.split_once(':')?;
    let name = role.strip_prefix("role/")?;
    let ok = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        && !name.ends_with('/');
    ok.then_some(account)
}

impl Workflow {
    /// The role region `name`'s calls assume, if any.
    pub fn role(&self, name: &str) -> Option<&RegionRole> {
        self.roles.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Folder of the workflow file: relative paths in it (templates) start here.
    pub fn dir(&self) -> PathBuf {
        self.source.path.parent().map(|p| p.to_path_buf()).unwrap_or_default()
    }

    /// Every step, depth first, main steps then `finally`.
    pub fn all_steps(&self) -> Vec<&Step> {
        let mut out = Vec::new();
        for s in self.steps.iter().chain(&self.finally) {
            s.walk(&mut out);
        }
        out
    }

    pub fn find(&self, id: &str) -> Option<&Step> {
        self.all_steps().into_iter().find(|s| s.id == id)
    }

    /// Every reference the workflow makes: in `lock`, in conditions and in step inputs.
    pub fn references(&self) -> impl Iterator<Item = &Ref> {
        let mut out: Vec<&Ref> = self.lock.iter().flat_map(|t| t.references()).collect();
        for s in self.all_steps() {
            out.extend(s.when.iter().flat_map(|w| w.references()));
            if let Some(a) = s.action() {
                out.extend(a.with.iter().flat_map(|(_, v)| v.references()));
            }
        }
        out.into_iter()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Bool,
    Int,
    List,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Bool => "bool",
            InputType::Int => "int",
            InputType::List => "list",
        }
    }
}

#[derive(Debug)]
pub struct InputDef {
    pub name: String,
    pub ty: InputType,
    pub default: Option<Value>,
    pub pattern: Option<Regex>,
    pub description: Option<String>,
}

impl InputDef {
    /// Converts a command-line value (`--input name=value`) to this input's type.
    pub fn parse_value(&self, text: &str) -> Result<Value, String> {
        let v = match self.ty {
            InputType::String => Value::String(text.to_string()),
            InputType::Bool => match text {
                "true" | "yes" | "1" => Value::Bool(true),
                "false" | "no" | "0" => Value::Bool(false),
                _ => {
                    return Err(format!(
                        "input `{}` is a bool: use true or false, not `{text}`",
                        self.name
                    ));
                }
            },
            InputType::Int => Value::from(
                text.parse::<i64>()
                    .map_err(|_| format!("input `{}` is an int, not `{text}`", self.name))?,
            ),
            InputType::List => Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
        };
        self.check(&v)?;
        Ok(v)
    }

    /// Checks a value's type and pattern.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        let ok = match self.ty {
            InputType::String => v.is_string(),
            InputType::Bool => v.is_boolean(),
            InputType::Int => v.is_i64() || v.is_u64(),
            InputType::List => v.is_array(),
        };
        if !ok {
            return Err(format!("input `{}` must be a {}, got {v}", self.name, self.ty.as_str()));
        }
        // A pattern applies to a string, and to an int as written (`pattern: "[0-9]+"`: not negative).
        let text = match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if let (Some(re), Some(s)) = (&self.pattern, text)
            && !re.is_match(&s)
        {
            return Err(format!(
                "input `{}` = `{s}` does not match the pattern `{}`",
                self.name,
                re.as_str()
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct Step {
    pub id: String,
    pub name: Option<String>,
    pub when: Option<Expr>,
    /// The condition as written, for display.
    pub when_text: Option<String>,
    pub on_failure: OnFailure,
    pub kind: StepKind,
}

impl Step {
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Step>) {
        out.push(self);
        match &self.kind {
            StepKind::Action(_) => {}
            StepKind::Parallel(children) | StepKind::Sequence(children) => {
                for c in children {
                    c.walk(out);
                }
            }
            StepKind::ForEach(f) => {
                for c in &f.steps {
                    c.walk(out);
                }
            }
        }
    }

    pub fn action(&self) -> Option<&ActionStep> {
        match &self.kind {
            StepKind::Action(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    /// Stop the run (the default). `finally` still runs.
    Abort,
    /// Record the failure and go on; the run does not fail because of it.
    Continue,
    /// Go on at this later step of the same sequence; the run still ends as failed.
    Goto(String),
}

#[derive(Debug)]
pub enum StepKind {
    Action(ActionStep),
    Parallel(Vec<Step>),
    Sequence(Vec<Step>),
    ForEach(ForEach),
}

/// `steps` run once per item of a list, `max_concurrency` at a time; each item's steps are journaled under the
/// item's key (`ID[KEY].STEP`).
#[derive(Debug)]
pub struct ForEach {
    /// The list (literal or `${{ }}`): strings or numbers, each its own key.
    pub items: ValueTemplate,
    pub max_concurrency: usize,
    /// How many items may fail (a count, and/or a percentage of the items) before the step fails; neither: none.
    pub tolerated_failures: Option<u32>,
    pub tolerated_failure_percentage: Option<f64>,
    /// An item another run is working on is waited for (`when_locked: wait`), not skipped.
    pub wait_locked: bool,
    pub steps: Vec<Step>,
}

impl ForEach {
    /// Whether `failed` of `total` items failing is more than tolerated: as Step Functions' Map, either threshold
    /// exceeded fails the step; with neither, any failure does.
    pub fn too_many(&self, failed: usize, total: usize) -> bool {
        let over_count = |c: u32| failed as u64 > u64::from(c);
        let over_share = |p: f64| (failed as f64) * 100.0 > p * total as f64;
        match (self.tolerated_failures, self.tolerated_failure_percentage) {
            (None, None) => failed > 0,
            (Some(c), None) => over_count(c),
            (None, Some(p)) => over_share(p),
            (Some(c), Some(p)) => over_count(c) || over_share(p),
        }
    }
}

#[derive(Debug)]
pub struct ActionStep {
    pub action: &'static ActionSpec,
    /// Region name (a key of `Workflow::regions`); `None` for actions that call no AWS API.
    pub region: Option<String>,
    pub with: Vec<(String, ValueTemplate)>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub poll: PollPolicy,
}

/// A `with:` value: literals, and strings with `${{ }}`, nested in maps and lists.
#[derive(Debug, Clone)]
pub enum ValueTemplate {
    Literal(Value),
    Template(Template),
    List(Vec<ValueTemplate>),
    Map(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    pub fn eval(&self, scope: &dyn Scope) -> Result<Value, String> {
        Ok(match self {
            ValueTemplate::Literal(v) => v.clone(),
            ValueTemplate::Template(t) => t.eval(scope)?,
            ValueTemplate::List(items) => Value::Array(items.iter().map(|i| i.eval(scope)).collect::<Result<_, _>>()?),
            ValueTemplate::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.eval(scope)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    /// The value as written, `${{ }}` and all: two values with the same text name the same thing.
    pub fn canonical(&self) -> String {
        match self {
            ValueTemplate::Literal(v) => super::expr::to_text(v),
            ValueTemplate::Template(t) => super::expr::template_text(t),
            ValueTemplate::List(items) => format!(
                "[{}]",
                items.iter().map(|i| i.canonical()).collect::<Vec<_>>().join(", ")
            ),
            ValueTemplate::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.canonical()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub fn references(&self) -> Vec<&Ref> {
        match self {
            ValueTemplate::Literal(_) => Vec::new(),
            ValueTemplate::Template(t) => t.references(),
            ValueTemplate::List(items) => items.iter().flat_map(|i| i.references()).collect(),
            ValueTemplate::Map(entries) => entries.iter().flat_map(|(_, v)| v.references()).collect(),
        }
    }
}
