//! Just enough of CloudFormation templates for the simulator: syntax checks, parameters (including SSM parameter
//! types), `{{resolve:ssm:...}}` dynamic references, and the intrinsics `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`
//! in long (`{Ref: X}`) and short (`!Ref X`) form.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::ids::ACCOUNT;
use super::records::{ParamRec, Physical, split_selector};

pub(crate) const INSTANCE: &str = "AWS::EC2::Instance";
/// The largest TemplateBody AWS accepts.
pub(crate) const MAX_BODY: usize = 51_200;
const SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
];
const PSEUDO: &[&str] = &[
    "AWS::AccountId",
    "AWS::NoValue",
    "AWS::NotificationARNs",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

#[derive(Debug)]
pub(crate) struct Template {
    pub parameters: Vec<ParamDecl>,
    pub resources: Vec<ResourceDecl>,
    pub outputs: Vec<(String, Value)>,
}

#[derive(Debug)]
pub(crate) struct ParamDecl {
    pub name: String,
    pub kind: String,
    pub default: Option<String>,
}

impl ParamDecl {
    /// `AWS::SSM::Parameter::Value<...>`: the value names an SSM parameter, whose value is used.
    pub(crate) fn is_ssm(&self) -> bool {
        self.kind.starts_with("AWS::SSM::Parameter::Value<")
    }
}

#[derive(Debug)]
pub(crate) struct ResourceDecl {
    pub logical_id: String,
    pub kind: String,
    pub properties: Mapping,
}

fn format_error(message: impl std::fmt::Display) -> String {
    format!("Template format error: {message}")
}

fn key(k: &Value) -> Option<&str> {
    k.as_str()
}

/// Parses and checks a template body the way ValidateTemplate does. Errors are ValidationError messages.
pub(crate) fn parse(body: &str) -> Result<Template, String> {
    if body.len() > MAX_BODY {
        return Err(format!(
            "1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have \
             length less than or equal to {MAX_BODY}"
        ));
    }
    let root: Value = serde_yaml::from_str(body).map_err(|e| match e.location() {
        Some(l) => format_error(format!(
            "YAML not well-formed. (line {}, column {})",
            l.line(),
            l.column()
        )),
        None => format_error("YAML not well-formed."),
    })?;
    let Value::Mapping(root) = root else {
        return Err(format_error("unsupported structure."));
    };
    let unknown: Vec<String> = root
        .keys()
        .map(|k| key(k).unwrap_or("?").to_string())
        .filter(|k| !SECTIONS.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(format_error(format!(
            "Invalid template property or properties [{}]",
            unknown.join(", ")
        )));
    }

    let mut parameters = Vec::new();
    if let Some(section) = root.get("Parameters") {
        let Value::Mapping(section) = section else {
            return Err(format_error("Parameters must be a map"));
        };
        for (name, decl) in section {
            let name = key(name).unwrap_or_default().to_string();
            let kind = decl.get("Type").and_then(Value::as_str);
            let Some(kind) = kind else {
                return Err(format_error(format!(
                    "[/Parameters/{name}] Every Parameters object must contain a Type member."
                )));
            };
            let default = decl
                .get("Default")
                .map(scalar)
                .transpose()
                .map_err(|m| format_error(format!("[/Parameters/{name}/Default] {m}")))?;
            parameters.push(ParamDecl {
                name,
                kind: kind.to_string(),
                default,
            });
        }
    }

    let resources_section = match root.get("Resources") {
        Some(Value::Mapping(m)) if !m.is_empty() => m,
        _ => return Err(format_error("At least one Resources member must be defined.")),
    };
    let mut resources = Vec::new();
    for (logical_id, decl) in resources_section {
        let logical_id = key(logical_id).unwrap_or_default().to_string();
        let Some(kind) = decl.get("Type").and_then(Value::as_str) else {
            return Err(format_error(format!(
                "[/Resources/{logical_id}] Every Resources object must contain a Type member."
            )));
        };
        let properties = match decl.get("Properties") {
            None | Some(Value::Null) => Mapping::new(),
            Some(Value::Mapping(m)) => m.clone(),
            Some(_) => {
                return Err(format_error(format!(
                    "[/Resources/{logical_id}/Properties] must be a map"
                )));
            }
        };
        resources.push(ResourceDecl {
            logical_id,
            kind: kind.to_string(),
            properties,
        });
    }

    let mut outputs = Vec::new();
    if let Some(section) = root.get("Outputs") {
        let Value::Mapping(section) = section else {
            return Err(format_error("Outputs must be a map"));
        };
        for (name, decl) in section {
            let name = key(name).unwrap_or_default().to_string();
            let Some(value) = decl.get("Value") else {
                return Err(format_error(format!(
                    "[/Outputs/{name}] Every Outputs member must contain a Value object"
                )));
            };
            outputs.push((name, value.clone()));
        }
    }

    let template = Template {
        parameters,
        resources,
        outputs,
    };
    let mut problems = Vec::new();
    for r in &template.resources {
        check_references(&Value::Mapping(r.properties.clone()), &template, &mut problems);
    }
    for (_, v) in &template.outputs {
        check_references(v, &template, &mut problems);
    }
    if let Some(first) = problems.first() {
        return Err(first.clone());
    }
    Ok(template)
}

/// `Ref` must name a parameter, a pseudo parameter or a resource; `Fn::GetAtt` a resource.
fn check_references(v: &Value, t: &Template, problems: &mut Vec<String>) {
    let is_resource = |n: &str| t.resources.iter().any(|r| r.logical_id == n);
    let is_param = |n: &str| t.parameters.iter().any(|p| p.name == n) || PSEUDO.contains(&n);
    if let Some((name, arg)) = intrinsic(v) {
        match name {
            "Ref" => {
                if let Some(target) = arg.as_str().filter(|n| !is_resource(n) && !is_param(n)) {
                    problems.push(format_error(format!(
                        "Unresolved resource dependencies [{target}] in the Resources block of the template"
                    )));
                }
            }
            "Fn::GetAtt" => {
                if let Ok((target, _)) = getatt_parts(arg)
                    && !is_resource(&target)
                {
                    problems.push(format!(
                        "Template error: instance of Fn::GetAtt references undefined resource {target}"
                    ));
                }
            }
            _ => check_references(arg, t, problems),
        }
        return;
    }
    match v {
        Value::Sequence(items) => items.iter().for_each(|i| check_references(i, t, problems)),
        Value::Mapping(m) => m.values().for_each(|i| check_references(i, t, problems)),
        Value::Tagged(tagged) => check_references(&tagged.value, t, problems),
        _ => {}
    }
}

/// A scalar as CloudFormation sees it: a string.
fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err("expected a string".to_string()),
    }
}

