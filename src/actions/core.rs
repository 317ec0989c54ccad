//! Actions that call no AWS API: useful for tests, benchmarks and failure routing.

use serde_json::Value;

use super::spec::{InputKind::*, opt, out};
use super::{ActionError, ActionKind, ActionSpec, Values, opt_str};

pub static ECHO: ActionSpec = ActionSpec {
    name: "drflow.echo",
    summary: "Return its `value` input as the `value` output.",
    kind: ActionKind::Call,
    inputs: &[opt("value", Any, "Anything.")],
    outputs: &[out("value", "The input.")],
    calls: &[],
    extra_iam: &[],
    mutates: false,
    needs_region: false,
    default_timeout_secs: 60,
};

pub static FAIL: ActionSpec = ActionSpec {
    name: "drflow.fail",
    summary: "Fail with a message (and an error code, default `Fail`).",
    kind: ActionKind::Call,
    inputs: &[opt("message", Str, "Why."), opt("code", Str, "Error code.")],
    outputs: &[],
    calls: &[],
    extra_iam: &[],
    mutates: false,
    needs_region: false,
    default_timeout_secs: 60,
};

pub(super) fn echo(inputs: &Values) -> Result<Values, ActionError> {
    let mut out = Values::new();
    out.insert("value".into(), inputs.get("value").cloned().unwrap_or(Value::Null));
    Ok(out)
}

pub(super) fn fail(inputs: &Values) -> Result<Values, ActionError> {
    Err(ActionError::failed(
        opt_str(inputs, "code").unwrap_or("Fail"),
        opt_str(inputs, "message").unwrap_or("failed on purpose"),
    ))
}
