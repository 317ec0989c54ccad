//! `RawWorkflow` → `Workflow`. Every problem is collected and reported at once, each located in the file.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::diagnostic::{Code, Problem, Problems, did_you_mean};
use super::duration::{format_duration, parse_duration};
use super::expr::{Dotted, Expr, ExprError, Piece, Reference, Template};
use super::model::*;
use super::policy::{ErrorMatch, Jitter, PollPolicy, RetryPolicy};
use super::raw::*;
use super::refs::Ref;
use super::regions::check_region;
use super::source::{Part, Seg, Source, YamlPath};
use super::spec::{ActionKind, ActionSpec, Catalog, InputKind};

const ID: &str = r"^[A-Za-z_][A-Za-z0-9_-]*$";

/// Parses and validates a workflow file's text, resolving action names against `catalog`.
pub fn parse(source: Source, catalog: Catalog) -> Result<Workflow, Vec<Problem>> {
    let source = Arc::new(source);
    let mut problems = Problems::new(&source);
    if source.text.trim().is_empty() {
        problems.at_span(
            Code::MissingKey,
            super::source::Span { offset: 0, len: 0 },
            "the workflow file is empty",
            "empty",
        );
        return Err(problems.list);
    }
    let mut ignored = Vec::new();
    let de = serde_yaml::Deserializer::from_str(&source.text);
    let raw: Result<RawWorkflow, _> = serde_ignored::deserialize(de, |p| ignored.push(yaml_path(&p)));
    let raw = match raw {
        Ok(r) => r,
        Err(e) => {
            serde_problem(&mut problems, &source, &e);
            return Err(problems.list);
        }
    };
    let keys = known_keys();
    for path in &ignored {
        let key = match path.0.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => continue,
        };
        let p = problems.at(
            Code::UnknownKey,
            path,
            Part::Key,
            format!("unknown key `{key}` at {path}"),
        );
        match did_you_mean(&key, keys.iter().copied()) {
            Some(s) => p.hint(format!("did you mean `{s}`?")),
            None => p.hint("see `drflow schema` for the keys a workflow may use"),
        };
    }
    let mut v = Validator::new(&mut problems, &raw, catalog);
    let workflow = v.workflow(&raw, source.clone());
    if problems.is_empty() {
        let mut wf = workflow.expect("a workflow is built whenever there is no problem");
        wf.warnings = problems.list;
        Ok(wf)
    } else {
        Err(problems.list)
    }
}

fn yaml_path(p: &serde_ignored::Path) -> YamlPath {
    use serde_ignored::Path as P;
    match p {
        P::Root => YamlPath::root(),
        P::Seq { parent, index } => yaml_path(parent).join(*index),
        P::Map { parent, key } => yaml_path(parent).join(key.as_str()),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => yaml_path(parent),
    }
}

fn serde_problem(problems: &mut Problems, source: &Source, e: &serde_yaml::Error) {
    let mut offset = e.location().map_or(0, |l| l.index());
    let mut message = e.to_string();
    // A scanner error at the end of the file ("while scanning a quoted scalar at line 5 column 9") is best shown
    // where the unclosed construct starts.
    let context = Regex::new(r"while \w+ .* at line (\d+) column (\d+)$").expect("valid regex");
    if let Some(c) = context.captures(&message) {
        let (line, col): (usize, usize) = (c[1].parse().unwrap_or(1), c[2].parse().unwrap_or(1));
        let line_start: usize = source.text.split_inclusive('\n').take(line - 1).map(str::len).sum();
        offset = (line_start + col - 1).min(source.text.len());
    }
    if let Some(l) = e.location() {
        message = message.replacen(&format!(" at line {} column {}", l.line(), l.column()), "", 1);
    }
    const SHAPE: &[&str] = &[
        "invalid type",
        "invalid value",
        "invalid length",
        "missing field",
        "unknown variant",
    ];
    // serde_yaml puts the path first ("steps[0].retry: invalid type ..."); move it to the end.
    if let Some((path, rest)) = message.split_once(": ")
        && !path.contains(' ')
        && SHAPE.iter().any(|s| rest.starts_with(s))
    {
        message = format!("{rest} (at {path})");
    }
    let (code, hint) = if SHAPE.iter().any(|s| message.starts_with(s)) {
        (Code::Shape, "see `drflow schema` for the shape of each key")
    } else {
        (Code::Syntax, "check the indentation and quoting around this place")
    };
    let len = source.text[offset..]
        .split('\n')
        .next()
        .map_or(1, |l| l.trim_end().len().max(1));
    problems
        .at_span(code, super::source::Span { offset, len }, message, "here")
        .hint(hint);
}

struct StepInfo {
    path: YamlPath,
    action: Option<&'static ActionSpec>,
}

struct Validator<'p, 's> {
    p: &'p mut Problems<'s>,
    catalog: Catalog,
    /// Folder of the workflow file (template files are relative to it).
    dir: std::path::PathBuf,
    inputs: Vec<String>,
    regions: Vec<String>,
    /// Accounts of the regions that assume a role (`accounts.NAME` of the others is the caller's).
    role_accounts: HashMap<String, String>,
    steps: HashMap<String, StepInfo>,
    /// Ids of steps inside a `for_each` (they run once per item: outside it, they have no one value).
    item_steps: HashSet<String>,
    /// How many `for_each` bodies enclose the step being validated.
    item_depth: usize,
    default_retry: RawRetry,
    default_timeout: Option<Duration>,
    default_poll: RawPoll,
    id_re: Regex,
}

impl<'p, 's> Validator<'p, 's> {
    fn new(p: &'p mut Problems<'s>, raw: &RawWorkflow, catalog: Catalog) -> Self {
        let dir = p.source().path.parent().map(|d| d.to_path_buf()).unwrap_or_default();
        Validator {
            p,
            catalog,
            dir,
            inputs: raw.inputs.entries.iter().map(|(k, _)| k.clone()).collect(),
            regions: raw.regions.entries.iter().map(|(k, _)| k.clone()).collect(),
            role_accounts: HashMap::new(),
            steps: HashMap::new(),
            item_steps: HashSet::new(),
            item_depth: 0,
            default_retry: RawRetry::default(),
            default_timeout: None,
            default_poll: RawPoll::default(),
            id_re: Regex::new(ID).expect("valid regex"),
        }
    }

