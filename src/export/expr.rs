//! drflow's `${{ }}` in ASL: references become paths into the execution's state (laid out by `layout`), strings
//! with several pieces `States.Format`, conditions Choice rules.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::node::{Node, format};
use crate::workflow::expr::{Expr, Piece, Template};
use crate::workflow::{Ref, ValueTemplate};

/// What references may name: the outputs each step's form gives.
pub(crate) struct Names<'a> {
    pub outputs: &'a BTreeMap<String, Vec<&'static str>>,
    /// The steps whose `status == 'succeeded'` the state tells (`super::status`).
    pub settled: &'a std::collections::BTreeSet<String>,
}

/// `base.key`, or `base['key']` for a key that is not a plain name.
pub(crate) fn dot(base: &str, key: &str) -> String {
    let plain = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{base}.{key}")
    } else {
        format!("{base}['{}']", key.replace('\'', "\\'"))
    }
}

/// Where a reference's value is in the execution's state.
pub(crate) fn path(r: &Ref, names: &Names<'_>) -> Result<String, String> {
    Ok(match r {
        Ref::Input(n) => dot("$.inputs", n),
        Ref::Region(n) => dot("$.regions", n),
        Ref::RunId => "$.run.id".into(),
        Ref::RunWorkflow => "$.run.workflow".into(),
        Ref::RunStatus => "$.run.status".into(),
        Ref::RunError => "$.run.error".into(),
        Ref::AccountId | Ref::Account { fixed: None, .. } => "$.account".into(),
        Ref::Account { region, fixed: Some(a) } => {
            return Err(format!(
                "`accounts.{region}` (account {a}, known at export) has no place in the execution's state: `known` \
                 gives it"
            ));
        }
        Ref::Item => "$.item".into(),
        Ref::StepOutput { step, output, path } => {
            let Some(outs) = names.outputs.get(step) else {
                return Err(format!(
                    "`steps.{step}.outputs.{output}`: the outputs of `{step}` are not part of the export"
                ));
            };
            if !outs.contains(&output.as_str()) {
                return Err(format!(
                    "`steps.{step}.outputs.{output}`: the Step Functions form of `{step}` gives no `{output}` (it gives {})",
                    if outs.is_empty() {
                        "none".to_string()
                    } else {
                        outs.join(", ")
                    }
                ));
            }
            let mut p = dot(&dot("$.steps", step), output);
            for k in path {
                p = dot(&p, k);
            }
            p
        }
        Ref::StepStatus(_) | Ref::StepError(_) => {
            return Err(format!(
                "`{}`: a step's status and error are not kept in the exported state machine",
                r.dotted()
            ));
        }
    })
}

/// A reference's value when the export knows it: `accounts.NAME` of a region reached through a role is that
/// role's account (from its ARN), the same in every execution.
pub(crate) fn known(r: &Ref) -> Option<Value> {
    match r {
        Ref::Account { fixed: Some(a), .. } => Some(json!(a)),
        _ => None,
    }
}

/// A `${{ }}` string as a node: one reference keeps its type, several pieces become `States.Format`.
pub(crate) fn template(t: &Template, names: &Names<'_>) -> Result<Node, String> {
    let mut text = String::new();
    let mut args = Vec::new();
    for p in &t.pieces {
        match p {
            Piece::Text(s) => text.push_str(s),
            Piece::Expr(Expr::Ref(r)) if known(r).is_some() => {
                if let [_] = t.pieces.as_slice() {
                    return Ok(Node::Lit(known(r).unwrap_or_default()));
                }
                text.push_str(&crate::workflow::expr::to_text(&known(r).unwrap_or_default()));
            }
            Piece::Expr(Expr::Ref(r)) => {
                text.push_str("{}");
                args.push(Node::Expr(path(r, names)?));
            }
            Piece::Expr(Expr::Literal(v)) => text.push_str(&crate::workflow::expr::to_text(v)),
            Piece::Expr(_) => {
                return Err(
                    "a computed value (`==`, `&&`, ...) inside `${{ }}` is not mapped to Step Functions".into(),
                );
            }
        }
    }
    if let ([Piece::Expr(Expr::Ref(_))], [one]) = (t.pieces.as_slice(), args.as_slice()) {
        return Ok(one.clone());
    }
    // `{` and `}` of the text itself are escaped by `format`; the placeholders are ours.
    format(&text, args)
}

