//! `drflow check`: are the published AMIs fresh? Read-only; exit 0 when every one is, 1 when some is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;

use super::{BackendArgs, pair};
use crate::check::{self, NewestSource, Request, Targets};
use crate::error::Error;
use crate::workflow::{check_region, parse_duration};

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The protected instances, comma-separated (default: every instance tagged drflow:protect=true).
    #[arg(long, value_delimiter = ',', value_name = "ID,...", conflicts_with_all = ["tag", "backup_plan"])]
    pub instance_ids: Vec<String>,
    /// Protect every instance with this tag, KEY=VALUE (repeatable: all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = pair, conflicts_with = "backup_plan")]
    pub tag: Vec<(String, String)>,
    /// Protect every instance this AWS Backup plan (in the primary region) selects.
    #[arg(long, value_name = "PLAN_ID")]
    pub backup_plan: Option<String>,
    /// A region, primary=CODE or dr=CODE (default: primary=us-east-1, dr=us-west-2, as the shipped workflows).
    #[arg(long = "region", value_name = "NAME=CODE", value_parser = pair)]
    pub regions: Vec<(String, String)>,
    /// The parameters are PREFIX/INSTANCE_ID/ami.
    #[arg(long, default_value = "/drflow")]
    pub prefix: String,
    /// The oldest a fresh AMI may be (e.g. 2h, 1d): the RPO to hold. Without it, only the newest AMI is fresh.
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Where the newest AMI is looked for: `backup` (the newest COMPLETED recovery point of the instance in each
    /// region's vault), or `none` (only --max-age decides).
    #[arg(long, value_enum, default_value_t = Newest::Backup)]
    pub newest: Newest,
    /// The AWS Backup vault in the primary region.
    #[arg(long, default_value = "Default")]
    pub vault: String,
    /// The AWS Backup vault in the DR region (where the plan's copy rule copies to).
    #[arg(long, default_value = "Default")]
    pub dr_vault: String,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Write the output to this file (atomically: a textfile collector never reads half of it) instead of printing.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub backend: BackendArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Newest {
    Backup,
    None,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    /// The Prometheus text exposition format (node_exporter's textfile collector).
    Prometheus,
}

pub fn check(args: CheckArgs, state_dir: &Path) -> Result<u8, Error> {
    let req = request(&args)?;
    let backend = args.backend.backend();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let report = backend.runtime()?.block_on(async {
        let cloud = backend
            .connect(state_dir, &[req.primary.clone(), req.dr.clone()])
            .await?
            .limited();
        check::run(&req, &cloud, now)
            .await
            .map_err(|e| Error::Environment(e.to_string()))
    })?;
    let text = match args.output {
        Output::Text => check::render::text(&report),
        Output::Json => check::render::json(&report),
        Output::Prometheus => check::render::prometheus(&report),
    };
    match &args.out {
        Some(path) => write_atomically(path, &text)?,
        None => print!("{text}"),
    }
    Ok(if report.all_fresh() { 0 } else { 1 })
}

/// What the command line asks, checked before any call.
fn request(args: &CheckArgs) -> Result<Request, Error> {
    let targets = if let Some(plan) = &args.backup_plan {
        Targets::BackupPlan(plan.clone())
    } else if !args.instance_ids.is_empty() {
        for id in &args.instance_ids {
            if !is_instance_id(id) {
                return Err(Error::Usage(format!(
                    "--instance-ids: `{id}` is not an EC2 instance id (i- and 8 or 17 hex digits)"
                )));
            }
        }
        Targets::Instances(args.instance_ids.clone())
    } else if !args.tag.is_empty() {
        Targets::Tags(args.tag.iter().cloned().collect())
    } else {
        Targets::Tags(BTreeMap::from([("drflow:protect".to_string(), "true".to_string())]))
    };
    let (mut primary, mut dr) = ("us-east-1".to_string(), "us-west-2".to_string());
    for (name, code) in &args.regions {
        if let Some(p) = check_region(code) {
            return Err(Error::Usage(format!(
                "--region {name}={code}: {}; {}",
                p.message, p.hint
            )));
        }
        match name.as_str() {
            "primary" => primary = code.clone(),
            "dr" => dr = code.clone(),
            other => {
                return Err(Error::Usage(format!(
                    "--region {other}={code}: the regions are `primary` and `dr`"
                )));
            }
        }
    }
    if primary == dr {
        return Err(Error::Usage(format!(
            "the primary and DR regions are both {primary}: give the DR region with --region dr=CODE"
        )));
    }
    let prefix_ok = args.prefix.starts_with('/')
        && args.prefix[1..]
            .split('/')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
    if !prefix_ok {
        return Err(Error::Usage(format!(
            "--prefix `{}` is not a parameter path such as /drflow or /dr/prod",
            args.prefix
        )));
    }
    let max_age_secs = match &args.max_age {
        Some(text) => {
            let d = parse_duration(text).map_err(|e| Error::Usage(format!("--max-age {text}: {e}")))?;
            Some(d.as_secs() as i64)
        }
        None => None,
    };
    let newest = match args.newest {
        Newest::Backup => NewestSource::Backup {
            vault: args.vault.clone(),
            dr_vault: args.dr_vault.clone(),
        },
        Newest::None => NewestSource::None,
    };
    if newest == NewestSource::None && max_age_secs.is_none() {
        return Err(Error::Usage(
            "nothing to judge freshness by: with --newest none, give --max-age (e.g. --max-age 2h)".into(),
        ));
    }
    Ok(Request {
        targets,
        primary,
        dr,
        prefix: args.prefix.clone(),
        max_age_secs,
        newest,
    })
}

fn is_instance_id(id: &str) -> bool {
    id.strip_prefix("i-")
        .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Writes beside the file, then renames over it.
fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::Environment(format!("cannot write {}: {e}", path.display()))
        })
}