    fn workflow(&mut self, raw: &RawWorkflow, source: Arc<Source>) -> Option<Workflow> {
        let root = YamlPath::root();
        match &raw.version {
            None => {
                self.p
                    .at(Code::MissingKey, &root, Part::Value, "missing `version`")
                    .hint("start the file with `version: 1`");
            }
            Some(Text(v)) if v != "1" => {
                self.p
                    .at(
                        Code::BadVersion,
                        &root.join("version"),
                        Part::Value,
                        format!("unsupported version `{v}`"),
                    )
                    .hint("this drflow reads version 1");
            }
            Some(_) => {}
        }
        let name = match &raw.name {
            Some(n) if self.id_re.is_match(n) => n.clone(),
            Some(n) => {
                self.p
                    .at(
                        Code::BadStep,
                        &root.join("name"),
                        Part::Value,
                        format!("`{n}` is not a valid workflow name"),
                    )
                    .hint("use letters, digits, `_` and `-`");
                String::new()
            }
            None => {
                self.p
                    .at(Code::MissingKey, &root, Part::Value, "missing `name`")
                    .hint("add e.g. `name: dr-ami`");
                String::new()
            }
        };
        let inputs = self.inputs_(raw);
        let allow_shared_regions = raw.allow_shared_regions.unwrap_or(false);
        let regions = self.regions_(raw, allow_shared_regions);
        let roles = self.roles_(raw);
        let quotas = self.quotas_(raw);
        if let Some(d) = &raw.defaults {
            let dp = root.join("defaults");
            if let Some(r) = &d.retry {
                self.default_retry = r.clone();
            }
            if let Some(p) = &d.poll {
                self.default_poll = p.clone();
            }
            if let Some(t) = &d.timeout {
                self.default_timeout = self.duration(t, &dp.join("timeout"));
            }
        }
        let lock = raw.lock.as_ref().and_then(|l| {
            let path = root.join("lock");
            let t = self.template(l, &path)?;
            t.resolve(&mut |r: &Reference| {
                let typed = self.resolve(r, &path, &HashSet::new(), "lock")?;
                if matches!(typed, Ref::Input(_) | Ref::Region(_)) {
                    return Some(typed);
                }
                self.p
                    .within(
                        Code::BadReference,
                        &path,
                        r.at,
                        r.len,
                        format!("`{}` cannot be used in `lock`", r.dotted()),
                    )
                    .hint("a lock may use only inputs and regions");
                None
            })
        });

        // First pass: every step id, so that a reference can tell "unknown" from "not yet run".
        self.collect_ids(&raw.steps, &root.join("steps"));
        self.collect_ids(&raw.finally, &root.join("finally"));

        if raw.steps.is_empty() {
            self.p
                .at(Code::MissingKey, &root, Part::Value, "the workflow has no `steps`")
                .hint("add a `steps:` list with at least one step");
        }
        let mut before = HashSet::new();
        let steps = self.sequence(&raw.steps, &root.join("steps"), &mut before);
        // `finally` runs after everything, whatever happened: every main step counts as before it.
        let mut all: HashSet<String> = self
            .steps
            .keys()
            .filter(|id| !self.item_steps.contains(*id))
            .cloned()
            .collect();
        for_each_id(&raw.finally, &mut |id| {
            all.remove(id);
        });
        let finally = self.sequence(&raw.finally, &root.join("finally"), &mut all);

        Some(Workflow {
            name,
            description: raw.description.clone(),
            source,
            inputs,
            regions,
            allow_shared_regions,
            roles,
            lock,
            quotas,
            steps,
            finally,
            warnings: Vec::new(),
        })
    }

    fn inputs_(&mut self, raw: &RawWorkflow) -> Vec<InputDef> {
        let base = YamlPath::root().join("inputs");
        self.duplicate_keys(
            &raw.inputs.duplicates,
            &base,
            "input `{}` is declared twice",
            "keep one declaration",
        );
        let mut out = Vec::new();
        for (name, input) in &raw.inputs.entries {
            let path = base.join(name.as_str());
            let ty = match input.ty.as_deref().unwrap_or("string") {
                "string" => InputType::String,
                "bool" => InputType::Bool,
                "int" => InputType::Int,
                "list" => InputType::List,
                other => {
                    self.p
                        .at(
                            Code::BadType,
                            &path.join("type"),
                            Part::Value,
                            format!("`{other}` is not an input type"),
                        )
                        .hint("use string, bool, int or list");
                    InputType::String
                }
            };
            let pattern = input
                .pattern
                .as_ref()
                .and_then(|pat| match Regex::new(&format!("^(?:{pat})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        let msg = e.to_string().lines().last().unwrap_or("").to_string();
                        self.p
                            .at(
                                Code::BadPattern,
                                &path.join("pattern"),
                                Part::Value,
                                format!("invalid pattern: {msg}"),
                            )
                            .hint("patterns use Rust regex syntax and must match the whole value");
                        None
                    }
                });
            let mut def = InputDef {
                name: name.clone(),
                ty,
                default: None,
                pattern,
                description: input.description.clone(),
            };
            if let Some(d) = &input.default {
                let v = yaml_to_json(d);
                match def.check(&v) {
                    Ok(()) => def.default = Some(v),
                    Err(e) => {
                        self.p
                            .at(
                                Code::BadType,
                                &path.join("default"),
                                Part::Value,
                                format!("bad default: {e}"),
                            )
                            .hint("the default must have the input's type and match its pattern");
                    }
                }
            }
            out.push(def);
        }
        out
    }

    fn regions_(&mut self, raw: &RawWorkflow, allow_shared: bool) -> Vec<(String, String)> {
        let base = YamlPath::root().join("regions");
        self.duplicate_keys(
            &raw.regions.duplicates,
            &base,
            "region `{}` is declared twice",
            "keep one declaration",
        );
        let mut out: Vec<(String, String)> = Vec::new();
        for (name, entry) in &raw.regions.entries {
            let code = &entry.0.code().to_string();
            if entry.0.region.is_none() {
                self.p
                    .at(
                        Code::MissingKey,
                        &base.join(name.as_str()),
                        Part::Value,
                        format!("region `{name}` has no `region` code"),
                    )
                    .hint("add e.g. `region: us-west-2`");
            } else if let Some(problem) = check_region(code) {
                self.p
                    .at(Code::BadRegion, &base.join(name.as_str()), Part::Value, problem.message)
                    .hint(problem.hint);
            } else if !allow_shared && let Some((other, _)) = out.iter().find(|(_, c)| c == code) {
                self.p
                    .at(
                        Code::BadRegion,
                        &base.join(name.as_str()),
                        Part::Value,
                        format!("regions `{other}` and `{name}` are both {code}"),
                    )
                    .hint(
                        "a DR region must differ from the region it protects; add `allow_shared_regions: true` if they may share one",
                    );
            }
            out.push((name.clone(), code.clone()));
        }
        out
    }

