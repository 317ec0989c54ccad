//! What a run knows so far, rebuilt from journal entries: live runs and resumed runs apply the same events.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::journal::{Entry, ErrorInfo, Event, RunStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum StepStatus {
    Running,
    Succeeded(Map<String, Value>),
    Failed { error: ErrorInfo, route: String },
    Skipped(String),
}

impl StepStatus {
    pub fn name(&self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Succeeded(_) => "succeeded",
            StepStatus::Failed { .. } => "failed",
            StepStatus::Skipped(_) => "skipped",
        }
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self, StepStatus::Running)
    }
}

#[derive(Debug, Default, Clone)]
pub struct StepState {
    pub status: Option<StepStatus>,
    pub attempts: u32,
    pub failures: u32,
    pub recorded: Map<String, Value>,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub last_status: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct RunState {
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    pub digest: String,
    pub backend: String,
    pub lock: String,
    pub inputs: Map<String, Value>,
    pub regions: Map<String, Value>,
    pub steps: HashMap<String, StepState>,
    /// Step ids in the order they started.
    pub order: Vec<String>,
    pub finished: Option<(RunStatus, Option<String>)>,
    pub started_ms: i64,
    pub last_ms: i64,
    pub next_seq: u64,
}

impl RunState {
    pub fn replay(entries: &[Entry]) -> RunState {
        let mut s = RunState::default();
        for e in entries {
            s.apply(e);
        }
        s
    }

    pub fn apply(&mut self, entry: &Entry) {
        self.last_ms = entry.ts_ms;
        self.next_seq = entry.seq + 1;
        if let Some(step) = entry.event.step()
            && !self.steps.contains_key(step)
        {
            self.order.push(step.to_string());
        }
        match &entry.event {
            Event::RunStarted {
                run_id,
                workflow,
                file,
                digest,
                inputs,
                regions,
                backend,
                lock,
            } => {
                self.run_id = run_id.clone();
                self.workflow = workflow.clone();
                self.file = file.clone();
                self.digest = digest.clone();
                self.inputs = inputs.clone();
                self.regions = regions.clone();
                self.backend = backend.clone();
                self.lock = lock.clone();
                self.started_ms = entry.ts_ms;
            }
            Event::RunResumed { .. } => {}
            Event::StepStarted { step, .. } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Running);
                st.started_ms.get_or_insert(entry.ts_ms);
            }
            Event::StepSkipped { step, reason } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Skipped(reason.clone()));
                st.started_ms.get_or_insert(entry.ts_ms);
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::AttemptStarted { step, attempt } => self.step_mut(step).attempts = *attempt,
            Event::Recorded { step, key, value } => {
                self.step_mut(step).recorded.insert(key.clone(), value.clone());
            }
            Event::Polled { step, status, .. } => self.step_mut(step).last_status = Some(status.clone()),
            Event::AttemptFailed { step, .. } => self.step_mut(step).failures += 1,
            Event::StepSucceeded { step, outputs } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Succeeded(outputs.clone()));
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::StepFailed { step, error, route } => {
                let st = self.step_mut(step);
                st.status = Some(StepStatus::Failed {
                    error: error.clone(),
                    route: route.clone(),
                });
                st.finished_ms = Some(entry.ts_ms);
            }
            Event::RunFinished { status, error } => self.finished = Some((*status, error.clone())),
        }
    }

    fn step_mut(&mut self, id: &str) -> &mut StepState {
        self.steps.entry(id.to_string()).or_default()
    }

    pub fn status(&self, id: &str) -> Option<&StepStatus> {
        self.steps.get(id).and_then(|s| s.status.as_ref())
    }
}
