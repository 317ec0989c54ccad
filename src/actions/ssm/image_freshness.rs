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

    /// On Step Functions: GetParameter and DescribeImages as here; the age from the image's CreationDate and the
    /// time the check runs (`$$.State.EnteredTime`), both as minutes since 2000 (`sfn_time`); `max_age` in seconds
    /// as exported (an execution giving another `max_age` fails, `MaxAgeNotExported`: export again).
    fn sfn(&self) -> Result<crate::actions::sfn::Form, &'static str> {
        use super::sfn_time::{CREATED, age_ops, text_ops};
        use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
        let name = || input("name");
        let ami = || answer("get", "Parameter.Value");
        let by_id = Arg::List(vec![Arg::Map(vec![
            ("Name", lit("image-id")),
            ("Values", Arg::List(vec![ami()])),
        ])]);
        let age = || answer("age", "v");
        let allowed = Cond::All(vec![Cond::Given("allow_stale"), Cond::True(input("allow_stale"))]);
        let mut ops = vec![
            Op::Call(
                Call::new("get", "ssm", "GetParameter")
                    .with("Name", name())
                    .absent(&["ParameterNotFound"]),
            ),
            Op::Fail {
                when: Cond::Absent("get"),
                error: lit("ParameterNotFound"),
                cause: fmt(
                    "parameter {} does not exist in {}: nothing was published there yet",
                    vec![name(), Arg::Region],
                ),
            },
            Op::Call(Call::new("images", "ec2", "DescribeImages").with("Filters", by_id)),
            Op::Fail {
                when: Cond::Empty(answer("images", "Images")),
                error: lit("ImageNotFound"),
                cause: fmt(
                    "parameter {} in {} names {}, which does not exist in {} (deregistered, or never copied there): \
                     publish a newer AMI first",
                    vec![name(), Arg::Region, ami(), Arg::Region],
                ),
            },
            Op::Let("image", Arg::First(Box::new(answer("images", "Images")))),
            Op::Fail {
                when: Cond::Not(Box::new(Cond::Is(answer("image", "v.State"), "available"))),
                error: lit("ImageNotAvailable"),
                cause: fmt(
                    "parameter {} in {} names {}, which is {}, not available",
                    vec![name(), Arg::Region, ami(), answer("image", "v.State")],
                ),
            },
            Op::Fail {
                when: Cond::Not(Box::new(Cond::Present(answer("image", "v.CreationDate")))),
                error: lit("UnknownImageAge"),
                cause: fmt(
                    "parameter {} in {} names {}, whose creation date AWS does not report: its age cannot be checked",
                    vec![name(), Arg::Region, ami()],
                ),
            },
            Op::Fail {
                when: Cond::All(vec![
                    Cond::Given("max_age"),
                    Cond::Not(Box::new(Cond::Same(input("max_age"), Arg::Exported("max_age")))),
                ]),
                error: lit("MaxAgeNotExported"),
                cause: fmt(
                    "max_age {} differs from the {} this state machine was exported with (Step Functions cannot \
                     read a duration): export it again with -i max_age=...",
                    vec![input("max_age"), Arg::Exported("max_age")],
                ),
            },
        ];
        ops.extend(age_ops(
            answer("image", "v.CreationDate"),
            Arg::Context("State.EnteredTime"),
        ));
        ops.extend(text_ops("age_text", age()));
        let line = |what: &'static str, extra: Vec<Arg>| {
            fmt(
                what,
                [vec![name(), Arg::Region, ami(), answer("age_text", "v")], extra].concat(),
            )
        };
        ops.extend([
            Op::Let("fresh", lit(true)),
            Op::Let("verdict", line("{} in {} names {}, available, {} old", vec![])),
            Op::If {
                when: Cond::All(vec![
                    Cond::Given("max_age"),
                    Cond::Above(age(), Arg::Seconds("max_age")),
                ]),
                then: vec![
                    Op::Let("fresh", lit(false)),
                    Op::Let(
                        "verdict",
                        line(
                            "parameter {} in {} names {}, created {} ago: older than the {} allowed",
                            vec![Arg::DurationText("max_age")],
                        ),
                    ),
                    Op::Fail {
                        when: Cond::Not(Box::new(allowed)),
                        error: lit("StaleImage"),
                        cause: fmt(
                            "{}; refusing it (set `allow_stale: true` to accept an old AMI)",
                            vec![answer("verdict", "v")],
                        ),
                    },
                ],
            },
        ]);
        let raw = |k: &'static str| answer(CREATED.raw, k);
        Ok(Form {
            ops,
            outputs: vec![
                ("image_id", ami()),
                ("version", answer("get", "Parameter.Version")),
                ("state", answer("image", "v.State")),
                (
                    "created_at",
                    fmt(
                        "{}-{}-{}T{}:{}:{}Z",
                        vec![raw("v.y"), raw("v.mo"), raw("v.d"), raw("v.h"), raw("v.mi"), raw("v.s")],
                    ),
                ),
                ("age", answer("age_text", "v")),
                ("age_seconds", age()),
                ("fresh", answer("fresh", "v")),
                ("verdict", answer("verdict", "v")),
            ],
        })
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
