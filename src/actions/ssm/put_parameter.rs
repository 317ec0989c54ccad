//! `ssm.put_parameter`: publish an AMI id in place (overwrite, latest version), never roll it back, never publish
//! an AMI that is not `available` in that region, and read it back (PutParameter with `aws:ec2:image` is validated
//! asynchronously, so a 200 proves nothing).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::effects::{Effects, ResourceKind, StepFacts};
use crate::actions::values::{bool_in, map_in, opt_str, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Resource, Values};
use crate::cloud::PutParameter as Request;
use crate::workflow::spec::{opt, opt_choice, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight, Writes, Written};

pub(crate) struct PutParameter;

static SPEC: ActionSpec = ActionSpec {
    name: "ssm.put_parameter",
    summary: "Write an AMI id to a parameter (data type aws:ec2:image) in place, refusing to roll back to an older AMI, then read it back.",
    inputs: &[
        req("name", Str, "Parameter name, e.g. /drflow/i-0123/ami."),
        req("value", Str, "The AMI id; it must be available in the step's region."),
        opt("description", Str, "Parameter description."),
        opt("tags", Map, "Tags, applied when the parameter is created."),
        opt(
            "force",
            Bool,
            "Allow replacing a newer AMI with an older one. Default false.",
        ),
        opt_choice(
            "if_older",
            &["fail", "keep"],
            "When the value is an older AMI than the one published (image creation dates): `fail` (default) or `keep` (write nothing, succeed with outcome `kept_newer`).",
        ),
    ],
    outputs: &[
        out("name", "The parameter name."),
        out("value", "The value now stored."),
        out("version", "The parameter version holding it."),
        out("previous_value", "The value before (empty if none)."),
        out("changed", "false when it already held this AMI (or kept a newer one)."),
        out(
            "outcome",
            "written, up_to_date (it already held this AMI: no PutParameter) or kept_newer (`if_older: keep`).",
        ),
    ],
    calls: &["ec2:DescribeImages", "ssm:GetParameter", "ssm:PutParameter"],
    extra_iam: &["ssm:AddTagsToResource"],
    preflight: &[Preflight::Parameter { input: "name" }],
    writes: Some(Writes {
        input: "name",
        what: Written::Parameter,
    }),
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for PutParameter {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let name = str_in(inputs, "name")?;
        let ami = str_in(inputs, "value")?;
        let region = ctx.region;

        // Checked before any call (a value from `${{ }}` is only known now).
        let keep_newer = match opt_str(inputs, "if_older").unwrap_or("fail") {
            "fail" => false,
            "keep" => true,
            other => {
                return Err(ActionError::Input(format!(
                    "input `if_older` must be `fail` or `keep`, not `{other}`"
                )));
            }
        };
        let mut wanted = vec![ami.to_string()];
        let current = ctx.cloud.ssm.get_parameter(region, name).await?;
        let previous = current.as_ref().map(|p| p.value.clone()).unwrap_or_default();
        if let Some(p) = &current {
            if p.value == ami {
                // Already there: either it held this AMI before, or an earlier attempt of this step wrote it and
                // its answer was lost (it journaled what it was writing, and the value it replaced).
                if ctx.recorded_str("writing").as_deref() == Some(ami) {
                    let before = ctx.recorded_str("replacing").unwrap_or_default();
                    return Ok(outputs(name, ami, p.version, &before, Outcome::Written));
                }
                return Ok(outputs(name, ami, p.version, &previous, Outcome::UpToDate));
            }
            if p.value.starts_with("ami-") {
                wanted.push(p.value.clone());
            }
        }

        let images = ctx.cloud.ec2.describe_images(region, &wanted).await?;
        let new = images.iter().find(|i| i.image_id == ami);
        match new {
            Some(i) if i.state == "available" => {}
            Some(i) => {
                return Err(ActionError::failed(
                    "ImageNotAvailable",
                    format!(
                        "refusing to publish {ami} in {name} ({region}): the AMI is {}, not available",
                        i.state
                    ),
                ));
            }
            None => {
                return Err(ActionError::failed(
                    "ImageNotFound",
                    format!("refusing to publish {ami} in {name} ({region}): no such AMI in {region}"),
                ));
            }
        }
        let old = images.iter().find(|i| i.image_id == previous);
        if let (Some(old), Some(new)) = (old, new)
            && old.state == "available"
            && old.creation_date > new.creation_date
            && !bool_in(inputs, "force")
        {
            if keep_newer {
                let version = current.as_ref().map_or(0, |p| p.version);
                return Ok(outputs(name, &previous, version, &previous, Outcome::KeptNewer));
            }
            return Err(ActionError::failed(
                "WouldRollBack",
                format!(
                    "refusing to replace {previous} with the older {ami} in {name} ({region}); set `force: true` to roll back on purpose"
                ),
            ));
        }

        let req = Request {
            name: name.to_string(),
            value: ami.to_string(),
            data_type: "aws:ec2:image".into(),
            description: opt_str(inputs, "description").map(str::to_string),
            overwrite: current.is_some(),
            tags: if current.is_some() {
                BTreeMap::new()
            } else {
                map_in(inputs, "tags")
            },
        };
        if !previous.is_empty() {
            ctx.recorder.record("replacing", &Value::String(previous.clone())).await;
        }
        ctx.recorder.record("writing", &Value::String(ami.to_string())).await;
        let version = ctx.cloud.ssm.put_parameter(region, &req).await?;

        let stored = ctx.cloud.ssm.get_parameter(region, name).await?;
        match stored {
            Some(p) if p.value == ami && p.version >= version => {
                Ok(outputs(name, ami, p.version, &previous, Outcome::Written))
            }
            Some(p) => Err(ActionError::NotVerified(format!(
                "{name} in {region} still holds {} (version {}) after writing {ami} as version {version}: AWS did not store it",
                p.value, p.version
            ))),
            None => Err(ActionError::NotVerified(format!(
                "{name} in {region} does not exist after writing {ami}: AWS did not store it"
            ))),
        }
    }

    /// A new version of the parameter, unless it already held the AMI.
    fn effects(&self, step: &StepFacts<'_>, _: &[Resource]) -> Effects {
        let mut e = Effects::default();
        if step.succeeded
            && step.out("changed") != Some(&Value::Bool(false))
            && let Some(name) = step.out_text("name")
        {
            let detail = Some(format!(
                "version {} = {}",
                step.out_text("version").unwrap_or_default(),
                step.out_text("value").unwrap_or_default()
            ));
            e.created
                .push(step.resource(ResourceKind::ParameterVersion, name, None, detail));
        }
        e
    }
}

/// What a step did to the parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    /// It already held the AMI: nothing written, no new version.
    UpToDate,
    /// It holds a newer AMI, kept (`if_older: keep`): nothing written.
    KeptNewer,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::UpToDate => "up_to_date",
            Outcome::KeptNewer => "kept_newer",
        }
    }
}

fn outputs(name: &str, value: &str, version: i64, previous: &str, outcome: Outcome) -> Values {
    values([
        ("name", Value::String(name.to_string())),
        ("value", Value::String(value.to_string())),
        ("version", Value::from(version)),
        ("previous_value", Value::String(previous.to_string())),
        ("changed", Value::Bool(outcome == Outcome::Written)),
        ("outcome", Value::String(outcome.as_str().to_string())),
    ])
}
