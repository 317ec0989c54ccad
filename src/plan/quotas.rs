//! The AWS quotas a `for_each`'s steps count against (`ActionSpec::quotas`, with the workflow's `quotas:`
//! overrides), and whether they bind across items: the engine keeps a quota's count per key (an input's value, or
//! the step's region), so a quota whose key is each item's own (`${{ item }}`) never makes items wait for each other,
//! while one the items share (the same destination region) caps how many hold it at once.

use serde_json::Value;

use super::compute::{Known, value};
use super::model::*;
use crate::workflow::expr::{template_text, to_text};
use crate::workflow::{ActionStep, QuotaKey, Ref, Step, StepKind, ValueTemplate, Workflow};

/// The quotas the jobs of a `for_each`'s steps count against, merged by quota and key. A quota binds across items
/// when its key is not the item's own (the same region for every item, or a value known only at run time, which
/// the bound assumes shared).
pub(super) fn of_fleet(known: &Known, wf: &Workflow, steps: &[Step]) -> Vec<QuotaPlan> {
    let mut out: Vec<QuotaPlan> = Vec::new();
    let mut visit = |s: &Step, a: &ActionStep| {
        for q in a.action.quotas {
            let (per, key, binds) = match q.per {
                QuotaKey::Input(name) => {
                    let Some((_, t)) = a.with.iter().find(|(k, _)| k == name) else {
                        continue; // the engine counts nothing without the key
                    };
                    let own = t.references().iter().any(|r| matches!(r, Ref::Item));
                    let key = match value(known, t) {
                        Planned::Known(v) => to_text(&v),
                        other => other
                            .unknown_reason()
                            .map(|why| format!("{} ({why})", expression(t)))
                            .unwrap_or_default(),
                    };
                    let key = if own { expression(t) } else { key };
                    (name.to_string(), key, !own)
                }
                QuotaKey::StepRegion => {
                    let code = a
                        .region
                        .as_ref()
                        .and_then(|r| known.regions.get(r))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    ("region".to_string(), code.to_string(), true)
                }
            };
            match out.iter_mut().find(|p| p.name == q.name && p.key == key) {
                Some(p) => p.steps.push(s.id.clone()),
                None => out.push(QuotaPlan {
                    name: q.name,
                    what: q.what,
                    limit: wf.quotas.limit(q),
                    aws_default: q.limit,
                    per,
                    key,
                    binds,
                    steps: vec![s.id.clone()],
                }),
            }
        }
    };
    fn walk(steps: &[Step], visit: &mut dyn FnMut(&Step, &ActionStep)) {
        for s in steps {
            match &s.kind {
                StepKind::Action(a) => visit(s, a),
                StepKind::Parallel(c) | StepKind::Sequence(c) => walk(c, visit),
                StepKind::ForEach(fe) => walk(&fe.steps, visit),
            }
        }
    }
    walk(steps, &mut visit);
    out
}

/// A value as written.
fn expression(v: &ValueTemplate) -> String {
    match v {
        ValueTemplate::Template(t) => template_text(t),
        ValueTemplate::Literal(v) => to_text(v),
        _ => "(a list or map)".into(),
    }
}
