//! The report as one self-contained HTML page: inline CSS and an inline SVG timeline (a Gantt chart of the
//! steps); no script, no fonts or images from the network, so it opens from a file, a CI artifact or a mail. A
//! fleet adds its section (`fleet_html`: a chart of the items in flight, a table of items), and a large fleet's
//! item steps are shown per stage on the timeline and in the steps table (`condense`).

use std::fmt::Write;

use super::model::{Report, Resource, StepRow, dur, when};

/// Bar colours, used for nothing else on the page (the screenshot test looks for them).
pub const SUCCEEDED: &str = "#2b8a3e";
pub const FAILED: &str = "#c92a2a";
pub const RUNNING: &str = "#f08c00";
pub const SKIPPED: &str = "#adb5bd";
/// The background of the RTO span on the timeline (launch start → DR instance verified).
pub const RTO_SPAN: &str = "#d0ebff";
/// The colours of the fleet chart's stages.
pub use super::fleet_html::PALETTE;

const WIDTH: f64 = 1100.0;
const LABELS: f64 = 250.0;
const ROW: f64 = 26.0;
const BAR: f64 = 16.0;
const TOP: f64 = 30.0;

pub fn render(r: &Report) -> String {
    let mut h = String::with_capacity(32 * 1024);
    let (verdict, tone) = verdict(r);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} {} — {}</title><style>{CSS}</style></head><body>\n",
        esc(&r.workflow),
        esc(&r.run_id),
        esc(verdict)
    );
    let _ = write!(
        h,
        "<header class=\"banner {tone}\"><div class=\"verdict\">{}</div><div class=\"what\"><b>{}</b> · run <code>{}</code> · \
         backend {} · started {}</div><div class=\"summary\"><code>{}</code></div></header>",
        esc(verdict),
        esc(&r.workflow),
        esc(&r.run_id),
        esc(&r.backend),
        esc(&r.started_at),
        esc(&r.summary)
    );
    cards(&mut h, r);
    if let Some(f) = &r.failure {
        let _ = write!(
            h,
            "<section class=\"box bad\"><h2>Why it failed</h2><p>Step <code>{}</code> failed{}: {}</p></section>",
            esc(&f.step),
            if f.code.is_empty() {
                String::new()
            } else {
                format!(" (<code>{}</code>)", esc(&f.code))
            },
            esc(&f.message)
        );
    }
    if r.status == "unfinished" {
        unfinished(&mut h, r);
    } else if !r.left_behind.is_empty() {
        h.push_str(
            "<section class=\"box bad loud\"><h2>Left behind — delete these by hand</h2>\
             <p>The rehearsal could not tear down what it launched. These still exist and cost money:</p>",
        );
        resources(&mut h, &r.left_behind);
        for s in r
            .left_behind
            .iter()
            .filter(|x| x.kind == crate::actions::ResourceKind::Stack)
        {
            let _ = write!(
                h,
                "<p><code>aws cloudformation delete-stack --region {} --stack-name {}</code></p>",
                esc(s.region.as_deref().unwrap_or("REGION")),
                esc(&s.id)
            );
        }
        h.push_str("</section>\n");
    }
    super::fleet_html::section(&mut h, r);
    // A large fleet's item steps: a row per stage (the fleet section has the items).
    let condensed =
        super::condense::condense(&r.steps, super::condense::DETAIL_ITEMS).map(|steps| Report { steps, ..r.clone() });
    let shown = condensed.as_ref().unwrap_or(r);
    h.push_str("<section><h2>Timeline</h2>\n");
    timeline(&mut h, shown);
    h.push_str("</section>\n<section><h2>Steps</h2>\n");
    if condensed.is_some() {
        h.push_str("<p class=\"note\">The steps of each fleet item are shown per stage (<code>GROUP[*].STEP</code>); the Fleet section lists the items.</p>");
    }
    steps(&mut h, shown);
    h.push_str("</section>\n");
    if !r.created.is_empty() {
        h.push_str("<section><h2>Created</h2>");
        resources(&mut h, &r.created);
        h.push_str("</section>\n");
    }
    if !r.deleted.is_empty() {
        h.push_str("<section><h2>Deleted</h2>");
        resources(&mut h, &r.deleted);
        h.push_str("</section>\n");
    }
    h.push_str("<section><h2>Inputs and regions</h2><table class=\"kv\">");
    for (k, v) in r.inputs.iter().chain(r.regions.iter()) {
        let _ = write!(
            h,
            "<tr><th>{}</th><td><code>{}</code></td></tr>",
            esc(k),
            esc(&crate::workflow::expr::to_text(v))
        );
    }
    let _ = write!(
        h,
        "</table></section>\n<footer>drflow report format {} · workflow file <code>{}</code> · {} resume(s) · \
         from the run's journal</footer>\n</body></html>\n",
        r.format,
        esc(&r.file),
        r.resumes
    );
    h
}

