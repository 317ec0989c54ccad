//! `drflow.fail`: fail with a message (and an error code, default `Fail`).

use async_trait::async_trait;

use crate::actions::values::opt_str;
use crate::actions::{Action, ActionError, Ctx, Values};
use crate::workflow::spec::opt;
use crate::workflow::{ActionSpec, InputKind::*};

pub(crate) struct Fail;

static SPEC: ActionSpec = ActionSpec {
    name: "drflow.fail",
    summary: "Fail with a message (and an error code, default `Fail`).",
    inputs: &[opt("message", Str, "Why."), opt("code", Str, "Error code.")],
    default_timeout_secs: 60,
    ..ActionSpec::BASE
};

#[async_trait]
impl Action for Fail {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn call(&self, _: &Ctx<'_>, inputs: &Values) -> Result<Values, ActionError> {
        Err(ActionError::failed(
            opt_str(inputs, "code").unwrap_or("Fail"),
            opt_str(inputs, "message").unwrap_or("failed on purpose"),
        ))
    }
}
