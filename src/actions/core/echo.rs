//! `drflow.echo`: return its `value` input as the `value` output.

use async_trait::async_trait;
use serde_json::Value;

use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::{opt, out};
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct Echo;

static SPEC: ActionSpec = ActionSpec {
    name: "drflow.echo",
    summary: "Return its `value` input as the `value` output.",
    inputs: &[opt("value", Any, "Anything.")],
    outputs: &[out("value", "The input.")],
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for Echo {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, _: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        let mut out = Values::new();
        out.insert("value".into(), inputs.get("value").cloned().unwrap_or(Value::Null));
        Ok(out)
    }
}
