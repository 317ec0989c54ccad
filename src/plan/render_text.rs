//! The plan as text, for an operator to read before a run (like `terraform plan`).

use std::fmt::Write;

use serde_json::Value;

use super::model::*;
use super::render_bounds::{self, count, duration};
use crate::workflow::format_duration;

/// Renders the whole plan, checks included when present.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "Plan for {} ({})", plan.workflow, plan.file);
    let _ = writeln!(
        o,
        "{}",
        if plan.checks.is_some() {
            "Nothing was changed: the preflight checks below made read-only AWS calls only."
        } else {
            "Nothing was changed: this plan made no AWS call."
        }
    );
    if !plan.inputs.is_empty() {
        let _ = writeln!(o, "\nInputs");
        let width = plan.inputs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &plan.inputs {
            let default = if plan.defaulted.contains(k) { "  (default)" } else { "" };
            let _ = writeln!(o, "  {k:<width$}  {}{default}", scalar(v));
        }
    }
    if !plan.regions.is_empty() {
        let _ = writeln!(o, "\nRegions");
        let width = plan.regions.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &plan.regions {
            match plan.roles.iter().find(|(n, _)| n == k) {
                Some((_, arn)) => {
                    let _ = writeln!(o, "  {k:<width$}  {v}  as {arn}");
                }
                None => {
                    let _ = writeln!(o, "  {k:<width$}  {v}");
                }
            }
        }
    }
    let _ = writeln!(o, "\nSteps, in execution order");
    steps(o, &plan.steps, "", 2);
    if plan.steps.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    let _ = writeln!(o, "\nFinally (always runs, after success or failure)");
    steps(o, &plan.finally, "f", 2);
    if plan.finally.is_empty() {
        let _ = writeln!(o, "  (none)");
    }
    render_bounds::summary(o, plan);
    if let Some(checks) = &plan.checks {
        let _ = writeln!(o);
        o.push_str(&render_checks(checks));
    }
    out
}

/// The preflight checks and their summary.
pub fn render_checks(checks: &Checks) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "Preflight checks (read-only, against {})",
        if checks.backend == "sim" {
            "the simulator"
        } else {
            "AWS"
        }
    );
    for c in &checks.results {
        let _ = writeln!(o, "  {:<8} {}: {}", c.status.as_str(), describe(c), c.reason);
    }
    let count = |s: CheckStatus| checks.results.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        o,
        "Checks: {} ok, {} notes, {} failed, {} skipped",
        count(CheckStatus::Ok),
        count(CheckStatus::Note),
        count(CheckStatus::Failed),
        count(CheckStatus::Skipped)
    );
    o
}

/// "backup vault Default in us-west-2 (for copy)".
pub fn describe(c: &Check) -> String {
    let mut s = c.check.title().to_string();
    if !c.subject.is_empty() {
        s.push(' ');
        s.push_str(&c.subject);
    }
    if let Some(r) = &c.region {
        s.push_str(" in ");
        s.push_str(r);
    }
    if !c.steps.is_empty() {
        s.push_str(&format!(" (for {})", c.steps.join(", ")));
    }
    s
}

fn steps(o: &mut String, list: &[PlannedStep], prefix: &str, indent: usize) {
    for (i, s) in list.iter().enumerate() {
        let number = format!("{prefix}{}", i + 1);
        step(o, s, &number, indent);
    }
}

