//! `ssm.image_freshness`: read-only. Is the AMI a parameter publishes fit to fail over to? Reads the parameter,
//! describes its AMI in the same region, and fails with a clear message when the parameter is missing, the AMI is
//! missing or not `available`, or older than `max_age` (unless `allow_stale: true`, which accepts an old but
//! available AMI). The verdict itself is `cloud::freshness::evaluate`.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{bool_in, opt_str, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::cloud::freshness::{self, Freshness};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight};

pub(crate) struct ImageFreshness;

static SPEC: ActionSpec = ActionSpec {
    name: "ssm.image_freshness",
    summary: "Check the AMI a parameter publishes: it exists, is `available` and no older than `max_age` \
              (read-only; fails otherwise, unless `allow_stale` accepts an old one).",
    inputs: &[
        req("name", Str, "Parameter name, e.g. /drflow/i-0123456789abcdef0/ami."),
        opt(
            "max_age",
            Str,
            "The oldest the AMI may be, e.g. 24h or 1d (default: any age).",
        ),
        opt(
            "allow_stale",
            Bool,
            "Accept an AMI older than max_age (still available), e.g. for a failover.",
        ),
    ],
    outputs: &[
        out("image_id", "The AMI the parameter names."),
        out("version", "The parameter's version."),
        out("state", "The AMI's state (available)."),
        out("creation_date", "When the AMI was made, Unix seconds."),
        out("created_at", "The same, RFC 3339."),
        out("age", "How old the AMI is, e.g. 3h12m."),
        out("age_seconds", "The same, in seconds."),
        out("fresh", "No older than max_age."),
        out(
            "verdict",
            "One line: the parameter, its AMI, its age (and why it is stale, if it is).",
        ),
    ],
    calls: &["ssm:GetParameter", "ec2:DescribeImages"],
    preflight: &[Preflight::Parameter { input: "name" }],
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for ImageFreshness {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        Err(
            "it computes an AMI's age from the clock (a duration input against the image's creation date); ASL has no date arithmetic",
        )
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let name = str_in(inputs, "name")?;
        let max_age = opt_str(inputs, "max_age")
            .map(|t| {
                crate::workflow::parse_duration(t).map_err(|e| ActionError::Input(format!("input `max_age`: {e}")))
            })
            .transpose()?;
        let allow_stale = bool_in(inputs, "allow_stale");
        let parameter = ctx.cloud.ssm.get_parameter(ctx.region, name).await?;
        let image = match &parameter {
            Some(p) if p.value.starts_with("ami-") => ctx
                .cloud
                .ec2
                .describe_images(ctx.region, std::slice::from_ref(&p.value))
                .await?
                .into_iter()
                .find(|i| i.image_id == p.value),
            _ => None,
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let verdict = freshness::evaluate(parameter.as_ref(), image.as_ref(), now, max_age);
        let line = verdict.describe(name, ctx.region);
        match &verdict.problem {
            None => {}
            Some(_) if allow_stale && verdict.only_stale() => {}
            Some(p) if verdict.only_stale() => {
                return Err(ActionError::failed(
                    p.code(),
                    format!("{line}; refusing it (set `allow_stale: true` to accept an old AMI)"),
                ));
            }
            Some(p) => return Err(ActionError::failed(p.code(), line)),
        }
        Ok(outputs(&verdict, line))
    }
}

fn outputs(v: &Freshness, line: String) -> Values {
    let created_at = v
        .created
        .and_then(|c| u64::try_from(c).ok())
        .map(|c| humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(c)).to_string());
    let age = v
        .age_secs
        .map(|s| crate::workflow::format_duration(Duration::from_secs(s)));
    let text = |o: Option<String>| o.map_or(Value::Null, Value::String);
    values([
        ("image_id", text(v.image_id.clone())),
        ("version", v.version.map_or(Value::Null, Value::from)),
        ("state", text(v.state.clone())),
        ("creation_date", v.created.map_or(Value::Null, Value::from)),
        ("created_at", text(created_at)),
        ("age", text(age)),
        ("age_seconds", v.age_secs.map_or(Value::Null, Value::from)),
        ("fresh", Value::Bool(v.is_fresh())),
        ("verdict", Value::String(line)),
    ])
}
