//! Binding: `--input NAME=VALUE` and `--region NAME=CODE` (or a schedule entry's inputs and regions) turned into the
//! values one run uses, checked against the workflow before anything runs.

use serde_json::{Map, Value};

use super::model::Workflow;
use super::regions::check_region;

/// The inputs (after defaults and type checks) and region codes (after overrides) of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bindings {
    pub inputs: Map<String, Value>,
    pub regions: Map<String, Value>,
}

impl Bindings {
    /// The region codes, in the workflow's order.
    pub fn region_codes(&self) -> Vec<String> {
        self.regions
            .values()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }
}

/// Every problem with the given values, one per line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct BindError {
    pub problems: Vec<String>,
}

impl Workflow {
    /// Binds a run's inputs and regions; every required input must be given.
    pub fn bind(&self, inputs: &[(String, String)], regions: &[(String, String)]) -> Result<Bindings, BindError> {
        self.bind_with(inputs, regions, false)
    }

    /// Like `bind`, but a required input that is not given is left out (for plans and policies made before every
    /// value is known).
    pub fn bind_partial(
        &self,
        inputs: &[(String, String)],
        regions: &[(String, String)],
    ) -> Result<Bindings, BindError> {
        self.bind_with(inputs, regions, true)
    }

    fn bind_with(
        &self,
        inputs: &[(String, String)],
        regions: &[(String, String)],
        allow_missing: bool,
    ) -> Result<Bindings, BindError> {
        let (inputs, mut problems) = match self.bind_inputs_into(inputs, allow_missing) {
            Ok(i) => (i, Vec::new()),
            Err(e) => (Map::new(), e),
        };
        let regions = match self.bind_regions(regions) {
            Ok(r) => r,
            Err(mut e) => {
                problems.append(&mut e);
                Map::new()
            }
        };
        if problems.is_empty() {
            Ok(Bindings { inputs, regions })
        } else {
            Err(BindError { problems })
        }
    }

    fn bind_inputs_into(
        &self,
        given: &[(String, String)],
        allow_missing: bool,
    ) -> Result<Map<String, Value>, Vec<String>> {
        let mut errors = Vec::new();
        let mut out = Map::new();
        for (name, _) in given {
            if !self.inputs.iter().any(|i| i.name == *name) {
                let known: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
                errors.push(format!(
                    "`{name}` is not an input of {} (its inputs: {})",
                    self.name,
                    known.join(", ")
                ));
            }
        }
        for def in &self.inputs {
            match given.iter().rev().find(|(n, _)| *n == def.name) {
                Some((_, text)) => match def.parse_value(text) {
                    Ok(v) => {
                        out.insert(def.name.clone(), v);
                    }
                    Err(e) => errors.push(e),
                },
                None => match &def.default {
                    Some(v) => {
                        out.insert(def.name.clone(), v.clone());
                    }
                    None if allow_missing => {}
                    None => errors.push(format!(
                        "input `{}` is required: pass --input {}=VALUE{}",
                        def.name,
                        def.name,
                        def.description
                            .as_deref()
                            .map(|d| format!(" ({d})"))
                            .unwrap_or_default()
                    )),
                },
            }
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }

    /// Region codes after overrides: each an AWS region, and no two names on one code unless the workflow allows it.
    fn bind_regions(&self, overrides: &[(String, String)]) -> Result<Map<String, Value>, Vec<String>> {
        let mut errors = Vec::new();
        let mut out = Map::new();
        for (name, code) in &self.regions {
            out.insert(name.clone(), Value::String(code.clone()));
        }
        for (name, code) in overrides {
            if !out.contains_key(name) {
                let known: Vec<&str> = self.regions.iter().map(|(n, _)| n.as_str()).collect();
                errors.push(format!(
                    "`{name}` is not a region of {} (its regions: {})",
                    self.name,
                    known.join(", ")
                ));
                continue;
            }
            if let Some(p) = check_region(code) {
                errors.push(format!("--region {name}={code}: {}; {}", p.message, p.hint));
                continue;
            }
            out.insert(name.clone(), Value::String(code.clone()));
        }
        if errors.is_empty()
            && let Some(clash) = shared_region(self, &out)
        {
            errors.push(clash);
        }
        if errors.is_empty() { Ok(out) } else { Err(errors) }
    }
}

/// Two region names on one code write the same parameters twice, in parallel, with different AMIs: refused unless
/// the workflow says `allow_shared_regions: true`.
pub(crate) fn shared_region(wf: &Workflow, regions: &Map<String, Value>) -> Option<String> {
    if wf.allow_shared_regions {
        return None;
    }
    // In the workflow's order, so that the message names them as the file does.
    let names: Vec<(&String, &str)> = wf
        .regions
        .iter()
        .filter_map(|(n, _)| regions.get(n).and_then(Value::as_str).map(|c| (n, c)))
        .collect();
    for (i, (a, code)) in names.iter().enumerate() {
        if let Some((b, _)) = names[i + 1..].iter().find(|(_, c)| c == code) {
            return Some(format!(
                "regions `{a}` and `{b}` are both {code}: a DR region must differ from the region it protects \
                 (set `allow_shared_regions: true` in the workflow if they may share one)"
            ));
        }
    }
    None
}
