//! The board's figures in words: a stage's counts, a group's headline (items, throughput, ETA) and its notes (the
//! slowest and the failed items by name, a few of each).

use std::time::Duration;

use super::board::{Group, Stage};
use crate::workflow::format_duration;

/// Items named per list before "and N more".
pub(crate) const NAMED: usize = 3;

fn dur(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

/// `1200 done · 10 running · 4 waiting for quota · 3 failed` (zero counts left out, but for done).
pub(crate) fn stage(s: &Stage) -> String {
    let mut parts = vec![format!("{} done", s.done)];
    for (n, what) in [
        (s.running, "running"),
        (s.queued, "waiting for quota"),
        (s.failed, "failed"),
        (s.skipped, "skipped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    parts.join(" · ")
}

/// `fleet: 1203/2000 items finished (3 failed) · 10 in flight · 45.1 items/min · ETA 17m40s`.
pub(crate) fn headline(g: &Group) -> String {
    let mut s = format!("{}: {}/{} items finished", g.id, g.finished(), g.total());
    let mut bad = Vec::new();
    if !g.failed.is_empty() {
        bad.push(format!("{} failed", g.failed.len()));
    }
    if g.skipped > 0 {
        bad.push(format!("{} skipped", g.skipped));
    }
    if !bad.is_empty() {
        s.push_str(&format!(" ({})", bad.join(", ")));
    }
    s.push_str(&format!(" · {} in flight", g.in_flight()));
    match (g.per_minute(), g.eta_ms()) {
        (Some(rate), _) if g.finished() >= g.total() => s.push_str(&format!(" · {rate:.1} items/min · all finished")),
        (Some(rate), Some(eta)) => s.push_str(&format!(" · {rate:.1} items/min · ETA {}", dur(eta))),
        _ => s.push_str(" · ETA —"),
    }
    s
}

/// `slowest: i-1 (wait_copy 2h3m), i-2 (copy 1h) · failed: i-3 (wait_backup), i-4 (copy) and 5 more`; empty when
/// nothing is in flight or failed.
pub(crate) fn notes(g: &Group) -> String {
    let mut parts = Vec::new();
    let slow = g.slowest(NAMED);
    if !slow.is_empty() {
        let names: Vec<String> = slow
            .iter()
            .map(|s| format!("{} ({} {})", s.key, s.stage, dur(s.ms)))
            .collect();
        parts.push(format!("slowest: {}", names.join(", ")));
    }
    if !g.failed.is_empty() {
        let names: Vec<String> = g
            .failed
            .iter()
            .take(NAMED)
            .map(|(k, stage)| format!("{k} ({stage})"))
            .collect();
        let more = g.failed.len().saturating_sub(NAMED);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        parts.push(format!("failed: {}{more}", names.join(", ")));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::super::board::Board;
    use super::super::board::tests::{entry, failed, fleet_start, layout, started, succeeded};
    use super::*;
    use crate::engine::journal::Event;

    #[test]
    fn a_fleet_in_words() {
        let mut b = Board::new(layout());
        b.apply(&entry(0, fleet_start(10)));
        for k in 0..7 {
            b.apply(&entry(0, started(&format!("fleet[i-{k}].backup"))));
        }
        for k in 0..5 {
            b.apply(&entry(
                60_000 + k * 1_000,
                failed(&format!("fleet[i-{k}].backup"), "abort"),
            ));
        }
        b.apply(&entry(120_000, succeeded("fleet[i-5].backup")));
        b.apply(&entry(120_000, started("fleet[i-5].copy")));
        b.apply(&entry(
            120_000,
            Event::Queued {
                step: "fleet[i-5].copy".into(),
                quota: "q".into(),
            },
        ));
        let g = &b.groups[0];
        assert_eq!(stage(&g.stages[0]), "1 done · 1 running · 5 failed");
        assert_eq!(stage(&g.stages[1]), "0 done · 1 waiting for quota");
        assert_eq!(stage(&g.stages[2]), "0 done");
        // 5 finished in 2 minutes: 2.5 a minute, 5 to go: 2 minutes.
        assert_eq!(
            headline(g),
            "fleet: 5/10 items finished (5 failed) · 2 in flight · 2.5 items/min · ETA 2m"
        );
        assert_eq!(
            notes(g),
            "slowest: i-6 (backup 2m), i-5 (copy 0s) · failed: i-0 (backup), i-1 (backup), i-2 (backup) and 2 more"
        );
        b.apply(&entry(180_000, failed("fleet[i-5].copy", "abort")));
        b.apply(&entry(180_000, failed("fleet[i-6].backup", "abort")));
        for k in 7..10 {
            b.apply(&entry(
                180_000,
                Event::StepSkipped {
                    step: format!("fleet[i-{k}]"),
                    reason: "locked".into(),
                },
            ));
        }
        assert_eq!(
            headline(&b.groups[0]),
            "fleet: 10/10 items finished (7 failed, 3 skipped) · 0 in flight · 3.3 items/min · all finished"
        );
        assert_eq!(
            notes(&b.groups[0]),
            "failed: i-0 (backup), i-1 (backup), i-2 (backup) and 4 more"
        );
    }
}