fn unfinished(h: &mut String, r: &Report) {
    let _ = write!(
        h,
        "<section class=\"box warn\"><h2>Unfinished</h2><p>The run was interrupted. Continue it with \
         <code>drflow resume {}</code>; its journal keeps every job it started.</p>",
        esc(&r.run_id)
    );
    if !r.left_behind.is_empty() {
        h.push_str("<p>Its teardown has not run yet; resuming the run deletes these:</p>");
        resources(h, &r.left_behind);
    }
    h.push_str("</section>\n");
}

fn verdict(r: &Report) -> (&'static str, &'static str) {
    match (&r.rehearsal, r.status.as_str()) {
        (Some(h), _) if h.failover && h.verdict == "passed" => ("FAILOVER DONE", "pass"),
        (Some(h), _) if h.failover && h.verdict == "unfinished" => ("FAILOVER UNFINISHED", "warn"),
        (Some(h), _) if h.failover => ("FAILOVER FAILED", "fail"),
        (Some(h), _) if h.verdict == "passed" => ("REHEARSAL PASSED", "pass"),
        (Some(h), _) if h.verdict == "unfinished" => ("REHEARSAL INTERRUPTED", "warn"),
        (Some(_), _) => ("REHEARSAL FAILED", "fail"),
        (None, "succeeded") => ("RUN SUCCEEDED", "pass"),
        (None, "unfinished") => ("RUN UNFINISHED", "warn"),
        (None, _) => ("RUN FAILED", "fail"),
    }
}

fn cards(h: &mut String, r: &Report) {
    h.push_str("<section class=\"cards\">");
    let mut card = |label: &str, value: &str, note: &str| {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>",
            esc(label),
            esc(value),
            esc(note)
        );
    };
    if let Some(x) = &r.rehearsal {
        card(
            "RTO (launch → verified DR instance)",
            x.rto.as_deref().unwrap_or("—"),
            &match (&x.verified_at, &x.launch_started_at) {
                (Some(t), Some(l)) => format!(
                    "launch started {l} → {} verified at {t}",
                    x.dr_instance.as_deref().unwrap_or("instance")
                ),
                (Some(_), None) => "no launch step in this run".into(),
                (None, _) => "the DR instance was not verified".into(),
            },
        );
        card(
            "Pipeline (run start → verified)",
            x.pipeline.as_deref().unwrap_or("—"),
            &match &x.verified_at {
                Some(_) => "back up, copy, publish, launch, verify".to_string(),
                None => "the DR instance was not verified".into(),
            },
        );
        card(
            "RPO (age of the source backup)",
            x.rpo.as_deref().unwrap_or("—"),
            &match (&x.source_ami, &x.source_ami_created_at, &x.rpo_unknown) {
                (Some(a), Some(c), _) => format!(
                    "source {a}{} created {c}{}",
                    x.source_region
                        .as_deref()
                        .map(|r| format!(" in {r}"))
                        .unwrap_or_default(),
                    match (&x.dr_ami, &x.dr_ami_created_at) {
                        (Some(d), Some(dc)) => format!(" · DR copy {d} created {dc}"),
                        (Some(d), None) => format!(" · DR copy {d}"),
                        _ => String::new(),
                    }
                ),
                (_, _, Some(why)) => format!("unknown: {why}"),
                _ => "no DR AMI".into(),
            },
        );
        let teardown = match &x.teardown {
            Some(t) if t.status == "succeeded" && t.deleted == Some(true) => "deleted".to_string(),
            Some(t) if t.status == "succeeded" => "nothing to delete".to_string(),
            Some(t) => t.status.replace('_', " "),
            None => "none".to_string(),
        };
        let note = match (r.left_behind.len(), r.status.as_str()) {
            (0, _) => x.stack.clone().unwrap_or_default(),
            (n, "unfinished") => format!("{n} resource(s) still up until it runs"),
            (n, _) => format!("{n} resource(s) left behind"),
        };
        card("Teardown", &teardown, &note);
    }
    card("Duration", &r.duration, &format!("{} → {}", r.started_at, r.ended_at));
    let count = |s: &str| r.steps.iter().filter(|x| x.status == s).count();
    card(
        "Steps",
        &format!("{} ok", count("succeeded")),
        &format!(
            "{} failed · {} skipped · {} not run",
            count("failed"),
            count("skipped"),
            count("not_run") + count("running")
        ),
    );
    h.push_str("</section>\n");
}

