//! `ssm.put_parameter`: publish an AMI id in place (overwrite, latest version), never roll it back, never publish
//! an AMI that is not `available` in that region, and read it back (PutParameter with `aws:ec2:image` is validated
//! asynchronously, so a 200 proves nothing).

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, if_given, input, lit, tags};
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
    // GetParameterHistory: `drflow plan --check` looks for a label on the oldest of 100 versions.
    extra_iam: &["ssm:AddTagsToResource", "ssm:GetParameterHistory"],
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
        let version = match ctx.cloud.ssm.put_parameter(region, &req).await {
            Ok(version) => version,
            Err(e) if e.code == VERSION_LIMIT => {
                return Err(ActionError::failed(
                    VERSION_LIMIT,
                    version_limit(name, region, &previous, &e.message),
                ));
            }
            Err(e) => return Err(e.into()),
        };

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

    /// The same checks as `call`, as states: an up-to-date parameter is left alone; the AMI must be `available`
    /// here; an older AMI than the one published is refused (or kept, `if_older: keep`) unless `force`; the value is
    /// written (tags only on create: SSM refuses tags with Overwrite) and read back.
    fn sfn(&self) -> Result<Form, &'static str> {
        let value = || input("value");
        let current = || answer("get", "Parameter.Value");
        let exists = || Cond::Not(Box::new(Cond::Absent("get")));
        let by_id = |id: Arg| {
            Arg::List(vec![Arg::Map(vec![
                ("Name", lit("image-id")),
                ("Values", Arg::List(vec![id])),
            ])])
        };
        let new_state = || answer("new", "v.State");
        let forced = Cond::All(vec![Cond::Given("force"), Cond::True(input("force"))]);
        let keep = Cond::All(vec![Cond::Given("if_older"), Cond::Is(input("if_older"), "keep")]);
        let older = Cond::All(vec![
            Cond::Is(answer("old", "v.State"), "available"),
            Cond::After(answer("old", "v.CreationDate"), answer("new", "v.CreationDate")),
        ]);
        let put = |id: &'static str, create: bool| {
            let mut c = Call::new(id, "ssm", "PutParameter")
                .with("Name", input("name"))
                .with("Value", value())
                .with("Type", lit("String"))
                .with("DataType", lit("aws:ec2:image"))
                .with("Description", if_given("description", input("description")));
            if create {
                c = c.with("Tags", tags("tags"));
            } else {
                c = c.with("Overwrite", lit(true));
            }
            Op::Call(c)
        };
        let ops = vec![
            Op::Call(
                Call::new("get", "ssm", "GetParameter")
                    .with("Name", input("name"))
                    .absent(&["ParameterNotFound"]),
            ),
            // Nested, not `All`: a Choice rule reading a field that is not there fails the execution, and
            // whether And stops at its first false rule is not documented.
            Op::If {
                when: exists(),
                then: vec![Op::Finish {
                    when: Cond::Same(current(), value()),
                    outputs: sfn_outputs(value(), answer("get", "Parameter.Version"), current(), "up_to_date"),
                }],
            },
            Op::Call(Call::new("images", "ec2", "DescribeImages").with("Filters", by_id(value()))),
            Op::Fail {
                when: Cond::Empty(answer("images", "Images")),
                error: lit("ImageNotFound"),
                cause: fmt(
                    "refusing to publish {} in {} ({}): no such AMI in {}",
                    vec![value(), input("name"), Arg::Region, Arg::Region],
                ),
            },
            Op::Let("new", Arg::First(Box::new(answer("images", "Images")))),
            Op::Fail {
                when: Cond::Not(Box::new(Cond::Is(new_state(), "available"))),
                error: lit("ImageNotAvailable"),
                cause: fmt(
                    "refusing to publish {} in {} ({}): the AMI is {}, not available",
                    vec![value(), input("name"), Arg::Region, new_state()],
                ),
            },
            Op::If {
                when: Cond::All(vec![exists(), Cond::Not(Box::new(forced))]),
                then: vec![
                    Op::Call(Call::new("olds", "ec2", "DescribeImages").with("Filters", by_id(current()))),
                    Op::If {
                        when: Cond::Not(Box::new(Cond::Empty(answer("olds", "Images")))),
                        then: vec![
                            Op::Let("old", Arg::First(Box::new(answer("olds", "Images")))),
                            Op::Finish {
                                when: Cond::All(vec![older.clone(), keep]),
                                outputs: sfn_outputs(
                                    current(),
                                    answer("get", "Parameter.Version"),
                                    current(),
                                    "kept_newer",
                                ),
                            },
                            Op::Fail {
                                when: older,
                                error: lit("WouldRollBack"),
                                cause: fmt(
                                    "refusing to replace {} with the older {} in {} ({}); set `force: true` to roll back on purpose",
                                    vec![current(), value(), input("name"), Arg::Region],
                                ),
                            },
                        ],
                    },
                ],
            },
            Op::If {
                when: Cond::Absent("get"),
                then: vec![put("create", true), Op::Let("previous", lit(""))],
            },
            Op::If {
                when: exists(),
                then: vec![put("overwrite", false), Op::Let("previous", current())],
            },
            Op::Call(Call::new("stored", "ssm", "GetParameter").with("Name", input("name"))),
            Op::Fail {
                when: Cond::Not(Box::new(Cond::Same(answer("stored", "Parameter.Value"), value()))),
                error: lit("NotVerified"),
                cause: fmt(
                    "{} in {} still holds {} (version {}) after writing {}: AWS did not store it",
                    vec![
                        input("name"),
                        Arg::Region,
                        answer("stored", "Parameter.Value"),
                        answer("stored", "Parameter.Version"),
                        value(),
                    ],
                ),
            },
        ];
        Ok(Form {
            ops,
            outputs: sfn_outputs(
                value(),
                answer("stored", "Parameter.Version"),
                answer("previous", "v"),
                "written",
            ),
        })
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

