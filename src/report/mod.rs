//! Run reports: built from a run's journal (`model`), rendered as JSON, Markdown and a self-contained HTML page.
//! `drflow run` and `drflow resume` write all three into the run's folder when they end
//! (`STATE_DIR/runs/RUN_ID/report.{json,md,html}`); `drflow report RUN_ID` renders one on demand.

mod condense;
pub mod fleet;
mod fleet_html;
pub mod html;
mod inflight;
pub mod json;
pub mod markdown;
pub mod model;

use std::path::{Path, PathBuf};

pub use model::{Report, build};

use crate::engine::{self, EngineError};
use crate::workflow::{self, Workflow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Markdown,
    Html,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Json, Format::Markdown, Format::Html];

    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Markdown => "md",
            Format::Html => "html",
        }
    }

    /// From a file name's extension (`.json`, `.md`/`.markdown`, `.html`/`.htm`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "md" | "markdown" => Some(Format::Markdown),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Json => json::render(report),
        Format::Markdown => markdown::render(report),
        Format::Html => html::render(report),
    }
}

/// The report of a run, from its journal. `wf` is the run's workflow if the caller has it; otherwise the file
/// the run started from is read, if it is still there (for step names; the report does not need it).
pub fn load(state_dir: &Path, run_id: &str, wf: Option<&Workflow>) -> Result<Report, EngineError> {
    let (state, entries) = engine::load_run(state_dir, run_id)?;
    let loaded;
    let wf = match wf {
        Some(w) => Some(w),
        None => {
            loaded = workflow::load(Path::new(&state.file), crate::actions::catalog()).ok();
            loaded.as_ref()
        }
    };
    Ok(build(&state, &entries, wf))
}

/// Where a run's report files go: beside its journal.
pub fn path(state_dir: &Path, run_id: &str, format: Format) -> PathBuf {
    engine::journal_path(state_dir, run_id).with_file_name(format!("report.{}", format.extension()))
}

/// Writes `report.json`, `report.md` and `report.html` into `dir` (the run's folder, beside its journal), each
/// atomically and readable by the owner only, like the journal: reports hold the run's inputs. Returns the paths.
pub fn write_files(dir: &Path, report: &Report) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for format in Format::ALL {
        let target = dir.join(format!("report.{}", format.extension()));
        write_private(&target, &render(report, format))?;
        written.push(target);
    }
    Ok(written)
}

/// Builds and writes a run's reports; a problem is returned as text (callers warn: a report never fails a run).
pub fn write_for_run(state_dir: &Path, run_id: &str, wf: Option<&Workflow>) -> Result<(Report, Vec<PathBuf>), String> {
    let report = load(state_dir, run_id, wf).map_err(|e| e.to_string())?;
    let journal = engine::journal_path(state_dir, run_id);
    let dir = journal.parent().unwrap_or(Path::new("."));
    let files = write_files(dir, &report).map_err(|e| format!("cannot write the report of run {run_id}: {e}"))?;
    Ok((report, files))
}

pub(crate) fn write_private(target: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        target.file_name().and_then(|n| n.to_str()).unwrap_or("report"),
        std::process::id()
    ));
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, target)
}
