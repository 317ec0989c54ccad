//! The report as Markdown (for a pull request, a ticket or a wiki), with a text timeline.

use std::fmt::Write;

use super::model::{Report, Resource, dur};

pub fn render(r: &Report) -> String {
    let mut m = String::with_capacity(8 * 1024);
    let title = match &r.rehearsal {
        Some(h) => format!("Rehearsal report: {} — {}", r.workflow, h.verdict.to_uppercase()),
        None => format!("Run report: {} — {}", r.workflow, r.status.to_uppercase()),
    };
    let _ = writeln!(m, "# {title}\n\n`{}`\n", r.summary);
    m.push_str("| | |\n|---|---|\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(m, "| {k} | {} |", cell(&v));
    };
    row("run", format!("`{}`", r.run_id));
    row("workflow", format!("{} (`{}`)", r.workflow, r.file));
    row("backend", r.backend.clone());
    row("status", r.status.clone());
    row("started", r.started_at.clone());
    row("ended", r.ended_at.clone());
    row("duration", r.duration.clone());
    if r.resumes > 0 {
        row("resumed", format!("{} time(s)", r.resumes));
    }
    if let Some(h) = &r.rehearsal {
        row(
            "**RTO** (launch start → DR instance verified)",
            match (&h.rto, &h.verified_at) {
                (Some(x), _) => format!("**{x}**"),
                (None, None) => "— (not verified)".into(),
                (None, Some(_)) => "— (no launch step in this run)".into(),
            },
        );
        row(
            "pipeline (run start → DR instance verified)",
            h.pipeline.clone().unwrap_or_else(|| "— (not verified)".into()),
        );
        if let (Some(step), Some(at)) = (&h.launch_step, &h.launch_started_at) {
            row(
                "launch",
                format!(
                    "`{step}` started {at} (+{})",
                    dur(h.launch_offset_ms.unwrap_or_default())
                ),
            );
        }
        row(
            "**RPO** (age of the source backup)",
            match (&h.rpo, &h.rpo_unknown) {
                (Some(x), _) if h.verified_at.is_some() => format!("**{x}** at verification"),
                (Some(x), _) => format!(
                    "**{x}** at the end of the run {} (not verified)",
                    h.rpo_measured_at.as_deref().unwrap_or("?")
                ),
                (None, Some(why)) => format!("— unknown: {why}"),
                (None, None) => "—".into(),
            },
        );
        row(
            "source AMI",
            match &h.source_ami {
                Some(a) => format!(
                    "`{a}`{}{}{}",
                    h.source_region
                        .as_deref()
                        .map(|r| format!(" in {r}"))
                        .unwrap_or_default(),
                    match &h.source_ami_created_at {
                        Some(c) => format!(" created {c}"),
                        None => ", creation time unknown".into(),
                    },
                    h.source_recovery_point
                        .as_deref()
                        .map(|p| format!(" (recovery point `{p}`)"))
                        .unwrap_or_default()
                ),
                None => "— (unknown)".into(),
            },
        );
        row(
            "DR AMI",
            match (&h.dr_ami, &h.dr_ami_created_at) {
                (Some(a), Some(c)) => format!("`{a}` created {c}"),
                (Some(a), None) => format!("`{a}`"),
                _ => "—".into(),
            },
        );
        row(
            "DR instance",
            match (&h.dr_instance, &h.dr_region) {
                (Some(i), Some(reg)) => format!("`{i}` in {reg}"),
                (Some(i), None) => format!("`{i}`"),
                _ => "—".into(),
            },
        );
        if let Some(t) = &h.verified_at {
            row(
                "verified",
                format!(
                    "{t}: running, status checks system {}, instance {}",
                    h.system_status.as_deref().unwrap_or("?"),
                    h.instance_status.as_deref().unwrap_or("?")
                ),
            );
        }
        if let Some(ms) = h.running_after_ms {
            row("first seen running", format!("+{}", dur(ms)));
        }
        if let Some(t) = &h.teardown {
            let what = match (t.status.as_str(), t.deleted) {
                ("succeeded", Some(true)) => format!(
                    "stack `{}` deleted in {}",
                    t.stack.as_deref().unwrap_or("?"),
                    t.region.as_deref().unwrap_or("?")
                ),
                ("succeeded", _) => "nothing to delete".into(),
                (s, _) => format!(
                    "**{}**{}",
                    s.replace('_', " "),
                    t.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                ),
            };
            row("teardown", what);
        }
    }
    m.push('\n');
    if let Some(f) = &r.failure {
        let _ = writeln!(
            m,
            "## Why it failed\n\nStep `{}` failed ({}): {}\n",
            f.step, f.code, f.message
        );
    }
    if r.status == "unfinished" {
        let _ = writeln!(
            m,
            "## Unfinished\n\nThe run was interrupted; continue it with `drflow resume {}`.\n",
            r.run_id
        );
        if !r.left_behind.is_empty() {
            m.push_str("Its teardown has not run yet; resuming the run deletes these:\n\n");
            resources(&mut m, &r.left_behind);
            m.push('\n');
        }
    } else if !r.left_behind.is_empty() {
        m.push_str("## ⚠ Left behind — delete these by hand\n\n");
        resources(&mut m, &r.left_behind);
        for s in r
            .left_behind
            .iter()
            .filter(|x| x.kind == crate::actions::ResourceKind::Stack)
        {
            let _ = writeln!(
                m,
                "    aws cloudformation delete-stack --region {} --stack-name {}",
                s.region.as_deref().unwrap_or("REGION"),
                s.id
            );
        }
        m.push('\n');
    }
    if let Some(f) = &r.fleet {
        m.push_str(&super::fleet::markdown(f));
    }
    if !r.rate_limits.is_empty() {
        m.push_str(
            "## AWS calls\n\n| operation | calls | throttled | waited for the rate limiter |\n|---|---|---|---|\n",
        );
        for (op, s) in &r.rate_limits {
            let _ = writeln!(
                m,
                "| `{op}` | {} | {} | {} |",
                s.calls,
                s.throttled,
                dur(s.waited_ms as i64)
            );
        }
        m.push('\n');
    }
    m.push_str("## Timeline\n\n```text\n");
    timeline(&mut m, r);
    m.push_str("```\n\n## Steps\n\n| step | action | region | status | start | end | duration | attempts | detail |\n");
    m.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for s in &r.steps {
        let indent = "  ".repeat(s.depth as usize);
        let detail = s.error.clone().or_else(|| s.skip_reason.clone()).unwrap_or_default();
        let _ = writeln!(
            m,
            "| {indent}`{}`{} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            if s.phase == "finally" { " (finally)" } else { "" },
            s.action.as_deref().unwrap_or("group"),
            s.region.as_deref().unwrap_or(""),
            s.status,
            s.start_offset_ms.map(|t| format!("+{}", dur(t))).unwrap_or_default(),
            s.end_offset_ms.map(|t| format!("+{}", dur(t))).unwrap_or_default(),
            s.duration_ms.map(dur).unwrap_or_default(),
            match (s.attempts, s.failed_attempts) {
                (0, _) => String::new(),
                (a, 0) => a.to_string(),
                (a, f) => format!("{a} ({f} failed)"),
            },
            cell(&detail)
        );
    }
    m.push('\n');
    if !r.created.is_empty() {
        m.push_str("## Created\n\n");
        resources(&mut m, &r.created);
        m.push('\n');
    }
    if !r.deleted.is_empty() {
        m.push_str("## Deleted\n\n");
        resources(&mut m, &r.deleted);
        m.push('\n');
    }
    m.push_str("## Inputs and regions\n\n| name | value |\n|---|---|\n");
    for (k, v) in r.inputs.iter().chain(r.regions.iter()) {
        let _ = writeln!(m, "| {k} | `{}` |", cell(&crate::workflow::expr::to_text(v)));
    }
    m
}