/// SSM keeps the last 100 versions of a parameter and drops the oldest on a write, unless that one carries a label:
/// then PutParameter fails with this code. drflow never labels versions; a person (or another tool) did.
const VERSION_LIMIT: &str = "ParameterMaxVersionLimitExceeded";

/// The way out of the version limit, with the commands that take it. Not retried: only moving or removing the
/// label helps, and drflow does not touch labels it did not make (one may mark a known-good AMI).
fn version_limit(name: &str, region: &str, previous: &str, aws: &str) -> String {
    let version = regex::Regex::new(r"Version (\d+), the oldest version")
        .ok()
        .and_then(|re| re.captures(aws))
        .map_or_else(|| "OLDEST".to_string(), |c| c[1].to_string());
    format!(
        "{name} in {region} has the 100 versions SSM keeps, and its oldest (version {version}) carries a label, so SSM \
         refuses a new version (ParameterMaxVersionLimitExceeded); the parameter still holds {previous}. {}. AWS: {aws}",
        version_limit_way_out(name, region, &version, "LABEL")
    )
}

/// What clears SSM's version limit for a parameter whose oldest version carries `labels`: the commands.
pub fn version_limit_way_out(name: &str, region: &str, version: &str, labels: &str) -> String {
    format!(
        "Move the label to the latest version (`aws ssm label-parameter-version --region {region} --name {name} \
         --labels {labels}`) or remove it (`aws ssm unlabel-parameter-version --region {region} --name {name} \
         --parameter-version {version} --labels {labels}`; `aws ssm get-parameter-history --region {region} --name \
         {name} --query 'Parameters[?Labels].[Version,Labels]'` lists the labels), then run again"
    )
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

/// The outputs of a Step Functions form, as `outputs` gives them.
fn sfn_outputs(value: Arg, version: Arg, previous: Arg, outcome: &'static str) -> Vec<(&'static str, Arg)> {
    vec![
        ("name", input("name")),
        ("value", value),
        ("version", version),
        ("previous_value", previous),
        ("changed", lit(outcome == "written")),
        ("outcome", lit(outcome)),
    ]
}
