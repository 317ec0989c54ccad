//! `for_each`: a group's steps once per item, `max_concurrency` at a time, each item under its own key and lock.

use std::sync::Mutex;

use serde_json::{Map, Value};

use super::executor::{Executor, Failure, StepFuture, futures_join, info, started};
use super::journal::Event;
use super::lock::{self, LockError};
use super::scope::RunScope;
use super::state::StepStatus;
use super::within::Within;
use crate::workflow::{ForEach, Step};

/// The input of a `for_each` group's `step_started` that counts its items.
pub const ITEM_COUNT: &str = "item_count";

/// How often an item locked by another run is tried again (`when_locked: wait`): from this, doubling, to the max.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_secs(5);
const LOCK_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(60);

impl Executor<'_> {
    /// Runs the body once per item, `max_concurrency` items at a time; every item runs to its end, then the group
    /// fails if more items failed than it tolerates. An item another run is working on (its lock is held) is
    /// skipped. Outputs: `items` (key → step → outputs), `succeeded`, `failed`, `failed_items` (key → error) and
    /// `skipped_items` (key → why).
    pub(super) async fn for_each(&self, step: &Step, id: &str, fe: &ForEach, within: &Within) -> Result<(), Failure> {
        let items = {
            let state = self.state.lock().expect("state lock");
            fe.items.eval(&RunScope::within(&state, within))
        };
        // The group's start says how many items it has (`inputs.item_count`), for a live view's totals.
        let mut start = started(id);
        if let (Ok(Value::Array(list)), Event::StepStarted { inputs, .. }) = (&items, &mut start) {
            *inputs = Some(Map::from_iter([(ITEM_COUNT.to_string(), Value::from(list.len()))]));
        }
        self.emit_or_fail(id, start)?;
        let items = match items {
            Ok(Value::Array(items)) => items,
            Ok(other) => {
                let e = format!("for_each: expected a list, got {other}");
                return self.fail(step, id, info("InvalidInput", "validation", e));
            }
            Err(e) => return self.fail(step, id, info("InvalidInput", "validation", format!("for_each: {e}"))),
        };
        let keys: Vec<String> = items.iter().map(crate::workflow::expr::to_text).collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = keys.iter().find(|k| !seen.insert(k.as_str())) {
            let e = format!("for_each: the item `{dup}` is listed twice (items are keys: each must be unique)");
            return self.fail(step, id, info("InvalidInput", "validation", e));
        }
        let scopes: Vec<Within> = items
            .iter()
            .zip(&keys)
            .map(|(item, key)| within.enter(id, key, item.clone(), &fe.steps))
            .collect();
        let permits = tokio::sync::Semaphore::new(fe.max_concurrency);
        let skipped = Mutex::new(Map::new());
        let runs = scopes.iter().zip(&keys).map(|(scope, key)| -> StepFuture<'_> {
            let (permits, skipped) = (&permits, &skipped);
            Box::pin(async move {
                let mut permit = permits.acquire().await.expect("the semaphore is never closed");
                // Two runs never work on the same item at once: the later one skips it, and says so.
                let item = format!("{id}[{key}]");
                if let Some(StepStatus::Skipped(reason)) = self.state.lock().expect("state lock").status(&item) {
                    skipped
                        .lock()
                        .expect("lock")
                        .insert(key.clone(), Value::String(reason.clone()));
                    return Ok(());
                }
                let run_id = self.state.lock().expect("state lock").run_id.clone();
                let name = format!("{}~items", self.wf.name);
                let mut lock = lock::acquire(&self.state_dir, &name, key, &run_id);
                if fe.wait_locked
                    && let Err(LockError::Held { holder, .. }) = &lock
                {
                    // Wait for the other run to finish with the item, giving its place to others meanwhile.
                    let waiting = Event::Queued {
                        step: id.to_string(),
                        quota: format!("`{key}` is locked by another run ({holder}): waiting for it"),
                    };
                    self.emit_or_fail(&item, waiting)?;
                    drop(permit);
                    let mut pause = LOCK_POLL;
                    while matches!(lock, Err(LockError::Held { .. })) {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(LOCK_POLL_MAX);
                        lock = lock::acquire(&self.state_dir, &name, key, &run_id);
                    }
                    permit = permits.acquire().await.expect("the semaphore is never closed");
                }
                let _permit = permit;
                let _lock = match lock {
                    Ok(l) => l,
                    Err(LockError::Held { holder, .. }) => {
                        let reason = format!("another run works on `{key}`: {holder}");
                        skipped
                            .lock()
                            .expect("lock")
                            .insert(key.clone(), Value::String(reason.clone()));
                        return self.emit_or_fail(
                            &item,
                            Event::StepSkipped {
                                step: item.clone(),
                                reason,
                            },
                        );
                    }
                    Err(e) => {
                        return Err(Failure {
                            step: item,
                            error: info("LockError", "other", e.to_string()),
                        });
                    }
                };
                self.sequence(&fe.steps, scope).await
            })
        });
        let results = futures_join(runs).await;
        let mut outputs = Map::new();
        let mut failed = Map::new();
        {
            let state = self.state.lock().expect("state lock");
            let mut all = Vec::new();
            for s in &fe.steps {
                s.walk(&mut all);
            }
            for (key, scope) in keys.iter().zip(&scopes) {
                let steps: Map<String, Value> = all
                    .iter()
                    .filter_map(|s| match state.status(&scope.id(&s.id)) {
                        Some(StepStatus::Succeeded(o)) if s.action().is_some() => {
                            Some((s.id.clone(), Value::Object(o.clone())))
                        }
                        _ => None,
                    })
                    .collect();
                outputs.insert(key.clone(), Value::Object(steps));
            }
        }
        for (key, result) in keys.iter().zip(results) {
            if let Err(f) = result {
                failed.insert(
                    key.clone(),
                    Value::String(format!("step `{}`: {}", f.step, f.error.message)),
                );
            }
        }
        let (total, n_failed) = (keys.len(), failed.len());
        if fe.too_many(n_failed, total) {
            let first: Vec<String> = failed
                .iter()
                .take(3)
                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("")))
                .collect();
            let e = format!(
                "{n_failed} of {total} items failed, more than tolerated ({}); {}",
                tolerance(fe),
                first.join("; ")
            );
            return self.fail(step, id, info("ItemsFailed", "other", e));
        }
        let mut out = Map::new();
        out.insert("items".into(), Value::Object(outputs));
        let skipped = skipped.into_inner().expect("lock");
        out.insert("succeeded".into(), Value::from(total - n_failed - skipped.len()));
        out.insert("failed".into(), Value::from(n_failed));
        out.insert("failed_items".into(), Value::Object(failed));
        out.insert("skipped_items".into(), Value::Object(skipped));
        self.succeed(id, out)
    }
}

/// The tolerance of a `for_each`, in words.
fn tolerance(fe: &ForEach) -> String {
    match (fe.tolerated_failures, fe.tolerated_failure_percentage) {
        (None, None) => "none".into(),
        (Some(c), None) => c.to_string(),
        (None, Some(p)) => format!("{p}%"),
        (Some(c), Some(p)) => format!("{c} and {p}%"),
    }
}