fn resources(m: &mut String, list: &[Resource]) {
    m.push_str("| what | id | region | step | detail |\n|---|---|---|---|---|\n");
    for x in list {
        let _ = writeln!(
            m,
            "| {} | `{}` | {} | `{}` | {} |",
            x.kind,
            x.id,
            x.region.as_deref().unwrap_or(""),
            x.step,
            cell(x.detail.as_deref().unwrap_or(""))
        );
    }
}

/// A text Gantt chart: one line per step, 50 columns for the whole run.
fn timeline(m: &mut String, r: &Report) {
    const COLS: i64 = 50;
    let total = r.duration_ms.max(1);
    let width = r
        .steps
        .iter()
        .map(|s| s.id.len() + 2 * s.depth as usize)
        .max()
        .unwrap_or(4)
        .max(4);
    for s in &r.steps {
        let mut bar = vec![' '; COLS as usize];
        if let Some(start) = s.start_offset_ms {
            let end = s.end_offset_ms.unwrap_or(r.duration_ms);
            let a = (start * COLS / total).clamp(0, COLS - 1);
            let b = (end * COLS / total).clamp(a + 1, COLS);
            let mark = match s.status.as_str() {
                "succeeded" => '█',
                "failed" => 'X',
                "skipped" => '·',
                _ => '▒',
            };
            for c in &mut bar[a as usize..b as usize] {
                *c = mark;
            }
        }
        let label = format!("{}{}", "  ".repeat(s.depth as usize), s.id);
        let what = match s.status.as_str() {
            "succeeded" | "failed" => format!("{} {}", s.status, s.duration_ms.map(dur).unwrap_or_default()),
            other => other.replace('_', " "),
        };
        let _ = writeln!(m, "{label:<width$} |{}| {what}", bar.iter().collect::<String>());
    }
    // The RTO span: from the launch's start to the verification.
    if let Some((from, to)) = r
        .rehearsal
        .as_ref()
        .and_then(|h| h.launch_offset_ms.zip(h.pipeline_ms).filter(|_| h.rto_ms.is_some()))
    {
        let mut bar = vec![' '; COLS as usize];
        let a = (from * COLS / total).clamp(0, COLS - 1);
        let b = (to * COLS / total).clamp(a + 1, COLS);
        for c in &mut bar[a as usize..b as usize] {
            *c = '═';
        }
        let rto = r.rehearsal.as_ref().and_then(|h| h.rto.clone()).unwrap_or_default();
        let _ = writeln!(
            m,
            "{:<width$} |{}| RTO {rto} (launch → verified)",
            "RTO",
            bar.iter().collect::<String>()
        );
    }
    let _ = writeln!(m, "{:<width$} 0{:>49}", "", format!("+{}", r.duration));
}

/// Table cells: one line, no pipes.
fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}
