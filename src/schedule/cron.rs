//! A cron expression evaluated in a time zone: when an entry fires next.
//!
//! Syntax (croner): five fields `minute hour day-of-month month day-of-week`, or six with seconds first; `*`, lists,
//! ranges and steps (`1-5`, `*/15`), names (`MON`, `JAN`), `L` (last), `W` (nearest weekday), `#` (nth weekday),
//! and `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. Day-of-month and day-of-week combine with OR, as in
//! Vixie cron. Times are wall-clock times of the zone: across a DST change, a time that does not exist fires at
//! the first valid moment after it, and a time that exists twice fires once (the first).

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Clone)]
pub struct CronSchedule {
    cron: Cron,
    text: String,
    tz: Tz,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.tz.name())
    }
}

impl CronSchedule {
    /// Parses `expr`; `tz` is an IANA name such as `Europe/Berlin` or `UTC`.
    pub fn new(expr: &str, tz: &str) -> Result<CronSchedule, String> {
        Ok(CronSchedule {
            cron: parse_cron(expr)?,
            text: expr.trim().to_string(),
            tz: parse_tz(tz)?,
        })
    }

    pub fn expression(&self) -> &str {
        &self.text
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.trunc_subsecs(0).with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The next `n` fire times after `t`.
    pub fn upcoming(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_after(at) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !expr.trim().starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "`{expr}` has {fields} field(s); a cron expression has 5 (minute hour day-of-month month day-of-week) \
             or 6 (seconds first), e.g. `0 3 * * *` for 03:00 every day"
        ));
    }
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

pub fn parse_tz(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        let lower = name.to_ascii_lowercase();
        let close = chrono_tz::TZ_VARIANTS
            .iter()
            .find(|z| z.name().to_ascii_lowercase() == lower)
            .or_else(|| {
                chrono_tz::TZ_VARIANTS.iter().find(|z| {
                    z.name()
                        .rsplit('/')
                        .next()
                        .is_some_and(|city| city.eq_ignore_ascii_case(name.rsplit('/').next().unwrap_or(name)))
                })
            });
        match close {
            Some(z) => format!("unknown time zone `{name}`: did you mean `{}`?", z.name()),
            None => format!(
                "unknown time zone `{name}`: use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`"
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn fires_in_the_entrys_time_zone() {
        let s = CronSchedule::new("0 3 * * *", "Europe/Berlin").unwrap();
        // 03:00 in Berlin is 02:00 UTC in winter.
        assert_eq!(
            s.next_after(utc("2026-01-10T00:00:00Z")),
            Some(utc("2026-01-10T02:00:00Z"))
        );
        // Strictly after: at the fire time itself, the next one is a day later.
        assert_eq!(
            s.next_after(utc("2026-01-10T02:00:00Z")),
            Some(utc("2026-01-11T02:00:00Z"))
        );
        // Summer time: 01:00 UTC.
        assert_eq!(
            s.next_after(utc("2026-07-01T12:00:00Z")),
            Some(utc("2026-07-02T01:00:00Z"))
        );
    }

    #[test]
    fn dst_gaps_and_repeats_fire_once() {
        // 2026-03-08: New York skips from 02:00 to 03:00; 02:30 fires at 03:00 EDT (07:00 UTC).
        let s = CronSchedule::new("30 2 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.next_after(utc("2026-03-08T05:00:00Z")),
            Some(utc("2026-03-08T07:00:00Z"))
        );
        // 2026-11-01: 01:30 happens twice; it fires at the first (EDT, 05:30 UTC) only.
        let s = CronSchedule::new("30 1 * * *", "America/New_York").unwrap();
        let next = s.upcoming(utc("2026-11-01T00:00:00Z"), 2);
        assert_eq!(next, vec![utc("2026-11-01T05:30:00Z"), utc("2026-11-02T06:30:00Z")]);
    }

    #[test]
    fn seconds_nicknames_and_errors() {
        let s = CronSchedule::new("*/20 * * * * *", "UTC").unwrap();
        assert_eq!(
            s.upcoming(utc("2026-01-01T00:00:05.700Z"), 3),
            vec![
                utc("2026-01-01T00:00:20Z"),
                utc("2026-01-01T00:00:40Z"),
                utc("2026-01-01T00:01:00Z")
            ]
        );
        let s = CronSchedule::new("@daily", "UTC").unwrap();
        assert_eq!(
            s.next_after(utc("2026-01-01T10:00:00Z")),
            Some(utc("2026-01-02T00:00:00Z"))
        );
        assert!(
            CronSchedule::new("0 3 * *", "UTC")
                .unwrap_err()
                .contains("has 4 field(s)")
        );
        assert!(
            CronSchedule::new("0 25 * * *", "UTC")
                .unwrap_err()
                .contains("not a valid cron expression")
        );
        let e = CronSchedule::new("0 3 * * *", "europe/berlin").unwrap_err();
        assert!(e.contains("did you mean `Europe/Berlin`"), "{e}");
        let e = CronSchedule::new("0 3 * * *", "Berlin").unwrap_err();
        assert!(e.contains("did you mean `Europe/Berlin`"), "{e}");
        assert!(
            CronSchedule::new("0 3 * * *", "Mars/Olympus")
                .unwrap_err()
                .contains("IANA")
        );
    }
}
