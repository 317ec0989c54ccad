//! AWS region codes: a code that is not an AWS region is a mistake caught before any call, wherever it is written
//! (the workflow's `regions:`, `--region NAME=CODE`, a schedule entry's `regions:`).

use super::diagnostic::did_you_mean;

/// The AWS regions (commercial, GovCloud and China partitions) this drflow knows.
pub const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "cn-north-1",
    "cn-northwest-1",
];

/// Region codes accepted besides `AWS_REGIONS` (comma-separated), for a region AWS opened after this release.
pub const EXTRA_REGIONS_VAR: &str = "DRFLOW_EXTRA_REGIONS";

/// Why `code` is not an AWS region, with a did-you-mean where one is close; `None` when it is one.
pub fn check_region(code: &str) -> Option<RegionProblem> {
    if AWS_REGIONS.contains(&code) || extra_regions().iter().any(|r| r == code) {
        return None;
    }
    // A missing hyphen (`ap-southeast1`) or a transposition is closer to the right code once hyphens are ignored.
    let squash = |s: &str| s.replace('-', "");
    let suggestion = AWS_REGIONS
        .iter()
        .find(|r| squash(r) == squash(code))
        .copied()
        .or_else(|| did_you_mean(code, AWS_REGIONS.iter().copied()));
    Some(RegionProblem {
        message: format!("`{code}` is not an AWS region"),
        hint: match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "write a region code such as us-east-1 or eu-west-2 (a region newer than this drflow can be allowed with {EXTRA_REGIONS_VAR}={code})"
            ),
        },
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionProblem {
    pub message: String,
    pub hint: String,
}

fn extra_regions() -> Vec<String> {
    std::env::var(EXTRA_REGIONS_VAR)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_pass_and_typos_get_a_suggestion() {
        assert_eq!(check_region("eu-west-1"), None);
        assert_eq!(check_region("us-gov-west-1"), None);
        let p = check_region("ap-southeast1").unwrap();
        assert_eq!(p.message, "`ap-southeast1` is not an AWS region");
        assert_eq!(p.hint, "did you mean `ap-southeast-1`?");
        assert_eq!(check_region("us-west-3").unwrap().hint, "did you mean `us-west-1`?");
        let mars = check_region("mars-1").unwrap();
        assert!(mars.hint.contains("such as us-east-1"), "{}", mars.hint);
    }
}
