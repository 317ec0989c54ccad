//! One run at a time per workflow and lock key (by default the workflow's `lock:` value, e.g. the instance id).
//! An advisory file lock (flock): the OS releases it when the process dies, even by `kill -9`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another run holds the lock for {what}: {holder}")]
    Held { what: String, holder: String },
    #[error("lock file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Held while the run goes on; released on drop.
pub struct RunLock {
    _file: File,
    _path: PathBuf,
}

fn lock_path(state_dir: &Path, workflow: &str, key: &str) -> PathBuf {
    let digest: String = Sha256::digest(format!("{workflow}\n{key}").as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    state_dir.join("locks").join(format!("{workflow}-{digest}.lock"))
}

/// A run waiting for approval holds no lock (its process has ended), but it keeps its place: a marker beside the
/// lock names it, and a new run of the same workflow and key is refused until the waiting run is approved or
/// rejected (two failovers of one instance must not both go ahead). Runs of other workflows or keys are not
/// affected. `is_waiting` tells whether a named run still waits (a stale marker is ignored).
fn waiting_path(state_dir: &Path, workflow: &str, key: &str) -> PathBuf {
    lock_path(state_dir, workflow, key).with_extension("waiting")
}

/// Marks `run_id` as waiting for approval under this workflow and key (best effort).
pub fn mark_waiting(state_dir: &Path, workflow: &str, key: &str, run_id: &str) {
    let _ = std::fs::write(waiting_path(state_dir, workflow, key), format!("{run_id}\n"));
}

/// Removes the marker if it names `run_id` (the run goes on).
pub fn clear_waiting(state_dir: &Path, workflow: &str, key: &str, run_id: &str) {
    let path = waiting_path(state_dir, workflow, key);
    if std::fs::read_to_string(&path).is_ok_and(|r| r.trim() == run_id) {
        let _ = std::fs::remove_file(path);
    }
}

/// Refuses a new run while another run of this workflow and key waits for approval.
pub fn check_waiting(
    state_dir: &Path,
    workflow: &str,
    key: &str,
    is_waiting: impl Fn(&str) -> bool,
) -> Result<(), LockError> {
    let Ok(other) = std::fs::read_to_string(waiting_path(state_dir, workflow, key)) else {
        return Ok(());
    };
    let other = other.trim();
    if other.is_empty() || !is_waiting(other) {
        return Ok(());
    }
    Err(LockError::Held {
        what: format!("workflow `{workflow}` with lock `{key}`"),
        holder: format!(
            "run {other}, which waits for approval (`drflow approve {other}` or `drflow reject {other} --reason ...` first)"
        ),
    })
}

pub fn acquire(state_dir: &Path, workflow: &str, key: &str, run_id: &str) -> Result<RunLock, LockError> {
    let path = lock_path(state_dir, workflow, key);
    let io = |e| LockError::Io {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(io)?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(LockError::Held {
                what: format!("workflow `{workflow}` with lock `{key}`"),
                holder: if holder.trim().is_empty() {
                    "unknown run".into()
                } else {
                    holder.trim().to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "run {run_id} (pid {})", std::process::id()).map_err(io)?;
    Ok(RunLock {
        _file: file,
        _path: path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "dr-ami", "i-1", "run-a").unwrap();
        let err = acquire(dir.path(), "dr-ami", "i-1", "run-b").err().expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("run run-a"), "{msg}");
        assert!(msg.contains("lock `i-1`"), "{msg}");
        // Another key is independent.
        let _other = acquire(dir.path(), "dr-ami", "i-2", "run-c").unwrap();
        drop(first);
        acquire(dir.path(), "dr-ami", "i-1", "run-b").unwrap();
    }

    #[test]
    fn a_run_waiting_for_approval_keeps_its_place_for_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("locks")).unwrap();
        mark_waiting(d, "dr-failover", "i-1", "run-a");
        let err = check_waiting(d, "dr-failover", "i-1", |r| r == "run-a").unwrap_err();
        assert!(err.to_string().contains("run run-a, which waits for approval"), "{err}");
        // Another key, another workflow: not affected; a run that no longer waits: a stale marker.
        check_waiting(d, "dr-failover", "i-2", |_| true).unwrap();
        check_waiting(d, "dr-ami", "i-1", |_| true).unwrap();
        check_waiting(d, "dr-failover", "i-1", |_| false).unwrap();
        clear_waiting(d, "dr-failover", "i-1", "run-b");
        assert!(
            check_waiting(d, "dr-failover", "i-1", |_| true).is_err(),
            "only its own run clears it"
        );
        clear_waiting(d, "dr-failover", "i-1", "run-a");
        check_waiting(d, "dr-failover", "i-1", |_| true).unwrap();
    }
}
