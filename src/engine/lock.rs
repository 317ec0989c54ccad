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

pub fn acquire(state_dir: &Path, workflow: &str, key: &str, run_id: &str) -> Result<RunLock, LockError> {
    let digest: String = Sha256::digest(format!("{workflow}\n{key}").as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = state_dir.join("locks").join(format!("{workflow}-{digest}.lock"));
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
}
