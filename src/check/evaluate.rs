//! Whether one published parameter is fresh: a pure decision from what was read (the parameter, the AMI it names,
//! the newest recovery point or image) and the time of the check.

use serde::Serialize;

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
    let mut v = Verdict {
        status: Status::Fresh,
        image_id: parameter.map(|p| p.value.clone()),
        image_state: image.map(|i| i.state.clone()),
        age_secs: image.and_then(|i| i.creation_date).map(|c| (now - c).max(0)),
        matches_newest: match (parameter, newest) {
            (Some(p), Some(n)) => Some(p.value == n.image_id),
            _ => None,
        },
        reason: String::new(),
    };
    let Some(p) = parameter else {
        v.status = Status::MissingParameter;
        v.reason = "the parameter does not exist".into();
        return v;
    };
    let Some(img) = image else {
        v.status = Status::MissingImage;
        v.reason = format!("the parameter names {}, which does not exist in this region", p.value);
        return v;
    };
    if img.state != "available" {
        v.status = Status::Unavailable;
        let why = img
            .state_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        v.reason = format!("{} is {}{why}, not available", img.image_id, img.state);
        return v;
    }
    let too_old = match (max_age_secs, v.age_secs) {
        (Some(max), Some(age)) => age > max,
        // No creation date: the age cannot be vouched for.
        (Some(_), None) => true,
        (None, _) => false,
    };
    let behind = v.matches_newest == Some(false);
    let stale = match max_age_secs {
        Some(_) => too_old,
        None => behind,
    };
    if stale {
        v.status = Status::Stale;
        let mut why = Vec::new();
        if too_old {
            why.push(match v.age_secs {
                Some(age) => format!(
                    "{} is {} old (max {})",
                    img.image_id,
                    age_words(age),
                    age_words(max_age_secs.unwrap_or_default())
                ),
                None => format!("{} has no creation date", img.image_id),
            });
        }
        if let (true, Some(n)) = (behind, newest) {
            why.push(format!(
                "the newest is {} ({} old)",
                n.image_id,
                age_words((now - n.created).max(0))
            ));
        }
        v.reason = why.join("; ");
    }
    v
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
