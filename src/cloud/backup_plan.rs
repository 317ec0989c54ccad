//! AWS Backup plan selections, and which EC2 instances they assign to their plan: one pure function,
//! [`selected_instances`], with the rules AWS documents.
//!
//! Sources: the AWS Backup API reference, `BackupSelection` and `Conditions`, and the developer guide's "Assign
//! resources with AWS CLI" (assigning-resources-json):
//! - `Resources`: ARNs, `*` matching any run of characters (`arn:aws:ec2:*:*:instance/*`, `arn:aws:ec2:*`, `*`);
//!   "those in Resources combined using a Boolean OR".
//! - `ListOfTags` (StringEquals only): "the resources must match any of the conditions (OR logic)"; a resource
//!   matching it is selected as one matching `Resources` is (the guide's example selects "all FSx file systems,
//!   the Aurora cluster ..., and all resources tagged with backup:true": `Resources` OR `ListOfTags`).
//! - `Conditions` (StringEquals, StringNotEquals, StringLike, StringNotLike on `aws:ResourceTag/KEY`): "the
//!   resources must match all conditions (AND logic)", whatever selected them. As in IAM, a negated operator
//!   holds when the tag is missing; a positive one does not. Case sensitive.
//! - `NotResources`: excluded, combined with OR.
//! - Neither `Resources` nor `ListOfTags`: "Backup attempts to select all supported and opted-in storage
//!   resources" (then narrowed by `Conditions` and `NotResources`).
//!
//! A plan's resources are those of any of its selections. Only EC2 instances are considered (the callers give the
//! region's instances); whether the account opted EC2 in (DescribeRegionSettings) is not checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Instance;

/// One selection of a plan as ListBackupSelections names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRef {
    pub selection_id: String,
    pub name: String,
}

/// A plan's selection (GetBackupSelection), in drflow's terms. Also the scenario's YAML shape (snake_case).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSelection {
    /// `SelectionId`; in a scenario, generated when left out.
    #[serde(alias = "id")]
    pub selection_id: String,
    pub name: String,
    /// ARNs, `*` a wildcard.
    pub resources: Vec<String>,
    pub not_resources: Vec<String>,
    /// `ListOfTags` (StringEquals), OR-ed; the key with or without `aws:ResourceTag/`.
    pub list_of_tags: Vec<TagCondition>,
    pub conditions: Conditions,
}

/// A condition's key and value: `aws:ResourceTag/KEY` (or `KEY`) and the tag value (a pattern for the `*Like`
/// operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagCondition {
    pub key: String,
    pub value: String,
}

/// `Conditions`: every one must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conditions {
    pub string_equals: Vec<TagCondition>,
    pub string_not_equals: Vec<TagCondition>,
    pub string_like: Vec<TagCondition>,
    pub string_not_like: Vec<TagCondition>,
}

impl TagCondition {
    /// The tag key the condition is on.
    fn tag(&self) -> &str {
        self.key.strip_prefix("aws:ResourceTag/").unwrap_or(&self.key)
    }

    fn value_of<'a>(&self, tags: &'a BTreeMap<String, String>) -> Option<&'a str> {
        tags.get(self.tag()).map(String::as_str)
    }
}

impl Conditions {
    fn hold(&self, tags: &BTreeMap<String, String>) -> bool {
        let eq = |c: &TagCondition| c.value_of(tags) == Some(c.value.as_str());
        let like = |c: &TagCondition| c.value_of(tags).is_some_and(|v| wildcard(&c.value, v));
        self.string_equals.iter().all(eq)
            && self.string_not_equals.iter().all(|c| !eq(c))
            && self.string_like.iter().all(like)
            && self.string_not_like.iter().all(|c| !like(c))
    }
}

