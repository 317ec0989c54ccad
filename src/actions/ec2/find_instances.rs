//! `ec2.find_instances`: the instances to protect, found by a tag (or named): a fleet's discovery step.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{opt_str, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{opt, out};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct FindInstances;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.find_instances",
    summary: "Find the instances (not terminated) that carry a tag, or check that named instances exist; read-only.",
    inputs: &[
        opt(
            "tag_key",
            Str,
            "The tag that marks an instance to protect, e.g. drflow:protect.",
        ),
        opt("tag_value", Str, "The tag's value. Default true."),
        opt(
            "instance_ids",
            List,
            "Instances to use instead of the tag (each must exist).",
        ),
    ],
    outputs: &[
        out("instance_ids", "The instances found, sorted: a list for `for_each`."),
        out("count", "How many."),
    ],
    calls: &["ec2:DescribeInstances"],
    default_timeout_secs: 120,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for FindInstances {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let named: Vec<String> = inputs
            .get("instance_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let mut ids: Vec<String> = if named.is_empty() {
            let Some(key) = opt_str(inputs, "tag_key") else {
                return Err(ActionError::Input("give `tag_key` (or `instance_ids`)".into()));
            };
            let value = opt_str(inputs, "tag_value").unwrap_or("true");
            let wanted = [(key.to_string(), value.to_string())].into_iter().collect();
            let found = ctx.cloud.ec2.find_instances(ctx.region, &wanted).await?;
            found.into_iter().map(|i| i.instance_id).collect()
        } else {
            let found = ctx.cloud.ec2.describe_instances(ctx.region, &named).await?;
            found.into_iter().map(|i| i.instance_id).collect()
        };
        ids.sort();
        ids.dedup();
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
