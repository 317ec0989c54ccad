//! An action step's Step Functions form (`actions::sfn`) as states: its inputs evaluated once into `$.w.STEP.in`,
//! each call a Task (SDK integration, or the cross-region function), checks as Choice → Fail, polls as
//! Task → Choice → Wait loops with drflow's interval growth and a counter bounding them, outputs into
//! `$.steps.STEP`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::build::{Builder, Chain};
use super::expr::{Rule, dot};
use super::node::{Node, format};
use super::retry::{self, Via};
use crate::actions::sfn::{Arg, Call, Cond, Form, Op};
use crate::workflow::{ActionKind, ActionStep, Step, ValueTemplate};

mod newest;
mod prune;

/// One action step being exported.
pub(crate) struct StepCx<'a> {
    pub step: &'a Step,
    pub action: &'a ActionStep,
    pub form: &'a Form,
    /// The region code its calls go to.
    pub region: String,
    pub via: Via,
    /// The role its calls assume (a Task's `Credentials`): its region is reached through one, in another account.
    pub role: Option<String>,
    /// Ids of `Let`s (their answers are kept without the call wrapper).
    pub lets: BTreeSet<&'static str>,
    /// Error codes its Fail states raise.
    pub own: Vec<String>,
    /// The `Each` (true) and `Loop` (false) ids the states being built are inside, outermost first.
    pub scopes: Vec<(&'static str, bool)>,
    counter: usize,
}

