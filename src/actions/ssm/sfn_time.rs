//! Date arithmetic for Step Functions forms, with what JSONPath ASL has: integer addition (`States.MathAdd`),
//! string splitting and formatting, JSON parsing, and array lookups. An ISO-8601 UTC time
//! (`2026-11-28T18:07:12.000Z`) becomes minutes since 2000-01-01 by lookup tables the exporter writes as literals
//! (year and month starts, leap years precomputed; day and hour starts): no multiplication needed. Minutes, not
//! seconds: MathAdd's 32-bit integers hold minutes to the table's last year (2099), seconds only to 2068.
//! A time part with a leading zero (`07`) is no JSON number: it is read as `1` + part, less 100.
//! A duration in seconds becomes `3d4h5m6s` by `States.ArrayRange` divisions (its length counts the whole units;
//! at most 1,000 items, so ages under 1,000 days).

use crate::actions::sfn::{Arg, Cond, Op, answer, fmt, lit};

/// The tables' first year, and how many years they hold.
pub(crate) const BASE_YEAR: i64 = 2000;
pub(crate) const YEARS: i64 = 100;

/// The delimiters of an ISO-8601 time's parts (year, month, day, hour, minute, second, then fractions or offset).
const DELIMITERS: &str = "-T:.Z+";

const DAY: i64 = 1440;

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Minutes from 2000-01-01 to January 1st of each year of the tables.
pub(crate) fn year_starts() -> Vec<i64> {
    let mut out = Vec::new();
    let mut m = 0;
    for y in BASE_YEAR..BASE_YEAR + YEARS {
        out.push(m);
        m += if leap(y) { 366 } else { 365 } * DAY;
    }
    out
}

/// Per year of the tables: where its months start in `month_starts` (0 for a common year, 12 for a leap year).
pub(crate) fn leap_offsets() -> Vec<i64> {
    (BASE_YEAR..BASE_YEAR + YEARS)
        .map(|y| if leap(y) { 12 } else { 0 })
        .collect()
}

/// Minutes from January 1st to the first of each month: a common year's twelve, then a leap year's.
pub(crate) fn month_starts() -> Vec<i64> {
    let mut out = Vec::new();
    for feb in [28, 29] {
        let mut m = 0;
        for days in [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
            out.push(m);
            m += days * DAY;
        }
    }
    out
}

/// Minutes from the first of a month to the start of each day (index: day − 1).
pub(crate) fn day_starts() -> Vec<i64> {
    (0..31).map(|d| d * DAY).collect()
}

/// Minutes from midnight to the start of each hour.
pub(crate) fn hour_starts() -> Vec<i64> {
    (0..24).map(|h| h * 60).collect()
}

fn table(v: Vec<i64>) -> Arg {
    Arg::List(v.into_iter().map(lit).collect())
}

fn add(a: Arg, b: Arg) -> Arg {
    Arg::Sum(Box::new(a), Box::new(b))
}

fn item(list: Arg, i: Arg) -> Arg {
    Arg::At(Box::new(list), Box::new(i))
}

/// `-n` of a number known to be 0 or more (MathAdd has no negation): `-` + the text of n + 1, read as JSON, plus
/// 1 (`-0` would read as a float).
fn negated(n: Arg) -> Arg {
    add(Arg::Json(Box::new(fmt("-{}", vec![add(n, lit(1))]))), lit(1))
}

/// A two-digit part (`07`) as a number less `minus`: `1` + part as JSON, less 100 + `minus`.
fn two_digits(part: Arg, minus: i64) -> Arg {
    add(Arg::Json(Box::new(fmt("1{}", vec![part]))), lit(-100 - minus))
}

/// Where a time's working values are kept (each a `Let`): its text parts, their numbers (table indexes), two
/// partial sums, and its minutes since 2000-01-01.
pub(crate) struct TimeIds {
    pub raw: &'static str,
    pub num: &'static str,
    pub sums: &'static str,
    pub minutes: &'static str,
}

