//! What steps created and deleted: each action says it for its own steps (`Action::effects`), reports list them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Values;
use super::values::text;

/// The kinds of resource a run can create or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceKind {
    #[serde(rename = "backup job")]
    BackupJob,
    #[serde(rename = "copy job")]
    CopyJob,
    #[serde(rename = "AMI")]
    Ami,
    #[serde(rename = "SSM parameter version")]
    ParameterVersion,
    #[serde(rename = "CloudFormation stack")]
    Stack,
    #[serde(rename = "EC2 instance")]
    Instance,
}

impl ResourceKind {
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::BackupJob => "backup job",
            ResourceKind::CopyJob => "copy job",
            ResourceKind::Ami => "AMI",
            ResourceKind::ParameterVersion => "SSM parameter version",
            ResourceKind::Stack => "CloudFormation stack",
            ResourceKind::Instance => "EC2 instance",
        }
    }
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub kind: ResourceKind,
    pub id: String,
    pub region: Option<String>,
    /// The step that created or deleted it.
    pub step: String,
    pub detail: Option<String>,
}

/// What one step created and deleted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Effects {
    pub created: Vec<Resource>,
    pub deleted: Vec<Resource>,
}

/// What the journal knows of one step of an action.
#[derive(Debug, Clone, Copy)]
pub struct StepFacts<'a> {
    pub id: &'a str,
    pub region: Option<&'a str>,
    pub succeeded: bool,
    /// `succeeded`, `failed`, `running`, ...
    pub status: &'a str,
    pub inputs: &'a Values,
    pub outputs: &'a Values,
    pub recorded: &'a Values,
}

impl StepFacts<'_> {
    /// An output of the step, else a fact it recorded.
    pub fn out(&self, key: &str) -> Option<&Value> {
        self.outputs.get(key).or_else(|| self.recorded.get(key))
    }

    /// An output or recorded fact as text, if present and not empty.
    pub fn out_text(&self, key: &str) -> Option<String> {
        self.out(key).map(text).filter(|s| !s.is_empty())
    }

    pub fn input_text(&self, key: &str) -> Option<String> {
        self.inputs.get(key).map(text).filter(|s| !s.is_empty())
    }

    pub fn resource(&self, kind: ResourceKind, id: String, region: Option<String>, detail: Option<String>) -> Resource {
        Resource {
            kind,
            id,
            region: region.or_else(|| self.region.map(str::to_string)),
            step: self.id.to_string(),
            detail,
        }
    }
}
