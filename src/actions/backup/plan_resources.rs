//! `backup.plan_resources`: the EC2 instances an AWS Backup plan protects: a fleet's discovery step.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{str_in, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::cloud::selected_instances;
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct PlanResources;

/// What resolving a plan calls: its selections, each selection, the caller's account (for the instances' ARNs)
/// and the region's instances.
pub(crate) const CALLS: [&str; 4] = [
    "backup:ListBackupSelections",
    "backup:GetBackupSelection",
    "sts:GetCallerIdentity",
    "ec2:DescribeInstances",
];

static SPEC: ActionSpec = ActionSpec {
    name: "backup.plan_resources",
    summary: "Find the EC2 instances (not terminated) that an AWS Backup plan's selections assign to it \
              (resource ARNs, tags, conditions, exclusions); read-only.",
    inputs: &[req(
        "backup_plan_id",
        Str,
        "The plan's id (BackupPlanId), in the step's region.",
    )],
    outputs: &[
        out("instance_ids", "The instances found, sorted: a list for `for_each`."),
        out("count", "How many."),
    ],
    calls: &CALLS,
    default_timeout_secs: 120,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for PlanResources {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Ok(super::plan_resources_form::form())
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let ids = plan_instances(ctx, str_in(inputs, "backup_plan_id")?).await?;
        let count = ids.len();
        Ok(values([
            (
                "instance_ids",
                Value::Array(ids.into_iter().map(Value::String).collect()),
            ),
            ("count", Value::from(count)),
        ]))
    }
}

/// The instances of the step's region that the plan's selections assign to it, sorted. A plan that does not
/// exist (in this region) fails with AWS's ResourceNotFoundException, its message naming the plan.
pub(crate) async fn plan_instances(ctx: &Ctx<'_>, plan_id: &str) -> Result<Vec<String>, ActionError> {
    let backup = &ctx.cloud.backup;
    let listed = backup
        .list_backup_selections(ctx.region, plan_id)
        .await
        .map_err(|mut e| {
            if e.code == "ResourceNotFoundException" {
                e.message = format!(
                    "AWS Backup plan `{plan_id}` does not exist in {} ({})",
                    ctx.region, e.message
                );
            }
            e
        })?;
    let mut selections = Vec::with_capacity(listed.len());
    for s in &listed {
        selections.push(
            backup
                .get_backup_selection(ctx.region, plan_id, &s.selection_id)
                .await?,
        );
    }
    if selections.is_empty() {
        return Ok(Vec::new());
    }
    let caller = ctx.cloud.sts.get_caller_identity(ctx.region).await?;
    let partition = caller.arn.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    let instances = ctx.cloud.ec2.find_instances(ctx.region, &Default::default()).await?;
    Ok(selected_instances(
        &selections,
        &instances,
        (partition, ctx.region, &caller.account),
    ))
}