/// The ops that compute a time's minutes since 2000-01-01 (`answer(ids.minutes, "v")`) and keep its parts
/// (`answer(ids.raw, "v.y")` ... `"v.s"` as text; `answer(ids.num, "v.s")` its seconds). Each field nests at most
/// 8 intrinsic functions (Step Functions allows 10 in one field).
fn minutes_ops(ids: &TimeIds, time: Arg) -> Vec<Op> {
    let names = ["y", "mo", "d", "h", "mi", "s"];
    let raw = |k: &'static str| answer(ids.raw, path(k));
    let num = |k: &'static str| answer(ids.num, path(k));
    vec![
        Op::Let(
            ids.raw,
            Arg::Map(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (*k, Arg::Split(Box::new(time.clone()), DELIMITERS, i)))
                    .collect(),
            ),
        ),
        Op::Let(
            ids.num,
            Arg::Map(vec![
                ("y", add(Arg::Json(Box::new(raw("y"))), lit(-BASE_YEAR))),
                ("mo", two_digits(raw("mo"), 1)),
                ("d", two_digits(raw("d"), 1)),
                ("h", two_digits(raw("h"), 0)),
                ("mi", two_digits(raw("mi"), 0)),
                ("s", two_digits(raw("s"), 0)),
            ]),
        ),
        Op::Let(
            ids.sums,
            Arg::Map(vec![
                (
                    "ym",
                    add(
                        item(table(year_starts()), num("y")),
                        item(
                            table(month_starts()),
                            add(item(table(leap_offsets()), num("y")), num("mo")),
                        ),
                    ),
                ),
                (
                    "dhm",
                    add(
                        add(
                            item(table(day_starts()), num("d")),
                            item(table(hour_starts()), num("h")),
                        ),
                        num("mi"),
                    ),
                ),
            ]),
        ),
        Op::Let(ids.minutes, add(answer(ids.sums, "v.ym"), answer(ids.sums, "v.dhm"))),
    ]
}

fn path(k: &str) -> &'static str {
    match k {
        "y" => "v.y",
        "mo" => "v.mo",
        "d" => "v.d",
        "h" => "v.h",
        "mi" => "v.mi",
        _ => "v.s",
    }
}

/// `x * 60` with additions and a decimal shift: 6x by doubling, then ×10 as `{}0` read as JSON, of 6x + 1 (`00`
/// is no JSON number), less 10.
fn times_sixty(x: Arg) -> Arg {
    let double = add(x.clone(), x);
    let six = add(double.clone(), add(double.clone(), double));
    add(Arg::Json(Box::new(fmt("{}0", vec![add(six, lit(1))]))), lit(-10))
}

/// Where `age_ops` keeps the creation time's working values, and the clock's.
pub(crate) const CREATED: TimeIds = TimeIds {
    raw: "created_raw",
    num: "created_num",
    sums: "created_sums",
    minutes: "created_minutes",
};
pub(crate) const NOW: TimeIds = TimeIds {
    raw: "now_raw",
    num: "now_num",
    sums: "now_sums",
    minutes: "now_minutes",
};

/// Ops that compute `answer("age", "v")`: the whole seconds from `created` to `now` (ISO-8601 UTC times), 0 when
/// `created` is later (clock skew), as `now − created` truncated to seconds (drflow's age); `created`'s parts are
/// kept under `CREATED`.
pub(crate) fn age_ops(created: Arg, now: Arg) -> Vec<Op> {
    let mut ops = minutes_ops(&CREATED, created);
    ops.extend(minutes_ops(&NOW, now));
    ops.extend([
        Op::Let(
            "age_minutes",
            add(answer(NOW.minutes, "v"), negated(answer(CREATED.minutes, "v"))),
        ),
        Op::Let("age_minutes_60", times_sixty(answer("age_minutes", "v"))),
        Op::Let(
            "age",
            add(
                answer("age_minutes_60", "v"),
                add(answer(NOW.num, "v.s"), negated(answer(CREATED.num, "v.s"))),
            ),
        ),
        Op::If {
            when: Cond::Not(Box::new(Cond::Above(answer("age", "v"), lit(-1)))),
            then: vec![Op::Let("age", lit(0))],
        },
    ]);
    ops
}

/// The oldest age `text_ops` formats by units (`States.ArrayRange` makes at most 1,000 items: days < 1,000);
/// older ages read `Ns`.
pub(crate) const TEXT_MAX_SECONDS: i64 = 1000 * 86_400 - 1;

