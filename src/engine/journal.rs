//! The durable journal of a run: append-only JSON lines, one per transition, each fsync'd before the engine
//! goes on, in a file only the owner can read (mode 0600). `drflow resume` replays it.
//!
//! Format: every line is an `Entry`: `{"v":"1.3","seq":N,"ts_ms":UNIX_MS,"type":"...",...}`. The version is
//! MAJOR.MINOR: a newer minor only adds event kinds and optional fields, so this drflow reads any 1.x journal (an
//! event kind it does not know, from a newer minor, is kept as `Unknown` and changes nothing); another major is
//! refused. Version 1.0 wrote `"v":1`.
//!
//! 1.1: `run_started` has `account` (the caller's account, for `account.id`); errors name the failed call
//! (`operation`); a wait journals the first poll of every attempt (a good poll resets the failures counted against
//! its retry budget).
//!
//! 1.2: `rate_limits` before `run_finished`: per operation, the calls, throttling answers and time spent waiting
//! for the client-side rate limiter.
//!
//! 1.3: `queued`: a step waits for a slot of an AWS quota (e.g. copy jobs into a region) before it starts its job.
//! A `for_each` group's `step_started` has `inputs: {"item_count": N}` (its number of items) when its list
//! evaluated (an optional field that was already there: no new version).
//!
//! 1.4: approvals (`drflow.approve`). `approval_requested`: the step waits for a decision and the run stops after
//! it (no `run_finished`: the run is *waiting for approval* until a `run_resumed`); `approval_decided`: the decision,
//! who gave it (OS user, AWS caller ARN and account), how (terminal, command, auto), when, and the plan shown.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A journal format version, MAJOR.MINOR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    /// What this drflow writes.
    pub const CURRENT: Version = Version { major: 1, minor: 4 };

    /// `1` (1.0) or `"1.1"`.
    fn from_json(v: &Value) -> Option<Version> {
        if let Some(n) = v.as_u64() {
            return Some(Version {
                major: n as u32,
                minor: 0,
            });
        }
        let (major, minor) = v.as_str()?.split_once('.')?;
        Some(Version {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let v = Value::deserialize(d)?;
        Version::from_json(&v).ok_or_else(|| serde::de::Error::custom(format!("`{v}` is not a journal version")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: String,
    /// throttling, transient, access_denied, validation, not_found, other, timeout
    pub kind: String,
    pub message: String,
    /// The AWS call that failed, `service:Operation` (1.1), when the failure was a call's.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub operation: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        workflow: String,
        file: String,
        digest: String,
        inputs: Map<String, Value>,
        regions: Map<String, Value>,
        backend: String,
        lock: String,
        /// The caller's AWS account, when the run checked its credentials.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        account: Option<String>,
    },
    RunResumed {
        forced: bool,
    },
    StepStarted {
        step: String,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        action: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        region: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        inputs: Option<Map<String, Value>>,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    AttemptStarted {
        step: String,
        attempt: u32,
    },
    /// The step waits for a free slot of an AWS quota before it starts its job (1.3): `quota` says which, for which
    /// key, and its limit.
    Queued {
        step: String,
        quota: String,
    },
    /// A fact learnt mid-step that a resumed run must reuse, e.g. `job_id`.
    Recorded {
        step: String,
        key: String,
        value: Value,
    },
    Polled {
        step: String,
        attempt: u32,
        polls: u32,
        status: String,
    },
    AttemptFailed {
        step: String,
        attempt: u32,
        error: ErrorInfo,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_in_ms: Option<u64>,
    },
    StepSucceeded {
        step: String,
        outputs: Map<String, Value>,
    },
    StepFailed {
        step: String,
        error: ErrorInfo,
        /// `abort`, `continue` or `goto:<step>`.
        route: String,
    },
    /// What the run's rate limiter saw, per operation (`service:Name`), written just before `run_finished` (a resumed
    /// run counts the calls of the process that finished it) (1.2).
    RateLimits {
        operations: std::collections::BTreeMap<String, crate::cloud::limiter::CallStats>,
    },
    /// An approval step waits for a decision (1.4): the run stops after it, waiting for approval, until a
    /// `drflow approve` / `drflow reject` (or a resume) continues it. `plan`: the rest of the run, as shown.
    ApprovalRequested {
        step: String,
        message: String,
        plan: String,
    },
    /// An approval step's decision (1.4): approved or rejected, how, by whom, when, and the plan shown.
    ApprovalDecided {
        step: String,
        #[serde(flatten)]
        decision: crate::actions::approval::Decision,
    },
    RunFinished {
        status: RunStatus,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        error: Option<String>,
    },
    /// An event kind of a newer minor version: readable, and ignored.
    #[serde(other)]
    Unknown,
}

impl Event {
    pub fn step(&self) -> Option<&str> {
        match self {
            Event::StepStarted { step, .. }
            | Event::StepSkipped { step, .. }
            | Event::AttemptStarted { step, .. }
            | Event::Queued { step, .. }
            | Event::Recorded { step, .. }
            | Event::Polled { step, .. }
            | Event::AttemptFailed { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::ApprovalRequested { step, .. }
            | Event::ApprovalDecided { step, .. } => Some(step),
            _ => None,
        }
    }

    /// The event's `type`, as journaled.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RunStarted { .. } => "run_started",
            Event::RunResumed { .. } => "run_resumed",
            Event::StepStarted { .. } => "step_started",
            Event::StepSkipped { .. } => "step_skipped",
            Event::AttemptStarted { .. } => "attempt_started",
            Event::Queued { .. } => "queued",
            Event::Recorded { .. } => "recorded",
            Event::Polled { .. } => "polled",
            Event::AttemptFailed { .. } => "attempt_failed",
            Event::StepSucceeded { .. } => "step_succeeded",
            Event::StepFailed { .. } => "step_failed",
            Event::RateLimits { .. } => "rate_limits",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalDecided { .. } => "approval_decided",
            Event::RunFinished { .. } => "run_finished",
            Event::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub v: Version,
    pub seq: u64,
    /// Unix milliseconds by the run's clock (simulated time under `--simulate`).
    pub ts_ms: i64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("journal {path} line {line}: {message}")]
    Corrupt { path: String, line: usize, message: String },
    #[error("journal {path} has format version {found}; this drflow reads versions {}.x", Version::CURRENT.major)]
    Version { path: String, found: Version },
}

pub struct Journal {
    file: File,
    path: PathBuf,
    next_seq: u64,
    /// When the oldest entry written but not yet fsync'd was written.
    unsynced_since: Option<std::time::Instant>,
    /// The last entry an fsync covered.
    synced_seq: u64,
}

/// Entries that guard nothing are fsync'd together, at the latest this long (wall time) after the first of them.
const GROUP_COMMIT: std::time::Duration = std::time::Duration::from_millis(100);

impl Journal {
    /// Creates a new journal (the file must not exist).
    pub fn create(path: &Path) -> Result<Journal, JournalError> {
        let io = |e| JournalError::Io {
            path: path.display().to_string(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = open(path, true).map_err(io)?;
        // The new file's directory entry must survive a crash too.
        if let Some(dir) = path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            next_seq: 1,
            unsynced_since: None,
            synced_seq: 0,
        })
    }

    /// Opens an existing journal to append after its last entry, cutting off a torn last line first.
    pub fn reopen(path: &Path, next_seq: u64) -> Result<Journal, JournalError> {
        let io = |e| JournalError::Io {
            path: path.display().to_string(),
            source: e,
        };
        let bytes = std::fs::read(path).map_err(io)?;
        let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|f| f.set_len(whole as u64))
                .map_err(io)?;
        }
        let file = open(path, false).map_err(io)?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            next_seq,
            unsynced_since: None,
            synced_seq: next_seq.saturating_sub(1),
        })
    }

    /// Appends one entry and fsyncs it (with any written before it).
    pub fn append(&mut self, ts_ms: i64, event: Event) -> Result<Entry, JournalError> {
        self.append_with(ts_ms, event, true)
    }

    /// Appends one entry. `durable`: fsync'd before this returns (it guards an AWS side effect, or a resumed run
    /// needs it); otherwise written at once (it survives the process being killed) and fsync'd with the next durable
    /// entry, or within `GROUP_COMMIT` (group commit: only a crash of the machine can lose it, and nothing depends
    /// on it but what a resumed run redoes without harm).
    pub fn append_with(&mut self, ts_ms: i64, event: Event, durable: bool) -> Result<Entry, JournalError> {
        let entry = Entry {
            v: Version::CURRENT,
            seq: self.next_seq,
            ts_ms,
            event,
        };
        let mut line = serde_json::to_vec(&entry).expect("journal entries serialize");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| self.io(e))?;
        self.next_seq += 1;
        let since = *self.unsynced_since.get_or_insert_with(std::time::Instant::now);
        if durable || since.elapsed() >= GROUP_COMMIT {
            self.sync()?;
        }
        Ok(entry)
    }

    /// Fsyncs what was written, if anything is not yet.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.unsynced_since.is_some() {
            self.file.sync_data().map_err(|e| self.io(e))?;
            self.unsynced_since = None;
            self.synced_seq = self.next_seq - 1;
        }
        Ok(())
    }

    /// Makes entry `seq` durable: fsyncs unless an fsync since it was written already covered it (another step's:
    /// concurrent steps that need their entries on disk share one fsync). Returns whether it fsync'd.
    pub fn sync_through(&mut self, seq: u64) -> Result<bool, JournalError> {
        if self.synced_seq >= seq {
            return Ok(false);
        }
        self.sync()?;
        Ok(true)
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Journal {
    /// What was written is on disk when the run stops, however it stops (best effort).
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

fn open(path: &Path, create_new: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true);
    if create_new {
        o.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Reads every entry. A torn last line (the process died mid-write) is ignored; any other bad line is an error.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| JournalError::Io {
        path: name.clone(),
        source: e,
    })?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| JournalError::Io {
            path: name.clone(),
            source: e,
        })?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let torn = i + 1 == lines.len();
        let version = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| v.get("v").and_then(Version::from_json));
        if let Some(v) = version
            && v.major != Version::CURRENT.major
        {
            return Err(JournalError::Version { path: name, found: v });
        }
        match serde_json::from_str::<Entry>(line) {
            // An event kind this drflow does not know is fine from a newer minor version, corrupt otherwise.
            Ok(e) if e.event == Event::Unknown && e.v.minor <= Version::CURRENT.minor => {
                return Err(JournalError::Corrupt {
                    path: name,
                    line: i + 1,
                    message: format!("unknown event type in a version {} journal", e.v),
                });
            }
            Ok(e) => out.push(e),
            Err(_) if torn => break,
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: name,
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_that_guard_nothing_are_written_at_once_and_fsyncd_with_the_next_durable_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut j = Journal::create(&path).unwrap();
        let polled = |polls| Event::Polled {
            step: "s".into(),
            attempt: 1,
            polls,
            status: "RUNNING".into(),
        };
        j.append_with(1, polled(1), false).unwrap();
        j.append_with(2, polled(2), false).unwrap();
        // Written (a killed process loses nothing), not yet fsync'd.
        assert_eq!(read(&path).unwrap().len(), 2);
        assert!(j.unsynced_since.is_some());
        j.append_with(3, Event::RunResumed { forced: false }, true).unwrap();
        assert!(
            j.unsynced_since.is_none(),
            "a durable entry fsyncs the ones before it too"
        );
        // Within the group-commit window at the latest.
        j.append_with(4, polled(3), false).unwrap();
        j.unsynced_since = Some(std::time::Instant::now() - GROUP_COMMIT);
        j.append_with(5, polled(4), false).unwrap();
        assert!(j.unsynced_since.is_none());
        assert_eq!(read(&path).unwrap().len(), 5);
    }

    #[test]
    fn one_fsync_makes_every_entry_written_before_it_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::create(&dir.path().join("j.jsonl")).unwrap();
        let note = |n: u32| Event::AttemptStarted {
            step: format!("s{n}"),
            attempt: 1,
        };
        let a = j.append_with(1, note(1), false).unwrap();
        let b = j.append_with(2, note(2), false).unwrap();
        assert!(j.sync_through(a.seq).unwrap(), "the first waiter fsyncs");
        assert!(
            !j.sync_through(b.seq).unwrap(),
            "the second finds its entry already covered"
        );
        let c = j.append_with(3, note(3), false).unwrap();
        assert!(j.sync_through(c.seq).unwrap());
        assert!(!j.sync_through(a.seq).unwrap());
    }

    #[test]
    fn appends_reads_back_and_ignores_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs/r1/journal.jsonl");
        let mut j = Journal::create(&path).unwrap();
        j.append(
            1,
            Event::StepStarted {
                step: "a".into(),
                action: None,
                region: None,
                inputs: None,
            },
        )
        .unwrap();
        j.append(
            2,
            Event::Recorded {
                step: "a".into(),
                key: "job_id".into(),
                value: Value::String("j-1".into()),
            },
        )
        .unwrap();
        drop(j);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"v\":1,\"seq\":3,\"ts")
            .unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].seq, 2);
        assert_eq!(entries[1].event.step(), Some("a"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\"v\":\"1.4\",\"seq\":1,\"ts_ms\":1,\"type\":\"step_started\""),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let mut again = Journal::reopen(&path, 3).unwrap();
        again.append(3, Event::RunResumed { forced: false }).unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn refuses_another_format_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(
            &path,
            "{\"v\":9,\"seq\":1,\"ts_ms\":0,\"type\":\"run_resumed\",\"forced\":false}\n",
        )
        .unwrap();
        assert!(matches!(
            read(&path),
            Err(JournalError::Version {
                found: Version { major: 9, minor: 0 },
                ..
            })
        ));
    }

    #[test]
    fn reads_1_0_and_newer_minors_but_not_unknown_kinds_of_known_minors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(
            &path,
            concat!(
                "{\"v\":1,\"seq\":1,\"ts_ms\":0,\"type\":\"run_resumed\",\"forced\":false}\n",
                "{\"v\":\"1.9\",\"seq\":2,\"ts_ms\":0,\"type\":\"step_paused\",\"step\":\"a\"}\n",
                "{\"v\":\"1.1\",\"seq\":3,\"ts_ms\":0,\"type\":\"run_resumed\",\"forced\":true}\n",
            ),
        )
        .unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].v, Version { major: 1, minor: 0 });
        assert_eq!(entries[1].event, Event::Unknown);
        std::fs::write(
            &path,
            "{\"v\":\"1.1\",\"seq\":1,\"ts_ms\":0,\"type\":\"step_paused\",\"step\":\"a\"}\n{\"v\":\"1.1\",\"seq\":2,\"ts_ms\":0,\"type\":\"run_resumed\",\"forced\":true}\n",
        )
        .unwrap();
        assert!(matches!(read(&path), Err(JournalError::Corrupt { line: 1, .. })));
    }
}