impl<'a> StepCx<'a> {
    pub fn new(step: &'a Step, action: &'a ActionStep, form: &'a Form, region: String, via: Via) -> StepCx<'a> {
        let mut lets = BTreeSet::new();
        let mut own = Vec::new();
        collect(&form.ops, &mut lets, &mut own);
        StepCx {
            step,
            action,
            form,
            region,
            via,
            role: None,
            lets,
            own,
            scopes: Vec::new(),
            counter: 0,
        }
    }

    pub(crate) fn root(&self) -> String {
        dot("$.w", &self.step.id)
    }

    pub(crate) fn name(&mut self, what: &str) -> String {
        self.counter += 1;
        let id = &self.step.id;
        let mut n = format!("{id}: {what}");
        if n.len() > 74 {
            n.truncate(74);
        }
        format!("{n} #{}", self.counter)
    }

    pub(crate) fn given(&self, input: &str) -> Option<&ValueTemplate> {
        self.action.with.iter().find(|(k, _)| k == input).map(|(_, v)| v)
    }

    /// Whether the step's polls make it a wait.
    pub fn waits(&self) -> bool {
        self.action.action.kind == ActionKind::Wait
    }
}

fn collect(ops: &[Op], lets: &mut BTreeSet<&'static str>, own: &mut Vec<String>) {
    for op in ops {
        match op {
            Op::Let(id, _) => {
                lets.insert(id);
            }
            Op::Fail {
                error: Arg::Lit(Value::String(e)),
                ..
            } if !own.contains(e) => own.push(e.clone()),
            Op::Poll { then, .. } | Op::If { then, .. } => collect(then, lets, own),
            Op::Each { id, ops, .. } | Op::Loop { id, ops, .. } => {
                lets.insert(id);
                collect(ops, lets, own);
            }
            Op::Newest(n) => {
                lets.insert(n.id);
                if !own.iter().any(|e| e == "TooManyItems") {
                    own.push("TooManyItems".into());
                }
            }
            _ => {}
        }
    }
}

/// Whether a form waits for a callback (a person's answer).
pub(crate) fn asks(form: &Form) -> bool {
    fn any(ops: &[Op]) -> bool {
        ops.iter().any(|op| match op {
            Op::Callback(_) => true,
            Op::Poll { then, .. } | Op::If { then, .. } => any(then),
            _ => false,
        })
    }
    any(&form.ops)
}

/// Every input a form reads.
pub(crate) fn inputs_used(form: &Form) -> BTreeSet<&'static str> {
    fn arg(a: &Arg, out: &mut BTreeSet<&'static str>) {
        match a {
            Arg::Input(n)
            | Arg::AccountOf(n)
            | Arg::Pairs(n, ..)
            | Arg::File(n)
            | Arg::Seconds(n)
            | Arg::Exported(n)
            | Arg::DurationText(n) => {
                out.insert(n);
            }
            Arg::IfGiven(n, a) => {
                out.insert(n);
                arg(a, out);
            }
            Arg::Choose(n, a, b) => {
                out.insert(n);
                arg(a, out);
                arg(b, out);
            }
            Arg::Format(_, args) | Arg::List(args) => args.iter().for_each(|a| arg(a, out)),
            Arg::Map(entries) => entries.iter().for_each(|(_, a)| arg(a, out)),
            Arg::AfterLastSlash(a)
            | Arg::Split(a, _, _)
            | Arg::Length(a)
            | Arg::First(a)
            | Arg::Keyed(a, ..)
            | Arg::Json(a)
            | Arg::Distinct(a)
            | Arg::JsonText(a)
            | Arg::Unique(a) => arg(a, out),
            Arg::Sum(a, b) | Arg::At(a, b) | Arg::Contains(a, b) => {
                arg(a, out);
                arg(b, out);
            }
            Arg::Range(a, b, c) => [a, b, c].into_iter().for_each(|a| arg(a, out)),
            Arg::Token
            | Arg::Region
            | Arg::Lit(_)
            | Arg::Answer(..)
            | Arg::Caught(..)
            | Arg::Run(_)
            | Arg::Context(_)
            | Arg::ApprovalTopic
            | Arg::Item(..)
            | Arg::Account
            | Arg::Partition
            | Arg::Collected(_) => {}
        }
    }
    fn cond(c: &Cond, out: &mut BTreeSet<&'static str>) {
        match c {
            Cond::Is(a, _)
            | Cond::OneOf(a, _)
            | Cond::Present(a)
            | Cond::True(a)
            | Cond::Empty(a)
            | Cond::Matches(a, _) => arg(a, out),
            Cond::Same(a, b) | Cond::After(a, b) | Cond::Above(a, b) | Cond::AtLeast(a, b) => {
                arg(a, out);
                arg(b, out);
            }
            Cond::Not(c) => cond(c, out),
            Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| cond(c, out)),
            Cond::Absent(_) | Cond::Given(_) | Cond::Failed(..) => {}
        }
    }
    fn ops(list: &[Op], out: &mut BTreeSet<&'static str>) {
        for op in list {
            match op {
                Op::Call(c) | Op::Callback(c) => c.parameters.iter().for_each(|(_, a)| arg(a, out)),
                Op::Let(_, a) => arg(a, out),
                Op::Fail { when, error, cause } => {
                    cond(when, out);
                    arg(error, out);
                    arg(cause, out);
                }
                Op::Finish { when, outputs } => {
                    cond(when, out);
                    outputs.iter().for_each(|(_, a)| arg(a, out));
                }
                Op::Poll { call, then, done } => {
                    call.parameters.iter().for_each(|(_, a)| arg(a, out));
                    ops(then, out);
                    cond(done, out);
                }
                Op::If { when, then } => {
                    cond(when, out);
                    ops(then, out);
                }
                Op::Each {
                    items,
                    ops: body,
                    yields,
                    ..
                } => {
                    arg(items, out);
                    ops(body, out);
                    arg(yields, out);
                }
                Op::Loop { items, ops: body, .. } => {
                    arg(items, out);
                    ops(body, out);
                }
                Op::Yield { when, value } => {
                    cond(when, out);
                    arg(value, out);
                }
                Op::Append(_, a) => arg(a, out),
                Op::Collect(_) => {}
                Op::Newest(n) => {
                    n.call.parameters.iter().for_each(|(_, a)| arg(a, out));
                    cond(&n.keep, out);
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    ops(&form.ops, &mut out);
    form.outputs.iter().for_each(|(_, a)| arg(a, &mut out));
    out
}

impl Builder<'_> {
    /// The states of an action step; `exit` is where it goes when done.
    pub(crate) fn action_states(
        &mut self,
        cx: &mut StepCx<'_>,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        let before: BTreeSet<String> = states.states.keys().cloned().collect();
        // Inputs first: each `with:` value the form reads, evaluated once.
        let mut inputs = Map::new();
        for name in inputs_used(cx.form) {
            if let Some(v) = cx.given(name) {
                self.value(v)?.place(name, &mut inputs);
            }
        }
        let outputs = self.outputs(cx, &cx.form.outputs.clone())?;
        let picked = self.picked(cx, exit, states)?;
        let done = cx.name("outputs");
        states.add(
            &done,
            json!({"Type": "Pass", "Parameters": outputs, "ResultPath": dot("$.steps", &cx.step.id), "Next": picked}),
        );
        let ops = cx.form.ops.clone();
        if let Some(events) = super::each::events(&ops) {
            self.events.push((cx.step.id.clone(), events));
        }
        let first = self.ops(cx, &ops, &done, exit, states)?;
        let entry = cx.step.id.clone();
        states.add(
            &entry,
            json!({"Type": "Pass", "Comment": comment(cx), "Parameters": {"in": Value::Object(inputs)},
                   "ResultPath": cx.root(), "Next": first}),
        );
        prune::unreachable(states, &before, &entry);
        Ok(entry)
    }

    /// The keys the workflow reads of a `Keyed` output of this step (`steps.ID.outputs.NAME.KEY`).
    fn keys_read(&self, cx: &StepCx<'_>, output: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        for r in self.wf.references() {
            if let crate::workflow::Ref::StepOutput { step, output: o, path } = r
                && *step == cx.step.id
                && o == output
            {
                let Some(k) = path.first() else {
                    return Err(format!(
                        "`steps.{step}.outputs.{o}` as a whole is not mapped to Step Functions (AWS answers a list \
                         of pairs): read its keys, `steps.{step}.outputs.{o}.KEY`"
                    ));
                };
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        Ok(keys)
    }

    /// After the outputs: each `Keyed` output's keys looked up in its list of pairs by a scan (index, item, a
    /// Choice on its key; JSONPath filters are not portable to every linter and engine), a key not found failing
    /// the step, named. Returns the first state (`exit` when none).
    fn picked(&mut self, cx: &mut StepCx<'_>, exit: &str, states: &mut Chain) -> Result<String, String> {
        let mut next = exit.to_string();
        let root = cx.root();
        for (name, a) in cx.form.outputs.clone().iter().rev() {
            let Arg::Keyed(list, key, value) = a else { continue };
            let keys = self.keys_read(cx, name)?;
            if keys.is_empty() {
                continue;
            }
            let Some(list) = self.arg(cx, list)?.path().map(str::to_string) else {
                return Err(format!("`{}`: a list of pairs must be a field", cx.step.id));
            };
            let found = |k: &str| dot(&root, &format!("found_{name}_{k}"));
            let (index, count, item) = (
                dot(&root, &format!("scan_{name}_i")),
                dot(&root, &format!("scan_{name}_n")),
                dot(&root, &format!("scan_{name}_item")),
            );
            let pick = cx.name(&format!("pick {name}"));
            let mut p = Map::new();
            for k in &keys {
                p.insert(format!("{k}.$"), json!(dot(&found(k), "v")));
            }
            states.add(
                &pick,
                json!({"Type": "Pass", "Parameters": p, "ResultPath": dot(&dot("$.steps", &cx.step.id), name), "Next": next}),
            );
            let missing = cx.name(&format!("missing {name}"));
            states.add(
                &missing,
                json!({"Type": "Fail", "Error": "MissingOutput",
                       "Cause": format!("step `{}` gives no `{name}` named {} (the workflow reads them)", cx.step.id, keys.join(", "))}),
            );
            let absent: Vec<Value> = keys
                .iter()
                .map(|k| json!({"Variable": found(k), "IsPresent": false}))
                .collect();
            let mut rule = if absent.len() == 1 {
                absent[0].clone()
            } else {
                json!({"Or": absent})
            };
            rule["Next"] = json!(missing);
            let all = cx.name(&format!("all {name}?"));
            states.add(&all, json!({"Type": "Choice", "Choices": [rule], "Default": pick}));
            let (test, take_item, matched, step) = (
                cx.name(&format!("scan {name}")),
                cx.name(&format!("item of {name}")),
                cx.name(&format!("key of {name}")),
                cx.name(&format!("next of {name}")),
            );
            states.add(
                &test,
                json!({"Type": "Choice", "Choices": [{"Variable": dot(&index, "v"), "NumericGreaterThanEqualsPath": dot(&count, "v"), "Next": all}], "Default": take_item}),
            );
            states.add(
                &take_item,
                json!({"Type": "Pass", "Parameters": {"v.$": format!("States.ArrayGetItem({list}, {})", dot(&index, "v"))}, "ResultPath": item, "Next": matched}),
            );
            let mut choices = Vec::new();
            for k in &keys {
                let take = cx.name(&format!("take {name} {k}"));
                states.add(
                    &take,
                    json!({"Type": "Pass", "Parameters": {"v.$": dot(&dot(&item, "v"), value)}, "ResultPath": found(k), "Next": step}),
                );
                choices.push(json!({"Variable": dot(&dot(&item, "v"), key), "StringEquals": k, "Next": take}));
            }
            states.add(&matched, json!({"Type": "Choice", "Choices": choices, "Default": step}));
            states.add(
                &step,
                json!({"Type": "Pass", "Parameters": {"v.$": format!("States.MathAdd({}, 1)", dot(&index, "v"))}, "ResultPath": index, "Next": test}),
            );
            let start = cx.name(&format!("start {name}"));
            states.add(
                &start,
                json!({"Type": "Pass", "Parameters": {"v.$": format!("States.ArrayLength({list})")}, "ResultPath": count, "Next": test}),
            );
            let zero = cx.name(&format!("index {name}"));
            states.add(
                &zero,
                json!({"Type": "Pass", "Result": {"v": 0}, "ResultPath": index, "Next": start}),
            );
            // A stack without outputs has no `Outputs` field.
            let any = cx.name(&format!("any {name}?"));
            states.add(
                &any,
                json!({"Type": "Choice", "Choices": [{"Variable": list, "IsPresent": false, "Next": missing}], "Default": zero}),
            );
            next = any;
        }
        Ok(next)
    }

    fn outputs(&mut self, cx: &StepCx<'_>, outputs: &[(&'static str, Arg)]) -> Result<Value, String> {
        let mut m = Map::new();
        for (k, a) in outputs {
            self.arg(cx, a)?.place(k, &mut m);
        }
        Ok(Value::Object(m))
    }

    /// `ops` in order, then `next`; a `Finish` goes to `exit` (after writing its outputs).
    pub(crate) fn ops(
        &mut self,
        cx: &mut StepCx<'_>,
        ops: &[Op],
        next: &str,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        let mut next = next.to_string();
        for op in ops.iter().rev() {
            next = self.op(cx, op, &next, exit, states)?;
        }
        Ok(next)
    }

    fn op(
        &mut self,
        cx: &mut StepCx<'_>,
        op: &Op,
        next: &str,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        match op {
            Op::Call(c) => self.call(cx, c, next, states),
            Op::Let(id, a) => {
                let name = cx.name(&format!("let {id}"));
                let mut p = Map::new();
                self.arg(cx, a)?.place("v", &mut p);
                states.add(
                    &name,
                    json!({"Type": "Pass", "Parameters": p, "ResultPath": dot(&cx.root(), id), "Next": next}),
                );
                Ok(name)
            }
            Op::Fail { when, error, cause } => {
                let rule = self.cond(cx, when)?;
                if rule == Rule::Known(false) {
                    return Ok(next.to_string());
                }
                let code = match error {
                    Arg::Lit(Value::String(s)) => s.clone(),
                    _ => "Fail".into(),
                };
                let fail = cx.name(&format!("fail {code}"));
                let mut state = json!({"Type": "Fail"});
                match self.arg(cx, error)?.simplify() {
                    Node::Lit(Value::String(e)) => state["Error"] = json!(e),
                    Node::Expr(e) => state["ErrorPath"] = json!(e),
                    _ => state["Error"] = json!("Fail"),
                }
                match self.arg(cx, cause)?.simplify() {
                    Node::Lit(Value::String(c)) => state["Cause"] = json!(c),
                    Node::Expr(c) => state["CausePath"] = json!(c),
                    _ => {}
                }
                states.add(&fail, state);
                Ok(self.choice(cx, rule, &fail, next, states))
            }
            Op::Finish { when, outputs } => {
                let rule = self.cond(cx, when)?;
                if rule == Rule::Known(false) {
                    return Ok(next.to_string());
                }
                let name = cx.name("finish");
                let outputs = self.outputs(cx, outputs)?;
                states.add(
                    &name,
                    json!({"Type": "Pass", "Parameters": outputs, "ResultPath": dot("$.steps", &cx.step.id), "Next": exit}),
                );
                Ok(self.choice(cx, rule, &name, next, states))
            }
            Op::If { when, then } => {
                let rule = self.cond(cx, when)?;
                if rule == Rule::Known(false) {
                    return Ok(next.to_string());
                }
                let body = self.ops(cx, then, next, exit, states)?;
                Ok(self.choice(cx, rule, &body, next, states))
            }
            Op::Poll { call, then, done } => self.poll(cx, call, then, done, next, exit, states),
            Op::Callback(c) => self.callback(cx, c, next, states),
            Op::Each { .. } | Op::Yield { .. } | Op::Loop { .. } | Op::Collect(_) | Op::Append(..) => {
                self.each_op(cx, op, next, exit, states)
            }
            Op::Newest(n) => self.newest(cx, n, next, states),
        }
    }

    /// A Choice to `then` when the rule holds, else `next` (none when it is known).
    pub(crate) fn choice(
        &mut self,
        cx: &mut StepCx<'_>,
        rule: Rule,
        then: &str,
        next: &str,
        states: &mut Chain,
    ) -> String {
        match rule {
            Rule::Known(true) => then.to_string(),
            Rule::Known(false) => next.to_string(),
            Rule::Rule(mut r) => {
                let name = cx.name("check");
                r["Next"] = json!(then);
                states.add(&name, json!({"Type": "Choice", "Choices": [r], "Default": next}));
                name
            }
        }
    }

    fn call(&mut self, cx: &mut StepCx<'_>, c: &Call, next: &str, states: &mut Chain) -> Result<String, String> {
        let name = cx.name(c.action);
        let mut params = Map::new();
        for (k, a) in &c.parameters {
            self.arg(cx, a)?.place(k, &mut params);
        }
        let mut state = match cx.via {
            Via::Sdk => json!({
                "Type": "Task",
                "Resource": format!("arn:aws:states:::aws-sdk:{}:{}", c.service, camel(c.action)),
                "Parameters": params,
                "ResultSelector": {"r.$": "$"},
            }),
            Via::Function => {
                self.cross_region = true;
                json!({
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": self.function_name(),
                        "Payload": {"region": cx.region, "service": c.service, "action": c.action, "parameters": params},
                    },
                    "ResultSelector": {"r.$": "$.Payload"},
                })
            }
        };
        // In another account: Step Functions assumes the role for this call (a Task's `Credentials`).
        if let Some(role) = &cx.role {
            state["Credentials"] = json!({"RoleArn": role});
        }
        state["ResultPath"] = json!(dot(&cx.root(), c.id));
        // A call's timeout limits each attempt (a wait's bounds the whole loop instead: see `poll`).
        if !cx.waits() {
            state["TimeoutSeconds"] = json!(cx.action.timeout.as_secs().max(1));
        }
        if let Some(r) = retry::retrier(&cx.action.retry, c.service, cx.via, &[]) {
            state["Retry"] = json!([r]);
        }
        if !c.absent.is_empty() {
            let mut errors: Vec<String> = Vec::new();
            for e in c.absent {
                // Codes the integration names alike (EC2's, all `Ec2.Ec2Exception`) once.
                let name = retry::error_name(c.service, e, cx.via);
                if !errors.contains(&name) {
                    errors.push(name);
                }
            }
            state["Catch"] = json!([{"ErrorEquals": errors, "ResultPath": dot(&cx.root(), c.id), "Next": next}]);
        }
        state["Next"] = json!(next);
        states.add(&name, state);
        Ok(name)
    }

    /// Task → checks → Choice (done? spent?) → Pass (count) → Wait → Task. The waits are drflow's poll delays
    /// precomputed up to the step's timeout; the counter ends the loop with `States.Timeout` when they are spent,
    /// so a wait's history stays bounded (about 10 events per poll).
    #[allow(clippy::too_many_arguments)]
    fn poll(
        &mut self,
        cx: &mut StepCx<'_>,
        call: &Call,
        then: &[Op],
        done: &Cond,
        next: &str,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        // A scan is a loop of its own: its history is counted per scan, not per poll (`longest` follows no cycle).
        if then.iter().any(|op| matches!(op, Op::Newest(_))) {
            return Err(format!(
                "`{}`: its form scans a listing inside a poll, which the export does not map",
                cx.step.id
            ));
        }
        let waits = poll_waits(&cx.action.poll, cx.action.timeout);
        let loop_path = dot(&cx.root(), "loop");
        let init = cx.name("poll start");
        let wait = cx.name("wait");
        let count = cx.name("poll count");
        let decide = cx.name("done?");
        let timed_out = cx.name("timed out");
        let rule = self.cond(cx, done)?;
        let before: BTreeSet<String> = states.states.keys().cloned().collect();
        let first = self.call(cx, call, "PLACEHOLDER", states)?;
        let checks = self.ops(cx, then, &decide, exit, states)?;
        states.set_next(&first, &checks);
        let mut choices = Vec::new();
        match rule {
            Rule::Rule(mut r) => {
                r["Next"] = json!(next);
                choices.push(r);
            }
            Rule::Known(true) => {
                choices.push(json!({"Variable": format!("{loop_path}.n"), "IsPresent": true, "Next": next}))
            }
            Rule::Known(false) => {}
        }
        choices.push(
            json!({"Variable": format!("{loop_path}.n"), "NumericGreaterThanEquals": waits.len(), "Next": timed_out}),
        );
        states.add(&decide, json!({"Type": "Choice", "Choices": choices, "Default": count}));
        states.add(
            &timed_out,
            json!({"Type": "Fail", "Error": "States.Timeout",
                   "Cause": format!("step `{}` did not finish within its timeout of {} s ({} polls)", cx.step.id, cx.action.timeout.as_secs(), waits.len() + 1)}),
        );
        states.add(
            &count,
            json!({"Type": "Pass", "Parameters": {
                "n.$": format!("States.MathAdd({loop_path}.n, 1)"),
                "waits.$": format!("{loop_path}.waits"),
                "seconds.$": format!("States.ArrayGetItem({loop_path}.waits, {loop_path}.n)"),
            }, "ResultPath": loop_path, "Next": wait}),
        );
        states.add(
            &wait,
            json!({"Type": "Wait", "SecondsPath": format!("{loop_path}.seconds"), "Next": first}),
        );
        states.add(
            &init,
            json!({"Type": "Pass", "Result": {"n": 0, "waits": waits}, "ResultPath": loop_path, "Next": first}),
        );
        // Each poll passes the states of the loop's longest path (entered and exited: 2 events; a task 3 more).
        let looped: BTreeSet<String> = states.states.keys().filter(|k| !before.contains(*k)).cloned().collect();
        let per_poll = longest(states, &looped, &first, &decide, &mut BTreeMap::new()) + 2 * 3;
        self.events.push((cx.step.id.clone(), per_poll * (waits.len() + 1)));
        Ok(init)
    }

    pub(crate) fn cond(&mut self, cx: &StepCx<'_>, c: &Cond) -> Result<Rule, String> {
        let var = |b: &mut Builder<'_>, a: &Arg| -> Result<String, String> {
            let n = b.arg(cx, a)?;
            n.path()
                .map(str::to_string)
                .ok_or_else(|| format!("a check of `{}` needs a field, not {n:?}", cx.step.id))
        };
        Ok(match c {
            // A literal input (`if_older: keep`) is decided at export.
            Cond::Is(a, s) => match self.arg(cx, a)?.simplify() {
                Node::Lit(Value::String(t)) => Rule::Known(t == *s),
                _ => Rule::Rule(json!({"Variable": var(self, a)?, "StringEquals": s})),
            },
            Cond::OneOf(a, list) => {
                let v = var(self, a)?;
                Rule::join(
                    list.iter()
                        .map(|s| Rule::Rule(json!({"Variable": v, "StringEquals": s})))
                        .collect(),
                    false,
                )
            }
            Cond::Present(a) => Rule::Rule(json!({"Variable": var(self, a)?, "IsPresent": true})),
            Cond::Matches(a, pattern) => Rule::Rule(json!({"Variable": var(self, a)?, "StringMatches": pattern})),
            Cond::Absent(id) => Rule::Rule(json!({"Variable": dot(&dot(&cx.root(), id), "Error"), "IsPresent": true})),
            // A side known at export (a literal input, the step's region) is compared as text.
            Cond::Same(a, b) => match (self.arg(cx, a)?.simplify(), self.arg(cx, b)?.simplify()) {
                (Node::Lit(x), Node::Lit(y)) => Rule::Known(x == y),
                (_, Node::Lit(Value::String(t))) => Rule::Rule(json!({"Variable": var(self, a)?, "StringEquals": t})),
                _ => Rule::Rule(json!({"Variable": var(self, a)?, "StringEqualsPath": var(self, b)?})),
            },
            Cond::After(a, b) => Rule::Rule(json!({"Variable": var(self, a)?, "StringGreaterThanPath": var(self, b)?})),
            Cond::Above(a, b) => match self.arg(cx, b)?.simplify() {
                Node::Lit(n @ Value::Number(_)) => {
                    Rule::Rule(json!({"Variable": var(self, a)?, "NumericGreaterThan": n}))
                }
                _ => Rule::Rule(json!({"Variable": var(self, a)?, "NumericGreaterThanPath": var(self, b)?})),
            },
            Cond::True(a) => match self.arg(cx, a)?.simplify() {
                Node::Lit(Value::Bool(b)) => Rule::Known(b),
                _ => Rule::Rule(json!({"Variable": var(self, a)?, "BooleanEquals": true})),
            },
            Cond::Given(n) => Rule::Known(cx.given(n).is_some()),
            Cond::Empty(a) => Rule::Rule(json!({"Variable": format!("{}[0]", var(self, a)?), "IsPresent": false})),
            Cond::AtLeast(a, b) => match (self.arg(cx, a)?.simplify(), self.arg(cx, b)?.simplify()) {
                // Both known at export (a literal input): decided now.
                (Node::Lit(Value::Number(x)), Node::Lit(Value::Number(y))) => {
                    Rule::Known(x.as_f64().unwrap_or(0.0) >= y.as_f64().unwrap_or(0.0))
                }
                (_, Node::Lit(n @ Value::Number(_))) => {
                    Rule::Rule(json!({"Variable": var(self, a)?, "NumericGreaterThanEquals": n}))
                }
                _ => Rule::Rule(json!({"Variable": var(self, a)?, "NumericGreaterThanEqualsPath": var(self, b)?})),
            },
            Cond::Any(cs) => {
                let mut rules = Vec::new();
                for c in cs {
                    rules.push(self.cond(cx, c)?);
                }
                Rule::join(rules, false)
            }
            Cond::Failed(id, code, message) => self.failed(cx, id, code, message)?,
            Cond::Not(c) => self.cond(cx, c)?.not(),
            Cond::All(cs) => {
                // In order, stopping at a condition known false: what follows may read an input not given.
                let mut rules = Vec::new();
                for c in cs {
                    let r = self.cond(cx, c)?;
                    if r == Rule::Known(false) {
                        return Ok(r);
                    }
                    rules.push(r);
                }
                Rule::join(rules, true)
            }
        })
    }

    /// A form's value as a node.
    pub(crate) fn arg(&mut self, cx: &StepCx<'_>, a: &Arg) -> Result<Node, String> {
        let root = cx.root();
        Ok(match a {
            Arg::Input(n) => match cx.given(n) {
                Some(ValueTemplate::Literal(v)) => Node::Lit(v.clone()),
                Some(_) => Node::Expr(dot(&dot(&root, "in"), n)),
                None => Node::Absent,
            },
            Arg::IfGiven(n, a) => match cx.given(n) {
                Some(_) => self.arg(cx, a)?,
                None => Node::Absent,
            },
            Arg::Choose(n, a, b) => match cx.given(n) {
                Some(_) => self.arg(cx, a)?,
                None => self.arg(cx, b)?,
            },
            Arg::Token => {
                // Deterministic per execution and step (and item): a retry or a redrive sends the same token.
                let scope = if self.in_map {
                    format!("States.Format('{{}}/{{}}/{{}}', $.run.id, $.item, '{}')", cx.step.id)
                } else {
                    format!("States.Format('{{}}/{{}}', $.run.id, '{}')", cx.step.id)
                };
                Node::Expr(format!("States.Hash({scope}, 'SHA-1')"))
            }
            Arg::Region => Node::Lit(json!(cx.region)),
            Arg::Lit(v) => Node::Lit(v.clone()),
            Arg::Format(text, args) => {
                let args = args.iter().map(|a| self.arg(cx, a)).collect::<Result<Vec<_>, _>>()?;
                if args.contains(&Node::Absent) {
                    return Err(format!(
                        "`{}` lacks an input its Step Functions form formats",
                        cx.step.id
                    ));
                }
                format(text, args)?
            }
            Arg::AccountOf(n) => self.account_of(cx, n)?,
            Arg::Answer(id, p) => {
                let mut path = dot(&root, id);
                if !cx.lets.contains(id) {
                    path = dot(&path, "r");
                }
                Node::Expr(format!("{path}.{p}"))
            }
            Arg::AfterLastSlash(a) => {
                let s = self.expr_arg(cx, a)?;
                let split = format!("States.StringSplit({s}, '/')");
                Node::Expr(format!(
                    "States.ArrayGetItem({split}, States.MathAdd(States.ArrayLength({split}), -1))"
                ))
            }
            Arg::Split(a, d, i) => {
                let s = self.expr_arg(cx, a)?;
                Node::Expr(format!("States.ArrayGetItem(States.StringSplit({s}, '{d}'), {i})"))
            }
            Arg::Length(a) => Node::Expr(format!("States.ArrayLength({})", self.expr_arg(cx, a)?)),
            Arg::First(a) => Node::Expr(format!("States.ArrayGetItem({}, 0)", self.expr_arg(cx, a)?)),
            Arg::List(items) => Node::Arr(items.iter().map(|a| self.arg(cx, a)).collect::<Result<_, _>>()?),
            Arg::Map(entries) => Node::Obj(
                entries
                    .iter()
                    .map(|(k, a)| Ok((k.to_string(), self.arg(cx, a)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Arg::Pairs(n, key, value) => match cx.given(n) {
                None => Node::Absent,
                Some(ValueTemplate::Map(entries)) => Node::Arr(
                    entries
                        .iter()
                        .map(|(k, v)| {
                            Ok(Node::Obj(vec![
                                (key.to_string(), Node::Lit(json!(k))),
                                (value.to_string(), stringify(self.value(v)?)),
                            ]))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                Some(ValueTemplate::Literal(Value::Object(m))) => Node::Lit(Value::Array(
                    m.iter()
                        .map(|(k, v)| json!({*key: k, *value: crate::workflow::expr::to_text(v)}))
                        .collect(),
                )),
                Some(_) => {
                    return Err(format!(
                        "`{n}` of `{}` must be written as a map for the export (AWS wants it as a list of pairs)",
                        cx.step.id
                    ));
                }
            },
            Arg::File(n) => match cx.given(n) {
                Some(ValueTemplate::Literal(Value::String(f))) => {
                    let path = self.wf.dir().join(f);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read `{n}` {}: {e}", path.display()))?;
                    Node::Lit(json!(text))
                }
                _ => {
                    return Err(format!(
                        "`{n}` of `{}` must be a literal file name for the export",
                        cx.step.id
                    ));
                }
            },
            Arg::Caught(id, field) => Node::Expr(dot(&dot(&root, id), field)),
            Arg::Run(field) => Node::Expr(dot("$.run", field)),
            // Looked up after the outputs are written (`picked`).
            Arg::Keyed(..) => Node::Absent,
            Arg::Context(field) => Node::Expr(format!("$$.{field}")),
            Arg::Sum(a, b) => Node::Expr(format!(
                "States.MathAdd({}, {})",
                self.expr_arg(cx, a)?,
                self.expr_arg(cx, b)?
            )),
            Arg::Json(a) => Node::Expr(format!("States.StringToJson({})", self.expr_arg(cx, a)?)),
            Arg::At(list, i) => {
                let list = match self.arg(cx, list)?.simplify() {
                    // A literal table: `States.Array` of its numbers (an intrinsic takes no JSON array).
                    Node::Lit(Value::Array(items)) => format!(
                        "States.Array({})",
                        items.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")
                    ),
                    n => n
                        .arg()
                        .ok_or_else(|| format!("`{}`: a list its form indexes is not a list", cx.step.id))?,
                };
                Node::Expr(format!("States.ArrayGetItem({list}, {})", self.expr_arg(cx, i)?))
            }
            Arg::Range(a, b, c) => Node::Expr(format!(
                "States.ArrayRange({}, {}, {})",
                self.expr_arg(cx, a)?,
                self.expr_arg(cx, b)?,
                self.expr_arg(cx, c)?
            )),
            Arg::Seconds(n) => {
                let text = self.exported(cx, n)?;
                let d =
                    crate::workflow::parse_duration(&text).map_err(|e| format!("`{n}` of `{}`: {e}", cx.step.id))?;
                Node::Lit(json!(d.as_secs()))
            }
            Arg::Exported(n) => Node::Lit(json!(self.exported(cx, n)?)),
            Arg::DurationText(n) => {
                let text = self.exported(cx, n)?;
                let d =
                    crate::workflow::parse_duration(&text).map_err(|e| format!("`{n}` of `{}`: {e}", cx.step.id))?;
                Node::Lit(json!(crate::workflow::format_duration(d)))
            }
            Arg::ApprovalTopic => match &{
                self.approvals = true;
                self.opts.approval_topic.clone()
            } {
                Some(t) if t.starts_with("arn:") || t.starts_with("${") => Node::Lit(json!(t)),
                topic => {
                    // The topic of that name in the state machine's own partition, region and account.
                    let name = topic.as_deref().unwrap_or(super::APPROVAL_TOPIC);
                    let field = |i: usize| {
                        Node::Expr(format!(
                            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), {i})"
                        ))
                    };
                    format(
                        &format!("arn:{{}}:sns:{{}}:{{}}:{name}"),
                        vec![field(1), field(3), Node::Expr("$.account".into())],
                    )?
                }
            },
            Arg::Item(..)
            | Arg::Contains(..)
            | Arg::Distinct(_)
            | Arg::Collected(_)
            | Arg::JsonText(_)
            | Arg::Unique(_)
            | Arg::Account
            | Arg::Partition => self.each_arg(cx, a)?,
        })
    }

    /// The value of an input as the export knows it, as text: a literal in the step's `with:`, or a reference to a
    /// workflow input given at export (`-i`) or defaulted.
    fn exported(&self, cx: &StepCx<'_>, input: &str) -> Result<String, String> {
        use crate::workflow::expr::{Expr, Piece};
        let text = crate::workflow::expr::to_text;
        match cx.given(input) {
            Some(ValueTemplate::Literal(v)) => Ok(text(v)),
            Some(ValueTemplate::Template(t)) => match t.pieces.as_slice() {
                [Piece::Expr(Expr::Ref(crate::workflow::Ref::Input(name)))] => {
                    self.known.get(name).map(text).ok_or_else(|| {
                        format!(
                            "`{input}` of `{}` reads input `{name}`, which has no value at export: give it \
                             (`-i {name}=...`), its Step Functions form needs it known",
                            cx.step.id
                        )
                    })
                }
                _ => Err(format!(
                    "`{input}` of `{}` must be a literal or one workflow input for the export (its Step Functions \
                     form needs its value known)",
                    cx.step.id
                )),
            },
            _ => Err(format!("`{}` needs `{input}` for its Step Functions form", cx.step.id)),
        }
    }

    /// A call that waits for its callback: the service's optimized integration with `.waitForTaskToken`, in the
    /// state machine's own region whatever the step's (the token is answered there). Its answer is the callback's
    /// output; its timeout the step's; its retrier the step's for the service's transient errors only (a
    /// rejection, `Rejected`, and the timeout are never retried: a retry would ask again).
    fn callback(&mut self, cx: &mut StepCx<'_>, c: &Call, next: &str, states: &mut Chain) -> Result<String, String> {
        let name = cx.name(&format!("{} and wait", c.action));
        let mut params = Map::new();
        for (k, a) in &c.parameters {
            self.arg(cx, a)?.place(k, &mut params);
        }
        let mut state = json!({
            "Type": "Task",
            "Resource": format!("arn:aws:states:::{}:{}.waitForTaskToken", c.service, camel(c.action)),
            "Parameters": params,
            "ResultSelector": {"r.$": "$"},
            "ResultPath": dot(&cx.root(), c.id),
            "TimeoutSeconds": cx.action.timeout.as_secs().max(1),
        });
        let transient = crate::workflow::RetryPolicy {
            errors: vec![crate::workflow::ErrorMatch::Transient],
            ..cx.action.retry.clone()
        };
        if let Some(mut r) = retry::retrier(&transient, c.service, Via::Sdk, &[]) {
            // An optimized integration names its service's errors in capitals (`SNS.ThrottledException`), as
            // moto's engine reproduces them; the SDK integration's names are kept beside them.
            let prefix = retry::service_prefix(c.service);
            let mut names: Vec<Value> = r["ErrorEquals"].as_array().cloned().unwrap_or_default();
            for n in names.clone() {
                if let Some(rest) = n.as_str().and_then(|n| n.strip_prefix(&format!("{prefix}."))) {
                    let upper = json!(format!("{}.{rest}", c.service.to_ascii_uppercase()));
                    if !names.contains(&upper) {
                        names.push(upper);
                    }
                }
            }
            r["ErrorEquals"] = Value::Array(names);
            state["Retry"] = json!([r]);
        }
        state["Next"] = json!(next);
        states.add(&name, state);
        Ok(name)
    }

    /// A node that can stand as an intrinsic function's argument.
    pub(crate) fn expr_arg(&mut self, cx: &StepCx<'_>, a: &Arg) -> Result<String, String> {
        self.arg(cx, a)?
            .simplify()
            .arg()
            .ok_or_else(|| format!("`{}`: a value its form computes with is not a string", cx.step.id))
    }

    /// The account field of the ARN an input holds, read from the workflow: a literal ARN, or one written as
    /// `arn:aws:iam::${{ ... }}:...` (the account a single reference).
    fn account_of(&mut self, cx: &StepCx<'_>, input: &str) -> Result<Node, String> {
        use crate::workflow::expr::{Expr, Piece};
        let field = |s: &str| s.split(':').nth(4).map(str::to_string);
        match cx.given(input) {
            Some(ValueTemplate::Literal(Value::String(s))) => field(s)
                .map(|a| Node::Lit(json!(a)))
                .ok_or_else(|| format!("`{input}` is not an ARN")),
            Some(ValueTemplate::Template(t)) => {
                if let [Piece::Text(head), Piece::Expr(Expr::Ref(r)), Piece::Text(tail), ..] = t.pieces.as_slice()
                    && head.matches(':').count() == 4
                    && head.ends_with(':')
                    && tail.starts_with(':')
                {
                    if let Some(v) = super::expr::known(r) {
                        return Ok(Node::Lit(v));
                    }
                    return Ok(Node::Expr(super::expr::path(r, &self.names())?));
                }
                if let [Piece::Text(head), ..] = t.pieces.as_slice()
                    && let Some(a) = field(head).filter(|a| !a.is_empty() && head.matches(':').count() > 4)
                {
                    return Ok(Node::Lit(json!(a)));
                }
                Err(format!(
                    "the account of `{input}` of `{}` cannot be read from how it is written: write it as \
                     arn:aws:iam::ACCOUNT:... with ACCOUNT literal or one `${{{{ }}}}`",
                    cx.step.id
                ))
            }
            _ => Err(format!("`{}` needs `{input}` for its Step Functions form", cx.step.id)),
        }
    }
}

/// A value as a string (stack parameters and tags are strings; a version number is not).
fn stringify(n: Node) -> Node {
    match n {
        Node::Lit(v) if !v.is_string() => Node::Lit(json!(crate::workflow::expr::to_text(&v))),
        Node::Expr(e) if !e.starts_with("States.Format(") => Node::Expr(format!("States.Format('{{}}', {e})")),
        other => other,
    }
}

/// The history events of the longest path from `from` to `to` (not counted) among `within`: 2 per state, 3 more
/// per task. The states of a poll's body form no cycle once the way back (through `to`) is cut.
fn longest(
    states: &Chain,
    within: &BTreeSet<String>,
    from: &str,
    to: &str,
    memo: &mut BTreeMap<String, usize>,
) -> usize {
    if from == to || !within.contains(from) {
        return 0;
    }
    if let Some(n) = memo.get(from) {
        return *n;
    }
    let state = &states.states[from];
    let own = if state["Type"] == "Task" { 5 } else { 2 };
    let mut next: Vec<&str> = Vec::new();
    next.extend(state["Next"].as_str());
    next.extend(state["Default"].as_str());
    for key in ["Choices", "Catch"] {
        for c in state[key].as_array().into_iter().flatten() {
            next.extend(c["Next"].as_str());
        }
    }
    let n = own
        + next
            .into_iter()
            .map(|n| longest(states, within, n, to, memo))
            .max()
            .unwrap_or(0);
    memo.insert(from.to_string(), n);
    n
}

/// The waits between polls: drflow's poll delays (rounded up to whole seconds) until they add up to the timeout.
pub(crate) fn poll_waits(p: &crate::workflow::PollPolicy, timeout: std::time::Duration) -> Vec<u64> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let mut n = 1;
    let cap = p.max_interval.as_secs_f64().ceil().max(1.0) as u64;
    let mut steady: Option<u64> = None;
    while total < timeout.as_secs().max(1) {
        // Once capped (or with no growth), every later delay is the same: no need to compute it anew.
        let d = steady.unwrap_or_else(|| p.delay(n).as_secs_f64().ceil().max(1.0) as u64);
        if p.backoff_rate <= 1.0 || d >= cap {
            steady = Some(d);
        }
        out.push(d);
        total += d;
        n += 1;
    }
    out
}

fn camel(action: &str) -> String {
    let mut c = action.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn comment(cx: &StepCx<'_>) -> String {
    let mut s = format!("step {}: {}", cx.step.id, cx.action.action.name);
    if let Some(n) = &cx.step.name {
        s.push_str(&format!(" ({n})"));
    }
    if let Some(role) = &cx.role {
        s.push_str(&format!(" as {role}"));
    }
    s.push_str(&format!(
        " in {}{}",
        cx.region,
        if cx.via == Via::Function {
            " via the cross-region function"
        } else {
            ""
        }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn waits_grow_like_drflows_polls_and_add_up_to_the_timeout() {
        let p = crate::workflow::PollPolicy {
            interval: Duration::from_secs(30),
            backoff_rate: 1.5,
            max_interval: Duration::from_secs(120),
        };
        let w = poll_waits(&p, Duration::from_secs(4 * 3600));
        assert_eq!(&w[..5], &[30, 45, 68, 102, 120]);
        let total: u64 = w.iter().sum();
        assert!(total >= 4 * 3600 && total - w.last().unwrap() < 4 * 3600, "{total}");
    }
}
