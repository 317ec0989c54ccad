//! The bounds of a plan as text: a fleet's quotas and bounds, the run's bounds per operation, and how they are
//! counted (`bounds` computes them).

use std::fmt::Write;

use super::model::*;
use crate::workflow::format_duration;

/// "backup_copies: 100 at a time (AWS default), AWS Backup copy jobs into one destination region; counted per
/// destination_region = us-west-2, which the items share (for copy)".
pub(super) fn quota(q: &QuotaPlan) -> String {
    let source = if q.limit == q.aws_default {
        "AWS default".to_string()
    } else {
        format!("`quotas:`, AWS default {}", q.aws_default)
    };
    let shared = if q.binds {
        "which the items share"
    } else {
        "each item its own"
    };
    format!(
        "{}: {} at a time ({source}), {}; counted per {} = {}, {shared} (for {})",
        q.name,
        q.limit,
        q.what,
        q.per,
        q.key,
        q.steps.join(", ")
    )
}

/// A fleet's bounds: waves × one item's, or per item while the count is not known.
pub(super) fn fleet(o: &mut String, detail: &str, fe: &ForEachPlan, s: &PlannedStep) {
    let line = |o: &mut String, key: &str, value: &str| {
        let _ = writeln!(o, "{detail}{key:<10}{value}");
    };
    let per_item = duration(fe.max_item_duration);
    let quota = if fe.concurrency < fe.max_concurrency {
        let by: Vec<&str> = fe
            .quotas
            .iter()
            .filter(|q| q.binds && q.limit as usize == fe.concurrency)
            .map(|q| q.name)
            .collect();
        format!(", quota {}", by.join(", "))
    } else {
        String::new()
    };
    let at_once = format!("up to {} at once{quota}", fe.concurrency);
    let item_calls = count(fe.max_item_api_calls);
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (fe.count, fe.waves) {
        (Some(n), Some(waves)) => {
            line(
                o,
                "budget",
                &format!(
                    "{} × {per_item} per item = {} at most ({}, {at_once})",
                    plural(waves, "wave"),
                    duration(s.max_duration),
                    plural(n as u64, "item")
                ),
            );
            line(
                o,
                "api calls",
                &format!(
                    "{} × {item_calls} per item = {} at most",
                    plural(n as u64, "item"),
                    count(s.max_api_calls)
                ),
            );
        }
        _ => {
            line(
                o,
                "budget",
                &format!(
                    "unbounded until the items are known: (items / {}, rounded up) waves × {per_item} per item \
                     ({at_once})",
                    fe.concurrency
                ),
            );
            line(
                o,
                "api calls",
                &format!("unbounded until the items are known: items × {item_calls} per item"),
            );
        }
    }
}

/// The run's bounds, per operation, and how they are counted.
pub(super) fn summary(o: &mut String, plan: &Plan) {
    // Fleets whose items are not known yet: the run's bounds are the other steps' + a term per fleet.
    let top: Vec<&PlannedStep> = plan.steps.iter().chain(&plan.finally).collect();
    let fleets: Vec<(&PlannedStep, &ForEachPlan)> = top
        .iter()
        .filter(|s| s.skipped.is_none())
        .filter_map(|s| s.for_each.as_ref().filter(|fe| fe.count.is_none()).map(|fe| (*s, fe)))
        .collect();
    let rest: Vec<&PlannedStep> = top
        .iter()
        .copied()
        .filter(|s| !fleets.iter().any(|(f, _)| std::ptr::eq(*f, *s)))
        .collect();
    let pending = || {
        let names: Vec<String> = fleets
            .iter()
            .map(|(f, fe)| match &fe.items {
                Planned::Unknown(u) => format!("`{}` ({})", f.id, known_after_text(&u.after)),
                _ => format!("`{}`", f.id),
            })
            .collect();
        format!("unbounded until the items of {} are known", names.join(", "))
    };
    let duration_text = match plan.max_duration {
        Some(d) => format_duration(d),
        None => {
            let mut terms = vec![duration(rest.iter().map(|s| s.max_duration).sum())];
            for (_, fe) in &fleets {
                terms.push(format!(
                    "(items / {}, rounded up) × {}",
                    fe.concurrency,
                    duration(fe.max_item_duration)
                ));
            }
            format!("{}: {}", pending(), terms.join(" + "))
        }
    };
    let _ = writeln!(o, "\nUpper bound on the run's duration: {duration_text}");
    let calls_text = match plan.max_api_calls {
        Some(n) => n.to_string(),
        None => {
            let mut terms = vec![count(rest.iter().map(|s| s.max_api_calls).sum())];
            for (_, fe) in &fleets {
                terms.push(format!("items × {}", count(fe.max_item_api_calls)));
            }
            format!("{}: {}", pending(), terms.join(" + "))
        }
    };
    let _ = writeln!(o, "Upper bound on its AWS API calls: {calls_text}");
    let width = plan
        .max_api_calls_by_operation
        .iter()
        .map(|(op, _)| op.len())
        .max()
        .unwrap_or(0);
    for (op, n) in &plan.max_api_calls_by_operation {
        let text = match n {
            Some(n) => n.to_string(),
            None => {
                let fixed: u64 = rest
                    .iter()
                    .flat_map(|s| &s.operations)
                    .filter(|(o, _)| o == op)
                    .filter_map(|(_, n)| *n)
                    .sum();
                let mut terms: Vec<String> = if fixed > 0 { vec![fixed.to_string()] } else { vec![] };
                for (f, fe) in &fleets {
                    if let Some((_, n)) = fe.max_item_api_calls_by_operation.iter().find(|(o, _)| o == op) {
                        terms.push(format!("{} per item of `{}`", count(*n), f.id));
                    }
                }
                terms.join(" + ")
            }
        };
        let _ = writeln!(o, "  {op:<width$}  {text}");
    }
    for legend in [
        "Upper bounds: every attempt fails slowly and every retry waits its longest (a run that goes well takes far",
        "less). Duration: a call, (retries + 1) attempts per AWS operation it declares × its timeout + retry delays",
        "(each at most max_delay); a wait, its timeout + retry delays + a 30s last look per attempt; parallel, its",
        "longest branch; skipped, 0; for_each, (items / N, rounded up) waves × one item's bound, N = max_concurrency",
        "or a lower limit of a quota the items share. API calls: each declared operation once per attempt of a call",
        "or per poll of a wait; a wait polls once per attempt and at most once per poll interval (5s when paced by",
        "its job's progress or size) over its bound; a list that pages calls once per page.",
    ] {
        let _ = writeln!(o, "  {legend}");
    }
}

/// A duration bound, or "unbounded".
pub(super) fn duration(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "unbounded".to_string(), format_duration)
}

/// A count bound, or "unbounded".
pub(super) fn count(n: Option<u64>) -> String {
    n.map_or_else(|| "unbounded".to_string(), |n| n.to_string())
}
