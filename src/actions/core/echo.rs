//! `drflow.echo`: return its `value` input as the `value` output; with `print: true`, `drflow run` also prints it
//! when the run ends (e.g. what a person must still do after a failover).

use crate::actions::sfn::{Form, if_given, input};
use async_trait::async_trait;
use serde_json::Value;

use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{opt, out};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct Echo;

static SPEC: ActionSpec = ActionSpec {
    name: "drflow.echo",
    summary: "Return its `value` input as the `value` output.",
    inputs: &[
        opt("value", Any, "Anything."),
        opt(
            "print",
            Bool,
            "Print the value when the run ends (`drflow run` / `resume`), after its summary.",
        ),
    ],
    outputs: &[
        out("value", "The input."),
        out("print", "Whether the value is printed when the run ends."),
    ],
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for Echo {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    /// Its value as its output (a Pass state); `print` has no console on Step Functions: the value is in the
    /// execution's history.
    fn sfn(&self) -> Result<Form, &'static str> {
        Ok(Form {
            ops: vec![],
            outputs: vec![("value", input("value")), ("print", if_given("print", input("print")))],
        })
    }

    async fn call(&self, _: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let mut out = Values::new();
        out.insert("value".into(), inputs.get("value").cloned().unwrap_or(Value::Null));
        if crate::actions::values::bool_in(inputs, "print") {
            out.insert("print".into(), Value::Bool(true));
        }
        Ok(out)
    }
}
