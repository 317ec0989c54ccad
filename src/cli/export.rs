//! `drflow export`: the workflow as an AWS Step Functions state machine (ASL) or a CloudFormation template.

use std::path::PathBuf;

use clap::ValueEnum;

use super::pair;
use super::run::load_workflow;
use crate::error::Error;
use crate::export::{self, ExportError, Options};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    pub workflow: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportFormat::Asl)]
    pub format: ExportFormat,
    /// Workflow input, NAME=VALUE (repeatable): the state machine's defaults; an execution's input overrides them.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", value_parser = pair)]
    pub inputs: Vec<(String, String)>,
    /// Override a named region, NAME=CODE (repeatable), e.g. --region dr=eu-west-1.
    #[arg(long = "region", value_name = "NAME=CODE", value_parser = pair)]
    pub regions: Vec<(String, String)>,
    /// The workflow's region (by name) the state machine runs in. Default: `dr` if the workflow has it, else its
    /// first region.
    #[arg(long, value_name = "NAME")]
    pub state_machine_region: Option<String>,
    /// Refuse steps in another region than the state machine's, instead of calling them through the cross-region
    /// function.
    #[arg(long)]
    pub single_region: bool,
    /// Name or ARN of the cross-region function (ASL format; the template deploys its own).
    #[arg(long, value_name = "NAME")]
    pub cross_region_function: Option<String>,
    /// The SNS topic (name or ARN) a `drflow.approve` step asks on, with the commands that answer it (default:
    /// drflow-approvals in the state machine's region and account; the template creates its own unless given).
    #[arg(long, value_name = "TOPIC")]
    pub approval_topic: Option<String>,
    /// A `drflow schedule` file whose entry (`--entry`, or its only entry for this workflow) the template's
    /// EventBridge Scheduler schedule follows: its cron, time zone, inputs and regions.
    #[arg(long, value_name = "FILE")]
    pub schedule: Option<PathBuf>,
    /// The entry of the `--schedule` file.
    #[arg(long, value_name = "NAME", requires = "schedule")]
    pub entry: Option<String>,
    /// Add an EventBridge rule to the template that starts an execution whenever AWS Backup completes a copy into
    /// the workflow's DR vault (input `dr_vault`, region `dr`) from its primary region (where the state machine
    /// must run: --state-machine-region primary); for workflows that follow a Backup plan (dr-follow-plan).
    #[arg(long)]
    pub on_copy_completed: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// Amazon States Language (JSONPath).
    Asl,
    /// A CloudFormation template (JSON): the state machine, its role, the cross-region function when needed.
    Cloudformation,
}

pub fn export(args: ExportArgs) -> Result<u8, Error> {
    let wf = load_workflow(&args.workflow)?;
    let mut args = args;
    let schedule = match args.schedule.clone() {
        Some(path) => Some(schedule_of(&mut args, &wf, &path)?),
        None => None,
    };
    let opts = Options {
        home: args.state_machine_region.clone(),
        single_region: args.single_region,
        function: args.cross_region_function.clone(),
        approval_topic: args.approval_topic.clone(),
    };
    let error = |e: ExportError| match e {
        ExportError::Bind(b) => Error::Bind(b),
        other => Error::Usage(other.to_string()),
    };
    if args.on_copy_completed && args.format != ExportFormat::Cloudformation {
        return Err(Error::Usage(
            "--on-copy-completed is for --format cloudformation".into(),
        ));
    }
    let out = export::asl(&wf, &args.inputs, &args.regions, &opts).map_err(error)?;
    for r in &out.required {
        eprintln!("note: input `{r}` has no value: give it in each execution's input (e.g. {{\"{r}\": ...}})");
    }
    let doc = match args.format {
        ExportFormat::Asl => out.definition,
        ExportFormat::Cloudformation => {
            let file = args.workflow.display().to_string();
            let mut t =
                export::cloudformation::template(&wf, &file, &args.inputs, &args.regions, &opts, schedule.as_ref())
                    .map_err(error)?;
            if args.on_copy_completed {
                export::copy_rule::add(&mut t, &wf, &out).map_err(error)?;
            }
            t
        }
    };
    println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    Ok(0)
}

/// The schedule entry for the template: its cron as EventBridge's, its time zone, its inputs as the executions'
/// input; its inputs and regions also join the command line's (which win).
fn schedule_of(
    args: &mut ExportArgs,
    wf: &crate::workflow::Workflow,
    path: &std::path::Path,
) -> Result<export::cloudformation::Schedule, Error> {
    if args.format != ExportFormat::Cloudformation {
        return Err(Error::Usage("--schedule is for --format cloudformation".into()));
    }
    let file = crate::schedule::file::load(path).map_err(|e| Error::Usage(e.to_string()))?;
    let here = std::fs::canonicalize(&args.workflow).unwrap_or_else(|_| args.workflow.clone());
    let candidates: Vec<_> = file
        .entries
        .iter()
        .filter(|e| match &args.entry {
            Some(n) => &e.name == n,
            None => std::fs::canonicalize(&e.workflow).is_ok_and(|w| w == here),
        })
        .collect();
    let entry = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::Usage(format!(
                "{}: no entry {}",
                path.display(),
                args.entry.as_ref().map_or_else(
                    || format!("runs {}", args.workflow.display()),
                    |n| format!("is named `{n}`")
                )
            )));
        }
        _ => {
            return Err(Error::Usage(format!(
                "{}: several entries run {}: choose one with --entry",
                path.display(),
                args.workflow.display()
            )));
        }
    };
    let expression = export::cron::eventbridge(entry.schedule.expression())
        .map_err(|e| Error::Usage(format!("{}: entry `{}`: {e}", path.display(), entry.name)))?;
    let mut input = serde_json::Map::new();
    for (k, v) in &entry.inputs {
        if let Some(def) = wf.inputs.iter().find(|i| &i.name == k) {
            input.insert(k.clone(), def.parse_value(v).map_err(Error::Usage)?);
        }
    }
    for (k, v) in &entry.inputs {
        if !args.inputs.iter().any(|(n, _)| n == k) {
            args.inputs.push((k.clone(), v.clone()));
        }
    }
    for (k, v) in &entry.regions {
        if !args.regions.iter().any(|(n, _)| n == k) {
            args.regions.push((k.clone(), v.clone()));
        }
    }
    Ok(export::cloudformation::Schedule {
        expression,
        timezone: entry.schedule.tz().name().to_string(),
        input: serde_json::Value::Object(input),
    })
}
