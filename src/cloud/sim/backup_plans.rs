//! Backup plans of a scenario (`backup_plans:`) and what ListBackupSelections / GetBackupSelection answer about
//! them. Plans are read-only here (drflow never creates one), so they live in the scenario, not in the world: a
//! persisted world sees the plans of the scenario it runs with.

use serde::Deserialize;

use crate::cloud::{BackupSelection, SelectionRef};

/// A backup plan and its selections, e.g.
/// `{id: plan-1, region: us-east-1, selections: [{name: web, resources: ["arn:aws:ec2:*:*:instance/*"]}]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupPlanSpec {
    /// The `BackupPlanId`.
    pub id: String,
    pub region: String,
    #[serde(default)]
    pub selections: Vec<BackupSelection>,
}

impl BackupPlanSpec {
    /// The selections with their ids: a selection without one gets `PLAN-selection-N` (1-based).
    fn selections(&self) -> impl Iterator<Item = BackupSelection> + '_ {
        self.selections.iter().enumerate().map(|(n, s)| {
            let mut s = s.clone();
            if s.selection_id.is_empty() {
                s.selection_id = format!("{}-selection-{}", self.id, n + 1);
            }
            if s.name.is_empty() {
                s.name = s.selection_id.clone();
            }
            s
        })
    }

    /// Checks what serde cannot (the region is checked with the scenario's other regions).
    pub(crate) fn validate(&self, what: &str) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err(format!("{what}: `id` is empty"));
        }
        let ids: Vec<String> = self.selections().map(|s| s.selection_id).collect();
        if let Some(twice) = ids.iter().enumerate().find(|(i, id)| ids[i + 1..].contains(id)) {
            return Err(format!("{what}: selection id `{}` twice", twice.1));
        }
        Ok(())
    }
}

/// `Err` is the message of a ResourceNotFoundException.
fn plan<'a>(plans: &'a [BackupPlanSpec], region: &str, plan_id: &str) -> Result<&'a BackupPlanSpec, String> {
    plans
        .iter()
        .find(|p| p.region == region && p.id == plan_id)
        .ok_or_else(|| format!("Backup plan {plan_id} does not exist in {region}."))
}

/// ListBackupSelections; `Err`: the plan does not exist (ResourceNotFoundException).
pub(crate) fn list(plans: &[BackupPlanSpec], region: &str, plan_id: &str) -> Result<Vec<SelectionRef>, String> {
    Ok(plan(plans, region, plan_id)?
        .selections()
        .map(|s| SelectionRef {
            selection_id: s.selection_id,
            name: s.name,
        })
        .collect())
}

/// GetBackupSelection; `Err`: the plan or the selection does not exist (ResourceNotFoundException).
pub(crate) fn get(
    plans: &[BackupPlanSpec],
    region: &str,
    plan_id: &str,
    selection_id: &str,
) -> Result<BackupSelection, String> {
    plan(plans, region, plan_id)?
        .selections()
        .find(|s| s.selection_id == selection_id)
        .ok_or_else(|| format!("Backup selection {selection_id} of plan {plan_id} does not exist."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plans() -> Vec<BackupPlanSpec> {
        serde_yaml::from_str(
            r#"
- id: p1
  region: us-east-1
  selections:
    - {name: web, resources: ["arn:aws:ec2:*:*:instance/*"], not_resources: ["*/i-1"]}
    - {id: tagged, list_of_tags: [{key: backup, value: "true"}],
       conditions: {string_not_like: [{key: "aws:ResourceTag/stage", value: "test*"}]}}
"#,
        )
        .unwrap()
    }

    #[test]
    fn lists_and_gets_selections_of_a_plan_in_its_region() {
        let plans = plans();
        let listed = list(&plans, "us-east-1", "p1").unwrap();
        let ids: Vec<&str> = listed.iter().map(|s| s.selection_id.as_str()).collect();
        assert_eq!(ids, ["p1-selection-1", "tagged"]);
        assert_eq!(listed[0].name, "web");
        let s = get(&plans, "us-east-1", "p1", "tagged").unwrap();
        assert_eq!(s.list_of_tags[0].key, "backup");
        assert_eq!(s.conditions.string_not_like[0].value, "test*");
        assert_eq!(
            get(&plans, "us-east-1", "p1", "p1-selection-1").unwrap().not_resources,
            ["*/i-1"]
        );
        assert!(list(&plans, "us-west-2", "p1").unwrap_err().contains("does not exist"));
        assert!(get(&plans, "us-east-1", "p1", "nope").is_err());
        assert!(plans[0].validate("backup_plans[0]").is_ok());
        let mut twice = plans[0].clone();
        twice.selections[0].selection_id = "tagged".into();
        assert!(twice.validate("x").unwrap_err().contains("twice"));
    }
}