/// `(function, argument)` for `!Tag arg` and `{Ref: arg}` / `{"Fn::X": arg}`.
fn intrinsic(v: &Value) -> Option<(&'static str, &Value)> {
    let long = |name: &str| -> Option<&'static str> {
        Some(match name {
            "Ref" => "Ref",
            "Fn::GetAtt" => "Fn::GetAtt",
            "Fn::Sub" => "Fn::Sub",
            "Fn::Join" => "Fn::Join",
            "Fn::Select" => "Fn::Select",
            "Fn::If" => "Fn::If",
            "Fn::FindInMap" => "Fn::FindInMap",
            "Fn::ImportValue" => "Fn::ImportValue",
            "Fn::Base64" => "Fn::Base64",
            "Fn::Split" => "Fn::Split",
            "Fn::GetAZs" => "Fn::GetAZs",
            "Fn::Cidr" => "Fn::Cidr",
            "Fn::Equals" => "Fn::Equals",
            "Fn::Not" => "Fn::Not",
            "Fn::And" => "Fn::And",
            "Fn::Or" => "Fn::Or",
            "Fn::Length" => "Fn::Length",
            "Fn::ToJsonString" => "Fn::ToJsonString",
            _ if name.starts_with("Fn::") => "Fn::Unknown",
            _ => return None,
        })
    };
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let name = if tag == "Ref" {
                "Ref".to_string()
            } else {
                format!("Fn::{tag}")
            };
            Some((long(&name).unwrap_or("Fn::Unknown"), &t.value))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            Some((long(k.as_str()?)?, arg))
        }
        _ => None,
    }
}

