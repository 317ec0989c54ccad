//! The state machine: its layout of the execution's state, the step lists, and the control constructs
//! (`when` → Choice, `parallel` → Parallel, `for_each` → Map, `on_failure` → Catch, `finally` → a cleanup path
//! reached from success and failure).
//!
//! State (JSONPath): `inputs` (defaults merged with the execution's input), `regions`, `account` (from the state
//! machine's ARN), `run` (`id` = the execution's name, `workflow`, `status`, `error`), `item` inside a Map,
//! `steps.ID` (each step's outputs), `w.ID` (a step's work: its inputs and the answers of its calls). Branches and
//! items give back their `steps`, merged into the parent's.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::expr::{self, Names, Rule, dot};
use super::form::StepCx;
use super::node::Node;
use super::retry::{self, Via};
use super::{Options, Refusal};
use crate::actions::sfn::Form;
use crate::workflow::{ForEach, OnFailure, Step, StepKind, ValueTemplate, Workflow};

/// States being built, in insertion order of their names (the JSON object sorts them).
#[derive(Default)]
pub(crate) struct Chain {
    pub states: Map<String, Value>,
}

impl Chain {
    pub fn add(&mut self, name: &str, state: Value) {
        self.states.insert(name.to_string(), state);
    }

    /// Sets a state's `Next`, and that of its catchers that went to the same placeholder.
    pub fn set_next(&mut self, name: &str, next: &str) {
        if let Some(s) = self.states.get_mut(name) {
            let old = s["Next"].clone();
            s["Next"] = json!(next);
            for c in s.get_mut("Catch").and_then(Value::as_array_mut).into_iter().flatten() {
                if c["Next"] == old {
                    c["Next"] = json!(next);
                }
            }
        }
    }

    fn take(self) -> Value {
        Value::Object(self.states)
    }
}

pub(crate) struct Builder<'a> {
    pub wf: &'a Workflow,
    pub opts: &'a Options,
    /// Region name → code.
    pub regions: BTreeMap<String, String>,
    /// The state machine's own region code.
    pub home: String,
    pub in_map: bool,
    pub cross_region: bool,
    /// The roles Task states assume (`Credentials`), by ARN.
    pub roles: std::collections::BTreeSet<String>,
    /// While the main steps of a workflow with `finally` are built: where a top-level step's failure goes (the
    /// main branch's end, the run marked failed), so that `finally` sees the outputs of the steps before it.
    guard: Option<String>,
    /// The history events the waits of the execution being built may make at most (each wait to its timeout),
    /// by step: one execution's, or a Map item's child execution's.
    pub events: Vec<(String, usize)>,
    pub refusals: Vec<Refusal>,
    /// The workflow's inputs with a value at export (given or defaulted), for forms that need one known.
    pub known: Map<String, Value>,
    /// Whether a step asks for approval on the approvals topic.
    pub approvals: bool,
    /// Each action step's form (by step id), and the outputs it gives.
    forms: BTreeMap<String, Result<Form, String>>,
    outputs: BTreeMap<String, Vec<&'static str>>,
    /// The steps whose `status == 'succeeded'` the state tells (`super::status`).
    settled: std::collections::BTreeSet<String>,
}

const DONE: &str = "Succeeded";

/// The events the waits of one execution may take: 25,000 less room for its other states.
const HISTORY_BUDGET: usize = 20_000;

