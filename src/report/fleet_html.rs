//! The HTML report's fleet section: counts, failures by cause, a chart of the items in flight per stage over the
//! run (inline SVG, stacked areas, downsampled) and a table of items (collapsed when long, the failed first, at
//! most `MAX_ROWS` rows: the JSON and Markdown reports list them all).

use std::fmt::Write;

use super::fleet::{Fleet, FleetItem};
use super::html::{esc, tick};
use super::inflight::{Series, series};
use super::model::{Report, dur};

/// The table's rows at most.
pub(crate) const MAX_ROWS: usize = 500;
/// Up to this many items the table is open.
const OPEN_ROWS: usize = 50;
/// The chart's intervals.
const SAMPLES: usize = 240;

/// Stage colours, in order (none is a status colour of the timeline).
pub const PALETTE: [&str; 8] = [
    "#4263eb", "#12b886", "#fab005", "#7950f2", "#15aabf", "#e64980", "#82c91e", "#fd7e14",
];

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 50.0;
const TOP: f64 = 16.0;
const HEIGHT: f64 = 220.0;

pub(crate) fn section(h: &mut String, r: &Report) {
    let Some(f) = &r.fleet else { return };
    let count = |s: &str| f.items.iter().filter(|i| i.status == s).count();
    let _ = write!(
        h,
        "<section class=\"fleet\"><h2>Fleet</h2><p class=\"fleet-counts\">{} items: {} succeeded, {} failed, {} skipped, \
         {} unfinished.</p>",
        f.items.len(),
        count("succeeded"),
        count("failed"),
        count("skipped"),
        count("unfinished")
    );
    failures(h, f);
    if let Some(s) = series(&r.steps, r.duration_ms, SAMPLES) {
        chart(h, &s, r.duration_ms);
    }
    table(h, f);
    h.push_str("</section>\n");
}

fn failures(h: &mut String, f: &Fleet) {
    if f.failures.is_empty() {
        return;
    }
    h.push_str("<p>Failures by cause:</p><ul class=\"causes\">");
    for g in &f.failures {
        let shown: Vec<&str> = g.items.iter().take(10).map(String::as_str).collect();
        let more = g.items.len().saturating_sub(shown.len());
        let _ = write!(
            h,
            "<li><b>{} ×</b> <code>{}</code>: {}{}</li>",
            g.count,
            esc(&g.cause),
            esc(&shown.join(", ")),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    h.push_str("</ul>");
}

/// Stacked areas: per interval, the items in each stage, the first stage at the bottom.
fn chart(h: &mut String, s: &Series, duration_ms: i64) {
    let n = s.samples();
    let peak = s.peak().ceil().max(1.0);
    let plot = WIDTH - LEFT - 20.0;
    let x_of = |i: usize| LEFT + plot * i as f64 / n as f64;
    let y_of = |v: f64| TOP + HEIGHT * (1.0 - v / peak);
    let total_h = TOP + HEIGHT + 30.0;
    let _ = write!(
        h,
        "<h3>Items in flight per stage</h3><svg class=\"inflight\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" \
         height=\"{total_h}\" viewBox=\"0 0 {WIDTH} {total_h}\" role=\"img\" aria-label=\"Items in flight per stage over the run\">"
    );
    // Grid: the time axis, and the peak.
    let step = tick(duration_ms.max(1));
    let mut t = 0;
    while t <= duration_ms.max(1) {
        let x = LEFT + plot * (t as f64 / duration_ms.max(1) as f64);
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\">+{}</text>",
            TOP + HEIGHT,
            TOP + HEIGHT + 16.0,
            dur(t)
        );
        t += step;
    }
    for (v, label) in [(peak, format!("{peak}")), (0.0, "0".to_string())] {
        let y = y_of(v);
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"ytick\" x=\"{:.1}\" y=\"{:.1}\">{label}</text>",
            LEFT + plot,
            LEFT - 6.0,
            y + 4.0
        );
    }
    let mut below = vec![0.0; n];
    for (k, stage) in s.stages.iter().enumerate() {
        let above: Vec<f64> = below.iter().zip(&s.counts[k]).map(|(b, c)| b + c).collect();
        // Steps along the top, then back along the bottom.
        let mut d = String::with_capacity(n * 30);
        for (i, v) in above.iter().enumerate() {
            let y = y_of(*v);
            let _ = write!(
                d,
                "{}{:.1},{y:.1}L{:.1},{y:.1}",
                if i == 0 { "M" } else { "L" },
                x_of(i),
                x_of(i + 1)
            );
        }
        for i in (0..n).rev() {
            let y = y_of(below[i]);
            let _ = write!(d, "L{:.1},{y:.1}L{:.1},{y:.1}", x_of(i + 1), x_of(i));
        }
        d.push('Z');
        let most = s.counts[k].iter().copied().fold(0.0, f64::max);
        let _ = write!(
            h,
            "<path class=\"stage\" data-stage=\"{}\" d=\"{d}\" fill=\"{}\"><title>{}: at most {most:.1} item(s) on average over {}</title></path>",
            esc(stage),
            PALETTE[k % PALETTE.len()],
            esc(stage),
            dur(s.interval_ms)
        );
        below = above;
    }
    h.push_str("</svg>\n<p class=\"legend\">");
    for (k, stage) in s.stages.iter().enumerate() {
        let _ = write!(
            h,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[k % PALETTE.len()],
            esc(stage)
        );
    }
    let _ = writeln!(
        h,
        "<span class=\"note\">items in each stage, on average over each {} of the run</span></p>",
        dur(s.interval_ms)
    );
}

/// The failed first, then the unfinished, the skipped and the succeeded, each in key order.
fn rank(i: &FleetItem) -> u8 {
    match i.status.as_str() {
        "failed" => 0,
        "unfinished" => 1,
        "skipped" => 2,
        _ => 3,
    }
}

fn table(h: &mut String, f: &Fleet) {
    let mut items: Vec<&FleetItem> = f.items.iter().collect();
    items.sort_by_key(|i| rank(i));
    let shown = items.len().min(MAX_ROWS);
    let _ = write!(
        h,
        "<details class=\"fleet-items\"{}><summary>{} items{}</summary>",
        if items.len() <= OPEN_ROWS { " open" } else { "" },
        items.len(),
        if shown < items.len() {
            format!(
                " — the first {shown} shown, failed first (report.json and report.md list all {})",
                items.len()
            )
        } else {
            String::new()
        }
    );
    h.push_str(
        "<table class=\"fleet\"><thead><tr><th>item</th><th>status</th><th>duration</th><th>attempts</th><th>AMIs</th>\
         <th>parameters</th><th>error</th></tr></thead><tbody>",
    );
    for i in &items[..shown] {
        let _ = write!(
            h,
            "<tr class=\"item\"><td><code>{}</code></td><td><span class=\"st {}\">{}</span></td><td>{}</td><td>{}</td>\
             <td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&i.key),
            esc(&i.status),
            esc(&i.status),
            esc(i.duration.as_deref().unwrap_or("")),
            i.attempts,
            esc(&i.amis.join(" ")),
            i.parameters.iter().map(|p| esc(p)).collect::<Vec<_>>().join("<br>"),
            esc(i.error.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</tbody></table></details>");
}
