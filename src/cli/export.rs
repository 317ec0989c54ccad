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
    let opts = Options {
        home: args.state_machine_region.clone(),
        single_region: args.single_region,
        function: args.cross_region_function.clone(),
    };
    let error = |e: ExportError| match e {
        ExportError::Bind(b) => Error::Bind(b),
        other => Error::Usage(other.to_string()),
    };
    let out = export::asl(&wf, &args.inputs, &args.regions, &opts).map_err(error)?;
    for r in &out.required {
        eprintln!("note: input `{r}` has no value: give it in each execution's input (e.g. {{\"{r}\": ...}})");
    }
    let doc = match args.format {
        ExportFormat::Asl => out.definition,
        ExportFormat::Cloudformation => {
            let file = args.workflow.display().to_string();
            export::cloudformation::template(&wf, &file, &args.inputs, &args.regions, &opts).map_err(error)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
    Ok(0)
}
