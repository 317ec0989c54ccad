//! Is a published AMI fit to fail over to? A pure verdict from what AWS said: the SSM parameter (GetParameter), the
//! image it names (DescribeImages in the same region), the time now, and the oldest the AMI may be. Used by the
//! `ssm.image_freshness` action; meant for `drflow check` too.

use std::time::Duration;

use serde::Serialize;

use super::{Image, Parameter};

/// What is wrong with a published AMI, if anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The parameter does not exist.
    MissingParameter,
    /// The parameter names an AMI that does not exist in its region (deregistered, or never copied there).
    MissingImage,
    /// The AMI exists but is not `available` (pending, failed, deregistered...).
    NotAvailable { state: String, reason: Option<String> },
    /// The AMI is older than allowed.
    Stale { age_secs: u64, max_age_secs: u64 },
    /// AWS reports no creation date, so its age cannot be told (only when an age limit is set).
    UnknownAge,
}

impl Problem {
    /// An error code for it (`ParameterNotFound`, `ImageNotFound`, `ImageNotAvailable`, `StaleImage`,
    /// `UnknownImageAge`).
    pub fn code(&self) -> &'static str {
        match self {
            Problem::MissingParameter => "ParameterNotFound",
            Problem::MissingImage => "ImageNotFound",
            Problem::NotAvailable { .. } => "ImageNotAvailable",
            Problem::Stale { .. } => "StaleImage",
            Problem::UnknownAge => "UnknownImageAge",
        }
    }
}

/// The verdict on one parameter in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Freshness {
    /// The AMI the parameter names, its version.
    pub image_id: Option<String>,
    pub version: Option<i64>,
    /// The AMI's state, when it exists.
    pub state: Option<String>,
    /// The AMI's creation date, Unix seconds.
    pub created: Option<i64>,
    /// Now − created (0 for a date in the future: clocks differ).
    pub age_secs: Option<u64>,
    /// The first thing wrong, in this order: parameter, image, state, age. `None`: fresh.
    pub problem: Option<Problem>,
}

impl Freshness {
    pub fn is_fresh(&self) -> bool {
        self.problem.is_none()
    }

    /// Only too old (or of unknown age): the AMI itself is usable, so an operator may accept it.
    pub fn only_stale(&self) -> bool {
        matches!(self.problem, Some(Problem::Stale { .. } | Problem::UnknownAge))
    }

