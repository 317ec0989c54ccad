//! The vocabulary of the language: what an action declares (inputs, outputs, the AWS operations it calls), so
//! that `validate`, `plan` and `policy` know it without running it. The actions themselves live in `actions/`;
//! validation resolves every `action:` name against a `Catalog` of their declarations before anything runs.

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
    /// A CloudFormation template file, relative to the workflow file: checked to exist and to be a template when
    /// the workflow is validated.
    Template,
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
            InputKind::Template => "template file",
        }
    }

    /// Whether a literal YAML value fits.
    pub fn accepts(self, v: &serde_json::Value) -> bool {
        use serde_json::Value::*;
        match self {
            InputKind::Str => matches!(v, String(_) | Number(_)),
            InputKind::Template => matches!(v, String(_)),
            InputKind::Bool => matches!(v, Bool(_)),
            InputKind::Int => v.is_i64() || v.is_u64(),
            InputKind::Map => matches!(v, Object(_)),
            InputKind::List => matches!(v, Array(_)),
            InputKind::Any => true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct InputSpec {
    pub name: &'static str,
    pub kind: InputKind,
    pub required: bool,
    pub description: &'static str,
    /// The only values a string input takes (empty: any); a literal outside them is refused by validation.
    pub choices: &'static [&'static str],
}

#[derive(Debug)]
pub struct OutputSpec {
    pub name: &'static str,
    pub description: &'static str,
}

/// A read-only check of what a step's input names, made before a run (`drflow plan --check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    /// The instance named by `input` exists in the step's region and is not terminated.
    Instance { input: &'static str },
    /// The backup vault named by `input` exists, in the step's region or in the region whose code `region_input`
    /// gives.
    Vault {
        input: &'static str,
        region_input: Option<&'static str>,
    },
    /// The SSM parameter named by `input`: its current value and the age of the AMI it holds.
    Parameter { input: &'static str },
    /// The template file named by `input` is a valid template (CloudFormation ValidateTemplate).
    Template { input: &'static str },
    /// The stack named by `input` is in a state that allows deploying it (`deploy`) or deleting it.
    Stack { input: &'static str, deploy: bool },
    /// The SNS topic whose ARN `input` gives exists.
    Topic { input: &'static str },
}

/// What a step means to a rehearsal report. Each role names the inputs and outputs the report reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Backs up an instance: output `image_id` is a source AMI itself (in the step's region).
    BackupImage,
    /// Creates an AMI of an instance: output `image_id` is a source AMI itself.
    CreateImage,
    /// Copies an AMI into the step's region: output `image_id`, from inputs `source_image_id` / `source_region`.
    CopyImage,
    /// Starts a copy job of input `recovery_point_arn`; output `job_id`.
    StartCopy,
    /// Waits for the copy job of input `job_id`: outputs `image_id` in `region`.
    WaitCopy,
    /// Waits for an AMI: outputs `image_id` and `creation_date` (Unix seconds).
    WaitImage,
    /// Launches a stack (the DR instance): input `stack_name`, output `outputs` (a map).
    Launch,
    /// Verifies a DR instance: `instance_id` and `image_id` (inputs, and outputs once verified).
    Verify,
    /// Deletes a stack: input `stack_name`, output `deleted`.
    Teardown,
}

/// The resource an action writes, named by its input `input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writes {
    pub input: &'static str,
    pub what: Written,
}

/// Kinds of resource a step writes in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// An SSM parameter (its outputs: `name`, `value`, `version`, `changed`).
    Parameter,
    /// A CloudFormation stack.
    Stack,
}

impl Written {
    pub fn label(self) -> &'static str {
        match self {
            Written::Parameter => "SSM parameter",
            Written::Stack => "stack",
        }
    }
}

#[derive(Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: ActionKind,
    pub inputs: &'static [InputSpec],
    pub outputs: &'static [OutputSpec],
    /// AWS API calls it may make, as `service:Operation` (also the IAM actions, plus `extra_iam`); each is in the
    /// one table of operations (`cloud::operations`), which says whether it changes anything.
    pub calls: &'static [&'static str],
    /// IAM actions needed beyond `calls` (e.g. `iam:PassRole`).
    pub extra_iam: &'static [&'static str],
    /// Read-only calls its checks before the run make (`Action::gate`), as `service:Operation`: in the policy, not in
    /// a step's attempts.
    pub gate_calls: &'static [&'static str],
    /// Read-only checks `drflow plan --check` makes for a step of this action.
    pub preflight: &'static [Preflight],
    /// The resource a step writes, named by one of its inputs: two steps that may run at the same time must not
    /// write the same one in the same region.
    pub writes: Option<Writes>,
    /// A notification: a step's failure is journaled and reported but never fails the run (its `on_failure`
    /// defaults to continuing).
    pub advisory: bool,
    /// Whether it takes an AWS Backup lifecycle (`delete_after_days`, `move_to_cold_storage_after_days`): validation
    /// applies AWS's rules to it and plans show when the recovery point expires.
    pub lifecycle: bool,
    /// What a step of this action is to a rehearsal report: a link in the lineage of the DR AMI, its launch, its
    /// verification or its teardown.
    pub role: Option<Role>,
    /// Per-attempt time limit when the step sets none.
    pub default_timeout_secs: u64,
    /// The AWS quotas the job it starts counts against: the engine waits for a free slot before starting it and
    /// holds the slot under the id in output `holds` until a wait step `releases` that id.
    pub quotas: &'static [super::quota::Quota],
    /// The output naming the job a started job's quota slots are held under.
    pub holds: Option<&'static str>,
    /// The input (a number) by which steps waiting for a quota slot are served, largest first (equal ones in order
    /// of arrival): the longest-processing-time rule, so that long jobs do not end up last.
    pub quota_priority: Option<&'static str>,
    /// A wait: the input naming the job whose quota slots are freed when the wait ends, however it ends.
    pub releases: Option<&'static str>,
    /// A wait whose polls may come sooner than its poll policy: when its job reports progress or size, the engine
    /// times them by that evidence (`engine/pace.rs`), never less than 5 s apart. Plans bound its polls by that.
    pub paces: bool,
}

