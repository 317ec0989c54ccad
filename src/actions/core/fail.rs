//! `drflow.fail`: fail with a message (and an error code, default `Fail`).

use crate::actions::sfn::{Cond, Form, Op, if_given, input, lit};
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

    /// A Fail state with the step's code and message.
    fn sfn(&self) -> Result<Form, &'static str> {
        let error = if_given("code", input("code"));
        let cause = if_given("message", input("message"));
        Ok(Form {
            ops: vec![
                Op::Fail {
                    when: Cond::All(vec![Cond::Given("code"), Cond::Given("message")]),
                    error: error.clone(),
                    cause: cause.clone(),
                },
                Op::Fail {
                    when: Cond::Given("code"),
                    error,
                    cause: lit("failed on purpose"),
                },
                Op::Fail {
                    when: Cond::Given("message"),
                    error: lit("Fail"),
                    cause,
                },
                Op::Fail {
                    when: Cond::All(vec![]),
                    error: lit("Fail"),
                    cause: lit("failed on purpose"),
                },
            ],
            outputs: vec![],
        })
    }
}
