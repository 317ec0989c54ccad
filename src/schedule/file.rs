//! The schedule file: which workflows run when, with which inputs and backend.
//!
//! ```yaml
//! version: 1
//! entries:
//!   - name: web-rehearsal                         # letters, digits, `-`, `_`, `.`; unique
//!     workflow: ../workflows/dr-rehearsal.yaml    # relative to this file
//!     cron: "0 3 * * 1-5"                         # 5 fields, or 6 with seconds first; @daily, ...
//!     timezone: Europe/Berlin                     # IANA name; default UTC
//!     inputs: {instance_id: i-0123456789abcdef0}
//!     regions: {dr: eu-west-1}                    # optional overrides of the workflow's regions
//!     simulate: true                              # or `scenario: FILE` (implies simulate); default real AWS
//!     profile: dr-admin                           # AWS profile (real AWS only)
//!     overlap: skip                               # skip (default) or queue: what to do when the last run of
//!                                                 # this entry is still going at its next fire time
//! ```
//!
//! Every problem is reported with `file:line:column`: serde_yaml stamps its own errors (and those of the cron
//! and time zone fields, which are checked while parsing); the checks that need the workflow (inputs, regions)
//! are located by walking to the value (`locate`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::cron::{CronSchedule, parse_cron, parse_tz};
use crate::cloud::sim::Scenario;
use crate::workflow;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire time is skipped (and logged) while the entry's last run is still going.
    #[default]
    Skip,
    /// One fire time is kept and run as soon as the last run ends; more are skipped.
    Queue,
}

pub use crate::session::Backend;

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub workflow: PathBuf,
    pub schedule: CronSchedule,
    pub inputs: Vec<(String, String)>,
    pub regions: Vec<(String, String)>,
    pub backend: Backend,
    pub overlap: Overlap,
    /// An SNS topic told when a run fails (or after every run).
    pub notify: Option<Notify>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub topic_arn: String,
    /// Also after runs that passed.
    pub always: bool,
}

#[derive(Debug)]
pub struct ScheduleFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// Every problem found, each starting with `file:line:col:` when its place is known.
#[derive(Debug)]
pub struct Invalid(pub Vec<String>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for Invalid {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    version: Option<u32>,
    entries: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    workflow: String,
    cron: CronText,
    #[serde(default)]
    timezone: Option<TzText>,
    #[serde(default)]
    inputs: BTreeMap<String, serde_yaml::Value>,
    #[serde(default)]
    regions: BTreeMap<String, String>,
    #[serde(default)]
    simulate: Option<bool>,
    #[serde(default)]
    scenario: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    overlap: Overlap,
    #[serde(default)]
    notify: Option<RawNotify>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    topic_arn: String,
    /// `failure` (the default) or `always`.
    #[serde(default)]
    on: Option<String>,
}

/// Checked while deserializing (inside the visitor), so that serde_yaml puts the value's line and column on the
/// error; a `try_from` conversion runs after the value is consumed and would be placed at the enclosing entry.
struct CronText(String);

struct TzText(String);

struct Checked<T>(fn(&str) -> Result<T, String>, &'static str);

impl<'de, T> Visitor<'de> for Checked<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for CronText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Checked(
            |s| parse_cron(s).map(|_| CronText(s.to_string())),
            "a cron expression such as \"0 3 * * *\"",
        ))
    }
}

impl<'de> Deserialize<'de> for TzText {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Checked(
            |s| parse_tz(s).map(|_| TzText(s.to_string())),
            "an IANA time zone name such as Europe/Berlin",
        ))
    }
}