fn step(o: &mut String, s: &PlannedStep, number: &str, indent: usize) {
    let pad = " ".repeat(indent);
    let name = s.name.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
    let _ = writeln!(o, "{pad}{number}  {}{name}", s.id);
    let detail = " ".repeat(indent + number.len() + 2);
    let line = |o: &mut String, key: &str, value: &str| {
        let _ = writeln!(o, "{detail}{key:<10}{value}");
    };
    if let Some(reason) = &s.skipped {
        line(o, "SKIPPED", reason);
    } else if let Some(w) = &s.when {
        line(o, "when", &w.reason);
    }
    match &s.on_failure {
        Route::Abort => {}
        Route::Continue => line(o, "on error", "continue: the run does not fail because of this step"),
        Route::Goto { step } => line(o, "on error", &format!("go to `{step}` (the run still fails)")),
    }
    match &s.body {
        Body::Action(a) => action(o, a, &detail, s.skipped.is_none(), s.max_duration),
        Body::Parallel { branches } => {
            line(
                o,
                "parallel",
                &format!("{} branches at once; the group fails if one fails", branches.len()),
            );
            if s.skipped.is_none() {
                line(
                    o,
                    "budget",
                    &format!("{} at most (its longest branch)", duration(s.max_duration)),
                );
                line(
                    o,
                    "api calls",
                    &format!("{} at most (its branches')", count(s.max_api_calls)),
                );
            }
            steps(o, branches, &format!("{number}."), detail.len());
        }
        Body::Sequence { steps: children } => {
            if let Some(fe) = &s.for_each {
                let items = match (&fe.items, fe.count) {
                    (_, Some(n)) => format!("{n} item{}", if n == 1 { "" } else { "s" }),
                    (Planned::Unknown(u), None) => {
                        format!("the items of `{}` ({})", u.expression, known_after_text(&u.after))
                    }
                    (_, None) => "its items".to_string(),
                };
                let tolerated = match (fe.tolerated_failures, fe.tolerated_failure_percentage) {
                    (None, None) => "no item may fail".to_string(),
                    (Some(0), None) => "no item may fail".to_string(),
                    (Some(c), None) => format!("up to {c} items may fail"),
                    (None, Some(p)) => format!("up to {p}% of the items may fail"),
                    (Some(c), Some(p)) => format!("up to {c} items and {p}% may fail"),
                };
                if let (Planned::Known(Value::Array(list)), Some(n)) = (&fe.items, fe.count) {
                    let found = if fe.discovered_by.is_empty() {
                        String::new()
                    } else {
                        format!(" (found by {}, run by --check)", fe.discovered_by.join(", "))
                    };
                    let keys: Vec<String> = list.iter().map(scalar).collect();
                    line(o, "items", &format!("{n}{found}: {}", capped(&keys, KEYS_SHOWN)));
                }
                line(
                    o,
                    "for each",
                    &format!("{items}, {} at a time; {tolerated}", fe.max_concurrency),
                );
                for (i, q) in fe.quotas.iter().enumerate() {
                    line(o, if i == 0 { "quotas" } else { "" }, &render_bounds::quota(q));
                }
            }
            line(
                o,
                "sequence",
                &format!(
                    "{} step{}, one after the other",
                    children.len(),
                    if children.len() == 1 { "" } else { "s" }
                ),
            );
            if s.skipped.is_none() {
                match &s.for_each {
                    Some(fe) => render_bounds::fleet(o, &detail, fe, s),
                    None => {
                        line(o, "budget", &format!("{} at most", duration(s.max_duration)));
                        line(o, "api calls", &format!("{} at most", count(s.max_api_calls)));
                    }
                }
            }
            steps(o, children, &format!("{number}."), detail.len());
        }
    }
}

