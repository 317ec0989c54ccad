//! Whether one published parameter is fresh: a pure decision from what was read (the parameter, the AMI it names,
//! the newest recovery point or image) and the time of the check.

use std::time::Duration;

use serde::Serialize;

use crate::cloud::freshness::{self, Problem};
use crate::cloud::{Image, Parameter};

/// The newest AMI of an instance in a region, by the source `check` compares with (a Backup vault or drflow's images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Newest {
    pub image_id: String,
    /// Unix seconds.
    pub created: i64,
}

/// What one check found, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A call failed: nothing is known.
    Error,
    MissingParameter,
    /// The parameter names an AMI that does not exist in its region.
    MissingImage,
    /// The AMI exists but is not `available`.
    Unavailable,
    /// Older than the maximum age, or (without one) not the newest.
    Stale,
    Fresh,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Error => "error",
            Status::MissingParameter => "missing_parameter",
            Status::MissingImage => "missing_image",
            Status::Unavailable => "unavailable",
            Status::Stale => "stale",
            Status::Fresh => "fresh",
        }
    }

    /// Words for people: "missing parameter".
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }
}

/// The decision, with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub status: Status,
    /// The AMI the parameter names.
    pub image_id: Option<String>,
    pub image_state: Option<String>,
    /// Seconds since the AMI was created (for an AWS Backup copy: since the source backup, its RPO).
    pub age_secs: Option<i64>,
    /// `None` when nothing newer was looked for.
    pub matches_newest: Option<bool>,
    /// Why it is not fresh, in a sentence; empty when it is.
    pub reason: String,
}

/// Decides. With `max_age_secs` (the RPO to hold), an available AMI is fresh when it is no older than that, whether
/// or not a newer one exists (within the hour of an hourly schedule, the newest recovery point may not be published
/// yet), and stale beyond it even when it is the newest (the plan stopped making backups). Without it, only the
/// newest AMI is fresh.
pub fn evaluate(
    parameter: Option<&Parameter>,
    image: Option<&Image>,
    newest: Option<&Newest>,
    max_age_secs: Option<i64>,
    now: i64,
) -> Verdict {
    // What is wrong with the parameter itself (missing, its AMI missing or not available, too old): the same
    // verdict the `ssm.image_freshness` step gives before a failover.
    let max_age = max_age_secs.map(|s| Duration::from_secs(s.max(0) as u64));
    let f = freshness::evaluate(parameter, image, now, max_age);
    let matches_newest = match (parameter, newest) {
        (Some(p), Some(n)) => Some(p.value == n.image_id),
        _ => None,
    };
    let image_id = f.image_id.clone().unwrap_or_default();
    let age = |secs: u64| age_words(secs as i64);
    let (status, mut reason) = match &f.problem {
        None => (Status::Fresh, String::new()),
        Some(Problem::MissingParameter) => (Status::MissingParameter, "the parameter does not exist".into()),
        Some(Problem::MissingImage) => (
            Status::MissingImage,
            format!("the parameter names {image_id}, which does not exist in this region"),
        ),
        Some(Problem::NotAvailable { state, reason }) => {
            let why = reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            (
                Status::Unavailable,
                format!("{image_id} is {state}{why}, not available"),
            )
        }
        Some(Problem::Stale { age_secs, max_age_secs }) => (
            Status::Stale,
            format!("{image_id} is {} old (max {})", age(*age_secs), age(*max_age_secs)),
        ),
        Some(Problem::UnknownAge) => (Status::Stale, format!("{image_id} has no creation date")),
    };
    // Without a maximum age, only the newest is fresh.
    let behind = matches_newest == Some(false);
    let status = match status {
        Status::Fresh if max_age_secs.is_none() && behind => Status::Stale,
        other => other,
    };
    if status == Status::Stale
        && behind
        && let Some(n) = newest
    {
        let words = format!(
            "the newest is {} ({} old)",
            n.image_id,
            age_words((now - n.created).max(0))
        );
        reason = if reason.is_empty() {
            words
        } else {
            format!("{reason}; {words}")
        };
    }
    Verdict {
        status,
        image_id: f.image_id,
        image_state: f.state,
        age_secs: f.age_secs.map(|a| a as i64),
        matches_newest,
        reason,
    }
}