fn getatt_parts(arg: &Value) -> Result<(String, String), String> {
    match arg {
        Value::String(s) => match s.split_once('.') {
            Some((r, a)) => Ok((r.to_string(), a.to_string())),
            None => Err(format!("Fn::GetAtt needs LogicalId.Attribute, got {s:?}")),
        },
        Value::Sequence(items) if items.len() == 2 => Ok((scalar(&items[0])?, scalar(&items[1])?)),
        _ => Err("Fn::GetAtt needs LogicalId.Attribute".to_string()),
    }
}

/// Everything an expression can refer to.
pub(crate) struct Env<'a> {
    pub params: &'a BTreeMap<String, String>,
    pub resources: &'a BTreeMap<String, Physical>,
    pub region: &'a str,
    pub stack_name: &'a str,
    pub stack_id: &'a str,
}

impl Env<'_> {
    fn reference(&self, name: &str) -> Result<String, String> {
        if let Some(v) = self.params.get(name) {
            return Ok(v.clone());
        }
        if let Some(r) = self.resources.get(name) {
            return Ok(r.id.clone());
        }
        Ok(match name {
            "AWS::AccountId" => ACCOUNT.to_string(),
            "AWS::Region" => self.region.to_string(),
            "AWS::StackName" => self.stack_name.to_string(),
            "AWS::StackId" => self.stack_id.to_string(),
            "AWS::Partition" => "aws".to_string(),
            "AWS::URLSuffix" => "amazonaws.com".to_string(),
            "AWS::NoValue" => String::new(),
            _ => {
                return Err(format!(
                    "Unresolved resource dependencies [{name}] in the Resources block of the template"
                ));
            }
        })
    }

    fn getatt(&self, logical_id: &str, attribute: &str) -> Result<String, String> {
        let Some(r) = self.resources.get(logical_id) else {
            return Err(format!(
                "Template error: instance of Fn::GetAtt references undefined resource {logical_id}"
            ));
        };
        match (r.kind.as_str(), attribute) {
            (INSTANCE, "ImageId") => Ok(r.image_id.clone().unwrap_or_default()),
            (INSTANCE, "InstanceId") => Ok(r.id.clone()),
            (INSTANCE, "AvailabilityZone") => Ok(format!("{}a", self.region)),
            (kind, _) => Err(format!(
                "drflow's simulator does not model attribute {attribute} of {kind}"
            )),
        }
    }

    fn sub(&self, text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[i..]);
                return Ok(out);
            };
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v);
            } else if let Some((r, a)) = name.split_once('.').filter(|(r, _)| self.resources.contains_key(*r)) {
                out.push_str(&self.getatt(r, a)?);
            } else {
                out.push_str(&self.reference(name)?);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The string value of an expression.
    pub(crate) fn eval(&self, v: &Value) -> Result<String, String> {
        let Some((name, arg)) = intrinsic(v) else {
            return scalar(v).map_err(|_| "expected a string value".to_string());
        };
        match name {
            "Ref" => self.reference(&scalar(arg)?),
            "Fn::GetAtt" => {
                let (r, a) = getatt_parts(arg)?;
                self.getatt(&r, &a)
            }
            "Fn::Sub" => match arg {
                Value::Sequence(items) if items.len() == 2 => {
                    let Value::Mapping(m) = &items[1] else {
                        return Err("Fn::Sub variables must be a map".into());
                    };
                    let mut vars = BTreeMap::new();
                    for (k, v) in m {
                        vars.insert(scalar(k)?, self.eval(v)?);
                    }
                    self.sub(&scalar(&items[0])?, &vars)
                }
                _ => self.sub(&scalar(arg)?, &BTreeMap::new()),
            },
            "Fn::Join" => match arg {
                Value::Sequence(items) if items.len() == 2 => {
                    let delimiter = scalar(&items[0])?;
                    let Value::Sequence(parts) = &items[1] else {
                        return Err("Fn::Join needs a list".into());
                    };
                    let parts: Result<Vec<String>, String> = parts.iter().map(|p| self.eval(p)).collect();
                    Ok(parts?.join(&delimiter))
                }
                _ => Err("Fn::Join needs [delimiter, [values]]".into()),
            },
            other => Err(format!("drflow's simulator does not support {other}")),
        }
    }
}