/// Reads and checks a schedule file, including that every workflow loads and accepts the entry's inputs.
pub fn load(path: &Path) -> Result<ScheduleFile, Invalid> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Invalid(vec![format!("{}: cannot read the schedule file: {e}", path.display())]))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<ScheduleFile, Invalid> {
    let name = path.display().to_string();
    let raw: RawFile = serde_yaml::from_str(text).map_err(|e| Invalid(vec![yaml_error(&name, &e)]))?;
    // Absolute, so that the run's journal names files `drflow resume` finds from any directory.
    let parent = path.parent().unwrap_or(Path::new(""));
    let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    let base = base.as_path();
    let mut problems = Vec::new();
    let mut at = |segs: &[Seg], message: String| {
        let loc = locate(text, segs)
            .map(|(l, c)| format!("{name}:{l}:{c}"))
            .unwrap_or_else(|| name.clone());
        problems.push(format!("{loc}: {}: {message}", dotted(segs)));
    };
    if let Some(v) = raw.version.filter(|v| *v != 1) {
        at(
            &[Seg::Key("version")],
            format!("version {v} is not supported; this drflow reads version 1"),
        );
    }
    if raw.entries.is_empty() {
        at(
            &[Seg::Key("entries")],
            "no entries: add at least one (name, workflow, cron)".into(),
        );
    }
    let mut entries = Vec::new();
    for (i, e) in raw.entries.into_iter().enumerate() {
        let here = |key: &'static str| [Seg::Key("entries"), Seg::Index(i), Seg::Key(key)];
        let ok_name = !e.name.is_empty()
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok_name {
            at(
                &here("name"),
                format!(
                    "`{}` is not a valid name: use letters, digits, `-`, `_` and `.`",
                    e.name
                ),
            );
        }
        if entries.iter().any(|x: &Entry| x.name == e.name) {
            at(&here("name"), format!("another entry is already named `{}`", e.name));
        }
        let tz = e.timezone.as_ref().map_or("UTC", |t| t.0.as_str());
        let schedule = match CronSchedule::new(&e.cron.0, tz) {
            Ok(s) => s,
            Err(m) => {
                at(&here("cron"), m);
                continue;
            }
        };
        let backend = match (e.simulate, &e.scenario) {
            (Some(false), Some(_)) => {
                at(
                    &here("scenario"),
                    "a scenario is for the simulator: remove `simulate: false` or the scenario".into(),
                );
                continue;
            }
            (_, Some(s)) => {
                let file = base.join(s);
                if let Err(err) = Scenario::from_yaml_file(&file) {
                    at(&here("scenario"), err.to_string());
                }
                Backend::Simulate { scenario: Some(file) }
            }
            (Some(true), None) => Backend::Simulate { scenario: None },
            (_, None) => Backend::Aws {
                profile: e.profile.clone(),
            },
        };
        if e.profile.is_some() && matches!(backend, Backend::Simulate { .. }) {
            at(
                &here("profile"),
                "a profile is for real AWS; the simulator ignores it".into(),
            );
        }
        let workflow_path = base.join(&e.workflow);
        let inputs: Vec<(String, String)> = e.inputs.iter().map(|(k, v)| (k.clone(), input_text(v))).collect();
        let regions: Vec<(String, String)> = e.regions.clone().into_iter().collect();
        match workflow::load(&workflow_path, crate::actions::catalog()) {
            Err(workflow::LoadError::Read { source, .. }) => at(
                &here("workflow"),
                format!("cannot read {}: {source}", workflow_path.display()),
            ),
            Err(workflow::LoadError::Invalid(list)) => {
                let first = list
                    .first()
                    .map(|p| format!(": {} ({})", p, p.location()))
                    .unwrap_or_default();
                at(
                    &here("workflow"),
                    format!(
                        "{} has {} problem(s){first}; see `drflow validate {}`",
                        workflow_path.display(),
                        list.len(),
                        workflow_path.display()
                    ),
                );
            }
            Ok(wf) => {
                for (k, _) in &inputs {
                    if !wf.inputs.iter().any(|d| d.name == *k) {
                        let known: Vec<&str> = wf.inputs.iter().map(|d| d.name.as_str()).collect();
                        at(
                            &[Seg::Key("entries"), Seg::Index(i), Seg::Key("inputs"), Seg::Key(k)],
                            format!(
                                "`{k}` is not an input of {} (its inputs: {})",
                                wf.name,
                                known.join(", ")
                            ),
                        );
                    }
                }
                let known_only: Vec<(String, String)> = inputs
                    .iter()
                    .filter(|(k, _)| wf.inputs.iter().any(|d| d.name == *k))
                    .cloned()
                    .collect();
                if let Err(err) = wf.bind(&known_only, &[]) {
                    for line in &err.problems {
                        let key = wf
                            .inputs
                            .iter()
                            .find(|d| line.contains(&format!("`{}`", d.name)))
                            .map(|d| d.name.clone());
                        match key.clone().filter(|k| e.inputs.contains_key(k)) {
                            Some(k) => at(
                                &[Seg::Key("entries"), Seg::Index(i), Seg::Key("inputs"), Seg::Key(&k)],
                                line.to_string(),
                            ),
                            None => match key {
                                Some(k) if line.contains("is required") => at(
                                    &here("inputs"),
                                    format!(
                                        "input `{k}` of {} is required: add `{k}: VALUE` under `inputs`",
                                        wf.name
                                    ),
                                ),
                                _ => at(&here("inputs"), line.to_string()),
                            },
                        }
                    }
                }
                let mut valid = Vec::new();
                for (k, code) in &regions {
                    let place = [Seg::Key("entries"), Seg::Index(i), Seg::Key("regions"), Seg::Key(k)];
                    if !wf.regions.iter().any(|(n, _)| n == k) {
                        let known: Vec<&str> = wf.regions.iter().map(|(n, _)| n.as_str()).collect();
                        at(
                            &place,
                            format!(
                                "`{k}` is not a region of {} (its regions: {})",
                                wf.name,
                                known.join(", ")
                            ),
                        );
                    } else if let Some(p) = workflow::check_region(code) {
                        at(&place, format!("{}; {}", p.message, p.hint));
                    } else {
                        valid.push((k.clone(), code.clone()));
                    }
                }
                // Regions that end up on one code (refused unless the workflow allows it).
                if valid.len() == regions.len()
                    && let Err(err) = wf.bind_partial(&[], &valid)
                {
                    for line in err.problems {
                        at(&here("regions"), line);
                    }
                }
            }
        }
        let notify = e.notify.as_ref().and_then(|n| {
            let place = [
                Seg::Key("entries"),
                Seg::Index(i),
                Seg::Key("notify"),
                Seg::Key("topic_arn"),
            ];
            let parts: Vec<&str> = n.topic_arn.splitn(6, ':').collect();
            let ok = matches!(parts.as_slice(), ["arn", _, "sns", region, account, name]
                if crate::cloud::is_account_id(account) && !name.is_empty()
                    && workflow::check_region(region).is_none());
            if !ok {
                at(
                    &place,
                    format!(
                        "`{}` is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                        n.topic_arn
                    ),
                );
                return None;
            }
            let always = match n.on.as_deref() {
                None | Some("failure") => false,
                Some("always") => true,
                Some(other) => {
                    at(
                        &[Seg::Key("entries"), Seg::Index(i), Seg::Key("notify"), Seg::Key("on")],
                        format!("`{other}` is not when to notify: use failure or always"),
                    );
                    return None;
                }
            };
            Some(Notify {
                topic_arn: n.topic_arn.clone(),
                always,
            })
        });
        entries.push(Entry {
            name: e.name,
            workflow: workflow_path,
            schedule,
            inputs,
            regions,
            backend,
            overlap: e.overlap,
            notify,
        });
    }
    if problems.is_empty() {
        Ok(ScheduleFile {
            path: path.to_path_buf(),
            entries,
        })
    } else {
        Err(Invalid(problems))
    }
}

