//! How long a job that reports no progress (an AWS Backup copy) will take: learnt from the jobs of the same kind that
//! finished, in this run and in earlier ones (kept in `STATE_DIR/history.json`), per byte and per resource. A wait
//! uses it to poll when the job should be done (`pace`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One finished job: its size and how long its wait took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    bytes: u64,
    ms: u64,
}

/// What earlier jobs took: per kind (the action that waited), per resource, the last one.
#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    version: u32,
    kinds: BTreeMap<String, BTreeMap<String, Sample>>,
}

/// What a job is expected to take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Expected {
    pub total_ms: i64,
    /// How far jobs of this kind stray from the expectation: a fraction.
    pub spread: f64,
}

/// Jobs stray at least this much from any expectation.
const MIN_SPREAD: f64 = 0.05;
/// Until enough jobs have finished to tell.
const DEFAULT_SPREAD: f64 = 0.25;

#[derive(Debug)]
pub(crate) struct Forecast {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    history: History,
    /// Per kind: the median ms per byte and the spread around it, while no job of the kind finished since.
    pooled: BTreeMap<String, (f64, f64)>,
    changed: bool,
}

impl Forecast {
    /// The history kept in `state_dir` (none if missing or unreadable: it only times polls).
    pub(crate) fn load(state_dir: &Path) -> Forecast {
        let path = state_dir.join("history.json");
        let history = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<History>(&t).ok())
            .filter(|h| h.version == 1)
            .unwrap_or_default();
        Forecast {
            path,
            state: Mutex::new(State {
                history,
                ..State::default()
            }),
        }
    }

    /// A job of `kind` for `resource` (if known) of `bytes` took `ms`.
    pub(crate) fn observe(&self, kind: &str, resource: Option<&str>, bytes: u64, ms: u64) {
        if bytes == 0 || ms == 0 {
            return;
        }
        let mut st = self.state.lock().expect("forecast");
        let key = resource.unwrap_or("").to_string();
        st.history
            .kinds
            .entry(kind.to_string())
            .or_default()
            .insert(key, Sample { bytes, ms });
        st.pooled.remove(kind);
        st.changed = true;
    }

    /// What a job of `kind` for `resource` of `bytes` should take: at the resource's own last pace if known, else at
    /// the median pace of its kind; `None` before any job of the kind finished.
    pub(crate) fn expect(&self, kind: &str, resource: Option<&str>, bytes: u64) -> Option<Expected> {
        let mut st = self.state.lock().expect("forecast");
        let samples = st.history.kinds.get(kind)?;
        let own = resource
            .and_then(|r| samples.get(r))
            .map(|s| s.ms as f64 / s.bytes as f64);
        let (median, spread) = match st.pooled.get(kind) {
            Some(p) => *p,
            None => {
                let p = pooled(samples.values());
                st.pooled.insert(kind.to_string(), p);
                p
            }
        };
        let per_byte = own.unwrap_or(median);
        Some(Expected {
            total_ms: (per_byte * bytes as f64) as i64,
            // One earlier job of the resource is itself off its pace by up to the spread, and so is this one: their
            // ratio by up to twice it (a median of many is not).
            spread: if own.is_some() { 2.0 * spread } else { spread },
        })
    }

    /// Keeps what was learnt for later runs (written atomically; a failure only costs polls later).
    pub(crate) fn save(&self) {
        let mut st = self.state.lock().expect("forecast");
        if !st.changed {
            return;
        }
        st.history.version = 1;
        let Ok(text) = serde_json::to_string(&st.history) else {
            return;
        };
        let tmp = self.path.with_extension(format!("json.tmp.{}", std::process::id()));
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, &self.path).is_ok() {
            st.changed = false;
        }
    }
}

/// The median ms per byte of the samples, and how far the middle 80% of them stray from it.
fn pooled<'a>(samples: impl Iterator<Item = &'a Sample>) -> (f64, f64) {
    let mut rates: Vec<f64> = samples.map(|s| s.ms as f64 / s.bytes as f64).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    if rates.len() < 5 {
        return (median, DEFAULT_SPREAD);
    }
    let mut off: Vec<f64> = rates.iter().map(|r| (r / median - 1.0).abs()).collect();
    off.sort_by(f64::total_cmp);
    let p80 = off[(off.len() * 8 / 10).min(off.len() - 1)];
    (median, p80.max(MIN_SPREAD))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn learns_the_pace_per_byte_and_per_resource_and_keeps_it_for_later_runs() {
        let dir = tempfile::tempdir().unwrap();
        let f = Forecast::load(dir.path());
        assert_eq!(f.expect("copy", Some("i-1"), GIB), None, "nothing finished yet");
        // Ten jobs of 8 GiB at 90 s per GiB, ± 10%.
        for n in 0..10u64 {
            let ms = 8 * 90_000 * (90 + 2 * n) / 100;
            f.observe("copy", Some(&format!("i-{n}")), 8 * GIB, ms);
        }
        // A resource not seen before: its size at the median pace.
        let e = f.expect("copy", Some("i-new"), 16 * GIB).unwrap();
        assert!((e.total_ms - 16 * 90_000).abs() < 16 * 90_000 / 20, "{e:?}");
        assert!((0.05..=0.12).contains(&e.spread), "{e:?}");
        // A resource seen before: its own pace.
        let own = f.expect("copy", Some("i-0"), 8 * GIB).unwrap();
        assert_eq!(own.total_ms, 8 * 90_000 * 90 / 100);
        // Other kinds know nothing.
        assert_eq!(f.expect("backup", None, GIB), None);
        f.save();
        let again = Forecast::load(dir.path());
        assert_eq!(again.expect("copy", Some("i-0"), 8 * GIB), Some(own));
    }
}
