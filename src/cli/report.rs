//! `drflow report RUN_ID`, and the end of every `drflow run` / `drflow resume`: write the run's report files and,
//! for a rehearsal, finish with the one-line verdict (`REHEARSAL PASSED ...` / `REHEARSAL FAILED ...`).

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::error::Error;
use crate::report::{self, Format, Report};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Md,
    Html,
}

impl From<ReportFormat> for Format {
    fn from(f: ReportFormat) -> Format {
        match f {
            ReportFormat::Json => Format::Json,
            ReportFormat::Md => Format::Markdown,
            ReportFormat::Html => Format::Html,
        }
    }
}

/// `drflow report RUN_ID [--format json|md|html] [--out FILE]`: prints the report, or writes it to FILE (the format
/// then defaults to FILE's extension; otherwise Markdown).
pub fn report(state_dir: &Path, run_id: &str, format: Option<ReportFormat>, out: Option<PathBuf>) -> Result<u8, Error> {
    let r = report::load(state_dir, run_id, None)?;
    let format = format
        .map(Format::from)
        .or_else(|| out.as_deref().and_then(Format::from_path))
        .unwrap_or(Format::Markdown);
    let text = report::render(&r, format);
    match out {
        Some(path) => {
            std::fs::write(&path, text).map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// Loud, on stderr: what a rehearsal could not tear down, and how to delete it.
pub fn left_behind(r: &Report) {
    if r.left_behind.is_empty() || r.status == "unfinished" {
        return;
    }
    eprintln!(
        "error: TEARDOWN FAILED: run {} left these behind (they still exist and cost money):",
        r.run_id
    );
    for x in &r.left_behind {
        eprintln!(
            "error:   {} {} in {}{}",
            x.kind,
            x.id,
            x.region.as_deref().unwrap_or("?"),
            x.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
        );
    }
    for x in r
        .left_behind
        .iter()
        .filter(|x| x.kind == crate::actions::ResourceKind::Stack)
    {
        eprintln!(
            "error:   delete it: aws cloudformation delete-stack --region {} --stack-name {}",
            x.region.as_deref().unwrap_or("REGION"),
            x.id
        );
    }
}
