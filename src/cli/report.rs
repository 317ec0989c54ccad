//! `drflow report RUN_ID`, and the end of every `drflow run` / `drflow resume`: write the run's report files and,
//! for a rehearsal, finish with the one-line verdict (`REHEARSAL PASSED ...` / `REHEARSAL FAILED ...`).

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use super::Output;
use crate::engine::Outcome;
use crate::engine::journal::{self, RunStatus};
use crate::error::Error;
use crate::report::{self, Format, Report};
use crate::workflow::Workflow;

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

/// Builds and writes the finished (or interrupted) run's report beside its journal; never fails the run.
pub fn write(wf: &Workflow, outcome: &Outcome) -> Option<(Report, Vec<PathBuf>)> {
    let built = journal::read(&outcome.journal)
        .map_err(|e| e.to_string())
        .map(|entries| report::build(&outcome.state, &entries, Some(wf)))
        .and_then(|r| {
            let dir = outcome.journal.parent().unwrap_or(Path::new("."));
            report::write_files(dir, &r)
                .map(|files| (r, files))
                .map_err(|e| format!("cannot write the report of run {}: {e}", outcome.run_id))
        });
    match built {
        Ok(x) => Some(x),
        Err(e) => {
            eprintln!("warning: {e}");
            None
        }
    }
}

/// The last words of `drflow run` / `drflow resume`: writes the report files, names them, and for a rehearsal
/// ends with its verdict line (after the error, so that it is the last line a cron mail or CI log shows).
pub fn conclude(wf: &Workflow, outcome: Outcome, output: Output) -> Result<u8, Error> {
    let written = write(wf, &outcome);
    let human = output != Output::Json;
    if let (true, Some((_, files))) = (human, &written)
        && let Some(html) = files.iter().find(|f| f.extension().is_some_and(|e| e == "html"))
    {
        println!("report: {}", html.display());
    }
    let rehearsal = written.as_ref().map(|(r, _)| r).filter(|r| r.rehearsal.is_some());
    if let Some(r) = rehearsal {
        left_behind(r);
    }
    let say = |line: &str| {
        if human {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    };
    match (outcome.status, rehearsal) {
        (RunStatus::Succeeded, Some(r)) => {
            say(&r.summary);
            Ok(if r.rehearsal.as_ref().is_some_and(|h| h.verdict == "passed") {
                0
            } else {
                1
            })
        }
        (RunStatus::Succeeded, None) => Ok(0),
        (RunStatus::Failed, Some(r)) => {
            let e = Error::RunFailed {
                run_id: outcome.run_id,
                message: outcome.error.unwrap_or_else(|| "unknown error".into()),
            };
            e.print();
            say(&r.summary);
            Ok(e.exit_code())
        }
        (RunStatus::Failed, None) => Err(Error::RunFailed {
            run_id: outcome.run_id,
            message: outcome.error.unwrap_or_else(|| "unknown error".into()),
        }),
    }
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
    for x in r.left_behind.iter().filter(|x| x.kind == "CloudFormation stack") {
        eprintln!(
            "error:   delete it: aws cloudformation delete-stack --region {} --stack-name {}",
            x.region.as_deref().unwrap_or("REGION"),
            x.id
        );
    }
}
