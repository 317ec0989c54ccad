//! The declaration of an action: what `validate`, `plan` and `policy` know about it without running it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// One request per attempt.
    Call,
    /// Polls until a resource settles.
    Wait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Str,
    Bool,
    Int,
    Map,
    List,
    Any,
}

impl InputKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InputKind::Str => "string",
            InputKind::Bool => "bool",
            InputKind::Int => "int",
            InputKind::Map => "map",
            InputKind::List => "list",
            InputKind::Any => "any",
        }
    }

    /// Whether a literal YAML value fits.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match self {
            InputKind::Str => matches!(v, String(_) | Number(_)),
            InputKind::Bool => matches!(v, Bool(_)),
            InputKind::Int => v.is_i64() || v.is_u64(),
            InputKind::Map => matches!(v, Object(_)),
            InputKind::List => matches!(v, Array(_)),
            InputKind::Any => true,
        }
    }
}

#[derive(Debug)]
pub struct InputSpec {
    pub name: &'static str,
    pub kind: InputKind,
    pub required: bool,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct OutputSpec {
    pub name: &'static str,
    pub description: &'static str,
}

#[derive(Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: ActionKind,
    pub inputs: &'static [InputSpec],
    pub outputs: &'static [OutputSpec],
    /// AWS API calls it may make, as `service:Operation` (also the IAM actions, plus `extra_iam`).
    pub calls: &'static [&'static str],
    /// IAM actions needed beyond `calls` (e.g. `iam:PassRole`).
    pub extra_iam: &'static [&'static str],
    /// Whether it changes anything in the account.
    pub mutates: bool,
    /// Whether it needs a region (every action that calls AWS).
    pub needs_region: bool,
    /// Per-attempt time limit when the step sets none.
    pub default_timeout_secs: u64,
}

impl ActionSpec {
    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }

    pub fn has_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|o| o.name == name)
    }
}

/// Shorthands for the declarations.
pub(crate) const fn req(name: &'static str, kind: InputKind, description: &'static str) -> InputSpec {
    InputSpec {
        name,
        kind,
        required: true,
        description,
    }
}

pub(crate) const fn opt(name: &'static str, kind: InputKind, description: &'static str) -> InputSpec {
    InputSpec {
        name,
        kind,
        required: false,
        description,
    }
}

pub(crate) const fn out(name: &'static str, description: &'static str) -> OutputSpec {
    OutputSpec { name, description }
}
