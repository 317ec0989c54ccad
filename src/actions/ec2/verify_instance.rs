//! `ec2.verify_instance`: wait until an instance runs the expected AMI and passes its status checks.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::sfn::{Arg, Call, Cond, Form, Op, answer, fmt, input, lit};
use crate::actions::values::{bool_in, str_in, values};
use crate::actions::{Action, ActionError, Ctx, Poll, Values};
use crate::workflow::spec::{opt, out, req};
use crate::workflow::{ActionKind, ActionSpec, InputKind::*, Preflight, Role};

pub(crate) struct VerifyInstance;

static SPEC: ActionSpec = ActionSpec {
    name: "ec2.verify_instance",
    summary: "Wait until an instance is `running` from the expected AMI and passes its status checks; fail at once if it runs another AMI, is stopped or terminated, or a status check is `impaired`.",
    kind: ActionKind::Wait,
    inputs: &[
        req("instance_id", Str, "The instance, e.g. a DR stack's InstanceId output."),
        req("image_id", Str, "The AMI it must run (e.g. the DR AMI)."),
        opt(
            "require_status_checks",
            Bool,
            "Also wait until the system and instance status checks are `ok`. Default true.",
        ),
    ],
    outputs: &[
        out("instance_id", "The instance."),
        out("image_id", "The AMI it runs."),
        out("state", "running"),
        out("system_status", "ok, or not-checked without require_status_checks."),
        out("instance_status", "ok, or not-checked without require_status_checks."),
        out(
            "running_at",
            "Unix seconds when this step first saw the instance running.",
        ),
    ],
    calls: &["ec2:DescribeInstances", "ec2:DescribeInstanceStatus"],
    preflight: &[Preflight::Instance { input: "instance_id" }],
    role: Some(Role::Verify),
    default_timeout_secs: 3600,
    ..ActionSpec::BASE
};

/// Instance states it does not come back from by itself.
const GONE_STATES: &[&str] = &["shutting-down", "terminated", "stopping", "stopped"];