    /// The roles regions assume: a well-formed role ARN (its account is then known before any call), an external
    /// id and session name STS accepts, a duration STS allows.
    fn roles_(&mut self, raw: &RawWorkflow) -> Vec<(String, RegionRole)> {
        let base = YamlPath::root().join("regions");
        let mut out = Vec::new();
        for (name, entry) in &raw.regions.entries {
            let r = &entry.0;
            let at = base.join(name.as_str());
            let Some(arn) = &r.role_arn else {
                for (key, set) in [
                    ("external_id", r.external_id.is_some()),
                    ("session_name", r.session_name.is_some()),
                    ("duration", r.duration.is_some()),
                ] {
                    if set {
                        self.p
                            .at(
                                Code::MissingKey,
                                &at.join(key),
                                Part::Key,
                                format!("`{key}` without `role_arn`"),
                            )
                            .hint("it applies to the role a region assumes: add `role_arn`, or remove it");
                    }
                }
                continue;
            };
            let Some(account) = role_account(arn) else {
                self.p
                    .at(
                        Code::BadRegion,
                        &at.join("role_arn"),
                        Part::Value,
                        format!("`{arn}` is not an IAM role ARN"),
                    )
                    .hint("write arn:aws:iam::ACCOUNT_ID:role/NAME (12 digits, then the role's path and name)");
                continue;
            };
            // STS's patterns: `[\w+=,.@:/-]*` for an external id (2 to 1,224), `[\w+=,.@-]*` for a session name.
            let chars = |t: &str, extra: &[u8]| {
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || extra.contains(&b))
            };
            if let Some(id) = &r.external_id
                && !((2..=1224).contains(&id.len()) && chars(id, b"+=,.@:/-"))
            {
                self.p
                    .at(
                        Code::BadRegion,
                        &at.join("external_id"),
                        Part::Value,
                        "not an external id STS accepts",
                    )
                    .hint("2 to 1,224 characters: letters, digits and +=,.@:/-");
            }
            let prefix = r
                .session_name
                .clone()
                .unwrap_or_else(|| RegionRole::SESSION_PREFIX.to_string());
            if !((1..=43).contains(&prefix.len()) && chars(&prefix, b"+=,.@-")) {
                self.p
                    .at(
                        Code::BadRegion,
                        &at.join("session_name"),
                        Part::Value,
                        format!("`{prefix}` cannot start a role session name"),
                    )
                    .hint(
                        "1 to 43 characters: letters, digits and +=,.@_- (the run id follows it; STS allows 64 in all)",
                    );
            }
            let duration = match &r.duration {
                Some(t) => match self.duration(t, &at.join("duration")) {
                    Some(d) if (900..=43_200).contains(&d.as_secs()) => d,
                    Some(d) => {
                        self.p
                            .at(Code::BadRegion, &at.join("duration"), Part::Value, format!("{} is outside what STS allows", format_duration(d)))
                            .hint("role credentials last from 15m to 12h (and at most the role's maximum session duration)");
                        RegionRole::DURATION
                    }
                    None => RegionRole::DURATION,
                },
                None => RegionRole::DURATION,
            };
            self.role_accounts.insert(name.clone(), account.to_string());
            out.push((
                name.clone(),
                RegionRole {
                    role_arn: arn.clone(),
                    account: account.to_string(),
                    external_id: r.external_id.clone(),
                    session_name: prefix,
                    duration,
                },
            ));
        }
        out
    }

    /// A key given twice in one of the workflow's maps (`inputs`, `regions`, `quotas`): `message` names it at `{}`.
    fn duplicate_keys(&mut self, keys: &[String], base: &YamlPath, message: &str, hint: &str) {
        for d in keys {
            self.p
                .at(
                    Code::DuplicateId,
                    &base.join(d.as_str()),
                    Part::Key,
                    message.replace("{}", d),
                )
                .hint(hint);
        }
    }

    fn quotas_(&mut self, raw: &RawWorkflow) -> super::Quotas {
        let base = YamlPath::root().join("quotas");
        self.duplicate_keys(&raw.quotas.duplicates, &base, "quota `{}` is set twice", "keep one");
        let mut overrides = Vec::new();
        for (name, value) in &raw.quotas.entries {
            let path = base.join(name.as_str());
            let Some(q) = super::quota::find(name) else {
                let names = super::quota::ALL.iter().map(|q| q.name);
                let hint = match super::did_you_mean(name, names.clone()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known quotas: {}", names.collect::<Vec<_>>().join(", ")),
                };
                self.p
                    .at(Code::UnknownKey, &path, Part::Key, format!("unknown quota `{name}`"))
                    .hint(hint);
                continue;
            };
            if *value == 0 {
                self.p
                    .at(
                        Code::BadQuota,
                        &path,
                        Part::Value,
                        format!("quota `{name}` must be at least 1"),
                    )
                    .hint(format!("AWS's default is {}", q.limit));
            } else if !q.adjustable && *value > q.limit {
                self.p
                    .at(
                        Code::BadQuota,
                        &path,
                        Part::Value,
                        format!("{} are limited to {} by AWS, which does not raise it", q.what, q.limit),
                    )
                    .hint(format!("use at most {}", q.limit));
            } else {
                overrides.push((name.clone(), *value));
            }
        }
        super::Quotas { overrides }
    }

    fn collect_ids(&mut self, steps: &[RawStep], base: &YamlPath) {
        for (i, s) in steps.iter().enumerate() {
            let path = base.join(i);
            if let Some(id) = &s.id {
                let action = s.action.as_deref().and_then(|a| self.catalog.find(a));
                if let Some(first) = self.steps.get(id) {
                    let first_path = first.path.clone();
                    let span = self.first_line(&first_path);
                    self.p
                        .at(
                            Code::DuplicateId,
                            &path.join("id"),
                            Part::Value,
                            format!("step id `{id}` is used twice"),
                        )
                        .hint(format!(
                            "ids must be unique in the whole file; the first `{id}` is at line {span}"
                        ));
                } else {
                    self.steps.insert(
                        id.clone(),
                        StepInfo {
                            path: path.clone(),
                            action,
                        },
                    );
                }
            }
            if let Some(children) = &s.parallel {
                self.collect_ids(children, &path.join("parallel"));
            }
            if let Some(children) = &s.steps {
                if s.for_each.is_some() {
                    for_each_id(children, &mut |id| {
                        self.item_steps.insert(id.to_string());
                    });
                }
                self.collect_ids(children, &path.join("steps"));
            }
        }
    }

    /// Line number of a step's id (for "first defined at" hints).
    fn first_line(&self, path: &YamlPath) -> usize {
        let src = self.p.source();
        src.line_col(src.locate(&path.join("id"), Part::Value).offset).0
    }

    /// A sequence: each step sees the steps before it. Also checks `on_failure.goto` among siblings.
    fn sequence(&mut self, raws: &[RawStep], base: &YamlPath, before: &mut HashSet<String>) -> Vec<Step> {
        let mut out = Vec::new();
        for (i, raw) in raws.iter().enumerate() {
            let path = base.join(i);
            if let Some(s) = self.step(raw, &path, before) {
                out.push(s);
            }
            visible_ids(raw, &mut |id| {
                before.insert(id.to_string());
            });
        }
        self.routes(raws, base);
        out
    }

    fn routes(&mut self, raws: &[RawStep], base: &YamlPath) {
        let index: HashMap<&str, usize> = raws
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.id.as_deref().map(|id| (id, i)))
            .collect();
        for (i, raw) in raws.iter().enumerate() {
            let Some(target) = raw.on_failure.as_ref().and_then(|o| o.goto.as_deref()) else {
                continue;
            };
            let path = base.join(i).join("on_failure").join("goto");
            match index.get(target) {
                None if self.steps.contains_key(target) => {
                    self.p
                        .at(
                            Code::BadRoute,
                            &path,
                            Part::Value,
                            format!("`goto: {target}` leaves this sequence"),
                        )
                        .hint("failure routing may only go to a later step of the same list");
                }
                None => {
                    let p = self.p.at(
                        Code::BadRoute,
                        &path,
                        Part::Value,
                        format!("no step `{target}` to go to"),
                    );
                    match did_you_mean(target, index.keys().copied()) {
                        Some(s) => p.hint(format!("did you mean `{s}`?")),
                        None => p.hint("name a later step of the same list"),
                    };
                }
                Some(&j) if j <= i => {
                    let ids: Vec<&str> = raws[j..=i].iter().map(|s| s.id.as_deref().unwrap_or("?")).collect();
                    self.p
                        .at(
                            Code::RoutingCycle,
                            &path,
                            Part::Value,
                            format!("failure routing forms a cycle: {} → {target}", ids.join(" → ")),
                        )
                        .hint("route failures forward, to a later step; use `retry` to try a step again");
                }
                Some(_) => {}
            }
        }
    }

    fn step(&mut self, raw: &RawStep, path: &YamlPath, before: &HashSet<String>) -> Option<Step> {
        let id = match &raw.id {
            Some(id) if self.id_re.is_match(id) => id.clone(),
            Some(id) => {
                self.p
                    .at(
                        Code::BadStep,
                        &path.join("id"),
                        Part::Value,
                        format!("`{id}` is not a valid step id"),
                    )
                    .hint("use letters, digits, `_` and `-`, starting with a letter or `_`");
                id.clone()
            }
            None => {
                self.p
                    .at(Code::MissingKey, path, Part::Value, "this step has no `id`")
                    .hint("every step needs a unique `id`");
                String::new()
            }
        };
        let when = raw.when.as_ref().and_then(|Text(t)| {
            let wpath = path.join("when");
            let e = self.condition(t, &wpath)?;
            e.resolve(&mut |r: &Reference| self.resolve(r, &wpath, before, &id))
        });
        // A notification's failure never fails the run, unless the step says otherwise.
        let advisory = raw
            .action
            .as_deref()
            .and_then(|a| self.catalog.find(a))
            .is_some_and(|s| s.advisory);
        let on_failure = match (&raw.on_failure, raw.continue_on_error) {
            (Some(_), Some(true)) => {
                self.p
                    .at(
                        Code::BadStep,
                        &path.join("continue_on_error"),
                        Part::Key,
                        "`on_failure` and `continue_on_error` exclude each other",
                    )
                    .hint("keep one of them");
                OnFailure::Abort
            }
            (Some(RawOnFailure { goto: Some(g) }), _) => OnFailure::Goto(g.clone()),
            (Some(RawOnFailure { goto: None }), _) => {
                self.p
                    .at(
                        Code::MissingKey,
                        &path.join("on_failure"),
                        Part::Value,
                        "`on_failure` needs `goto: STEP_ID`",
                    )
                    .hint("or use `continue_on_error: true` to carry on after a failure");
                OnFailure::Abort
            }
            (None, Some(true)) => OnFailure::Continue,
            (None, None) if advisory => OnFailure::Continue,
            (None, _) => OnFailure::Abort,
        };
        let forms = [raw.action.is_some(), raw.parallel.is_some(), raw.steps.is_some()];
        let kind = match forms {
            [true, false, false] => StepKind::Action(self.action_step(raw, path, before, &id)?),
            [false, true, false] => {
                self.group_only(raw, path);
                let children = raw.parallel.as_deref().unwrap_or_default();
                let mut branches = Vec::new();
                for (i, c) in children.iter().enumerate() {
                    // Branches run at the same time: none sees another's outputs.
                    let mut b = before.clone();
                    let cpath = path.join("parallel").join(i);
                    if let Some(s) = self.step(c, &cpath, &b) {
                        branches.push(s);
                    }
                    visible_ids(c, &mut |id| {
                        b.insert(id.to_string());
                    });
                }
                if children.is_empty() {
                    self.p
                        .at(
                            Code::BadStep,
                            &path.join("parallel"),
                            Part::Value,
                            "`parallel` has no branches",
                        )
                        .hint("list the steps to run at the same time");
                }
                self.concurrent_writes(&branches, &path.join("parallel"));
                StepKind::Parallel(branches)
            }
            [false, false, true] if raw.for_each.is_some() => {
                self.group_only(raw, path);
                StepKind::ForEach(self.for_each(raw, path, before, &id)?)
            }
            [false, false, true] => {
                self.group_only(raw, path);
                self.for_each_only(raw, path);
                let mut b = before.clone();
                StepKind::Sequence(self.sequence(raw.steps.as_deref().unwrap_or_default(), &path.join("steps"), &mut b))
            }
            _ => {
                let p = self.p.at(
                    Code::BadStep,
                    path,
                    Part::Value,
                    format!("step `{id}` must have exactly one of `action`, `parallel` or `steps`"),
                );
                if forms.iter().all(|f| !f) {
                    p.label("nothing to do");
                }
                p.hint("an action step has `action`; a group has `parallel` (branches) or `steps` (a sequence)");
                return None;
            }
        };
        Some(Step {
            id,
            name: raw.name.clone(),
            when,
            when_text: raw.when.as_ref().map(|Text(t)| t.clone()),
            on_failure,
            kind,
        })
    }

    /// A `for_each` group: its list, its limits, and its body (which sees `item`).
    fn for_each(&mut self, raw: &RawStep, path: &YamlPath, before: &HashSet<String>, id: &str) -> Option<ForEach> {
        let list_path = path.join("for_each");
        let items = match raw.for_each.as_ref() {
            Some(serde_yaml::Value::Sequence(_) | serde_yaml::Value::String(_)) => {
                self.value_template(raw.for_each.as_ref()?, &list_path, before, id)
            }
            _ => {
                self.p
                    .at(Code::BadStep, &list_path, Part::Value, "`for_each` takes a list")
                    .hint("e.g. `for_each: ${{ inputs.instance_ids }}` or `for_each: [i-0123..., i-0456...]`");
                None
            }
        };
        let max_concurrency = raw.max_concurrency.unwrap_or(10);
        if max_concurrency == 0 {
            self.p
                .at(
                    Code::BadStep,
                    &path.join("max_concurrency"),
                    Part::Value,
                    "`max_concurrency` must be at least 1",
                )
                .hint("how many items run at once");
        }
        if let Some(p) = raw.tolerated_failure_percentage
            && !(0.0..=100.0).contains(&p)
        {
            self.p
                .at(
                    Code::BadStep,
                    &path.join("tolerated_failure_percentage"),
                    Part::Value,
                    format!("`tolerated_failure_percentage` is a share from 0 to 100, not {p}"),
                )
                .hint("e.g. 10 tolerates one failed item in ten");
        }
        let wait_locked = match raw.when_locked.as_deref() {
            None | Some("skip") => false,
            Some("wait") => true,
            Some(other) => {
                self.p
                    .at(
                        Code::BadStep,
                        &path.join("when_locked"),
                        Part::Value,
                        format!("`when_locked` is `skip` or `wait`, not `{other}`"),
                    )
                    .hint("what to do with an item another run is working on");
                false
            }
        };
        self.item_depth += 1;
        let mut b = before.clone();
        let steps = self.sequence(raw.steps.as_deref().unwrap_or_default(), &path.join("steps"), &mut b);
        self.item_depth -= 1;
        Some(ForEach {
            items: items?,
            max_concurrency: max_concurrency.max(1) as usize,
            tolerated_failures: raw.tolerated_failures,
            tolerated_failure_percentage: raw.tolerated_failure_percentage,
            wait_locked,
            steps,
        })
    }

    /// Keys that only `for_each` groups take.
    fn for_each_only(&mut self, raw: &RawStep, path: &YamlPath) {
        let extra = [
            ("max_concurrency", raw.max_concurrency.is_some()),
            ("tolerated_failures", raw.tolerated_failures.is_some()),
            (
                "tolerated_failure_percentage",
                raw.tolerated_failure_percentage.is_some(),
            ),
            ("when_locked", raw.when_locked.is_some()),
        ];
        for (key, present) in extra {
            if present {
                self.p
                    .at(
                        Code::BadStep,
                        &path.join(key),
                        Part::Key,
                        format!("`{key}` applies to `for_each` groups"),
                    )
                    .hint("add `for_each: LIST` to this group, or remove the key");
            }
        }
    }

    /// Keys that only action steps take.
    fn group_only(&mut self, raw: &RawStep, path: &YamlPath) {
        let extra = [
            ("region", raw.region.is_some()),
            ("with", raw.with.is_some()),
            ("retry", raw.retry.is_some()),
            ("timeout", raw.timeout.is_some()),
            ("poll", raw.poll.is_some()),
        ];
        for (key, present) in extra {
            if present {
                self.p
                    .at(
                        Code::BadStep,
                        &path.join(key),
                        Part::Key,
                        format!("`{key}` applies to action steps, not to groups"),
                    )
                    .hint("move it to the steps inside the group");
            }
        }
    }

    fn action_step(
        &mut self,
        raw: &RawStep,
        path: &YamlPath,
        before: &HashSet<String>,
        id: &str,
    ) -> Option<ActionStep> {
        let name = raw.action.as_deref().unwrap_or_default();
        let Some(spec) = self.catalog.find(name) else {
            let p = self.p.at(
                Code::UnknownAction,
                &path.join("action"),
                Part::Value,
                format!("unknown action `{name}`"),
            );
            match did_you_mean(name, self.catalog.names()) {
                Some(s) => p.hint(format!("did you mean `{s}`? (`drflow actions` lists them all)")),
                None => p.hint("`drflow actions` lists the actions"),
            };
            return None;
        };

        // An approval stops the whole run while it waits: it must be a step of the run's own sequence.
        if spec.name == "drflow.approve" && !matches!(path.0.as_slice(), [Seg::Key(k), Seg::Index(_)] if k == "steps") {
            self.p
                .at(
                    Code::BadStep,
                    &path.join("action"),
                    Part::Value,
                    "`drflow.approve` can only be a top-level step of `steps`",
                )
                .hint("move it out of the `parallel`, `steps` or `for_each` group (and out of `finally`)");
        }
        let region = match (&raw.region, spec.needs_region()) {
            (Some(r), _) if self.regions.contains(r) => Some(r.clone()),
            (Some(r), _) => {
                let p = self.p.at(
                    Code::BadRegion,
                    &path.join("region"),
                    Part::Value,
                    format!("`{r}` is not a region of this workflow"),
                );
                let hint = match did_you_mean(r, self.regions.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if self.regions.is_empty() => "declare it under `regions:`, e.g. `primary: us-east-1`".into(),
                    None => format!("use one of: {}", self.regions.join(", ")),
                };
                p.hint(hint);
                None
            }
            (None, true) => {
                self.p
                    .at(
                        Code::MissingKey,
                        &path.join("action"),
                        Part::Key,
                        format!("step `{id}` needs a `region`"),
                    )
                    .hint(format!(
                        "`{name}` calls AWS; add e.g. `region: {}`",
                        self.regions.first().map_or("primary", |s| s)
                    ));
                None
            }
            (None, false) => None,
        };

        let with_path = path.join("with");
        let mut with = Vec::new();
        let given = raw.with.as_ref().map(|w| w.entries.as_slice()).unwrap_or_default();
        if let Some(w) = &raw.with {
            for d in &w.duplicates {
                self.p
                    .at(
                        Code::DuplicateId,
                        &with_path.join(d.as_str()),
                        Part::Key,
                        format!("input `{d}` is given twice"),
                    )
                    .hint("keep one value");
            }
        }
        for (key, value) in given {
            let vpath = with_path.join(key.as_str());
            let Some(input) = spec.input(key) else {
                let p = self.p.at(
                    Code::UnknownInput,
                    &vpath,
                    Part::Key,
                    format!("`{name}` has no input `{key}`"),
                );
                match did_you_mean(key, spec.inputs.iter().map(|i| i.name)) {
                    Some(s) => p.hint(format!("did you mean `{s}`?")),
                    None => p.hint(format!(
                        "its inputs are: {}",
                        spec.inputs.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
                    )),
                };
                continue;
            };
            if let Some(t) = self.value_template(value, &vpath, before, id) {
                if let (ValueTemplate::Literal(serde_json::Value::String(file)), InputKind::Template) = (&t, input.kind)
                {
                    self.template_file(file, &vpath);
                }
                if let ValueTemplate::Literal(v) = &t
                    && !input.kind.accepts(v)
                {
                    self.p
                        .at(
                            Code::BadType,
                            &vpath,
                            Part::Value,
                            format!("input `{key}` of `{name}` must be a {}", input.kind.as_str()),
                        )
                        .hint(input.description);
                }
                if let ValueTemplate::Literal(serde_json::Value::String(v)) = &t
                    && !input.choices.is_empty()
                    && !input.choices.contains(&v.as_str())
                {
                    self.p
                        .at(
                            Code::BadType,
                            &vpath,
                            Part::Value,
                            format!(
                                "input `{key}` of `{name}` is `{v}`, not one of {}",
                                input.choices.join(", ")
                            ),
                        )
                        .hint(input.description);
                }
                with.push((key.clone(), t));
            }
        }
        if spec.lifecycle {
            self.lifecycle(&with, &with_path);
        }
        // An age limit written as a literal is checked now (from `${{ }}`: by the action, before its first call).
        if let Some((_, ValueTemplate::Literal(Value::String(t)))) = with.iter().find(|(k, _)| k == "max_age")
            && let Err(e) = parse_duration(t)
        {
            self.p
                .at(
                    Code::BadDuration,
                    &with_path.join("max_age"),
                    Part::Value,
                    format!("input `max_age` of `{name}`: {e}"),
                )
                .hint("write a duration such as `24h`, `1d` or `1h30m`");
        }
        let missing: Vec<&str> = spec
            .inputs
            .iter()
            .filter(|i| i.required && !given.iter().any(|(k, _)| k == i.name))
            .map(|i| i.name)
            .collect();
        if !missing.is_empty() {
            let at = if raw.with.is_some() {
                with_path.clone()
            } else {
                path.join("action")
            };
            let part = if raw.with.is_some() { Part::Key } else { Part::Value };
            self.p
                .at(
                    Code::MissingInput,
                    &at,
                    part,
                    format!(
                        "step `{id}` is missing required inputs of `{name}`: {}",
                        missing.join(", ")
                    ),
                )
                .hint(
                    missing
                        .iter()
                        .filter_map(|m| spec.input(m).map(|i| format!("{m}: {}", i.description)))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
        }

        let retry = self.retry(raw.retry.as_ref(), &path.join("retry"));
        let timeout = match &raw.timeout {
            Some(t) => self.duration(t, &path.join("timeout")),
            None => self.default_timeout,
        }
        .unwrap_or(Duration::from_secs(spec.default_timeout_secs));
        if raw.poll.is_some() && spec.kind != ActionKind::Wait {
            self.p
                .at(
                    Code::BadStep,
                    &path.join("poll"),
                    Part::Key,
                    format!("`poll` applies to wait actions; `{name}` is not one"),
                )
                .hint("remove `poll` from this step");
        }
        let poll = self.poll(raw.poll.as_ref(), &path.join("poll"));
        Some(ActionStep {
            action: spec,
            region,
            with,
            retry: retry.unwrap_or_default(),
            timeout,
            poll: poll.unwrap_or_default(),
        })
    }

    fn retry(&mut self, step: Option<&RawRetry>, path: &YamlPath) -> Option<RetryPolicy> {
        let d = self.default_retry.clone();
        let s = step.cloned().unwrap_or_default();
        // The step's own keys win over `defaults.retry`, which win over ASL's defaults.
        let (path_of, dpath) = (|k: &str| path.join(k), YamlPath::root().join("defaults").join("retry"));
        let pick = |own: bool, k: &str| if own { path_of(k) } else { dpath.join(k) };
        let base = RetryPolicy::default();
        let mut policy = base.clone();
        let mut ok = true;
        if let Some(n) = s.max_attempts.or(d.max_attempts) {
            if n > 99 {
                self.p
                    .at(
                        Code::BadRetry,
                        &pick(s.max_attempts.is_some(), "max_attempts"),
                        Part::Value,
                        "`max_attempts` is at most 99",
                    )
                    .hint("max_attempts counts retries after the first attempt, as in Amazon States Language");
                ok = false;
            }
            policy.max_attempts = n;
        }
        if let Some(t) = s.interval.as_ref().or(d.interval.as_ref()).cloned() {
            match self.duration(&t, &pick(s.interval.is_some(), "interval")) {
                Some(v) => policy.interval = v,
                None => ok = false,
            }
        }
        if let Some(r) = s.backoff_rate.or(d.backoff_rate) {
            if !(1.0..=100.0).contains(&r) {
                self.p
                    .at(
                        Code::BadRetry,
                        &pick(s.backoff_rate.is_some(), "backoff_rate"),
                        Part::Value,
                        format!("`backoff_rate` must be between 1.0 and 100, not {r}"),
                    )
                    .hint("1.0 keeps the interval constant; 2.0 doubles it each retry");
                ok = false;
            }
            policy.backoff_rate = r;
        }
        if let Some(t) = s.max_delay.as_ref().or(d.max_delay.as_ref()).cloned() {
            match self.duration(&t, &pick(s.max_delay.is_some(), "max_delay")) {
                Some(v) => policy.max_delay = Some(v),
                None => ok = false,
            }
        }
        if let Some(j) = s.jitter.as_ref().or(d.jitter.as_ref()) {
            policy.jitter = match j.as_str() {
                "full" => Jitter::Full,
                "none" => Jitter::None,
                other => {
                    self.p
                        .at(
                            Code::BadRetry,
                            &pick(s.jitter.is_some(), "jitter"),
                            Part::Value,
                            format!("`{other}` is not a jitter strategy"),
                        )
                        .hint("use `full` or `none`");
                    ok = false;
                    Jitter::None
                }
            };
        }
        if let Some(errs) = s.errors.as_ref().or(d.errors.as_ref()) {
            let own = s.errors.is_some();
            let mut list = Vec::new();
            for (i, e) in errs.iter().enumerate() {
                match ErrorMatch::parse(e) {
                    Ok(m) => list.push(m),
                    Err(msg) => {
                        self.p
                            .at(Code::BadRetry, &pick(own, "errors").join(i), Part::Value, msg)
                            .hint("e.g. `errors: [transient, TooManyUpdates]`");
                        ok = false;
                    }
                }
            }
            policy.errors = list;
        }
        ok.then_some(policy)
    }

    fn poll(&mut self, step: Option<&RawPoll>, path: &YamlPath) -> Option<PollPolicy> {
        let d = self.default_poll.clone();
        let s = step.cloned().unwrap_or_default();
        let dpath = YamlPath::root().join("defaults").join("poll");
        let mut policy = PollPolicy::default();
        if let Some(t) = s.interval.as_ref().or(d.interval.as_ref()) {
            let p = if s.interval.is_some() {
                path.join("interval")
            } else {
                dpath.join("interval")
            };
            policy.interval = self.duration(t, &p)?;
        }
        if let Some(t) = s.max_interval.as_ref().or(d.max_interval.as_ref()) {
            let p = if s.max_interval.is_some() {
                path.join("max_interval")
            } else {
                dpath.join("max_interval")
            };
            policy.max_interval = self.duration(t, &p)?;
        }
        if let Some(r) = s.backoff_rate.or(d.backoff_rate) {
            if !(1.0..=10.0).contains(&r) {
                self.p
                    .at(
                        Code::BadRetry,
                        &path.join("backoff_rate"),
                        Part::Value,
                        format!("poll `backoff_rate` must be between 1.0 and 10, not {r}"),
                    )
                    .hint("1.0 polls at a constant interval");
                return None;
            }
            policy.backoff_rate = r;
        }
        if policy.interval.is_zero() {
            self.p
                .at(
                    Code::BadDuration,
                    &path.join("interval"),
                    Part::Value,
                    "the poll interval must be more than 0",
                )
                .hint("e.g. `interval: 15s`");
            return None;
        }
        Some(policy)
    }

    fn duration(&mut self, t: &Text, path: &YamlPath) -> Option<Duration> {
        match parse_duration(&t.0) {
            Ok(d) => Some(d),
            Err(e) => {
                self.p
                    .at(Code::BadDuration, path, Part::Value, e)
                    .hint("write durations like 30s, 15m, 2h or 1h30m");
                None
            }
        }
    }

    fn expr_error(&mut self, e: ExprError, path: &YamlPath) {
        self.p
            .within(Code::BadExpression, path, e.at, e.len, e.message)
            .hint("expressions use references (inputs.x, steps.id.outputs.y, regions.r) with == != && || ! and ( )");
    }

    fn template(&mut self, text: &str, path: &YamlPath) -> Option<Template<Reference>> {
        match Template::parse(text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.expr_error(e, path);
                None
            }
        }
    }

    /// `when:` takes `${{ expr }}` or a bare expression.
    fn condition(&mut self, text: &str, path: &YamlPath) -> Option<Expr<Reference>> {
        let parsed = if text.contains("${{") {
            Template::parse(text).and_then(|t| match t.pieces.as_slice() {
                [Piece::Expr(e)] => Ok(e.clone()),
                _ => Err(ExprError {
                    at: 0,
                    len: text.len(),
                    message: "a condition must be one `${{ ... }}` with nothing around it".into(),
                }),
            })
        } else {
            Expr::parse(text, 0)
        };
        match parsed {
            Ok(e) => Some(e),
            Err(e) => {
                self.expr_error(e, path);
                None
            }
        }
    }

    fn value_template(
        &mut self,
        v: &serde_yaml::Value,
        path: &YamlPath,
        before: &HashSet<String>,
        id: &str,
    ) -> Option<ValueTemplate> {
        use serde_yaml::Value as Y;
        Some(match v {
            Y::String(s) => {
                let t = self.template(s, path)?;
                if t.is_literal() {
                    ValueTemplate::Literal(Value::String(s.clone()))
                } else {
                    ValueTemplate::Template(t.resolve(&mut |r: &Reference| self.resolve(r, path, before, id))?)
                }
            }
            Y::Sequence(items) => ValueTemplate::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.value_template(x, &path.join(i), before, id))
                    .collect::<Option<_>>()?,
            ),
            Y::Mapping(m) => {
                let mut entries = Vec::new();
                for (k, x) in m {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        other => yaml_to_json(other).to_string(),
                    };
                    entries.push((
                        key.clone(),
                        self.value_template(x, &path.join(key.as_str()), before, id)?,
                    ));
                }
                ValueTemplate::Map(entries)
            }
            other => ValueTemplate::Literal(yaml_to_json(other)),
        })
    }

    /// Resolves one reference into its typed form: it must name something that exists and, for steps, has run
    /// before `id`. Every problem is reported; `None` when there is one.
    fn resolve(&mut self, r: &Reference, path: &YamlPath, before: &HashSet<String>, id: &str) -> Option<Ref> {
        let bad = |me: &mut Self, msg: String, hint: Option<String>| {
            let p = me.p.within(Code::BadReference, path, r.at, r.len, msg);
            if let Some(h) = hint {
                p.hint(h);
            }
            None
        };
        let Some(typed) = Ref::from_path(&r.path) else {
            if let [first, step, ..] = r.path.as_slice()
                && first == "steps"
            {
                return bad(
                    self,
                    format!("`{}` is not a step reference", r.dotted()),
                    Some(format!(
                        "use steps.{step}.outputs.NAME, steps.{step}.status or steps.{step}.error"
                    )),
                );
            }
            return bad(
                self,
                format!("`{}` is not a reference drflow knows", r.dotted()),
                Some("references start with inputs., steps., regions., run., account. or accounts.".into()),
            );
        };
        match &typed {
            Ref::Input(name) if !self.inputs.iter().any(|i| i == name) => {
                let hint = did_you_mean(name, self.inputs.iter().map(String::as_str))
                    .map(|s| format!("did you mean `inputs.{s}`?"))
                    .or_else(|| Some("declare it under `inputs:`".into()));
                return bad(self, format!("there is no input `{name}`"), hint);
            }
            Ref::Region(name) if !self.regions.iter().any(|i| i == name) => {
                let hint = did_you_mean(name, self.regions.iter().map(String::as_str))
                    .map(|s| format!("did you mean `regions.{s}`?"));
                return bad(self, format!("there is no region `{name}`"), hint);
            }
            Ref::Account { region, .. } if !self.regions.iter().any(|i| i == region) => {
                let hint = did_you_mean(region, self.regions.iter().map(String::as_str))
                    .map(|s| format!("did you mean `accounts.{s}`?"));
                return bad(self, format!("there is no region `{region}`"), hint);
            }
            Ref::Account { region, .. } => {
                return Some(Ref::Account {
                    region: region.clone(),
                    fixed: self.role_accounts.get(region).cloned(),
                });
            }
            _ => {}
        }
        if typed == Ref::Item && self.item_depth == 0 {
            return bad(
                self,
                "`item` is only defined inside a `for_each`".to_string(),
                Some("use it in the steps of a `for_each` group".into()),
            );
        }
        let Some(step) = typed.step() else {
            return Some(typed);
        };
        if self.item_steps.contains(step) && self.item_depth == 0 {
            return bad(
                self,
                format!("step `{step}` runs once per item of a `for_each`: it has no one value here"),
                Some("use the `for_each` group's outputs: steps.GROUP.outputs.items.KEY.STEP.NAME".into()),
            );
        }
        let Some(info) = self.steps.get(step) else {
            let hint =
                did_you_mean(step, self.steps.keys().map(String::as_str)).map(|s| format!("did you mean `steps.{s}`?"));
            return bad(self, format!("there is no step `{step}`"), hint);
        };
        // Groups have no outputs; an unknown action is reported at the action.
        if let (Ref::StepOutput { output, .. }, Some(spec)) = (&typed, info.action)
            && !spec.has_output(output)
        {
            let names: Vec<&str> = spec.outputs.iter().map(|o| o.name).collect();
            let hint = match did_you_mean(output, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("its outputs are: {}", names.join(", ")),
            };
            return bad(
                self,
                format!("step `{step}` ({}) has no output `{output}`", spec.name),
                Some(hint),
            );
        }
        if !before.contains(step) {
            let msg = if step == id {
                format!("step `{id}` refers to itself")
            } else {
                format!("step `{step}` has not run before `{id}`")
            };
            self.p.within(Code::NotYetRun, path, r.at, r.len, msg).hint(
                "a step can use the outputs of steps earlier in its sequence (not of parallel siblings or later steps)",
            );
            return None;
        }
        Some(typed)
    }

    /// AWS Backup's rules for a lifecycle written as literals: whole days from 1, deletion at least 90 days after a
    /// move to cold storage; and a warning where AWS would ignore it (EC2 recovery points never move to cold
    /// storage). Values from `${{ }}` are checked by the action at run time.
    fn lifecycle(&mut self, with: &[(String, ValueTemplate)], path: &YamlPath) {
        let literal = |name: &str| {
            with.iter().find(|(k, _)| k == name).and_then(|(_, v)| match v {
                ValueTemplate::Literal(v) => v.as_i64(),
                _ => None,
            })
        };
        const COLD: &str = "move_to_cold_storage_after_days";
        const DELETE: &str = "delete_after_days";
        for name in [COLD, DELETE] {
            if let Some(d) = literal(name)
                && d < 1
            {
                self.p
                    .at(
                        Code::BadLifecycle,
                        &path.join(name),
                        Part::Value,
                        format!("`{name}` must be at least 1 day, not {d}"),
                    )
                    .hint("leave it out to keep the recovery point until it is deleted");
            }
        }
        if let (Some(cold), Some(delete)) = (literal(COLD), literal(DELETE))
            && delete < cold + 90
        {
            self.p
                .at(
                    Code::BadLifecycle,
                    &path.join(DELETE),
                    Part::Value,
                    format!("`{DELETE}` ({delete}) must be at least 90 days after `{COLD}` ({cold})"),
                )
                .hint(format!(
                    "AWS Backup keeps a recovery point 90 days in cold storage at least: use {} or more",
                    cold + 90
                ));
        }
        if with.iter().any(|(k, _)| k == COLD) {
            self.p
                .at(
                    Code::BadLifecycle,
                    &path.join(COLD),
                    Part::Key,
                    format!("AWS Backup ignores `{COLD}` for EC2: EC2 recovery points do not move to cold storage"),
                )
                .hint("remove it; `delete_after_days` alone bounds how long the AMI is kept")
                .warn();
        }
    }

    /// A template file input: it must exist (relative to the workflow file) and be a CloudFormation template.
    fn template_file(&mut self, file: &str, path: &YamlPath) {
        let full = self.dir.join(file);
        let problem = match std::fs::read_to_string(&full) {
            Err(e) => Some((
                format!("template `{file}` cannot be read ({e})"),
                format!("the path is relative to the workflow file: {}", full.display()),
            )),
            Ok(text) => match serde_yaml::from_str::<serde_yaml::Value>(&text) {
                Err(e) => Some((
                    format!("template `{file}` is not YAML or JSON: {e}"),
                    "a CloudFormation template is a YAML or JSON document".to_string(),
                )),
                Ok(doc) if !doc.get("Resources").is_some_and(serde_yaml::Value::is_mapping) => Some((
                    format!("`{file}` is not a CloudFormation template: it has no `Resources` section"),
                    "a CloudFormation template declares its resources under `Resources:`".to_string(),
                )),
                Ok(_) => None,
            },
        };
        if let Some((message, hint)) = problem {
            self.p.at(Code::BadFile, path, Part::Value, message).hint(hint);
        }
    }

    /// Steps that may run at the same time must not write the same resource (e.g. one SSM parameter in one region):
    /// which write wins would be a race. `branches` are a parallel group's branches.
    fn concurrent_writes(&mut self, branches: &[Step], path: &YamlPath) {
        let mut seen: Vec<(usize, String, String, String)> = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let mut all = Vec::new();
            b.walk(&mut all);
            for s in all {
                let Some(a) = s.action() else { continue };
                let Some(w) = a.action.writes else { continue };
                let Some((_, v)) = a.with.iter().find(|(k, _)| k == w.input) else {
                    continue;
                };
                let region = a.region.clone().unwrap_or_default();
                let target = v.canonical();
                if let Some((_, other, ..)) = seen.iter().find(|(j, _, r, t)| *j != i && *r == region && *t == target) {
                    self.p
                        .at(
                            Code::ConcurrentWrite,
                            path,
                            Part::Key,
                            format!(
                                "steps `{other}` and `{}` may run at the same time and both write the {} `{target}` in region `{region}`",
                                s.id,
                                w.what.label()
                            ),
                        )
                        .hint("run them one after the other, or write to different names or regions");
                }
                seen.push((i, s.id.clone(), region, target));
            }
        }
    }
}

/// The ids a step makes known to the steps after it: its own and, for a plain group, its children's (not the
/// steps inside a `for_each`, which run once per item).
fn visible_ids(step: &RawStep, f: &mut dyn FnMut(&str)) {
    if step.for_each.is_some() {
        if let Some(id) = &step.id {
            f(id);
        }
        return;
    }
    for_each_id(std::slice::from_ref(step), f);
}

fn for_each_id(steps: &[RawStep], f: &mut dyn FnMut(&str)) {
    for s in steps {
        if let Some(id) = &s.id {
            f(id);
        }
        for children in [&s.parallel, &s.steps].into_iter().flatten() {
            for_each_id(children, f);
        }
    }
}

pub fn yaml_to_json(v: &serde_yaml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
