//! A form's lists (`Op::Each`, `Op::Loop`, `Op::Collect` / `Op::Append`) as states.
//!
//! `Each` is an inline Map: its ItemSelector hands each item the step's work (`$.w.STEP`: inputs and answers), the
//! run (`$.run`, `$.item` in a `for_each`) and the items of the lists around it (`$.each.ID.v`); each item's ops run
//! on that copy and end in a Pass whose output is the item's value (`OutputPath: $.v`). `Loop` is a counted loop
//! (Choice, `States.ArrayGetItem`, `States.MathAdd`) on the step's own state, its item at `$.each.ID.v`. A list that
//! `Append`s build is kept as text (`"a","b"`) and read as JSON (`States.StringToJson`): ASL has no intrinsic that
//! appends to an array, and a Map cannot add up across its items. Every list is bounded (`Bound`): a longer one
//! fails the step with the form's error before any item is taken, and the exporter counts the history at the
//! bound (`events`).

use serde_json::{Map, Value, json};

use super::build::{Builder, Chain};
use super::expr::{Rule, dot};
use super::form::StepCx;
use super::node::Node;
use super::retry::{self, Via};
use crate::actions::sfn::{Arg, Bound, Op};

/// Where the current item of a list is.
fn item_root(id: &str) -> String {
    dot(&dot("$.each", id), "v")
}

/// The history events ops may add at most (each list at its bound; 2 per state, 5 per task), when they hold a
/// list; `None` otherwise (their states are not counted: only lists and polls grow with what they meet).
pub(crate) fn events(ops: &[Op]) -> Option<usize> {
    fn has_list(ops: &[Op]) -> bool {
        ops.iter().any(|op| match op {
            Op::Each { .. } | Op::Loop { .. } => true,
            Op::If { then, .. } => has_list(then),
            _ => false,
        })
    }
    fn count(ops: &[Op]) -> usize {
        ops.iter()
            .map(|op| match op {
                Op::Call(_) | Op::Callback(_) => 5,
                // A yield's Pass stands for the item's last Pass: its Choice is what it adds.
                Op::Let(..) | Op::Collect(_) | Op::Yield { .. } => 2,
                Op::Fail { .. } | Op::Finish { .. } | Op::Append(..) => 4,
                Op::If { then, .. } => 2 + count(then),
                // Counted where they are built (a poll's loop, a scan's pages: `form.rs`, `form/newest.rs`).
                Op::Poll { .. } | Op::Newest(_) => 0,
                // Count, check, the Map's own events; per item its start and end, its ops and the value it gives.
                Op::Each { ops, bound, .. } => 8 + bound.at_most * (2 + count(ops) + 2),
                // Start, check, the last test; per item the test, the take and the step.
                Op::Loop { ops, bound, .. } => 6 + bound.at_most * (6 + count(ops)),
            })
            .sum()
    }
    has_list(ops).then(|| count(ops))
}

/// Before a list: its length at `at` (`{"n": ...}`), and the step failed with the bound's error past it.
fn bounded(
    cx: &mut StepCx<'_>,
    id: &str,
    bound: &Bound,
    count: Value,
    at: &str,
    next: &str,
    states: &mut Chain,
) -> String {
    let fail = cx.name(&format!("too many {id}"));
    states.add(
        &fail,
        json!({"Type": "Fail", "Error": bound.error,
               "Cause": format!("{} (step `{}`: at most {})", bound.cause, cx.step.id, bound.at_most)}),
    );
    let check = cx.name(&format!("{id} within bound?"));
    states.add(
        &check,
        json!({"Type": "Choice", "Choices": [{"Variable": format!("{at}.n"), "NumericGreaterThan": bound.at_most, "Next": fail}], "Default": next}),
    );
    let start = cx.name(&format!("count {id}"));
    states.add(
        &start,
        json!({"Type": "Pass", "Parameters": count, "ResultPath": at, "Next": check}),
    );
    start
}

/// The service of the call of that id among ops.
fn service_of(ops: &[Op], id: &str) -> Option<&'static str> {
    ops.iter().find_map(|op| match op {
        Op::Call(c) if c.id == id => Some(c.service),
        Op::Poll { call, .. } if call.id == id => Some(call.service),
        Op::Poll { then: ops, .. } | Op::If { then: ops, .. } | Op::Each { ops, .. } | Op::Loop { ops, .. } => {
            service_of(ops, id)
        }
        _ => None,
    })
}

