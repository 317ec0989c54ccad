//! Saving and loading a world: JSON, written atomically (temporary file in the same folder, then rename); its calls
//! apart, appended one JSON line each to `calls.jsonl` beside it, so a save costs the world's resources, not its
//! history.

use std::path::{Path, PathBuf};

use super::error::SimError;
use super::world::{FORMAT, World};

pub(crate) fn load(path: &Path) -> Result<World, SimError> {
    let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Check the format first, so an old file reports its version instead of a missing field.
    let header: serde_json::Value = serde_json::from_str(&text).map_err(|e| SimError::json(path, &e))?;
    let found = header.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0) as u32;
    if found != FORMAT {
        return Err(SimError::Version {
            path: path.to_path_buf(),
            found,
            expected: FORMAT,
        });
    }
    let mut world: World = serde_json::from_str(&text).map_err(|e| SimError::json(path, &e))?;
    let calls = calls_path(path);
    if let Ok(text) = std::fs::read_to_string(&calls) {
        // A torn last line (the process died mid-write) is dropped.
        world.calls = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    }
    Ok(world)
}

/// Where the calls of the world at `path` are kept.
pub(crate) fn calls_path(path: &Path) -> PathBuf {
    path.with_file_name("calls.jsonl")
}

/// Appends one call to the world's call log.
pub(crate) fn append_call(path: &Path, call: &super::records::Call) -> Result<(), SimError> {
    use std::io::Write;
    let calls = calls_path(path);
    let io = |source| SimError::Io {
        path: calls.clone(),
        source,
    };
    let mut line = serde_json::to_vec(call).expect("a call serialises");
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&calls)
        .and_then(|mut f| f.write_all(&line))
        .map_err(io)
}

pub(crate) fn save(path: &Path, world: &World) -> Result<(), SimError> {
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = serde_json::to_string(world).expect("the world serialises");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = tmp_path(path);
    std::fs::write(&tmp, text).map_err(|source| SimError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}
