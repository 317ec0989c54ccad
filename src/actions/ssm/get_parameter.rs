//! `ssm.get_parameter`: read a parameter.

use crate::actions::sfn::{Call, Cond, Form, Op, answer, input, lit};
use async_trait::async_trait;
use serde_json::Value;

use crate::actions::values::{str_in, values};
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{out, req};
use crate::workflow::{ActionSpec, InputKind::*, Preflight};

pub(crate) struct GetParameter;

static SPEC: ActionSpec = ActionSpec {
    name: "ssm.get_parameter",
    summary: "Read a parameter.",
    inputs: &[req("name", Str, "Parameter name.")],
    outputs: &[
        out("value", "The value (empty if the parameter does not exist)."),
        out("version", "Its version (0 if it does not exist)."),
        out("exists", "Whether it exists."),
    ],
    calls: &["ssm:GetParameter"],
    preflight: &[Preflight::Parameter { input: "name" }],
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for GetParameter {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// GetParameter; a parameter that does not exist gives empty outputs, as `call` does.
    fn sfn(&self) -> Result<Form, &'static str> {
        Ok(Form {
            ops: vec![
                Op::Call(
                    Call::new("get", "ssm", "GetParameter")
                        .with("Name", input("name"))
                        .absent(&["ParameterNotFound"]),
                ),
                Op::Finish {
                    when: Cond::Absent("get"),
                    outputs: vec![("value", lit("")), ("version", lit(0)), ("exists", lit(false))],
                },
            ],
            outputs: vec![
                ("value", answer("get", "Parameter.Value")),
                ("version", answer("get", "Parameter.Version")),
                ("exists", lit(true)),
            ],
        })
    }

    async fn call(&self, ctx: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let p = ctx.cloud.ssm.get_parameter(ctx.region, str_in(inputs, "name")?).await?;
        Ok(values([
            (
                "value",
                Value::String(p.as_ref().map(|p| p.value.clone()).unwrap_or_default()),
            ),
            ("version", Value::from(p.as_ref().map_or(0, |p| p.version))),
            ("exists", Value::Bool(p.is_some())),
        ]))
    }
}
