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
    Arg::Add(Box::new(a), Box::new(b))
}

fn item(list: Arg, i: Arg) -> Arg {
    Arg::Item(Box::new(list), Box::new(i))
}

/// `-n` of a number known to be 0 or more (MathAdd has no negation: `-` + its text, read as JSON).
pub(crate) fn negated(n: Arg) -> Arg {
    Arg::Json(Box::new(fmt("-{}", vec![n])))
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
pub(crate) fn minutes_ops(ids: &TimeIds, time: Arg) -> Vec<Op> {
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
                        item(table(month_starts()), add(item(table(leap_offsets()), num("y")), num("mo"))),
                    ),
                ),
                (
                    "dhm",
                    add(
                        add(item(table(day_starts()), num("d")), item(table(hour_starts()), num("h"))),
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
pub(crate) fn times_sixty(x: Arg) -> Arg {
    let double = add(x.clone(), x);
    let six = add(double.clone(), add(double.clone(), double));
    add(Arg::Json(Box::new(fmt("{}0", vec![add(six, lit(1))]))), lit(-10))
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
        split.push(Op::Let(count, add(Arg::Length(Box::new(range(left.clone(), size))), lit(-1))));
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
            ["text_d", "text_h", "text_m", "text_s"].into_iter().map(|t| answer(t, "v")).collect(),
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