/// How a YAML input value reads as `--input NAME=VALUE` text (lists are comma-separated).
fn input_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => String::new(),
        serde_yaml::Value::Sequence(items) => items.iter().map(input_text).collect::<Vec<_>>().join(","),
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// `file:line:col: message` (serde_yaml appends " at line L column C"; keep the place once, in front).
fn yaml_error(name: &str, e: &serde_yaml::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(l) => {
            let text = match text.rfind(" at line ") {
                Some(i) if text[i..].contains(" column ") => &text[..i],
                _ => &text,
            };
            format!("{name}:{}:{}: {text}", l.line(), l.column())
        }
        None => format!("{name}: {text}"),
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn dotted(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

const HERE: &str = "__drflow_schedule_here__";

/// Line and column (1-based) of the value at `segs`, or of the nearest ancestor that exists.
pub(crate) fn locate(text: &str, segs: &[Seg]) -> Option<(usize, usize)> {
    let mut segs = segs;
    loop {
        let err = Finder { segs }
            .deserialize(serde_yaml::Deserializer::from_str(text))
            .err();
        if let Some(l) = err.filter(|e| e.to_string().contains(HERE)).and_then(|e| e.location()) {
            return Some((l.line(), l.column()));
        }
        segs = segs.split_last().map(|(_, rest)| rest).filter(|r| !r.is_empty())?;
    }
}

/// Walks to `segs` and fails there, so that serde_yaml stamps the failure with the value's position.
struct Finder<'a> {
    segs: &'a [Seg<'a>],
}

impl<'de> DeserializeSeed<'de> for Finder<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Seg::Key(want), rest)) = self.segs.split_first() else {
            return Err(de::Error::custom(if self.segs.is_empty() { HERE } else { "not here" }));
        };
        while let Some(key) = map.next_key::<serde_yaml::Value>()? {
            let matches = match &key {
                serde_yaml::Value::String(s) => s == want,
                other => input_text(other) == *want,
            };
            if matches {
                return map.next_value_seed(Finder { segs: rest });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Err(de::Error::custom("not here"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Seg::Index(want), rest)) = self.segs.split_first() else {
            return Err(de::Error::custom(if self.segs.is_empty() { HERE } else { "not here" }));
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Err(de::Error::custom("not here"));
            }
        }
        match seq.next_element_seed(Finder { segs: rest })? {
            Some(()) => Ok(()),
            None => Err(de::Error::custom("not here")),
        }
    }
}

impl Finder<'_> {
    fn leaf<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(if self.segs.is_empty() { HERE } else { "not here" }))
    }
}
