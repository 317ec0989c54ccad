//! Saving and loading a world. A snapshot (`world.json`, written atomically: temporary file, then rename), and a
//! change log beside it (`world.log`): each save appends one line with the world's small parts (clock, counters,
//! ids, buckets, vaults, stacks) and the records changed since the last save, so a save costs what changed, not the
//! whole world. When the log outgrows the snapshot, a new snapshot (the next generation) replaces both; a log line
//! of another generation is ignored (a crash between the two writes loses nothing). The calls go apart, one JSON
//! line each, to `calls.jsonl`.

use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::SimError;
use super::ids::IdGen;
use super::records::StackRec;
use super::rng::Rng;
use super::throttle::Bucket;
use super::world::{FORMAT, Region, World};

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
    if let Ok(log) = std::fs::read_to_string(log_path(path)) {
        // A torn last line (the process died mid-write) is dropped; lines of another generation are stale.
        for line in log.lines() {
            let Ok(delta) = serde_json::from_str::<Delta>(line) else {
                continue;
            };
            if delta.generation == world.generation {
                delta.apply(&mut world);
            }
        }
    }
    let calls = calls_path(path);
    if let Ok(text) = std::fs::read_to_string(&calls) {
        // A torn last line (the process died mid-write) is dropped.
        world.calls = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    }
    Ok(world)
}

/// Where the change log of the world at `path` is kept.
pub(crate) fn log_path(path: &Path) -> PathBuf {
    path.with_file_name("world.log")
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

/// Writes a new snapshot (the next generation) and empties the log; returns the snapshot's size.
pub(crate) fn save(path: &Path, world: &mut World) -> Result<u64, SimError> {
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    world.generation += 1;
    for region in world.regions.values_mut() {
        let _ = changes(region);
    }
    let text = serde_json::to_string(world).expect("the world serialises");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = tmp_path(path);
    std::fs::write(&tmp, &text).map_err(|source| SimError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(io)?;
    // Lines left in the log are of the last generation: ignored from now on, and cleared.
    let _ = std::fs::write(log_path(path), b"");
    Ok(text.len() as u64)
}

/// Appends what changed since the last save to the log; returns the line's size.
pub(crate) fn append_changes(path: &Path, world: &mut World) -> Result<u64, SimError> {
    let delta = Delta::of(world);
    let mut line = serde_json::to_vec(&delta).expect("a delta serialises");
    line.push(b'\n');
    let log = log_path(path);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(&line))
        .map_err(|source| SimError::Io { path: log, source })?;
    Ok(line.len() as u64)
}

/// One save: the world's small parts whole, and the records changed since the last save.
#[derive(Serialize, Deserialize)]
struct Delta {
    generation: u64,
    created_unix: i64,
    elapsed: Duration,
    next_id: IdGen,
    call_counts: BTreeMap<String, u64>,
    started: BTreeMap<String, u64>,
    buckets: BTreeMap<String, Bucket>,
    rng: Option<Rng>,
    regions: BTreeMap<String, RegionHead>,
    /// (region, collection, key, value or null when removed).
    records: Vec<(String, String, String, Value)>,
}

#[derive(Serialize, Deserialize)]
struct RegionHead {
    vaults: BTreeSet<String>,
    stacks: Vec<StackRec>,
    copy_slots: Vec<Duration>,
    image_copies: Vec<Duration>,
}

impl Delta {
    fn of(world: &mut World) -> Delta {
        let mut records = Vec::new();
        let mut regions = BTreeMap::new();
        for (name, region) in world.regions.iter_mut() {
            for (collection, key, value) in changes(region) {
                records.push((name.clone(), collection.to_string(), key, value));
            }
            regions.insert(
                name.clone(),
                RegionHead {
                    vaults: region.vaults.clone(),
                    stacks: region.stacks.clone(),
                    copy_slots: region.copy_slots.clone(),
                    image_copies: region.image_copies.clone(),
                },
            );
        }
        Delta {
            generation: world.generation,
            created_unix: world.created_unix,
            elapsed: world.elapsed,
            next_id: world.ids.clone(),
            call_counts: world.call_counts.clone(),
            started: world.started.clone(),
            buckets: world.buckets.clone(),
            rng: world.rng,
            regions,
            records,
        }
    }

    fn apply(self, world: &mut World) {
        world.created_unix = self.created_unix;
        world.elapsed = self.elapsed;
        world.ids = self.next_id;
        world.call_counts = self.call_counts;
        world.started = self.started;
        world.buckets = self.buckets;
        world.rng = self.rng;
        for (name, head) in self.regions {
            let region = world.regions.entry(name).or_default();
            region.vaults = head.vaults;
            region.stacks = head.stacks;
            region.copy_slots = head.copy_slots;
            region.image_copies = head.image_copies;
        }
        for (name, collection, key, value) in self.records {
            let region = world.regions.entry(name).or_default();
            apply(region, &collection, key, value);
        }
    }
}

/// The records of a region changed since this was last asked: (collection, key, value or null).
fn changes(region: &mut Region) -> Vec<(&'static str, String, Value)> {
    fn of<V: Serialize>(
        out: &mut Vec<(&'static str, String, Value)>,
        name: &'static str,
        t: &mut super::tracked::Tracked<V>,
    ) {
        for (k, v) in t.take_changed() {
            let v = v.map_or(Value::Null, |v| serde_json::to_value(v).expect("a record serialises"));
            out.push((name, k, v));
        }
    }
    let mut out = Vec::new();
    of(&mut out, "images", &mut region.images);
    of(&mut out, "instances", &mut region.instances);
    of(&mut out, "parameters", &mut region.parameters);
    of(&mut out, "backup_jobs", &mut region.backup_jobs);
    of(&mut out, "copy_jobs", &mut region.copy_jobs);
    of(&mut out, "recovery_points", &mut region.recovery_points);
    of(&mut out, "tokens", &mut region.tokens);
    of(&mut out, "topics", &mut region.topics);
    of(&mut out, "backup_busy_until", &mut region.backup_busy_until);
    of(&mut out, "recovery_point_info", &mut region.recovery_point_info);
    of(&mut out, "snapshots", &mut region.snapshots);
    out
}

fn apply(region: &mut Region, collection: &str, key: String, value: Value) {
    fn to<V: serde::de::DeserializeOwned>(t: &mut super::tracked::Tracked<V>, key: String, value: Value) {
        let v = if value.is_null() {
            None
        } else {
            match serde_json::from_value(value) {
                Ok(v) => Some(v),
                Err(_) => return,
            }
        };
        t.apply(key, v);
    }
    match collection {
        "images" => to(&mut region.images, key, value),
        "instances" => to(&mut region.instances, key, value),
        "parameters" => to(&mut region.parameters, key, value),
        "backup_jobs" => to(&mut region.backup_jobs, key, value),
        "copy_jobs" => to(&mut region.copy_jobs, key, value),
        "recovery_points" => to(&mut region.recovery_points, key, value),
        "tokens" => to(&mut region.tokens, key, value),
        "topics" => to(&mut region.topics, key, value),
        "backup_busy_until" => to(&mut region.backup_busy_until, key, value),
        "recovery_point_info" => to(&mut region.recovery_point_info, key, value),
        "snapshots" => to(&mut region.snapshots, key, value),
        _ => {}
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}