/// Ops that write `seconds` (a field of 0 or more) as drflow writes a duration, `3d4h5m6s` (the largest units,
/// zero units left out, `0s` for none), into `answer(id, "v")`: `{}s` past `TEXT_MAX_SECONDS`. Working values
/// are kept under `age_*` and `text_*`.
pub(crate) fn text_ops(id: &'static str, seconds: Arg) -> Vec<Op> {
    let range = |to: Arg, step: i64| Arg::Range(Box::new(lit(0)), Box::new(to), Box::new(lit(step)));
    let mut split = Vec::new();
    let mut left = seconds.clone();
    // Each unit: how many (the length of 0, size, 2 size ... up to what is left, less one) and what is left then
    // (less that range's last item).
    for (size, count, rest) in [
        (86_400, "age_d", "age_after_d"),
        (3600, "age_h", "age_after_h"),
        (60, "age_m", "age_s"),
    ] {
        split.push(Op::Let(
            count,
            add(Arg::Length(Box::new(range(left.clone(), size))), lit(-1)),
        ));
        let whole = item(range(left.clone(), size), answer(count, "v"));
        split.push(Op::Let(rest, add(left.clone(), negated(whole))));
        left = answer(rest, "v");
    }
    for (count, text, unit) in [
        ("age_d", "text_d", "{}d"),
        ("age_h", "text_h", "{}h"),
        ("age_m", "text_m", "{}m"),
        ("age_s", "text_s", "{}s"),
    ] {
        split.push(Op::Let(text, lit("")));
        split.push(Op::If {
            when: Cond::Above(answer(count, "v"), lit(0)),
            then: vec![Op::Let(text, fmt(unit, vec![answer(count, "v")]))],
        });
    }
    split.push(Op::If {
        when: Cond::Not(Box::new(Cond::Above(seconds.clone(), lit(0)))),
        then: vec![Op::Let("text_s", lit("0s"))],
    });
    split.push(Op::Let(
        id,
        fmt(
            "{}{}{}{}",
            ["text_d", "text_h", "text_m", "text_s"]
                .into_iter()
                .map(|t| answer(t, "v"))
                .collect(),
        ),
    ));
    vec![
        Op::Let(id, fmt("{}s", vec![seconds.clone()])),
        Op::If {
            when: Cond::Not(Box::new(Cond::Above(seconds, lit(TEXT_MAX_SECONDS)))),
            then: split,
        },
    ]
}

#[cfg(test)]
mod tests {
    //! The ops evaluated by a tiny interpreter of what they become in ASL (Pass states writing `Let`s, Choice
    //! states for `If`, the intrinsics as AWS documents them: 32-bit MathAdd, StringToJson of strict JSON,
    //! ArrayRange of at most 1,000 items, StringSplit at any of the delimiter's characters), against chrono.
    use super::*;
    use serde_json::{Value, json};
    use std::collections::HashMap;

    struct Eval {
        lets: HashMap<&'static str, Value>,
        now: String,
    }

    impl Eval {
        fn arg(&self, a: &Arg) -> Value {
            let int = |v: Value| v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"));
            match a {
                Arg::Lit(v) => v.clone(),
                Arg::List(items) => Value::Array(items.iter().map(|i| self.arg(i)).collect()),
                Arg::Map(entries) => Value::Object(entries.iter().map(|(k, a)| (k.to_string(), self.arg(a))).collect()),
                Arg::Context("State.EnteredTime") => json!(self.now),
                Arg::Answer(id, path) => {
                    let mut v = self.lets.get(id).unwrap_or_else(|| panic!("no {id}")).clone();
                    for k in path.split('.').skip(1) {
                        v = v[k].clone();
                    }
                    assert!(!v.is_null(), "{id}.{path} is not there");
                    v
                }
                Arg::Sum(a, b) => {
                    let sum = int(self.arg(a)) + int(self.arg(b));
                    assert!(i32::try_from(sum).is_ok(), "MathAdd past 32 bits: {sum}");
                    json!(sum)
                }
                Arg::Json(a) => {
                    let text = self.arg(a);
                    serde_json::from_str(text.as_str().unwrap()).unwrap_or_else(|e| panic!("StringToJson({text}): {e}"))
                }
                Arg::At(list, i) => {
                    let list = self.arg(list);
                    let i = int(self.arg(i)) as usize;
                    list.as_array()
                        .unwrap()
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| panic!("index {i} out of range"))
                }
                Arg::Range(a, b, c) => {
                    let (from, to, step) = (int(self.arg(a)), int(self.arg(b)), int(self.arg(c)));
                    let items: Vec<i64> = (from..=to).step_by(step as usize).collect();
                    assert!(items.len() <= 1000, "ArrayRange of {} items", items.len());
                    json!(items)
                }
                Arg::Length(a) => json!(self.arg(a).as_array().unwrap().len()),
                Arg::Split(a, delimiters, i) => {
                    let text = self.arg(a);
                    let pieces: Vec<&str> = text
                        .as_str()
                        .unwrap()
                        .split(|c| delimiters.contains(c))
                        .filter(|p| !p.is_empty())
                        .collect();
                    json!(pieces[*i])
                }
                Arg::Format(text, args) => {
                    let mut out = text.to_string();
                    for a in args {
                        let v = self.arg(a);
                        let t = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                        out = out.replacen("{}", &t, 1);
                    }
                    json!(out)
                }
                other => panic!("not evaluated here: {other:?}"),
            }
        }

        fn cond(&self, c: &Cond) -> bool {
            match c {
                Cond::Above(a, b) => self.arg(a).as_i64() > self.arg(b).as_i64(),
                Cond::Not(c) => !self.cond(c),
                other => panic!("not evaluated here: {other:?}"),
            }
        }

