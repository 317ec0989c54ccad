//! `drflow plan`, `drflow policy` and `drflow graph`: look at what a run will do without running it.
//!
//! A plan builds no backend and makes no AWS call unless `--check` is given; the checks make read-only calls only.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::run::load_workflow;
use super::{BackendArgs, Format, pair};
use crate::error::Error;
use crate::plan::{self, CheckStatus, graph};

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    pub workflow: PathBuf,
    /// Workflow input, NAME=VALUE (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", value_parser = pair)]
    pub inputs: Vec<(String, String)>,
    /// Override a named region, NAME=CODE (repeatable), e.g. --region dr=eu-west-1.
    #[arg(long = "region", value_name = "NAME=CODE", value_parser = pair)]
    pub regions: Vec<(String, String)>,
    /// Also run read-only preflight checks against the account (or the simulator with --simulate).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub backend: BackendArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

#[derive(clap::Args, Debug)]
pub struct PolicyArgs {
    pub workflow: PathBuf,
    /// Workflow input, NAME=VALUE (repeatable). Inputs not given become `*` in the ARNs that use them.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", value_parser = pair)]
    pub inputs: Vec<(String, String)>,
    /// Override a named region, NAME=CODE (repeatable).
    #[arg(long = "region", value_name = "NAME=CODE", value_parser = pair)]
    pub regions: Vec<(String, String)>,
    /// Account id for the ARNs, when no role ARN input tells it.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    pub workflow: PathBuf,
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// A Mermaid flowchart.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

pub fn plan(args: PlanArgs, state_dir: &Path) -> Result<u8, Error> {
    let backend = args.backend.backend();
    if backend.is_simulated() && !args.check {
        return Err(Error::Usage(
            "--simulate and --scenario choose where `--check` looks: add --check (a plan alone calls nothing)".into(),
        ));
    }
    let wf = load_workflow(&args.workflow)?;
    let file = args.workflow.display().to_string();
    let mut plan = plan::for_run(&wf, &file, &args.inputs, &args.regions, None, None)?;
    if args.check {
        let codes: Vec<String> = plan.regions.iter().map(|(_, c)| c.clone()).collect();
        let base = wf.dir();
        let (checks, found, previews) = backend.runtime()?.block_on(async {
            let cloud = backend.connect(state_dir, &codes).await?;
            let regions: serde_json::Map<String, serde_json::Value> = plan
                .regions
                .iter()
                .map(|(n, c)| (n.clone(), serde_json::Value::String(c.clone())))
                .collect();
            let (cloud, unassumed) = crate::session::attach_each(&wf, &regions, "plan-check", cloud).await?;
            let cloud = cloud.limited();
            let mut checks = plan::checks::run(&plan, &base, &cloud, &unassumed).await;
            // What preflight learnt (the caller's account) is known to the discovery steps too.
            let known = plan::for_run(&wf, &file, &args.inputs, &args.regions, checks.account.as_deref(), None)?;
            let found = plan::discover::run(&known, &base, &cloud).await;
            checks.results.extend(found.checks.iter().cloned());
            checks.failed = checks
                .results
                .iter()
                .filter(|c| c.status == CheckStatus::Failed)
                .count();
            Ok::<_, Error>((checks, found.outputs, found.previews))
        })?;
        // What the checks learnt (the account, the fleets' items) is known to the plan.
        let outputs = (!found.is_empty()).then_some(&found);
        plan = plan::for_run(
            &wf,
            &file,
            &args.inputs,
            &args.regions,
            checks.account.as_deref(),
            outputs,
        )?;
        for s in plan.steps.iter_mut().chain(plan.finally.iter_mut()) {
            s.set_previews(&previews);
        }
        plan.checks = Some(checks);
    }
    match args.output {
        Format::Text => print!("{}", plan::render_text::render(&plan)),
        Format::Json => print!("{}", plan::render_json::render(&plan)),
    }
    let Some(checks) = &plan.checks else { return Ok(0) };
    if checks.failed == 0 {
        return Ok(0);
    }
    eprintln!(
        "error: {} of {} preflight checks failed:",
        checks.failed,
        checks.results.len()
    );
    for c in checks.results.iter().filter(|c| c.status == CheckStatus::Failed) {
        eprintln!("  {}: {}", plan::render_text::describe(c), c.reason);
    }
    Ok(1)
}

pub fn policy(args: PolicyArgs) -> Result<u8, Error> {
    let wf = load_workflow(&args.workflow)?;
    // A required input that is not given is left out (ARNs use `*` for it) instead of being an error.
    let bound = wf.bind_partial(&args.inputs, &args.regions)?;
    let file = args.workflow.display().to_string();
    let plan = plan::compute(
        &wf,
        &file,
        &bound.inputs,
        &bound.regions,
        &args.inputs,
        args.account.as_deref(),
    );
    if wf.roles.is_empty() {
        let policy = plan::policy::build(&plan, args.account.as_deref()).map_err(Error::Usage)?;
        for note in &policy.notes {
            eprintln!("note: {note}");
        }
        print!("{}", policy.to_json());
        return Ok(0);
    }
    // Several accounts: one policy per set of credentials, and each role's trust policy.
    let all = plan::policy::build_accounts(&plan, args.account.as_deref(), &wf.roles).map_err(Error::Usage)?;
    let mut docs = Vec::new();
    for p in &all {
        for note in &p.policy.notes {
            eprintln!("note: {note}");
        }
        let mut doc = serde_json::json!({
            "for": p.role_arn.clone().unwrap_or_else(|| "caller".into()),
            "account": p.account,
            "regions": p.regions,
            "policy": p.policy.document,
        });
        if let Some(trust) = &p.trust {
            doc["trust_policy"] = serde_json::to_value(trust).expect("a policy is JSON");
        }
        docs.push(doc);
    }
    let out = serde_json::json!({"format": "drflow-policies/1", "policies": docs});
    println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    Ok(0)
}

pub fn graph(args: GraphArgs) -> Result<u8, Error> {
    let wf = load_workflow(&args.workflow)?;
    let format = match args.format {
        GraphFormat::Mermaid => graph::Format::Mermaid,
        GraphFormat::Dot => graph::Format::Dot,
    };
    print!("{}", graph::render(&wf, format));
    Ok(0)
}