fn action(o: &mut String, a: &ActionPlan, detail: &str, runs: bool, worst: Option<std::time::Duration>) {
    let line = |o: &mut String, key: &str, value: &str| {
        let _ = writeln!(o, "{detail}{key:<10}{value}");
    };
    let effect = if a.mutates { "changes things" } else { "read-only" };
    line(o, "action", &format!("{} ({}, {effect})", a.action, a.kind));
    if let Some(r) = &a.region {
        line(o, "region", &format!("{} ({})", r.code, r.name));
    }
    if !a.calls.is_empty() {
        line(o, "calls", &a.calls.join(", "));
    }
    let mut with = Vec::new();
    for (k, v) in &a.inputs {
        flatten(k, v, &mut with);
    }
    let width = with.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (i, (k, v)) in with.iter().enumerate() {
        line(o, if i == 0 { "with" } else { "" }, &format!("{k:<width$} = {v}"));
    }
    if let Some(e) = &a.expires {
        line(o, "expires", e);
    }
    if let Some(p) = &a.preview {
        line(o, "changes", p);
    }
    if let Some(p) = &a.poll {
        line(
            o,
            "polls",
            &format!(
                "every {}, × {}, up to {} between polls",
                format_duration(p.interval),
                p.backoff_rate,
                format_duration(p.max_interval)
            ),
        );
    }
    let r = &a.retry;
    let retries = if r.max_attempts == 0 {
        "none".to_string()
    } else {
        format!(
            "up to {} on {}; delays {} × {}{}{}",
            r.max_attempts,
            r.errors.join(", "),
            format_duration(r.interval),
            r.backoff_rate,
            r.max_delay
                .map(|d| format!(", at most {} each", format_duration(d)))
                .unwrap_or_default(),
            if r.jitter == "full" { ", full jitter" } else { "" }
        )
    };
    line(o, "retries", &retries);
    let b = &a.bound;
    let operations = a.calls.len() as u64;
    if a.kind == "wait" {
        line(
            o,
            "timeout",
            &format!("{} for the whole wait, retries included", format_duration(a.timeout)),
        );
        if runs {
            let last_look = crate::engine::LAST_LOOK.min(a.timeout);
            line(
                o,
                "budget",
                &format!(
                    "{} + {} of retry delays + {} last looks × {} = {} at most",
                    format_duration(a.timeout),
                    format_duration(r.max_total_delay),
                    b.attempts,
                    format_duration(last_look),
                    duration(worst)
                ),
            );
            let polls = b.polls.unwrap_or_default();
            let gap = b.poll_gap.map(format_duration).unwrap_or_default();
            let paced = if b.paced {
                " (paced by the job's progress or size)"
            } else {
                ""
            };
            let how = format!(
                "a poll per {gap} at the soonest{paced} over {}, + 1 per attempt",
                duration(worst)
            );
            let instead = a
                .calls
                .iter()
                .filter(|c| crate::cloud::operations::POLL_LISTS.contains(c))
                .count() as u64;
            let operations = operations - instead;
            let text = if instead > 0 && operations == 1 {
                format!("{polls} at most: {how}; a poll is one request, its describe or a list shared with other polls")
            } else if operations == 1 {
                format!("{polls} at most: {how}")
            } else {
                format!(
                    "{} at most: {polls} polls ({how}) × {operations} operations",
                    polls * operations
                )
            };
            line(o, "api calls", &text);
        }
        return;
    }
    line(o, "timeout", &format!("{} per attempt", format_duration(a.timeout)));
    if runs {
        let attempts = match b.attempts {
            1 => "1 attempt".to_string(),
            n if operations > 1 && r.max_attempts > 0 => {
                format!("{n} attempts ({} for each of {operations} operations)", r.attempts)
            }
            n => format!("{n} attempts"),
        };
        let delays = if r.max_attempts == 0 {
            String::new()
        } else {
            let d = worst
                .map(|w| w.saturating_sub(a.timeout * b.attempts))
                .unwrap_or_default();
            format!(" + {} of retry delays", format_duration(d))
        };
        line(
            o,
            "budget",
            &format!(
                "{attempts} × {}{delays} = {} at most",
                format_duration(a.timeout),
                duration(worst)
            ),
        );
        let calls = u64::from(b.attempts) * operations;
        let how = if operations == 1 {
            "one per attempt".to_string()
        } else {
            format!("each of {operations} operations once per attempt")
        };
        line(o, "api calls", &format!("{calls} at most ({how})"));
    }
}

/// How many keys of a fleet the text shows.
pub(crate) const KEYS_SHOWN: usize = 10;

/// The first `shown` keys, then "and N more".
pub(crate) fn capped(keys: &[String], shown: usize) -> String {
    let mut text = keys.iter().take(shown).cloned().collect::<Vec<_>>().join(", ");
    if keys.len() > shown {
        text.push_str(&format!(" and {} more", keys.len() - shown));
    }
    if keys.is_empty() {
        text.push_str("(none)");
    }
    text
}

/// Flattens a value into `key.sub = value` lines.
fn flatten(key: &str, v: &Planned, out: &mut Vec<(String, String)>) {
    match v {
        Planned::Known(Value::Object(m)) if !m.is_empty() => {
            for (k, v) in m {
                flatten(&format!("{key}.{k}"), &Planned::Known(v.clone()), out);
            }
        }
        Planned::Known(v) => out.push((key.to_string(), scalar(v))),
        Planned::Unknown(u) => out.push((key.to_string(), format!("({})", known_after_text(&u.after)))),
        Planned::Map(entries) => {
            for (k, v) in entries {
                flatten(&format!("{key}.{k}"), v, out);
            }
        }
        Planned::List(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{key}[{i}]"), v, out);
            }
        }
    }
}

/// Strings as they are, anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