impl<'a> Builder<'a> {
    pub fn new(wf: &'a Workflow, opts: &'a Options, regions: BTreeMap<String, String>, home: String) -> Builder<'a> {
        let mut forms = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        for s in wf.all_steps() {
            if let Some(a) = s.action() {
                let form = crate::actions::of(a.action).sfn().map_err(str::to_string);
                if let Ok(f) = &form {
                    outputs.insert(s.id.clone(), f.outputs.iter().map(|(k, _)| *k).collect());
                }
                forms.insert(s.id.clone(), form);
            }
        }
        let settled = super::status::settled(wf);
        Builder {
            wf,
            opts,
            settled,
            regions,
            home,
            in_map: false,
            cross_region: false,
            roles: Default::default(),
            guard: None,
            events: Vec::new(),
            refusals: Vec::new(),
            known: Map::new(),
            approvals: false,
            forms,
            outputs,
        }
    }

    pub fn names(&self) -> Names<'_> {
        Names {
            outputs: &self.outputs,
            settled: &self.settled,
        }
    }

    pub fn value(&self, v: &ValueTemplate) -> Result<Node, String> {
        expr::value(v, &self.names())
    }

    pub fn function_name(&self) -> Value {
        match &self.opts.function {
            Some(f) => json!(f),
            None => json!(super::FUNCTION_NAME),
        }
    }

    fn refuse(&mut self, step: &Step, reason: String) {
        self.refusals.push(Refusal::new(self.wf, &step.id, reason));
    }

    /// The whole definition.
    pub fn definition(&mut self, defaults: &Map<String, Value>) -> Value {
        self.known = defaults.clone();
        let mut chain = Chain::default();
        chain.add(DONE, json!({"Type": "Succeed"}));
        // The execution's output: the run and the steps' outputs, not the steps' working data.
        chain.add(
            "Output",
            json!({"Type": "Pass", "Parameters": {"run.$": "$.run", "steps.$": "$.steps"}, "Next": DONE}),
        );
        chain.add(
            "Run failed",
            json!({"Type": "Fail", "ErrorPath": "$.run.error_name", "CausePath": "$.run.error"}),
        );
        chain.add(
            "Run ended",
            json!({"Type": "Choice", "Comment": "a step routed with `on_failure: goto` (or caught for `finally`) failed the run",
                   "Choices": [{"Variable": "$.run.status", "StringEquals": "failed", "Next": "Run failed"}], "Default": "Output"}),
        );
        let end = if self.wf.finally.is_empty() {
            self.steps(&self.wf.steps, "Run ended", &mut chain)
        } else {
            self.with_finally(&mut chain)
        };
        let regions: Map<String, Value> = self.regions.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        chain.add(
            "Start",
            json!({"Type": "Pass", "Comment": "the workflow's inputs (as exported) under the execution's input",
                   "Parameters": {"defaults": defaults, "given.$": "$"}, "Next": "Layout"}),
        );
        chain.add(
            "Layout",
            json!({"Type": "Pass", "Parameters": {
                "inputs.$": "States.JsonMerge($.defaults, $.given, false)",
                "regions": regions,
                "account.$": "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), 4)",
                "run": {"id.$": "$$.Execution.Name", "workflow": self.wf.name, "status": "running", "error": ""},
                "steps": {},
                "w": {},
            }, "Next": end}),
        );
        let mut def = json!({
            "Comment": format!("drflow workflow {}, exported by drflow {} (drflow export)", self.wf.name, env!("CARGO_PKG_VERSION")),
            "StartAt": "Start",
            "States": chain.take(),
        });
        if let Some(d) = &self.wf.description {
            def["Comment"] = json!(format!("{}: {d}", def["Comment"].as_str().unwrap_or_default()));
        }
        def
    }

    /// The main steps in a Parallel whose Catch records the failure; then `finally` from both ends; then the run's
    /// end, failed if a step failed it.
    fn with_finally(&mut self, chain: &mut Chain) -> String {
        let finally = self.wf.finally.iter().collect::<Vec<_>>();
        let first_finally = self.step_list(&finally, "Run ended", chain);
        // The main branch gives back its steps and its run (a step routed with `on_failure: goto` marks it failed).
        self.guard = Some("main: end".into());
        let mut branch = self.branch(&self.wf.steps.iter().collect::<Vec<_>>(), "main");
        self.guard = None;
        if let Some(end) = branch["States"].get_mut("main: end") {
            *end = json!({"Type": "Pass", "Parameters": {"steps.$": "$.steps", "run.$": "$.run"}, "End": true});
        }
        chain.add(
            "Main failed",
            json!({"Type": "Pass", "Parameters": self.envelope("$.steps", Some(("$.failure.Error", "$.failure.Cause"))), "Next": first_finally}),
        );
        chain.add(
            "Main done",
            json!({"Type": "Pass", "Parameters": {
                "inputs.$": "$.inputs", "regions.$": "$.regions", "account.$": "$.account",
                "run.$": "$.main.b.run", "steps.$": "$.main.b.steps", "w": {}}, "Next": first_finally}),
        );
        chain.add(
            "Main",
            json!({"Type": "Parallel", "Comment": "the workflow's steps; `finally` runs after them, whether they succeed or fail",
                   "Branches": [branch], "ResultSelector": {"b.$": "States.ArrayGetItem($, 0)"},
                   "ResultPath": "$.main", "Next": "Main done",
                   "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "Main failed"}]}),
        );
        "Main".into()
    }

    /// The state's layout rebuilt with `steps` from `steps` (a path or intrinsic), `w` emptied, and the run marked
    /// failed with an error when `failure` gives its (name, cause) paths.
    fn envelope(&self, steps: &str, failure: Option<(&str, &str)>) -> Value {
        let mut m = json!({
            "inputs.$": "$.inputs",
            "regions.$": "$.regions",
            "account.$": "$.account",
            "run.$": "$.run",
            "steps.$": steps,
            "w": {},
        });
        if let Some((error, cause)) = failure {
            m.as_object_mut().unwrap().remove("run.$");
            m["run"] = json!({"id.$": "$.run.id", "workflow.$": "$.run.workflow", "status": "failed",
                              "error_name.$": error, "error.$": cause});
        }
        if self.in_map {
            m["item.$"] = json!("$.item");
        }
        m
    }

    /// A branch (of a Parallel, or a Map's item processor) running `steps`, ending with its `steps` as output.
    fn branch(&mut self, steps: &[&Step], label: &str) -> Value {
        let mut chain = Chain::default();
        let end = format!("{label}: end");
        chain.add(&end, json!({"Type": "Pass", "OutputPath": "$.steps", "End": true}));
        let first = self.step_list(steps, &end, &mut chain);
        json!({"StartAt": first, "States": chain.take()})
    }

    pub fn steps(&mut self, steps: &[Step], next: &str, chain: &mut Chain) -> String {
        self.step_list(&steps.iter().collect::<Vec<_>>(), next, chain)
    }

    /// A list of steps in order, then `next`. Built from the end, so an `on_failure: goto` finds its target.
    fn step_list(&mut self, steps: &[&Step], next: &str, chain: &mut Chain) -> String {
        let mut entries: BTreeMap<String, String> = BTreeMap::new();
        let mut next = next.to_string();
        for s in steps.iter().rev() {
            next = self.step(s, &next, &entries, chain);
            entries.insert(s.id.clone(), next.clone());
        }
        next
    }

    /// One step: its `when` as a Choice (a skipped step's outputs are empty), its failure routing, its kind.
    fn step(&mut self, s: &Step, next: &str, later: &BTreeMap<String, String>, chain: &mut Chain) -> String {
        let body = match self.routed(s, next, later, chain) {
            Ok(b) => b,
            Err(reason) => {
                self.refuse(s, reason);
                return next.to_string();
            }
        };
        let Some(when) = &s.when else { return body };
        match expr::condition(when, &self.names()) {
            Ok(Rule::Known(true)) => body,
            Ok(rule) => {
                let skip = format!("{}: skipped", s.id);
                chain.add(
                    &skip,
                    json!({"Type": "Pass", "Result": {}, "ResultPath": dot("$.steps", &s.id), "Next": next}),
                );
                let Rule::Rule(mut r) = rule else {
                    return skip;
                };
                r["Next"] = json!(body);
                let name = format!("{}: when", s.id);
                chain.add(
                    &name,
                    json!({"Type": "Choice", "Comment": format!("when: {}", s.when_text.clone().unwrap_or_default()),
                           "Choices": [r], "Default": skip}),
                );
                name
            }
            Err(reason) => {
                self.refuse(s, format!("its `when`: {reason}"));
                next.to_string()
            }
        }
    }

    /// The step, wrapped in a Parallel when a failure must be caught (`on_failure`) or its own errors retried
    /// (a Fail state of its form, its wait's timeout: a Retry of a Parallel state runs its branch again).
    fn routed(
        &mut self,
        s: &Step,
        next: &str,
        later: &BTreeMap<String, String>,
        chain: &mut Chain,
    ) -> Result<String, String> {
        let own_retry = match (&s.kind, self.forms.get(&s.id)) {
            // A step that asks a person is never run again: a retry would ask again (a rejection is final).
            (StepKind::Action(_), Some(Ok(form))) if super::form::asks(form) => None,
            (StepKind::Action(a), Some(Ok(form))) => {
                let cx = StepCx::new(s, a, form, String::new(), Via::Sdk);
                retry::own_retrier(&a.retry, &cx.own, cx.waits())
            }
            _ => None,
        };
        // An advisory action's failure (a notification) never fails the run: it continues, as drflow's does.
        let advisory = matches!(&s.kind, StepKind::Action(a) if a.action.advisory);
        let target = match &s.on_failure {
            OnFailure::Abort if advisory => Some((next.to_string(), false)),
            // A top-level main step of a workflow with `finally`: its failure ends the main steps, the run failed.
            OnFailure::Abort => self.guard.clone().map(|end| (end, true)),
            OnFailure::Continue => Some((next.to_string(), false)),
            OnFailure::Goto(t) => Some((
                later
                    .get(t)
                    .cloned()
                    .ok_or_else(|| format!("`on_failure: goto {t}`: `{t}` is not a later step of the same list"))?,
                true,
            )),
        };
        if target.is_none() && own_retry.is_none() {
            return self.kind(s, next, chain);
        }
        // A `parallel` step has a merge state of its own, inside the branch.
        let merge = match s.kind {
            StepKind::Parallel(_) => format!("{}: attempt merge", s.id),
            _ => format!("{}: merge", s.id),
        };
        let branch = {
            let mut inner = Chain::default();
            let end = format!("{}: attempt end", s.id);
            inner.add(&end, json!({"Type": "Pass", "OutputPath": "$.steps", "End": true}));
            let first = self.kind(s, &end, &mut inner)?;
            json!({"StartAt": first, "States": inner.take()})
        };
        let name = format!("{}: attempt", s.id);
        let mut state = json!({"Type": "Parallel", "Branches": [branch], "ResultPath": "$.branches", "Next": merge});
        if let Some(r) = own_retry {
            state["Retry"] = json!([r]);
        }
        if let Some((to, fails_run)) = target {
            let caught = if fails_run {
                let failed = format!("{}: failed", s.id);
                chain.add(
                    &failed,
                    json!({"Type": "Pass", "Parameters": self.envelope("$.steps", Some(("$.failure.Error", "$.failure.Cause"))), "Next": to}),
                );
                failed
            } else {
                to
            };
            state["Catch"] = json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": caught}]);
        }
        chain.add(
            &merge,
            json!({"Type": "Pass", "Parameters": self.envelope("States.ArrayGetItem($.branches, 0)", None), "Next": next}),
        );
        chain.add(&name, state);
        Ok(name)
    }

    /// The step's own states; the steps inside it are not top-level (no `guard`).
    fn kind(&mut self, s: &Step, next: &str, chain: &mut Chain) -> Result<String, String> {
        let guard = self.guard.take();
        let built = self.kind_of(s, next, chain);
        self.guard = guard;
        built
    }

    fn kind_of(&mut self, s: &Step, next: &str, chain: &mut Chain) -> Result<String, String> {
        match &s.kind {
            StepKind::Action(a) => {
                let form = match self.forms.get(&s.id) {
                    Some(Ok(f)) => f.clone(),
                    Some(Err(why)) => {
                        return Err(format!("`{}` is not mapped to Step Functions: {why}", a.action.name));
                    }
                    None => return Err("no form".into()),
                };
                let (region, via, role) = self.route(a.region.as_deref())?;
                self.roles.extend(role.clone());
                let mut cx = StepCx::new(s, a, &form, region, via);
                cx.role = role;
                self.action_states(&mut cx, next, chain)
            }
            StepKind::Sequence(children) => Ok(self.steps(children, next, chain)),
            StepKind::Parallel(children) => {
                let branches: Vec<Value> = children.iter().map(|c| self.branch(&[c], &c.id)).collect();
                let merged = (1..branches.len()).fold("States.ArrayGetItem($.branches, 0)".to_string(), |acc, i| {
                    format!("States.JsonMerge({acc}, States.ArrayGetItem($.branches, {i}), false)")
                });
                let merge = format!("{}: merge", s.id);
                chain.add(
                    &merge,
                    json!({"Type": "Pass", "Parameters": self.envelope(&merged, None), "Next": next}),
                );
                chain.add(
                    &s.id,
                    json!({"Type": "Parallel", "Comment": format!("step {}: parallel", s.id), "Branches": branches, "ResultPath": "$.branches", "Next": merge}),
                );
                Ok(s.id.clone())
            }
            StepKind::ForEach(f) => self.for_each(s, f, next, chain),
        }
    }

    /// A distributed Map: each item a child execution of its own (its own history, so a fleet does not near
    /// 25,000 events), `max_concurrency` at a time, failures tolerated as drflow's `for_each` tolerates them
    /// (ToleratedFailureCount/Percentage are Distributed Map fields).
    fn for_each(&mut self, s: &Step, f: &ForEach, next: &str, chain: &mut Chain) -> Result<String, String> {
        if self.in_map {
            return Err("a `for_each` inside a `for_each` is not mapped to Step Functions".into());
        }
        let items = match &f.items {
            ValueTemplate::Template(t) => match self.value(&ValueTemplate::Template(t.clone()))? {
                Node::Expr(p) if p.starts_with('$') => p,
                _ => {
                    return Err(
                        "`for_each` must be one reference (`${{ steps.X.outputs.Y }}`) to be a Map's ItemsPath".into(),
                    );
                }
            },
            _ => return Err("a literal `for_each` list is not mapped: give the list as an input".into()),
        };
        self.in_map = true;
        let outer = std::mem::take(&mut self.events);
        let body = self.branch(&f.steps.iter().collect::<Vec<_>>(), &s.id);
        let selector = json!({
            "inputs.$": "$.inputs",
            "regions.$": "$.regions",
            "account.$": "$.account",
            "run.$": "$.run",
            "item.$": "$$.Map.Item.Value",
            "steps.$": "$.steps",
            "w": {},
        });
        self.in_map = false;
        let item = std::mem::replace(&mut self.events, outer);
        self.check_history(&item, "each item's child execution");
        let mut processor = body;
        processor["ProcessorConfig"] = json!({"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"});
        let mut state = json!({
            "Type": "Map",
            "Comment": format!("step {}: for_each", s.id),
            "ItemsPath": items,
            "ItemSelector": selector,
            "ItemProcessor": processor,
            "MaxConcurrency": f.max_concurrency,
            "ResultSelector": {"results.$": "$"},
            "ResultPath": dot("$.steps", &s.id),
            "Next": next,
        });
        if let Some(c) = f.tolerated_failures {
            state["ToleratedFailureCount"] = json!(c);
        }
        if let Some(p) = f.tolerated_failure_percentage {
            // A float, as AWS's schema has it (`50.0`, not `50`).
            state["ToleratedFailurePercentage"] = json!(p);
        }
        chain.add(&s.id, state);
        Ok(s.id.clone())
    }

    /// Refuses a state machine whose waits, each polled to its timeout, could take one execution's history past
    /// 25,000 events (less a margin for the other states): the wait with the most is named.
    pub fn check_history(&mut self, events: &[(String, usize)], whose: &str) {
        let total: usize = events.iter().map(|(_, e)| e).sum();
        if total <= HISTORY_BUDGET {
            return;
        }
        let Some((step, most)) = events.iter().max_by_key(|(_, e)| *e).cloned() else {
            return;
        };
        let reason = format!(
            "its polls, to its timeout, could add {most} events to {whose}'s history ({total} with the other waits; \
             Step Functions stops an execution at 25,000): raise its poll `max_interval` or shorten its `timeout`"
        );
        self.refusals.push(Refusal::new(self.wf, &step, reason));
    }

    /// The region code of a step's region name, how its calls are made, and the role they assume when the region
    /// is reached through one (`super::accounts`).
    fn route(&self, region: Option<&str>) -> Result<(String, Via, Option<String>), String> {
        let Some(name) = region else {
            return Ok((self.home.clone(), Via::Sdk, None));
        };
        let code = self
            .regions
            .get(name)
            .cloned()
            .ok_or_else(|| format!("region `{name}` is not bound"))?;
        if let Some(role) = self.wf.role(name) {
            return super::accounts::route(name, &code, role, &self.home).map(|r| (code, Via::Sdk, Some(r)));
        }
        if code == self.home {
            return Ok((code, Via::Sdk, None));
        }
        if self.opts.single_region {
            return Err(format!(
                "it calls AWS in region `{name}` ({code}), and the state machine runs in {}: AWS SDK integrations \
                 call only their own region; export without --single-region to call it through the cross-region \
                 function",
                self.home
            ));
        }
        Ok((code, Via::Function, None))
    }
}
