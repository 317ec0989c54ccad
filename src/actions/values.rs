//! Reading an action's inputs: validation guarantees presence and type for literals; values built from `${{ }}`
//! are checked here, at run time.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{ActionError, Values};

pub(crate) fn str_in<'a>(inputs: &'a Values, name: &str) -> Result<&'a str, ActionError> {
    match inputs.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ActionError::Input(format!("input `{name}` is empty"))),
        Some(other) => Err(ActionError::Input(format!(
            "input `{name}` must be a string, got {other}"
        ))),
        None => Err(ActionError::Input(format!("input `{name}` is missing"))),
    }
}

pub(crate) fn opt_str<'a>(inputs: &'a Values, name: &str) -> Option<&'a str> {
    inputs.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// An optional whole-number input (a literal, or a `${{ }}` that gives a number or a numeric string).
pub(crate) fn int_in(inputs: &Values, name: &str) -> Result<Option<i64>, ActionError> {
    match inputs.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ActionError::Input(format!("input `{name}` must be a whole number, got `{s}`"))),
        Some(other) => Err(ActionError::Input(format!(
            "input `{name}` must be a whole number, got {other}"
        ))),
    }
}

pub(crate) fn bool_in(inputs: &Values, name: &str) -> bool {
    match inputs.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// A map input as string pairs (tags, stack parameters).
pub(crate) fn map_in(inputs: &Values, name: &str) -> BTreeMap<String, String> {
    inputs
        .get(name)
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

/// How a value reads as a string (a number or bool as written, null as empty).
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn values(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Values {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The account id in an ARN such as an IAM role's (`arn:aws:iam::123456789012:role/x`).
pub(crate) fn account_of(arn: &str) -> Result<&str, ActionError> {
    arn.split(':')
        .nth(4)
        .filter(|a| crate::cloud::is_account_id(a))
        .ok_or_else(|| ActionError::Input(format!("cannot read an account id from `{arn}`")))
}