impl BackupSelection {
    /// Whether this selection assigns the resource with this ARN and these tags.
    pub fn selects(&self, arn: &str, tags: &BTreeMap<String, String>) -> bool {
        let included = if self.resources.is_empty() && self.list_of_tags.is_empty() {
            true
        } else {
            self.resources.iter().any(|r| wildcard(r, arn))
                || self
                    .list_of_tags
                    .iter()
                    .any(|c| c.value_of(tags) == Some(c.value.as_str()))
        };
        included && self.conditions.hold(tags) && !self.not_resources.iter().any(|r| wildcard(r, arn))
    }
}

/// The ARN of an EC2 instance: `arn:PARTITION:ec2:REGION:ACCOUNT:instance/ID`.
pub fn instance_arn(partition: &str, region: &str, account: &str, instance_id: &str) -> String {
    format!("arn:{partition}:ec2:{region}:{account}:instance/{instance_id}")
}

/// The instances (of `instances`, all in `region` of `account`) that any of a plan's `selections` assigns to it:
/// their ids, sorted and without duplicates.
pub fn selected_instances(
    selections: &[BackupSelection],
    instances: &[Instance],
    (partition, region, account): (&str, &str, &str),
) -> Vec<String> {
    let mut ids: Vec<String> = instances
        .iter()
        .filter(|i| {
            let arn = instance_arn(partition, region, account, &i.instance_id);
            selections.iter().any(|s| s.selects(&arn, &i.tags))
        })
        .map(|i| i.instance_id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `*` matches any run of characters (none too, `:` and `/` too); every other character only itself. Also the
/// simulator's operation globs (`backup:Start*`).
pub(crate) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            star = Some((sp, st + 1));
            pi = sp + 1;
            ti = st + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: (&str, &str, &str) = ("aws", "us-east-1", "123456789012");

    fn instance(id: &str, tags: &[(&str, &str)]) -> Instance {
        Instance {
            instance_id: id.into(),
            image_id: "ami-0abc".into(),
            state: "running".into(),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    fn tag(key: &str, value: &str) -> TagCondition {
        TagCondition {
            key: key.into(),
            value: value.into(),
        }
    }

    fn fleet() -> Vec<Instance> {
        vec![
            instance("i-1", &[("backup", "true"), ("stage", "prod")]),
            instance("i-2", &[("backup", "true"), ("stage", "test")]),
            instance("i-3", &[("backup", "false")]),
            instance("i-4", &[]),
            instance("i-5", &[("team", "web-frontend")]),
        ]
    }

    fn pick(selections: &[BackupSelection]) -> Vec<String> {
        selected_instances(selections, &fleet(), HERE)
    }

    #[test]
    fn resources_are_or_ed_arn_patterns_of_this_region_and_account() {
        let s = |resources: &[&str]| BackupSelection {
            resources: resources.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(pick(&[s(&["arn:aws:ec2:*:*:instance/*"])]).len(), 5);
        assert_eq!(pick(&[s(&["*"])]).len(), 5);
        assert_eq!(pick(&[s(&["arn:aws:ec2:*"])]).len(), 5, "a service wildcard spans `:`");
        assert_eq!(
            pick(&[s(&[
                "arn:aws:ec2:us-east-1:123456789012:instance/i-2",
                "arn:aws:ec2:us-east-1:123456789012:instance/i-4"
            ])]),
            ["i-2", "i-4"]
        );
        // Other resource types, regions, accounts and partitions select none of these instances.
        for other in [
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:rds:*",
            "arn:aws:ec2:us-west-2:*:instance/*",
            "arn:aws:ec2:*:111111111111:instance/*",
            "arn:aws-cn:ec2:*:*:instance/*",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1x",
        ] {
            assert!(pick(&[s(&[other])]).is_empty(), "{other}");
        }
    }

    #[test]
    fn list_of_tags_is_or_ed_and_adds_to_resources() {
        let by_tags = BackupSelection {
            list_of_tags: vec![tag("stage", "prod"), tag("aws:ResourceTag/backup", "false")],
            ..Default::default()
        };
        assert_eq!(pick(std::slice::from_ref(&by_tags)), ["i-1", "i-3"]);
        let both = BackupSelection {
            resources: vec!["arn:aws:ec2:us-east-1:123456789012:instance/i-5".into()],
            ..by_tags
        };
        assert_eq!(pick(&[both]), ["i-1", "i-3", "i-5"]);
    }

    #[test]
    fn conditions_are_and_ed_and_negations_hold_for_a_missing_tag() {
        let all = |conditions: Conditions| BackupSelection {
            resources: vec!["*".into()],
            conditions,
            ..Default::default()
        };
        let eq = Conditions {
            string_equals: vec![tag("aws:ResourceTag/backup", "true")],
            ..Default::default()
        };
        assert_eq!(pick(&[all(eq.clone())]), ["i-1", "i-2"]);
        let not_test = Conditions {
            string_not_equals: vec![tag("aws:ResourceTag/stage", "test")],
            ..eq
        };
        assert_eq!(pick(&[all(not_test)]), ["i-1"]);
        // StringNotEquals alone: an instance without the tag passes.
        let untagged_ok = Conditions {
            string_not_equals: vec![tag("aws:ResourceTag/stage", "test")],
            ..Default::default()
        };
        assert_eq!(pick(&[all(untagged_ok)]), ["i-1", "i-3", "i-4", "i-5"]);
        let like = Conditions {
            string_like: vec![tag("aws:ResourceTag/team", "web*")],
            ..Default::default()
        };
        assert_eq!(pick(&[all(like)]), ["i-5"]);
        let any_value = Conditions {
            string_like: vec![tag("aws:ResourceTag/backup", "*")],
            string_not_like: vec![tag("aws:ResourceTag/stage", "*es*")],
            ..Default::default()
        };
        assert_eq!(pick(&[all(any_value)]), ["i-1", "i-3"]);
        // Conditions narrow what ListOfTags selected, too; values are case sensitive.
        let tagged = BackupSelection {
            list_of_tags: vec![tag("backup", "true"), tag("backup", "false")],
            conditions: Conditions {
                string_not_equals: vec![tag("aws:ResourceTag/stage", "TEST")],
                string_equals: vec![tag("aws:ResourceTag/backup", "true")],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(pick(&[tagged]), ["i-1", "i-2"]);
    }

    #[test]
    fn not_resources_exclude_and_selections_add_up() {
        let mut web = BackupSelection {
            resources: vec!["arn:aws:ec2:*:*:instance/*".into()],
            not_resources: vec![
                "arn:aws:ec2:*:*:instance/i-1".into(),
                "arn:aws:ec2:us-east-1:123456789012:instance/i-[45]".into(),
            ],
            ..Default::default()
        };
        // `[45]` is no wildcard: only i-1 is excluded.
        assert_eq!(pick(std::slice::from_ref(&web)), ["i-2", "i-3", "i-4", "i-5"]);
        web.not_resources.push("*:instance/i-4".into());
        assert_eq!(pick(std::slice::from_ref(&web)), ["i-2", "i-3", "i-5"]);
        let other = BackupSelection {
            list_of_tags: vec![tag("stage", "prod")],
            ..Default::default()
        };
        // i-1 is excluded by the first selection only: the second one still assigns it.
        assert_eq!(pick(&[web, other]), ["i-1", "i-2", "i-3", "i-5"]);
        assert!(pick(&[]).is_empty());
    }

    #[test]
    fn a_selection_with_neither_resources_nor_tags_selects_everything_it_does_not_exclude() {
        let conditions_only = BackupSelection {
            conditions: Conditions {
                string_equals: vec![tag("aws:ResourceTag/backup", "true")],
                ..Default::default()
            },
            not_resources: vec!["*/i-2".into()],
            ..Default::default()
        };
        assert_eq!(pick(&[conditions_only]), ["i-1"]);
        assert_eq!(pick(&[BackupSelection::default()]).len(), 5);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("a*c*e", "abcde"));
        assert!(wildcard("*rod*", "production"));
        assert!(!wildcard("prod", "production"));
        assert!(!wildcard("a*c", "abcd"));
    }
}