#[async_trait]
impl Action for VerifyInstance {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// DescribeInstances until the instance is `running` (failing at once on another AMI or a state it does not
    /// come back from), then, with `require_status_checks` (the default), DescribeInstanceStatus until both checks
    /// are `ok`, failing at once on `impaired`. `running_at` (drflow's clock) is not given.
    fn sfn(&self) -> Result<Form, &'static str> {
        let ids = || Arg::List(vec![input("instance_id")]);
        let state = || answer("inst", "v.State.Name");
        let impaired = |which: &'static str| Op::Fail {
            when: Cond::Is(answer(which, "v"), "impaired"),
            error: lit("StatusCheckImpaired"),
            cause: fmt(
                "instance {} in {} fails its status checks: system {}, instance {}",
                vec![
                    input("instance_id"),
                    Arg::Region,
                    answer("system", "v"),
                    answer("own", "v"),
                ],
            ),
        };
        let checks_off = || {
            Cond::All(vec![
                Cond::Given("require_status_checks"),
                Cond::Not(Box::new(Cond::True(input("require_status_checks")))),
            ])
        };
        let status = vec![
            Op::Call(Call::new("status", "ec2", "DescribeInstanceStatus").with("InstanceIds", ids())),
            Op::If {
                when: Cond::Not(Box::new(Cond::Empty(answer("status", "InstanceStatuses")))),
                then: vec![
                    Op::Let("st", Arg::First(Box::new(answer("status", "InstanceStatuses")))),
                    Op::Let("system", answer("st", "v.SystemStatus.Status")),
                    Op::Let("own", answer("st", "v.InstanceStatus.Status")),
                    impaired("system"),
                    impaired("own"),
                    Op::If {
                        when: Cond::All(vec![
                            Cond::Is(answer("system", "v"), "ok"),
                            Cond::Is(answer("own", "v"), "ok"),
                        ]),
                        then: vec![Op::Let("ready", lit(true))],
                    },
                ],
            },
        ];
        let then = vec![
            Op::Fail {
                when: Cond::Empty(answer("found", "Reservations")),
                error: lit("InvalidInstanceID.NotFound"),
                cause: fmt(
                    "instance {} does not exist in {}",
                    vec![input("instance_id"), Arg::Region],
                ),
            },
            Op::Let("res", Arg::First(Box::new(answer("found", "Reservations")))),
            Op::Let("inst", Arg::First(Box::new(answer("res", "v.Instances")))),
            Op::Fail {
                when: Cond::Not(Box::new(Cond::Same(answer("inst", "v.ImageId"), input("image_id")))),
                error: lit("WrongImage"),
                cause: fmt(
                    "instance {} in {} runs {}, not the expected AMI {}",
                    vec![
                        input("instance_id"),
                        Arg::Region,
                        answer("inst", "v.ImageId"),
                        input("image_id"),
                    ],
                ),
            },
            Op::Fail {
                when: Cond::OneOf(state(), GONE_STATES),
                error: lit("InstanceNotRunning"),
                cause: fmt(
                    "instance {} in {} is {}",
                    vec![input("instance_id"), Arg::Region, state()],
                ),
            },
            Op::Let("ready", lit(false)),
            Op::Let("system", lit("not-checked")),
            Op::Let("own", lit("not-checked")),
            Op::If {
                when: Cond::Is(state(), "running"),
                then: vec![
                    Op::If {
                        when: checks_off(),
                        then: vec![Op::Let("ready", lit(true))],
                    },
                    Op::If {
                        when: Cond::Not(Box::new(checks_off())),
                        then: status,
                    },
                ],
            },
        ];
        Ok(Form {
            ops: vec![Op::Poll {
                call: Call::new("found", "ec2", "DescribeInstances").with("InstanceIds", ids()),
                then,
                done: Cond::True(answer("ready", "v")),
            }],
            outputs: vec![
                ("instance_id", answer("inst", "v.InstanceId")),
                ("image_id", answer("inst", "v.ImageId")),
                ("state", state()),
                ("system_status", answer("system", "v")),
                ("instance_status", answer("own", "v")),
            ],
        })
    }

    async fn poll(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Poll, ActionError> {
        let id = str_in(inputs, "instance_id")?;
        let expected = str_in(inputs, "image_id")?;
        let checks = match inputs.get("require_status_checks") {
            None | Some(Value::Null) => true,
            Some(_) => bool_in(inputs, "require_status_checks"),
        };
        let found = ctx.cloud.ec2.describe_instances(ctx.region, &[id.to_string()]).await?;
        let Some(instance) = found.into_iter().find(|i| i.instance_id == id) else {
            return Err(ActionError::failed(
                "InvalidInstanceID.NotFound",
                format!("instance {id} does not exist in {}", ctx.region),
            ));
        };
        if instance.image_id != expected {
            return Err(ActionError::failed(
                "WrongImage",
                format!(
                    "instance {id} in {} runs {}, not the expected AMI {expected}",
                    ctx.region, instance.image_id
                ),
            ));
        }
        if GONE_STATES.contains(&instance.state.as_str()) {
            return Err(ActionError::failed(
                "InstanceNotRunning",
                format!("instance {id} in {} is {}", ctx.region, instance.state),
            ));
        }
        if instance.state != "running" {
            return Ok(Poll::Pending(instance.state));
        }
        let running_at = match ctx.recorder.recorded("running_at").and_then(|v| v.as_i64()) {
            Some(t) => t,
            None => {
                let t = wall_now_secs();
                ctx.recorder.record("running_at", &Value::from(t)).await;
                t
            }
        };
        let (system, own) = if checks {
            let Some(status) = ctx.cloud.ec2.describe_instance_status(ctx.region, id).await? else {
                return Ok(Poll::Pending("running, status checks not reported yet".into()));
            };
            if status.system_status == "impaired" || status.instance_status == "impaired" {
                return Err(ActionError::failed(
                    "StatusCheckImpaired",
                    format!(
                        "instance {id} in {} fails its status checks: system {}, instance {}",
                        ctx.region, status.system_status, status.instance_status
                    ),
                ));
            }
            if !status.checks_passed() {
                return Ok(Poll::Pending(format!(
                    "running, status checks: system {}, instance {}",
                    status.system_status, status.instance_status
                )));
            }
            (status.system_status, status.instance_status)
        } else {
            ("not-checked".to_string(), "not-checked".to_string())
        };
        Ok(Poll::Done(values([
            ("instance_id", Value::String(instance.instance_id)),
            ("image_id", Value::String(instance.image_id)),
            ("state", Value::String(instance.state)),
            ("system_status", Value::String(system)),
            ("instance_status", Value::String(own)),
            ("running_at", Value::from(running_at)),
        ])))
    }
}

/// Unix seconds by the run's clock: wall time plus how far tokio's clock is ahead of the real one. Under
/// `--simulate` (a paused tokio clock) that is the simulated time the journal uses; otherwise just the wall time.
fn wall_now_secs() -> i64 {
    let now = std::time::SystemTime::now();
    let tokio_now = tokio::time::Instant::now().into_std();
    let std_now = std::time::Instant::now();
    let t = match tokio_now.checked_duration_since(std_now) {
        Some(ahead) => now + ahead,
        None => now - std_now.duration_since(tokio_now),
    };
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