fn colour(status: &str) -> Option<&'static str> {
    match status {
        "succeeded" => Some(SUCCEEDED),
        "failed" => Some(FAILED),
        "running" => Some(RUNNING),
        "skipped" => Some(SKIPPED),
        _ => None,
    }
}

/// A tick spacing that gives at most about ten ticks.
pub(super) fn tick(total_ms: i64) -> i64 {
    const STEPS: &[i64] = &[
        1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000,
        7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| total_ms / s <= 10)
        .unwrap_or(86_400_000 * ((total_ms / 86_400_000 / 10).max(1)))
}

fn timeline(h: &mut String, r: &Report) {
    let total = r.duration_ms.max(1) as f64;
    let chart = WIDTH - LABELS - 20.0;
    let x_of = |ms: i64| LABELS + (ms.max(0) as f64 / total).min(1.0) * chart;
    let finally_at = r.steps.iter().position(|s| s.phase == "finally");
    let extra = if finally_at.is_some() { ROW } else { 0.0 };
    let height = TOP + r.steps.len() as f64 * ROW + extra + 40.0;
    let _ = write!(
        h,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"Timeline of the run's steps\">"
    );
    // The RTO span (launch start → DR instance verified), behind the grid and the bars.
    let rto_span = r.rehearsal.as_ref().and_then(|x| {
        let rto = x.rto_ms?;
        Some((x.launch_offset_ms?, x.pipeline_ms?, rto))
    });
    if let Some((from, to, _)) = rto_span {
        let (x0, x1) = (x_of(from), x_of(to));
        let _ = write!(
            h,
            "<rect class=\"rto-span\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{RTO_SPAN}\"/>",
            TOP - 6.0,
            (x1 - x0).max(1.0),
            r.steps.len() as f64 * ROW + extra + 6.0
        );
    }
    // Axis and grid.
    let step = tick(r.duration_ms.max(1));
    let mut t = 0;
    while t <= r.duration_ms.max(1) {
        let x = x_of(t);
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{}\">+{}</text>",
            TOP - 6.0,
            height - 30.0,
            TOP - 12.0,
            dur(t)
        );
        t += step;
    }
    let mut y = TOP;
    for (i, s) in r.steps.iter().enumerate() {
        if Some(i) == finally_at {
            let _ = write!(
                h,
                "<line class=\"phase\" x1=\"0\" y1=\"{:.1}\" x2=\"{WIDTH}\" y2=\"{:.1}\"/><text class=\"phase\" x=\"4\" y=\"{:.1}\">finally</text>",
                y + 4.0,
                y + 4.0,
                y + 18.0
            );
            y += ROW;
        }
        bar_row(h, r, s, y, &x_of);
        y += ROW;
    }
    if let Some((from, to, rto)) = rto_span {
        let (x0, x1) = (x_of(from), x_of(to));
        for (class, px) in [("rto start", x0), ("rto", x1)] {
            let _ = write!(
                h,
                "<line class=\"{class}\" x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{y:.1}\"/>",
                TOP - 4.0
            );
        }
        let _ = write!(
            h,
            "<line class=\"rto span\" x1=\"{x0:.1}\" y1=\"{:.1}\" x2=\"{x1:.1}\" y2=\"{:.1}\"/><text class=\"rto\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\">RTO {} · launch → DR instance verified at +{}</text>",
            y + 6.0,
            y + 6.0,
            if x1 > WIDTH - 330.0 { x1 - 6.0 } else { x0 + 6.0 },
            y + 20.0,
            if x1 > WIDTH - 330.0 { "end" } else { "start" },
            dur(rto),
            dur(to)
        );
    }
    h.push_str("</svg>\n<p class=\"legend\">");
    for (label, c) in [
        ("succeeded", SUCCEEDED),
        ("failed", FAILED),
        ("running when interrupted", RUNNING),
        ("skipped", SKIPPED),
    ] {
        let _ = write!(h, "<span><i style=\"background:{c}\"></i>{label}</span>");
    }
    h.push_str("<span><i class=\"rto\"></i>RTO: launch start → DR instance verified</span></p>\n");
}