impl ActionSpec {
    /// What most declarations leave empty: `ActionSpec { name, summary, ..., ..ActionSpec::BASE }`.
    pub const BASE: ActionSpec = ActionSpec {
        name: "",
        summary: "",
        kind: ActionKind::Call,
        inputs: &[],
        outputs: &[],
        calls: &[],
        extra_iam: &[],
        gate_calls: &[],
        preflight: &[],
        writes: None,
        advisory: false,
        lifecycle: false,
        role: None,
        default_timeout_secs: 120,
        quotas: &[],
        holds: None,
        quota_priority: None,
        releases: None,
        paces: false,
    };

    /// Whether a step of it needs a region: every action that calls AWS does.
    pub fn needs_region(&self) -> bool {
        !self.calls.is_empty()
    }

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
        choices: &[],
    }
}

pub(crate) const fn opt(name: &'static str, kind: InputKind, description: &'static str) -> InputSpec {
    InputSpec {
        name,
        kind,
        required: false,
        description,
        choices: &[],
    }
}

/// An optional string input that takes one of `choices`.
pub(crate) const fn opt_choice(
    name: &'static str,
    choices: &'static [&'static str],
    description: &'static str,
) -> InputSpec {
    InputSpec {
        name,
        kind: InputKind::Str,
        required: false,
        description,
        choices,
    }
}

pub(crate) const fn out(name: &'static str, description: &'static str) -> OutputSpec {
    OutputSpec { name, description }
}

/// The actions a workflow may name. Validation resolves every `action:` against it, so a validated workflow holds
/// only declarations that exist.
#[derive(Debug, Clone, Copy)]
pub struct Catalog(pub &'static [&'static ActionSpec]);

impl Catalog {
    pub fn find(&self, name: &str) -> Option<&'static ActionSpec> {
        self.0.iter().copied().find(|a| a.name == name)
    }

    pub fn all(&self) -> &'static [&'static ActionSpec] {
        self.0
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|a| a.name)
    }
}
