//! The protected instances: listed, found by tags, or selected by an AWS Backup plan (the same resolution as the
//! `backup.plan_resources` action, run through the action itself).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use super::{Request, Targets, retried};
use crate::actions::{self, RunInfo, detached};
use crate::cloud::{Cloud, instance_arn};

/// The instance ids, sorted and without repeats.
pub(super) async fn instances(req: &Request, cloud: &Cloud) -> Result<Vec<String>, String> {
    let mut ids = match &req.targets {
        Targets::Instances(ids) => ids.clone(),
        Targets::Tags(tags) => retried(|| cloud.ec2.find_instances(&req.primary, tags))
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|i| i.instance_id)
            .collect(),
        Targets::BackupPlan(plan_id) => plan_resources(cloud, &req.primary, plan_id).await?,
    };
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Each instance's ARN (what AWS Backup files its recovery points under, copies included).
pub(super) async fn resource_arns(
    req: &Request,
    cloud: &Cloud,
    instances: &[String],
) -> Result<HashMap<String, String>, String> {
    let caller = retried(|| cloud.sts.get_caller_identity(&req.primary))
        .await
        .map_err(|e| e.to_string())?;
    let partition = caller.arn.split(':').nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    Ok(instances
        .iter()
        .map(|id| (id.clone(), instance_arn(partition, &req.primary, &caller.account, id)))
        .collect())
}

async fn plan_resources(cloud: &Cloud, region: &str, plan_id: &str) -> Result<Vec<String>, String> {
    let spec = actions::catalog()
        .find("backup.plan_resources")
        .ok_or("no action backup.plan_resources")?;
    let action = actions::of(spec);
    let run = RunInfo::default();
    let ctx = detached::ctx(cloud, region, "drflow-check", Path::new("."), &run);
    let inputs = Map::from_iter([("backup_plan_id".to_string(), Value::from(plan_id))]);
    let timeout = std::time::Duration::from_secs(spec.default_timeout_secs);
    let out = detached::retried(timeout, || action.call(&ctx, &inputs)).await?;
    Ok(out
        .get("instance_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default())
}