/// Resolves the template's parameters: given values, then defaults; SSM parameter types read the named SSM
/// parameter. Errors are ValidationError messages.
pub(crate) fn resolve_parameters(
    template: &Template,
    given: &BTreeMap<String, String>,
    ssm: &BTreeMap<String, ParamRec>,
) -> Result<BTreeMap<String, String>, String> {
    let undeclared: Vec<&str> = given
        .keys()
        .filter(|k| !template.parameters.iter().any(|p| &p.name == *k))
        .map(String::as_str)
        .collect();
    if !undeclared.is_empty() {
        return Err(format!(
            "Parameters: [{}] do not exist in the template",
            undeclared.join(", ")
        ));
    }
    let missing: Vec<&str> = template
        .parameters
        .iter()
        .filter(|p| !given.contains_key(&p.name) && p.default.is_none())
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!("Parameters: [{}] must have values", missing.join(", ")));
    }
    let mut values = BTreeMap::new();
    for p in &template.parameters {
        let value = given.get(&p.name).or(p.default.as_ref()).cloned().unwrap_or_default();
        let value = if p.is_ssm() {
            let (name, version) = split_selector(&value);
            match ssm.get(name).and_then(|rec| rec.version(version)) {
                Some(v) => v.value.clone(),
                None => return Err(format!("Parameters: [{value}] cannot be found.")),
            }
        } else {
            value
        };
        values.insert(p.name.clone(), value);
    }
    Ok(values)
}

const DYNAMIC: &str = "{{resolve:ssm:";