fn bar_row(h: &mut String, r: &Report, s: &StepRow, y: f64, x_of: &dyn Fn(i64) -> f64) {
    let indent = 8.0 + 14.0 * f64::from(s.depth);
    // The label column holds about 40 characters: shorten the name, then the id.
    let room = 40usize.saturating_sub(2 * s.depth as usize);
    let label = match &s.name {
        Some(n) if s.id.chars().count() + 2 < room => format!(
            "{}<tspan class=\"name\"> {}</tspan>",
            esc(&s.id),
            esc(&shorten(n, room - s.id.chars().count() - 1))
        ),
        _ => esc(&shorten(&s.id, room)),
    };
    let _ = write!(
        h,
        "<text class=\"label\" x=\"{indent:.1}\" y=\"{:.1}\">{label}</text>",
        y + BAR - 3.0
    );
    let Some(c) = colour(&s.status) else {
        let _ = write!(
            h,
            "<text class=\"note\" x=\"{:.1}\" y=\"{:.1}\">not run</text>",
            LABELS + 4.0,
            y + BAR - 3.0
        );
        return;
    };
    let start = s.start_offset_ms.unwrap_or(0);
    let end = s.end_offset_ms.unwrap_or(r.duration_ms);
    let (x0, x1) = (x_of(start), x_of(end));
    let width = if s.status == "skipped" { 3.0 } else { (x1 - x0).max(3.0) };
    let group = if s.action.is_none() { " group" } else { "" };
    let tip = format!(
        "{}: {} in {} ({} attempt(s)){}",
        s.id,
        s.status,
        s.duration_ms.map(dur).unwrap_or_else(|| "-".into()),
        s.attempts,
        s.error.as_deref().map(|e| format!(" — {e}")).unwrap_or_default()
    );
    let _ = write!(
        h,
        "<rect class=\"bar {}{group}\" data-step=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{BAR}\" rx=\"3\" fill=\"{c}\"><title>{}</title></rect>",
        esc(&s.status),
        esc(&s.id),
        esc(&tip)
    );
    let text = match s.status.as_str() {
        "skipped" => "skipped".to_string(),
        _ => s.duration_ms.map(dur).unwrap_or_else(|| "interrupted".into()),
    };
    let after = x0 + width + 6.0;
    let (tx, anchor) = if after > WIDTH - 60.0 {
        (x0 - 6.0, "end")
    } else {
        (after, "start")
    };
    let _ = write!(
        h,
        "<text class=\"dur\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
        y + BAR - 3.0,
        esc(&text)
    );
}

