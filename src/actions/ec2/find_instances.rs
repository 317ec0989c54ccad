//! `ec2.find_instances`: the instances to protect, found by a tag, named, or those of an AWS Backup plan (as
//! `backup.plan_resources` finds them): a fleet's discovery step, one step whichever way the fleet is chosen.

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{opt_str, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{opt, out};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct FindInstances;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.find_instances",
    summary: "Find the instances (not terminated) that carry a tag or that an AWS Backup plan protects, or check \
              that named instances exist; read-only.",
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
        opt(
            "backup_plan_id",
            Str,
            "An AWS Backup plan (in the step's region) whose instances to use instead of the tag; \
             see backup.plan_resources.",
        ),
    ],
    outputs: &[
        out("instance_ids", "The instances found, sorted: a list for `for_each`."),
        out("count", "How many."),
    ],
    // DescribeInstances, and with a backup plan what reading it calls.
    calls: &crate::actions::backup::PLAN_CALLS,
    default_timeout_secs: 120,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for FindInstances {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// Named instances (described, so each must exist), or DescribeInstances by the tag (instances not terminated);
    /// a Backup plan's instances (`backup_plan_id`) are not mapped: an execution given one fails, naming it.
    fn sfn(&self) -> Result<Form, &'static str> {
        let named = || input("instance_ids");
        let ids = |id: &'static str| answer(id, "Reservations[*].Instances[*].InstanceId");
        let alive = || {
            Arg::Map(vec![
                ("Name", lit("instance-state-name")),
                (
                    "Values",
                    lit(serde_json::json!(["pending", "running", "stopping", "stopped"])),
                ),
            ])
        };
        let outputs = |list: Arg| vec![("instance_ids", list.clone()), ("count", Arg::Length(Box::new(list)))];
        let ops = vec![
            Op::If {
                when: Cond::All(vec![
                    Cond::Given("instance_ids"),
                    Cond::Not(Box::new(Cond::Empty(named()))),
                ]),
                then: vec![
                    Op::Call(Call::new("named", "ec2", "DescribeInstances").with("InstanceIds", named())),
                    Op::Finish {
                        when: Cond::All(vec![]),
                        outputs: outputs(ids("named")),
                    },
                ],
            },
            Op::Fail {
                when: Cond::All(vec![
                    Cond::Given("backup_plan_id"),
                    Cond::Not(Box::new(Cond::Is(input("backup_plan_id"), ""))),
                ]),
                error: lit("NotExported"),
                cause: fmt(
                    "finding the instances of Backup plan {} is not part of the Step Functions export: give instance_ids or a tag",
                    vec![input("backup_plan_id")],
                ),
            },
            Op::Call(Call::new("tagged", "ec2", "DescribeInstances").with(
                "Filters",
                Arg::List(vec![
                    Arg::Map(vec![
                        ("Name", fmt("tag:{}", vec![input("tag_key")])),
                        ("Values", Arg::List(vec![input("tag_value")])),
                    ]),
                    alive(),
                ]),
            )),
        ];
        Ok(Form {
            ops,
            outputs: outputs(ids("tagged")),
        })
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let named: Vec<String> = inputs
            .get("instance_ids")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        let plan = opt_str(inputs, "backup_plan_id");
        let mut ids: Vec<String> = if let (true, Some(plan)) = (named.is_empty(), plan) {
            crate::actions::backup::plan_instances(ctx, plan).await?
        } else if named.is_empty() {
            let Some(key) = opt_str(inputs, "tag_key") else {
                return Err(ActionError::Input(
                    "give `tag_key` (or `instance_ids`, or `backup_plan_id`)".into(),
                ));
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
