//! Quota slots: how many jobs of a kind run at once, per key (a resource, a destination region), shared by every
//! branch and item of a run. A step that starts a job takes a slot of each quota its action declares (waiting, in
//! order, when none is free), and the slots are held under the job's id until the wait for that job ends.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::journal::{Entry, Event};
use crate::workflow::{Quota, QuotaKey, Quotas};

/// The slots of one quota for one key.
#[derive(Debug)]
struct Gate {
    limit: u32,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    in_use: u32,
    /// Served by priority, largest first, then first come, first served: (-priority, arrival) → waiter.
    waiting: BTreeMap<(i64, u64), oneshot::Sender<Handed>>,
    arrivals: u64,
}

impl Gate {
    /// A slot now, if one is free (`force`: even if none is, as for a job already running).
    fn try_take(self: &Arc<Self>, force: bool, priority: i64) -> Result<Slot, oneshot::Receiver<Handed>> {
        let mut st = self.state.lock().expect("gate");
        if force || (st.in_use < self.limit && st.waiting.is_empty()) {
            st.in_use += 1;
            return Ok(Slot { gate: self.clone() });
        }
        let (tx, rx) = oneshot::channel();
        st.arrivals += 1;
        let key = (priority.saturating_neg(), st.arrivals);
        st.waiting.insert(key, tx);
        Err(rx)
    }

    fn release(self: &Arc<Self>) {
        let mut st = self.state.lock().expect("gate");
        st.in_use -= 1;
        // Hand the slot to the first waiter still waiting (one whose step was cancelled has dropped its receiver).
        // The slot travels as a `Handed`: if the waiter goes away before taking it, dropping it frees the slot.
        while st.in_use < self.limit {
            let Some((_, tx)) = st.waiting.pop_first() else { break };
            st.in_use += 1;
            if let Err(back) = tx.send(Handed(self.clone())) {
                std::mem::forget(back);
                st.in_use -= 1;
            }
        }
    }
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    gate: Arc<Gate>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release();
    }
}

/// A slot handed to a waiter: counted by the releaser, owned by whoever holds this.
#[derive(Debug)]
struct Handed(Arc<Gate>);