pub(crate) fn value(v: &ValueTemplate, names: &Names<'_>) -> Result<Node, String> {
    Ok(match v {
        ValueTemplate::Literal(v) => Node::Lit(v.clone()),
        ValueTemplate::Template(t) => template(t, names)?,
        ValueTemplate::List(items) => Node::Arr(items.iter().map(|i| value(i, names)).collect::<Result<_, _>>()?),
        ValueTemplate::Map(entries) => Node::Obj(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), value(v, names)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A condition as a Choice rule, or its value when it is known at export time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    Known(bool),
    Rule(Value),
}

impl Rule {
    pub fn not(self) -> Rule {
        match self {
            Rule::Known(b) => Rule::Known(!b),
            Rule::Rule(r) => Rule::Rule(json!({"Not": r})),
        }
    }

    /// `And` (`all`) or `Or` of rules, folding the known ones.
    pub fn join(rules: Vec<Rule>, all: bool) -> Rule {
        let mut out = Vec::new();
        for r in rules {
            match r {
                Rule::Known(b) if b == all => {}
                Rule::Known(b) => return Rule::Known(b),
                Rule::Rule(r) => out.push(r),
            }
        }
        match out.len() {
            0 => Rule::Known(all),
            1 => Rule::Rule(out.remove(0)),
            _ => Rule::Rule(json!({ if all { "And" } else { "Or" }: out })),
        }
    }
}

/// A `when:` condition as a Choice rule.
pub(crate) fn condition(e: &Expr, names: &Names<'_>) -> Result<Rule, String> {
    Ok(match e {
        Expr::Literal(Value::Bool(b)) => Rule::Known(*b),
        Expr::Literal(v) => return Err(format!("`{v}` is not a condition")),
        Expr::Ref(r) => Rule::Rule(json!({"Variable": path(r, names)?, "BooleanEquals": true})),
        Expr::Not(e) => condition(e, names)?.not(),
        Expr::And(a, b) => Rule::join(vec![condition(a, names)?, condition(b, names)?], true),
        Expr::Or(a, b) => Rule::join(vec![condition(a, names)?, condition(b, names)?], false),
        Expr::Eq(a, b) => equals(a, b, names)?,
        Expr::Ne(a, b) => equals(a, b, names)?.not(),
    })
}

fn equals(a: &Expr, b: &Expr, names: &Names<'_>) -> Result<Rule, String> {
    let text = crate::workflow::expr::to_text;
    let lit = |e: &Expr| match e {
        Expr::Ref(r) => known(r).map(Expr::Literal).unwrap_or_else(|| e.clone()),
        _ => e.clone(),
    };
    let (a, b) = (&lit(a), &lit(b));
    if let (Expr::Ref(Ref::StepStatus(step)), Expr::Literal(v)) | (Expr::Literal(v), Expr::Ref(Ref::StepStatus(step))) =
        (a, b)
    {
        return super::status::equals(step, v, names);
    }
    Ok(match (a, b) {
        (Expr::Literal(x), Expr::Literal(y)) => Rule::Known(text(x) == text(y)),
        (Expr::Ref(r), Expr::Literal(v)) | (Expr::Literal(v), Expr::Ref(r)) => {
            let var = path(r, names)?;
            Rule::Rule(match v {
                Value::Bool(b) => json!({"Variable": var, "BooleanEquals": b}),
                Value::Number(n) => json!({"Variable": var, "NumericEquals": n}),
                Value::Null => json!({"Variable": var, "IsNull": true}),
                other => json!({"Variable": var, "StringEquals": text(other)}),
            })
        }
        (Expr::Ref(x), Expr::Ref(y)) => {
            Rule::Rule(json!({"Variable": path(x, names)?, "StringEqualsPath": path(y, names)?}))
        }
        _ => return Err("only a reference compared with a value or another reference is mapped to a Choice".into()),
    })
}