    /// One line for a person: what is wrong and what to do, or that it is fresh.
    pub fn describe(&self, parameter: &str, region: &str) -> String {
        let ami = self.image_id.as_deref().unwrap_or("?");
        let age = self
            .age_secs
            .map(|s| fmt(Duration::from_secs(s)))
            .unwrap_or_else(|| "?".into());
        match &self.problem {
            None => format!("{parameter} in {region} names {ami}, available, {age} old"),
            Some(Problem::MissingParameter) => {
                format!("parameter {parameter} does not exist in {region}: nothing was published there yet")
            }
            Some(Problem::MissingImage) => format!(
                "parameter {parameter} in {region} names {ami}, which does not exist in {region} (deregistered, or \
                 never copied there): publish a newer AMI first"
            ),
            Some(Problem::NotAvailable { state, reason }) => format!(
                "parameter {parameter} in {region} names {ami}, which is {state}{}, not available",
                reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            Some(Problem::Stale { max_age_secs, .. }) => format!(
                "parameter {parameter} in {region} names {ami}, created {age} ago: older than the {} allowed",
                fmt(Duration::from_secs(*max_age_secs))
            ),
            Some(Problem::UnknownAge) => format!(
                "parameter {parameter} in {region} names {ami}, whose creation date AWS does not report: its age \
                 cannot be checked"
            ),
        }
    }
}

/// `3d`, `1d2h`, `12m32s`: the largest units, to the second.
fn fmt(d: Duration) -> String {
    let mut left = d.as_secs();
    if left == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            out.push_str(&format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    out
}

/// The verdict. `parameter`: GetParameter's answer (`None`: it does not exist); `image`: DescribeImages' answer for
/// the AMI it names in the same region (`None`: not found; one with another id is ignored); `now_unix`: seconds;
/// `max_age`: the oldest the AMI may be (`None`: any age).
pub fn evaluate(
    parameter: Option<&Parameter>,
    image: Option<&Image>,
    now_unix: i64,
    max_age: Option<Duration>,
) -> Freshness {
    let mut f = Freshness {
        image_id: parameter.map(|p| p.value.clone()),
        version: parameter.map(|p| p.version),
        state: None,
        created: None,
        age_secs: None,
        problem: None,
    };
    let Some(p) = parameter else {
        f.problem = Some(Problem::MissingParameter);
        return f;
    };
    let Some(image) = image.filter(|i| i.image_id == p.value) else {
        f.problem = Some(Problem::MissingImage);
        return f;
    };
    f.state = Some(image.state.clone());
    f.created = image.creation_date;
    f.age_secs = image.creation_date.map(|c| (now_unix - c).max(0) as u64);
    f.problem = if image.state != "available" {
        Some(Problem::NotAvailable {
            state: image.state.clone(),
            reason: image.state_reason.clone(),
        })
    } else {
        match (max_age, f.age_secs) {
            (None, _) => None,
            (Some(_), None) => Some(Problem::UnknownAge),
            (Some(max), Some(age)) if age > max.as_secs() => Some(Problem::Stale {
                age_secs: age,
                max_age_secs: max.as_secs(),
            }),
            _ => None,
        }
    };
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(value: &str) -> Parameter {
        Parameter {
            name: "/drflow/i-1/ami".into(),
            value: value.into(),
            version: 4,
            data_type: "aws:ec2:image".into(),
            last_modified: None,
        }
    }

    fn image(id: &str, state: &str, created: Option<i64>) -> Image {
        Image {
            image_id: id.into(),
            state: state.into(),
            state_reason: None,
            name: None,
            creation_date: created,
            tags: Default::default(),
            snapshot_ids: Vec::new(),
        }
    }

    const NOW: i64 = 1_800_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn fresh_stale_missing_and_unavailable() {
        let p = param("ami-1");
        let fresh = evaluate(
            Some(&p),
            Some(&image("ami-1", "available", Some(NOW - 3600))),
            NOW,
            Some(DAY),
        );
        assert!(fresh.is_fresh());
        assert_eq!((fresh.age_secs, fresh.version), (Some(3600), Some(4)));
        assert_eq!(
            fresh.describe("/drflow/i-1/ami", "us-west-2"),
            "/drflow/i-1/ami in us-west-2 names ami-1, available, 1h old"
        );

        let stale = evaluate(
            Some(&p),
            Some(&image("ami-1", "available", Some(NOW - 3 * 86_400))),
            NOW,
            Some(DAY),
        );
        assert_eq!(
            stale.problem,
            Some(Problem::Stale {
                age_secs: 3 * 86_400,
                max_age_secs: 86_400
            })
        );
        assert!(stale.only_stale());
        assert!(
            stale
                .describe("/p", "r")
                .contains("created 3d ago: older than the 1d allowed")
        );
        // No limit: any age will do.
        assert!(evaluate(Some(&p), Some(&image("ami-1", "available", Some(0))), NOW, None).is_fresh());

        assert_eq!(
            evaluate(None, None, NOW, Some(DAY)).problem,
            Some(Problem::MissingParameter)
        );
        let gone = evaluate(Some(&p), Some(&image("ami-2", "available", Some(NOW))), NOW, Some(DAY));
        assert_eq!(gone.problem, Some(Problem::MissingImage));
        assert_eq!(gone.problem.as_ref().map(Problem::code), Some("ImageNotFound"));
        let pending = evaluate(Some(&p), Some(&image("ami-1", "pending", Some(NOW))), NOW, Some(DAY));
        assert!(matches!(pending.problem, Some(Problem::NotAvailable { ref state, .. }) if state == "pending"));
        assert!(!pending.only_stale());
        let undated = evaluate(Some(&p), Some(&image("ami-1", "available", None)), NOW, Some(DAY));
        assert_eq!(undated.problem, Some(Problem::UnknownAge));
        // A creation date ahead of this clock is no age at all.
        let ahead = evaluate(
            Some(&p),
            Some(&image("ami-1", "available", Some(NOW + 60))),
            NOW,
            Some(DAY),
        );
        assert_eq!(ahead.age_secs, Some(0));
    }
}