/// Replaces `{{resolve:ssm:NAME}}` and `{{resolve:ssm:NAME:VERSION}}` with the parameter's value. The error names
/// the parameter, like CloudFormation's.
pub(crate) fn resolve_dynamic(body: &str, ssm: &BTreeMap<String, ParamRec>) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find(DYNAMIC) {
        out.push_str(&rest[..i]);
        let after = &rest[i + DYNAMIC.len()..];
        let Some(end) = after.find("}}") else {
            rest = &rest[i..];
            break;
        };
        let reference = &after[..end];
        if reference.contains("${") {
            // Built by Fn::Sub (e.g. `!Sub "{{resolve:ssm:${Name}}}"`): resolved after the substitution.
            out.push_str(&rest[i..i + DYNAMIC.len() + end + 2]);
            rest = &after[end + 2..];
            continue;
        }
        let (name, version) = split_selector(reference);
        match ssm.get(name).and_then(|rec| rec.version(version)) {
            Some(v) => out.push_str(&v.value),
            None => {
                return Err(format!(
                    "Unable to fetch parameters [{reference}] from parameter store for this account."
                ));
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const TEMPLATE: &str = r#"
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Size: {Type: String, Default: t3.micro}
  Ami: {Type: "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>", Default: /dr/ami}
Resources:
  Web:
    Type: AWS::EC2::Instance
    Properties: {ImageId: !Ref Ami, InstanceType: !Ref Size}
  Group:
    Type: AWS::EC2::SecurityGroup
Outputs:
  InstanceId: {Value: !Ref Web}
  Long: {Value: {Ref: Web}}
  Image: {Value: !GetAtt Web.ImageId}
  Text: {Value: plain}
  Sub: {Value: !Sub "${AWS::StackName}-${Web}-${Size}-${!Literal}"}
  Join: {Value: !Join [":", [a, !Ref AWS::Region]]}
"#;

    fn ssm() -> BTreeMap<String, ParamRec> {
        BTreeMap::from([(
            "/dr/ami".to_string(),
            ParamRec::new("aws:ec2:image", "ami-0abc", Duration::ZERO),
        )])
    }

    #[test]
    fn parses_and_evaluates() {
        let t = parse(TEMPLATE).unwrap();
        assert_eq!(t.resources.len(), 2);
        let params = resolve_parameters(&t, &BTreeMap::new(), &ssm()).unwrap();
        assert_eq!(params["Ami"], "ami-0abc");
        let resources = BTreeMap::from([(
            "Web".to_string(),
            Physical {
                id: "i-0abc".into(),
                kind: INSTANCE.into(),
                image_id: Some("ami-0abc".into()),
            },
        )]);
        let env = Env {
            params: &params,
            resources: &resources,
            region: "us-west-2",
            stack_name: "dr",
            stack_id: "x",
        };
        let out: BTreeMap<&str, String> = t
            .outputs
            .iter()
            .map(|(k, v)| (k.as_str(), env.eval(v).unwrap()))
            .collect();
        assert_eq!(out["InstanceId"], "i-0abc");
        assert_eq!(out["Long"], "i-0abc");
        assert_eq!(out["Image"], "ami-0abc");
        assert_eq!(out["Text"], "plain");
        assert_eq!(out["Sub"], "dr-i-0abc-t3.micro-${Literal}");
        assert_eq!(out["Join"], "a:us-west-2");
    }

    #[test]
    fn parameter_errors() {
        let t = parse(TEMPLATE).unwrap();
        let extra = BTreeMap::from([("Nope".to_string(), "x".to_string())]);
        assert!(
            resolve_parameters(&t, &extra, &ssm())
                .unwrap_err()
                .contains("[Nope] do not exist")
        );
        let other = BTreeMap::from([("Ami".to_string(), "/missing".to_string())]);
        assert_eq!(
            resolve_parameters(&t, &other, &ssm()).unwrap_err(),
            "Parameters: [/missing] cannot be found."
        );
        let t = parse("Parameters: {X: {Type: String}}\nResources: {A: {Type: AWS::SNS::Topic}}").unwrap();
        assert_eq!(
            resolve_parameters(&t, &BTreeMap::new(), &ssm()).unwrap_err(),
            "Parameters: [X] must have values"
        );
    }

    #[test]
    fn format_errors() {
        assert!(
            parse("Resources: [")
                .unwrap_err()
                .starts_with("Template format error: YAML not well-formed.")
        );
        assert_eq!(
            parse("Description: x").unwrap_err(),
            "Template format error: At least one Resources member must be defined."
        );
        assert!(
            parse("Resources: {A: {Properties: {}}}")
                .unwrap_err()
                .contains("Type member")
        );
        assert!(
            parse("Resource: {A: {Type: X}}")
                .unwrap_err()
                .contains("Invalid template property")
        );
        assert!(
            parse("Resources: {A: {Type: X, Properties: {P: !Ref Nope}}}")
                .unwrap_err()
                .contains("[Nope]")
        );
        assert!(parse(r#"{"Resources": {"A": {"Type": "AWS::SNS::Topic"}}}"#).is_ok());
    }

    #[test]
    fn dynamic_references() {
        let mut params = ssm();
        params
            .get_mut("/dr/ami")
            .unwrap()
            .versions
            .push(crate::cloud::sim::records::VersionRec {
                version: 2,
                value: "ami-0def".into(),
                modified_at: Duration::ZERO,
                labels: Vec::new(),
            });
        let body = "a: '{{resolve:ssm:/dr/ami}}' b: {{resolve:ssm:/dr/ami:1}} c: {{resolve:ssm-secure:x}}";
        assert_eq!(
            resolve_dynamic(body, &params).unwrap(),
            "a: 'ami-0def' b: ami-0abc c: {{resolve:ssm-secure:x}}"
        );
        assert_eq!(
            resolve_dynamic("{{resolve:ssm:/dr/ami:7}}", &params).unwrap_err(),
            "Unable to fetch parameters [/dr/ami:7] from parameter store for this account."
        );
        assert!(
            resolve_dynamic("{{resolve:ssm:/nope}}", &params)
                .unwrap_err()
                .contains("[/nope]")
        );
    }
}