impl Handed {
    fn into_slot(self) -> Slot {
        let gate = self.0.clone();
        std::mem::forget(self);
        Slot { gate }
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The key of quota `q` for a step with these inputs in `region` (`None`: the input is not set, nothing counted).
pub(crate) fn key_of(q: &Quota, inputs: &Map<String, Value>, region: &str) -> Option<String> {
    match q.per {
        QuotaKey::Input(name) => inputs.get(name).and_then(Value::as_str).map(str::to_string),
        QuotaKey::StepRegion => Some(region.to_string()),
    }
}

/// A job started by an earlier process of the run whose wait has not ended: the slots it counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub job: String,
    pub slots: Vec<(&'static Quota, String)>,
}

/// The jobs the journal shows started (their start step succeeded with the job's id) and not yet waited for to the
/// end (no finished wait step took that id).
pub(crate) fn in_flight(entries: &[Entry]) -> Vec<InFlight> {
    let catalog = crate::actions::catalog();
    let mut started: HashMap<&str, (&'static crate::workflow::ActionSpec, &str, &Map<String, Value>)> = HashMap::new();
    let mut jobs: Vec<InFlight> = Vec::new();
    let mut released: Vec<&str> = Vec::new();
    let empty = Map::new();
    for e in entries {
        match &e.event {
            Event::StepStarted {
                step,
                action: Some(action),
                region,
                inputs,
            } => {
                if let Some(spec) = catalog.find(action) {
                    started.insert(
                        step,
                        (
                            spec,
                            region.as_deref().unwrap_or_default(),
                            inputs.as_ref().unwrap_or(&empty),
                        ),
                    );
                }
            }
            Event::StepSucceeded { step, outputs } => {
                let Some((spec, region, inputs)) = started.get(step.as_str()) else {
                    continue;
                };
                if let Some(job) = spec.holds.and_then(|k| outputs.get(k)).and_then(Value::as_str) {
                    let slots = spec
                        .quotas
                        .iter()
                        .filter_map(|q| Some((q, key_of(q, inputs, region)?)))
                        .collect();
                    jobs.push(InFlight {
                        job: job.to_string(),
                        slots,
                    });
                }
                if let Some(job) = spec.releases.and_then(|k| inputs.get(k)).and_then(Value::as_str) {
                    released.push(job);
                }
            }
            Event::StepFailed { step, .. } => {
                let Some((spec, _, inputs)) = started.get(step.as_str()) else {
                    continue;
                };
                if let Some(job) = spec.releases.and_then(|k| inputs.get(k)).and_then(Value::as_str) {
                    released.push(job);
                }
            }
            _ => {}
        }
    }
    jobs.retain(|j| !released.contains(&j.job.as_str()));
    jobs
}

/// The run's quota slots.
#[derive(Debug, Default)]
pub(crate) struct QuotaSlots {
    limits: Quotas,
    gates: Mutex<HashMap<(&'static str, String), Arc<Gate>>>,
    /// Job id → the slots its job holds.
    held: Mutex<HashMap<String, Vec<Slot>>>,
}

impl QuotaSlots {
    pub(crate) fn new(limits: Quotas) -> QuotaSlots {
        QuotaSlots {
            limits,
            ..Default::default()
        }
    }

    fn gate(&self, q: &'static Quota, key: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock().expect("gates");
        gates
            .entry((q.name, key.to_string()))
            .or_insert_with(|| {
                Arc::new(Gate {
                    limit: self.limits.limit(q),
                    state: Mutex::default(),
                })
            })
            .clone()
    }

    /// The limit of `q` in this run.
    pub(crate) fn limit(&self, q: &Quota) -> u32 {
        self.limits.limit(q)
    }

    /// A slot of `q` for `key` now, or `None` if the caller must wait (`take` then waits its turn).
    pub(crate) fn try_take(&self, q: &'static Quota, key: &str) -> Option<Slot> {
        self.gate(q, key).try_take(false, 0).ok()
    }

    /// A slot of `q` for `key`, waiting for it (served by `priority`, largest first, then in order of arrival); with
    /// `force`, at once even beyond the limit (a job that is already running counts, whatever the limit).
    pub(crate) async fn take(&self, q: &'static Quota, key: &str, force: bool, priority: i64) -> Slot {
        let gate = self.gate(q, key);
        match gate.try_take(force, priority) {
            Ok(slot) => slot,
            Err(rx) => rx.await.expect("a gate outlives its waiters").into_slot(),
        }
    }

    /// Keeps `slots` until `release(job)`.
    pub(crate) fn hold(&self, job: &str, slots: Vec<Slot>) {
        if !slots.is_empty() {
            self.held
                .lock()
                .expect("held")
                .entry(job.to_string())
                .or_default()
                .extend(slots);
        }
    }

    /// Counts jobs an earlier process of this run left running (from `in_flight`): each takes its slots at once,
    /// whatever the limit, and holds them until the wait for it ends, so a resumed run starts no more jobs than
    /// the quota leaves room for.
    pub(crate) fn reclaim(&self, jobs: Vec<InFlight>) {
        for job in jobs {
            let slots = job
                .slots
                .iter()
                .map(|(q, key)| match self.gate(q, key).try_take(true, 0) {
                    Ok(slot) => slot,
                    Err(_) => unreachable!("a forced take always gets a slot"),
                })
                .collect();
            self.hold(&job.job, slots);
        }
    }

    /// Frees the slots held for `job`, if any.
    pub(crate) fn release(&self, job: &str) {
        let slots = self.held.lock().expect("held").remove(job);
        drop(slots);
    }

    /// How many slots of `q` for `key` are taken now.
    #[cfg(test)]
    fn in_use(&self, q: &'static Quota, key: &str) -> u32 {
        self.gate(q, key).state.lock().expect("gate").in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::quota::{BACKUP_COPIES, SNAPSHOT_COPIES};

    #[tokio::test(start_paused = true)]
    async fn waiters_get_freed_slots_in_order_and_holds_release_by_job() {
        let q = Arc::new(QuotaSlots::new(Quotas {
            overrides: vec![("snapshot_copies".into(), 2)],
        }));
        let a = q.take(&SNAPSHOT_COPIES, "us-west-2", false, 0).await;
        let b = q.take(&SNAPSHOT_COPIES, "us-west-2", false, 0).await;
        // Another key has its own slots.
        let other = q.try_take(&SNAPSHOT_COPIES, "eu-west-1");
        assert!(other.is_some());
        assert!(q.try_take(&SNAPSHOT_COPIES, "us-west-2").is_none());
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..3 {
            let (q, order) = (q.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = q.take(&SNAPSHOT_COPIES, "us-west-2", false, 0).await;
                order.lock().unwrap().push(n);
                q.hold(&format!("job-{n}"), vec![slot]);
            }));
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await;
        assert!(
            order.lock().unwrap().is_empty(),
            "nobody gets a slot while both are taken"
        );
        q.hold("job-a", vec![a]);
        q.hold("job-b", vec![b]);
        q.release("job-a");
        q.release("job-b");
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1], "first come, first served");
        assert_eq!(q.in_use(&SNAPSHOT_COPIES, "us-west-2"), 2);
        q.release("job-0");
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        q.release("job-1");
        q.release("job-2");
        q.release("job-unknown");
        assert_eq!(q.in_use(&SNAPSHOT_COPIES, "us-west-2"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn larger_priorities_are_served_first_then_in_order_of_arrival() {
        let q = Arc::new(QuotaSlots::new(Quotas {
            overrides: vec![("backup_copies".into(), 1)],
        }));
        let first = q.take(&BACKUP_COPIES, "r", false, 0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, priority) in [("small", 8), ("big", 64), ("medium", 20), ("big-later", 64)] {
            let (q, order) = (q.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let slot = q.take(&BACKUP_COPIES, "r", false, priority).await;
                order.lock().unwrap().push(name);
                drop(slot);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec!["big", "big-later", "medium", "small"]);
    }

    #[tokio::test(start_paused = true)]
    async fn forced_slots_count_beyond_the_limit_and_a_cancelled_waiter_passes_its_turn() {
        let q = QuotaSlots::new(Quotas {
            overrides: vec![("backup_copies".into(), 1)],
        });
        assert_eq!(q.limit(&BACKUP_COPIES), 1);
        let a = q.take(&BACKUP_COPIES, "r", false, 0).await;
        let forced = q.take(&BACKUP_COPIES, "r", true, 0).await;
        assert_eq!(q.in_use(&BACKUP_COPIES, "r"), 2);
        // A waiter that gives up (its step timed out) does not keep the slot it was promised.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_secs(1), q.take(&BACKUP_COPIES, "r", false, 0)).await;
        assert!(waiting.is_err());
        drop(a);
        drop(forced);
        assert_eq!(q.in_use(&BACKUP_COPIES, "r"), 0);
        assert!(q.try_take(&BACKUP_COPIES, "r").is_some());
    }
}