/// "3d4h", "2h05m", "41m", "17s".
pub fn age_words(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn param(value: &str) -> Parameter {
        Parameter {
            name: "/drflow/i-1/ami".into(),
            value: value.into(),
            version: 3,
            data_type: "aws:ec2:image".into(),
            last_modified: None,
        }
    }

    fn image(id: &str, state: &str, age: i64) -> Image {
        Image {
            image_id: id.into(),
            state: state.into(),
            state_reason: None,
            name: None,
            creation_date: Some(NOW - age),
            tags: Default::default(),
            snapshot_ids: Vec::new(),
        }
    }

    fn newest(id: &str, age: i64) -> Newest {
        Newest {
            image_id: id.into(),
            created: NOW - age,
        }
    }

    #[test]
    fn the_newest_ami_is_fresh_whatever_its_age_without_a_maximum() {
        let v = evaluate(
            Some(&param("ami-1")),
            Some(&image("ami-1", "available", 90_000)),
            Some(&newest("ami-1", 90_000)),
            None,
            NOW,
        );
        assert_eq!(
            (v.status, v.matches_newest, v.age_secs),
            (Status::Fresh, Some(true), Some(90_000))
        );
    }

    #[test]
    fn behind_the_newest_is_stale_without_a_maximum_and_fresh_within_one() {
        let (p, img, n) = (param("ami-1"), image("ami-1", "available", 5400), newest("ami-2", 1800));
        let v = evaluate(Some(&p), Some(&img), Some(&n), None, NOW);
        assert_eq!(v.status, Status::Stale);
        assert_eq!(v.reason, "the newest is ami-2 (30m old)");
        let v = evaluate(Some(&p), Some(&img), Some(&n), Some(7200), NOW);
        assert_eq!((v.status, v.matches_newest), (Status::Fresh, Some(false)));
        let v = evaluate(Some(&p), Some(&img), Some(&n), Some(3600), NOW);
        assert_eq!(v.status, Status::Stale);
        assert_eq!(
            v.reason,
            "ami-1 is 1h30m old (max 1h00m); the newest is ami-2 (30m old)"
        );
    }

    #[test]
    fn beyond_the_maximum_age_even_the_newest_is_stale() {
        // The plan stopped making backups: the newest is what there is, but the RPO is not held.
        let v = evaluate(
            Some(&param("ami-1")),
            Some(&image("ami-1", "available", 90_000)),
            Some(&newest("ami-1", 90_000)),
            Some(3600),
            NOW,
        );
        assert_eq!((v.status, v.matches_newest), (Status::Stale, Some(true)));
        assert_eq!(v.reason, "ami-1 is 1d1h old (max 1h00m)");
        let v = evaluate(
            Some(&param("ami-1")),
            Some(&image("ami-1", "available", 90_000)),
            None,
            Some(3600),
            NOW,
        );
        assert_eq!((v.status, v.matches_newest), (Status::Stale, None));
    }

    #[test]
    fn missing_and_unavailable_come_before_age() {
        let v = evaluate(None, None, Some(&newest("ami-2", 10)), Some(3600), NOW);
        assert_eq!((v.status, v.matches_newest), (Status::MissingParameter, None));
        let v = evaluate(Some(&param("ami-9")), None, None, Some(3600), NOW);
        assert_eq!(v.status, Status::MissingImage);
        assert_eq!(
            v.reason,
            "the parameter names ami-9, which does not exist in this region"
        );
        let mut img = image("ami-1", "failed", 10);
        img.state_reason = Some("snapshot error".into());
        let v = evaluate(Some(&param("ami-1")), Some(&img), None, Some(3600), NOW);
        assert_eq!(v.status, Status::Unavailable);
        assert_eq!(v.reason, "ami-1 is failed (snapshot error), not available");
    }

    #[test]
    fn ages_read_as_people_write_them() {
        assert_eq!(age_words(17), "17s");
        assert_eq!(age_words(41 * 60 + 3), "41m");
        assert_eq!(age_words(2 * 3600 + 5 * 60), "2h05m");
        assert_eq!(age_words(3 * 86_400 + 4 * 3600 + 59), "3d4h");
    }
}