impl Builder<'_> {
    /// `Cond::Failed`: the caught error's name when it names the code, else its name and AWS's message.
    pub(crate) fn failed(&mut self, cx: &StepCx<'_>, id: &str, code: &str, message: &str) -> Result<Rule, String> {
        let service =
            service_of(&cx.form.ops, id).ok_or_else(|| format!("`{}`: its form checks no call `{id}`", cx.step.id))?;
        let at = dot(&cx.root(), id);
        let name = retry::error_name(service, code, cx.via);
        let by_name = json!({"Variable": dot(&at, "Error"), "StringEquals": name});
        // A generic name (`Ec2.Ec2Exception`) stands for every undeclared code: the message tells them apart.
        if cx.via == Via::Sdk && name == retry::error_name(service, "NoSuchCodeDeclared", cx.via) {
            return Ok(Rule::Rule(
                json!({"And": [by_name, {"Variable": dot(&at, "Cause"), "StringMatches": message}]}),
            ));
        }
        Ok(Rule::Rule(by_name))
    }

    pub(crate) fn each_arg(&mut self, cx: &StepCx<'_>, a: &Arg) -> Result<Node, String> {
        Ok(match a {
            Arg::Item(id, path) => {
                if !cx.scopes.iter().any(|(s, _)| s == id) {
                    return Err(format!("`{}`: its form reads an item of `{id}` outside it", cx.step.id));
                }
                let root = item_root(id);
                Node::Expr(if path.is_empty() {
                    root
                } else {
                    format!("{root}.{path}")
                })
            }
            Arg::Contains(list, v) => Node::Expr(format!(
                "States.ArrayContains({}, {})",
                self.expr_arg(cx, list)?,
                self.expr_arg(cx, v)?
            )),
            Arg::Distinct(list) => Node::Expr(format!(
                "States.ArrayLength(States.ArrayUnique({}))",
                self.expr_arg(cx, list)?
            )),
            Arg::JsonText(a) => Node::Expr(format!("States.JsonToString({})", self.expr_arg(cx, a)?)),
            Arg::Unique(a) => Node::Expr(format!("States.ArrayUnique({})", self.expr_arg(cx, a)?)),
            // Top-level state (`build.rs`): the account field of the state machine's ARN.
            Arg::Account => Node::Expr("$.account".into()),
            Arg::Partition => Node::Expr("States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), 1)".into()),
            Arg::Collected(id) => Node::Expr(format!(
                "States.StringToJson(States.Format('[{{}}]', {}))",
                dot(&dot(&cx.root(), id), "s")
            )),
            other => return Err(format!("not a list's value: {other:?}")),
        })
    }

    /// A list as a path (a Map's `ItemsPath`; a loop reads it by index): an input (as evaluated into the step's
    /// work, also when literal) or an answer.
    fn items_path(&mut self, cx: &StepCx<'_>, items: &Arg) -> Result<String, String> {
        if let Arg::Input(n) = items {
            return match cx.given(n) {
                Some(_) => Ok(dot(&dot(&cx.root(), "in"), n)),
                None => Err(format!("`{}` needs `{n}` for its Step Functions form", cx.step.id)),
            };
        }
        let node = self.arg(cx, items)?;
        node.path()
            .map(str::to_string)
            .ok_or_else(|| format!("`{}`: a list its form goes through must be a field", cx.step.id))
    }

    pub(crate) fn each_op(
        &mut self,
        cx: &mut StepCx<'_>,
        op: &Op,
        next: &str,
        exit: &str,
        states: &mut Chain,
    ) -> Result<String, String> {
        match op {
            Op::Each {
                id,
                items,
                ops,
                yields,
                bound,
            } => {
                let items = self.items_path(cx, items)?;
                let at = dot(&cx.root(), id);
                // The items' states, in the Map's own chain.
                cx.scopes.push((id, true));
                let mut inner = Chain::default();
                let gives = cx.name(&format!("{id} gives"));
                let mut p = Map::new();
                self.arg(cx, yields)?.place("v", &mut p);
                inner.add(
                    &gives,
                    json!({"Type": "Pass", "Parameters": p, "OutputPath": "$.v", "End": true}),
                );
                let first = self.ops(cx, ops, &gives, &gives, &mut inner);
                cx.scopes.pop();
                let first = first?;
                let mut each = Map::new();
                for (s, _) in &cx.scopes {
                    each.insert(format!("{s}.$"), json!(dot("$.each", s)));
                }
                each.insert(id.to_string(), json!({"v.$": "$$.Map.Item.Value"}));
                let mut selector = json!({
                    "w": {format!("{}.$", cx.step.id): cx.root()},
                    "run.$": "$.run",
                    "each": each,
                });
                if self.in_map {
                    selector["item.$"] = json!("$.item");
                }
                let name = cx.name(&format!("each {id}"));
                states.add(
                    &name,
                    json!({
                        "Type": "Map",
                        "ItemsPath": items,
                        "ItemSelector": selector,
                        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": first, "States": Value::Object(inner.states)},
                        "ResultSelector": {"v.$": "$"},
                        "ResultPath": at,
                        "Next": next,
                    }),
                );
                let count = json!({"n.$": format!("States.ArrayLength({items})")});
                Ok(bounded(cx, id, bound, count, &at, &name, states))
            }
            Op::Yield { when, value } => {
                if !matches!(cx.scopes.last(), Some((_, true))) {
                    return Err(format!("`{}`: its form yields outside an `Each`", cx.step.id));
                }
                let rule = self.cond(cx, when)?;
                if rule == Rule::Known(false) {
                    return Ok(next.to_string());
                }
                let name = cx.name("yield");
                let mut p = Map::new();
                self.arg(cx, value)?.place("v", &mut p);
                states.add(
                    &name,
                    json!({"Type": "Pass", "Parameters": p, "OutputPath": "$.v", "End": true}),
                );
                Ok(self.choice(cx, rule, &name, next, states))
            }
            Op::Loop { id, items, ops, bound } => {
                let items = self.items_path(cx, items)?;
                let at = dot("$.each", id);
                let (i, n) = (format!("{at}.i"), format!("{at}.n"));
                let test = cx.name(&format!("next {id}?"));
                let take = cx.name(&format!("take {id}"));
                let step = cx.name(&format!("step {id}"));
                cx.scopes.push((id, false));
                let body = self.ops(cx, ops, &step, exit, states);
                cx.scopes.pop();
                let body = body?;
                states.add(
                    &test,
                    json!({"Type": "Choice", "Choices": [{"Variable": i, "NumericGreaterThanEqualsPath": n, "Next": next}], "Default": take}),
                );
                states.add(
                    &take,
                    json!({"Type": "Pass", "Parameters": {"i.$": i, "n.$": n, "v.$": format!("States.ArrayGetItem({items}, {i})")},
                           "ResultPath": at, "Next": body}),
                );
                states.add(
                    &step,
                    json!({"Type": "Pass", "Parameters": {"i.$": format!("States.MathAdd({i}, 1)"), "n.$": n},
                           "ResultPath": at, "Next": test}),
                );
                let count = json!({"i": 0, "n.$": format!("States.ArrayLength({items})")});
                Ok(bounded(cx, id, bound, count, &at, &test, states))
            }
            Op::Collect(id) => {
                let name = cx.name(&format!("start {id}"));
                states.add(
                    &name,
                    json!({"Type": "Pass", "Result": {"s": ""}, "ResultPath": dot(&cx.root(), id), "Next": next}),
                );
                Ok(name)
            }
            Op::Append(id, a) => {
                let at = dot(&cx.root(), id);
                let text = format!("{at}.s");
                let v = self.expr_arg(cx, a)?;
                let first = cx.name(&format!("first of {id}"));
                states.add(
                    &first,
                    json!({"Type": "Pass", "Parameters": {"s.$": format!("States.Format('\"{{}}\"', {v})")}, "ResultPath": at, "Next": next}),
                );
                let more = cx.name(&format!("add to {id}"));
                states.add(
                    &more,
                    json!({"Type": "Pass", "Parameters": {"s.$": format!("States.Format('{{}},\"{{}}\"', {text}, {v})")}, "ResultPath": at, "Next": next}),
                );
                let check = cx.name(&format!("{id} empty?"));
                states.add(
                    &check,
                    json!({"Type": "Choice", "Choices": [{"Variable": text, "StringEquals": "", "Next": first}], "Default": more}),
                );
                Ok(check)
            }
            other => Err(format!("not a list's op: {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::events;
    use crate::actions::sfn::{Bound, Call, Op};
    use crate::export::{Options, asl};
    use crate::workflow::{Source, parse};

    fn bound(at_most: usize) -> Bound {
        Bound {
            at_most,
            error: "TooMany",
            cause: "too many",
        }
    }

    #[test]
    fn a_lists_history_is_counted_at_its_bound_and_ops_without_lists_are_not() {
        let call = || Op::Call(Call::new("c", "ec2", "DescribeImages"));
        assert_eq!(events(&[call()]), None);
        // Start, check and the last test; per item its test, take and step, and the call.
        let looped = Op::Loop {
            id: "l",
            items: crate::actions::sfn::lit(json!([])),
            ops: vec![call()],
            bound: bound(10),
        };
        assert_eq!(events(std::slice::from_ref(&looped)), Some(6 + 10 * (6 + 5)));
        // An Each inside it multiplies: per outer item, the Map's items at its bound.
        let nested = Op::Loop {
            id: "l",
            items: crate::actions::sfn::lit(json!([])),
            ops: vec![Op::Each {
                id: "e",
                items: crate::actions::sfn::lit(json!([])),
                ops: vec![],
                yields: crate::actions::sfn::lit("-"),
                bound: bound(4),
            }],
            bound: bound(10),
        };
        assert_eq!(events(&[nested]), Some(6 + 10 * (6 + 8 + 4 * 4)));
    }

    /// Every state of a definition, those of Maps and Parallels included.
    fn all_states(states: &Value, out: &mut Vec<(String, Value)>) {
        for (k, v) in states.as_object().into_iter().flatten() {
            out.push((k.clone(), v.clone()));
            for b in v["Branches"].as_array().into_iter().flatten() {
                all_states(&b["States"], out);
            }
            all_states(&v["ItemProcessor"]["States"], out);
        }
    }

    #[test]
    fn the_prune_form_is_maps_in_a_counted_loop_over_the_listing() {
        let yaml = "version: 1\nname: t\nregions: {dr: us-west-2}\nsteps:\n  - id: prune\n    action: ec2.prune_images\n    region: dr\n    with: {instance_id: i-1, keep: 2, parameters: [/p/a]}\n";
        let wf = parse(Source::new("t.yaml", yaml), crate::actions::catalog()).unwrap_or_else(|p| panic!("{p:?}"));
        let def = asl(&wf, &[], &[], &Options::default()).unwrap().definition;
        let mut states = Vec::new();
        all_states(&def["States"], &mut states);
        let find = |prefix: &str| -> Value {
            states
                .iter()
                .find(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no state `{prefix}`"))
        };
        // The AMIs of a newer one, per AMI: a Map over the keys, inside the loop over the listing, its items given
        // the step's work and the loop's current AMI.
        let newer = find("prune: each newer");
        assert_eq!(newer["Type"], "Map");
        assert_eq!(newer["ItemsPath"], "$.w.prune.keys.v");
        assert_eq!(
            newer["ItemSelector"],
            json!({"w": {"prune.$": "$.w.prune"}, "run.$": "$.run",
                   "each": {"image.$": "$.each.image", "newer": {"v.$": "$$.Map.Item.Value"}}})
        );
        let rank = find("prune: let rank");
        assert_eq!(
            rank["Parameters"]["v.$"],
            "States.MathAdd(States.ArrayLength(States.ArrayUnique($.w.prune.newer.v)), -1)"
        );
        assert_eq!(find("prune: check")["Type"], "Choice");
        // Pruned at `keep` newer ones (a literal here).
        assert!(
            states
                .iter()
                .any(|(_, s)| s["Choices"][0]["NumericGreaterThanEquals"] == json!(2)
                    && s["Choices"][0]["Variable"] == "$.w.prune.rank.v")
        );
        // EC2's SDK integration names every EC2 error alike: a snapshot in use is told by AWS's message.
        let in_use = json!({"And": [
            {"Variable": "$.w.prune.delete.Error", "StringEquals": "Ec2.Ec2Exception"},
            {"Variable": "$.w.prune.delete.Cause", "StringMatches": "*is currently in use by*"}]});
        assert!(
            states.iter().any(|(_, s)| s["Choices"][0]["And"] == in_use["And"]),
            "no check of a snapshot in use"
        );
        // More AMIs than the bound fail the step, named.
        let too_many = find("prune: too many image");
        assert_eq!(too_many["Error"], "TooManyImages");
        // The lists are kept as text and read as JSON.
        let outputs = find("prune: outputs");
        assert_eq!(
            outputs["Parameters"]["deregistered.$"],
            "States.StringToJson(States.Format('[{}]', $.w.prune.deregistered.s))"
        );
        assert_eq!(
            find("prune: add to kept")["Parameters"]["s.$"],
            "States.Format('{},\"{}\"', $.w.prune.kept.s, $.each.image.v.ImageId)"
        );
    }
}