fn steps(h: &mut String, r: &Report) {
    h.push_str(
        "<table><thead><tr><th>step</th><th>action</th><th>region</th><th>status</th><th>start</th><th>end</th>\
         <th>duration</th><th>attempts</th><th>detail</th></tr></thead><tbody>",
    );
    for s in &r.steps {
        let detail = s.error.clone().or_else(|| s.skip_reason.clone()).unwrap_or_default();
        let _ = write!(
            h,
            "<tr class=\"{}\"><td style=\"padding-left:{}px\"><code>{}</code>{}</td><td>{}</td><td>{}</td><td><span class=\"st {}\">{}</span></td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.phase),
            6 + 14 * s.depth,
            esc(&s.id),
            s.name
                .as_deref()
                .map(|n| format!("<br><small>{}</small>", esc(n)))
                .unwrap_or_default(),
            esc(s.action.as_deref().unwrap_or("group")),
            esc(s.region.as_deref().unwrap_or("")),
            esc(&s.status),
            esc(&s.status.replace('_', " ")),
            s.started_ms
                .map(|t| time_cell(t, s.start_offset_ms))
                .unwrap_or_default(),
            s.ended_ms.map(|t| time_cell(t, s.end_offset_ms)).unwrap_or_default(),
            s.duration_ms.map(dur).unwrap_or_default(),
            if s.attempts == 0 {
                String::new()
            } else if s.failed_attempts > 0 {
                format!("{} ({} failed)", s.attempts, s.failed_attempts)
            } else {
                s.attempts.to_string()
            },
            esc(&detail)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn time_cell(ms: i64, offset: Option<i64>) -> String {
    let clock = when(ms);
    let clock = clock.get(11..19).unwrap_or(&clock).to_string();
    format!("{clock}<br><small>+{}</small>", offset.map(dur).unwrap_or_default())
}

fn resources(h: &mut String, list: &[Resource]) {
    h.push_str(
        "<table><thead><tr><th>what</th><th>id</th><th>region</th><th>step</th><th>detail</th></tr></thead><tbody>",
    );
    for x in list {
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
            esc(x.kind.label()),
            esc(&x.id),
            esc(x.region.as_deref().unwrap_or("")),
            esc(&x.step),
            esc(x.detail.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table>");
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "\
*{box-sizing:border-box}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#212529;background:#f8f9fa;margin:0;padding:0 24px 32px}\
code{font:12.5px ui-monospace,'DejaVu Sans Mono',monospace}\
h2{font-size:15px;margin:0 0 10px;color:#343a40}\
section{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:14px 16px;margin:14px 0}\
.banner{margin:0 -24px;padding:14px 24px;border-bottom:3px solid}\
.banner .verdict{font-size:22px;font-weight:700;letter-spacing:.5px}\
.banner .what{margin-top:2px}.banner .summary{margin-top:6px;opacity:.85}\
.banner.pass{background:#d3f9d8;color:#1b4d2a;border-color:#40c057}\
.banner.fail{background:#ffe3e3;color:#7d1414;border-color:#fa5252}\
.banner.warn{background:#fff3bf;color:#6b4e00;border-color:#fcc419}\
.cards{display:flex;gap:12px;background:none;border:0;padding:0}\
.card{flex:1;background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:10px 14px;min-width:0}\
.card .label{font-size:12px;color:#868e96;text-transform:uppercase;letter-spacing:.4px}\
.card .value{font-size:24px;font-weight:700;margin:2px 0}\
.card .note{font-size:12px;color:#495057;overflow-wrap:anywhere}\
.box.bad{background:#fff5f5;border-color:#ff8787}.box.bad h2{color:#a61e1e}\
.box.loud{border-width:2px}.box.warn{background:#fff9db;border-color:#ffd43b}\
svg.timeline{display:block;max-width:100%;height:auto}\
svg .label{font-size:12.5px;fill:#212529}svg .name{fill:#868e96}\
svg .tick{font-size:11px;fill:#868e96;text-anchor:middle}svg .grid{stroke:#e9ecef;stroke-width:1}\
svg .dur{font-size:11.5px;fill:#495057}svg .note{font-size:11.5px;fill:#adb5bd;font-style:italic}\
svg .phase{stroke:#ced4da;stroke-dasharray:4 3}svg text.phase{fill:#868e96;font-size:11px;stroke:none;text-transform:uppercase}\
svg rect.group{fill-opacity:.45}\
svg line.rto{stroke:#1c7ed6;stroke-width:2;stroke-dasharray:6 4}svg line.rto.span{stroke-dasharray:none}svg text.rto{fill:#1864ab;font-size:12px;font-weight:600}\
.legend{margin:6px 0 0;font-size:12px;color:#495057}.legend span{margin-right:16px}\
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}\
.legend i.rto{width:14px;height:0;border-top:2px dashed #1c7ed6;border-radius:0}\
table{border-collapse:collapse;width:100%;font-size:13px}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #f1f3f5;vertical-align:top}\
th{color:#868e96;font-weight:600;font-size:12px}\
td small{color:#868e96}tr.finally td{background:#fcfcfd}\
.st{display:inline-block;padding:0 6px;border-radius:9px;font-size:12px;background:#f1f3f5}\
.st.succeeded{background:#ebfbee;color:#2f6f3e}.st.failed{background:#fff0f0;color:#a61e1e}\
.st.running{background:#fff4e6;color:#8a4b00}\
table.kv th{width:220px}\
footer{color:#868e96;font-size:12px;margin-top:10px}\
h3{font-size:13.5px;margin:12px 0 6px;color:#495057}p.note{color:#868e96;font-size:12px}\
ul.causes{margin:4px 0 8px;padding-left:20px}\
svg.inflight{display:block;max-width:100%;height:auto}svg .ytick{font-size:11px;fill:#868e96;text-anchor:end}\
svg path.stage{stroke:#fff;stroke-width:.5}\
details.fleet-items summary{cursor:pointer;color:#495057;margin:8px 0}table.fleet td:first-child{white-space:nowrap}\
.st.skipped{background:#f1f3f5;color:#868e96}.st.unfinished{background:#fff4e6;color:#8a4b00}\
.legend span{white-space:nowrap}.legend span.note{color:#868e96}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_escaping_and_labels() {
        assert_eq!(tick(45_000), 5_000);
        assert_eq!(tick(29 * 60_000), 300_000);
        assert_eq!(tick(3 * 3_600_000), 1_800_000);
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(shorten("Launch the DR stack", 10), "Launch th…");
        assert_eq!(shorten("short", 10), "short");
    }
}