        fn run(&mut self, ops: &[Op]) {
            for op in ops {
                match op {
                    Op::Let(id, a) => {
                        let v = self.arg(a);
                        self.lets.insert(id, v);
                    }
                    Op::If { when, then } => {
                        if self.cond(when) {
                            self.run(then);
                        }
                    }
                    other => panic!("not evaluated here: {other:?}"),
                }
            }
        }
    }

    /// The age and its text the ops compute for a creation time and a clock (Unix seconds; the clock with
    /// `millis` and written as moto writes `EnteredTime` when `moto`).
    fn age(created: i64, now: i64, millis: u32, moto: bool) -> (i64, String) {
        let t = |s: i64, ms: u32| chrono::DateTime::from_timestamp(s, ms * 1_000_000).unwrap();
        let now = if moto {
            t(now, millis).format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
        } else {
            t(now, millis).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        };
        let mut e = Eval {
            lets: HashMap::new(),
            now,
        };
        let created = json!(t(created, 0).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        e.lets.insert("image", json!({"CreationDate": created}));
        e.run(&age_ops(
            Arg::Answer("image", "v.CreationDate"),
            Arg::Context("State.EnteredTime"),
        ));
        e.run(&text_ops("age_text", Arg::Answer("age", "v")));
        (
            e.lets["age"].as_i64().unwrap(),
            e.lets["age_text"].as_str().unwrap().to_string(),
        )
    }

    fn drflow_text(secs: i64) -> String {
        crate::workflow::format_duration(std::time::Duration::from_secs(secs as u64))
    }

    #[test]
    fn tables_match_the_calendar() {
        let start = |y: i32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .unwrap()
                .signed_duration_since(chrono::NaiveDate::from_ymd_opt(BASE_YEAR as i32, 1, 1).unwrap())
                .num_minutes()
        };
        let (years, leaps, months) = (year_starts(), leap_offsets(), month_starts());
        for (i, y) in (BASE_YEAR..BASE_YEAR + YEARS).enumerate() {
            for m in 1..=12u32 {
                let at = years[i] + months[leaps[i] as usize + m as usize - 1];
                assert_eq!(at, start(y as i32, m), "{y}-{m}");
            }
        }
        assert_eq!(leaps[0], 12, "2000 is a leap year");
        assert_eq!(leaps[100 - 1], 0, "2099 is not");
        // The last minute of the tables fits MathAdd's 32 bits, and so does its ×60 step for a century's age.
        assert!((years[99] + 366 * DAY) * 60 < i64::from(i32::MAX) * 2);
    }

    #[test]
    fn ages_match_chrono_across_leap_years_month_and_year_ends() {
        let at = |y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap()
                .and_utc()
                .timestamp()
        };
        let mut created = Vec::new();
        for y in [
            2000, 2001, 2004, 2019, 2020, 2023, 2024, 2025, 2026, 2038, 2048, 2096, 2098,
        ] {
            for (mo, d) in [
                (1, 1),
                (2, 28),
                (2, 29),
                (3, 1),
                (4, 30),
                (6, 15),
                (7, 31),
                (9, 30),
                (12, 31),
            ] {
                if mo == 2 && d == 29 && !leap(i64::from(y)) {
                    continue;
                }
                created.push(at(y, mo, d, 0, 0, 0));
                created.push(at(y, mo, d, 23, 59, 59));
                created.push(at(y, mo, d, 7, 8, 9));
            }
        }
        let deltas = [
            0,
            1,
            59,
            60,
            61,
            3599,
            3600,
            86_399,
            86_400,
            86_401,
            90_061,
            29 * 86_400 + 3723,
            365 * 86_400,
            366 * 86_400 + 1,
            999 * 86_400 + 86_399,
            1000 * 86_400,
            3 * 365 * 86_400 + 17,
        ];
        let mut checked = 0;
        for (n, c) in created.iter().enumerate() {
            for (k, d) in deltas.iter().enumerate() {
                let now = c + d;
                if chrono::DateTime::from_timestamp(now, 0)
                    .unwrap()
                    .format("%Y")
                    .to_string()
                    .as_str()
                    > "2099"
                {
                    continue;
                }
                let millis = ((n * 7 + k * 13) % 1000) as u32;
                let (age, text) = age(*c, now, millis, (n + k) % 2 == 0);
                assert_eq!(age, *d, "created {c}, now {now}");
                let want = if *d <= TEXT_MAX_SECONDS {
                    drflow_text(*d)
                } else {
                    format!("{d}s")
                };
                assert_eq!(text, want, "age {d}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn a_creation_date_after_the_clock_is_no_age() {
        assert_eq!(age(1_800_000_010, 1_800_000_000, 0, false), (0, "0s".to_string()));
    }
}
