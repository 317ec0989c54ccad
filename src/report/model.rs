//! The report of one run, built from its journal (and the workflow, when it is at hand, for step names and
//! which steps belong to `finally`). Pure data: `json`, `markdown` and `html` only render it.
//!
//! For a rehearsal (a run with an `ec2.verify_instance` step) it also measures:
//! - **RTO**: the launch's start (the `cloudformation.deploy_stack` step that launched the DR instance) → the
//!   verify step's success (the DR instance runs the DR AMI and passes its checks): what a failover from an
//!   existing AMI takes;
//! - the **pipeline** time: run start → that same verification (backup, copy, publish, launch, verify);
//! - **RPO**: the age, at that moment, of the *source* backup the DR AMI was copied from: the verify time minus the
//!   creation time of the source AMI in the primary region (not of the DR copy: an EC2 CopyImage is dated when it
//!   was copied). The source is found through the run's own lineage (the copy step's source image or recovery
//!   point) and its creation time from the `ec2.wait_image` step that waited for it; when either is unknown, there
//!   is no figure and `rpo_unknown` says why. Measured at the end of the run when the instance was never verified;
//! - what was left behind: a stack deployed by the run that no `cloudformation.delete_stack` step removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actions::{self, StepFacts};
use crate::cloud::limiter::CallStats;
use crate::cloud::{image_id_from_arn, region_from_arn};
use crate::engine::journal::{Entry, Event, RunStatus};
use crate::engine::{RunState, StepStatus};
use crate::workflow::{Role, Workflow, format_duration};

/// Bumped when a field changes meaning or disappears (adding fields keeps the version).
/// 2: `rehearsal.rto_ms` starts at the launch, not the run's start (the old figure is `pipeline_ms`), and
/// `rehearsal.rpo_ms` is the age of the source backup, not of the DR copy.
pub const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub run_id: String,
    pub workflow: String,
    pub file: String,
    pub backend: String,
    /// `succeeded`, `failed` or `unfinished` (interrupted: `drflow resume` continues it).
    pub status: String,
    pub error: Option<String>,
    /// The step that failed the run, and why.
    pub failure: Option<StepFailure>,
    pub started_at: String,
    pub started_ms: i64,
    /// Time of the last journal entry (the end, for a finished run).
    pub ended_at: String,
    pub ended_ms: i64,
    pub duration_ms: i64,
    pub duration: String,
    /// How often the run was resumed.
    pub resumes: u32,
    pub inputs: Map<String, Value>,
    pub regions: Map<String, Value>,
    pub steps: Vec<StepRow>,
    /// Present for rehearsals (runs with an `ec2.verify_instance` step).
    pub rehearsal: Option<Rehearsal>,
    pub created: Vec<Resource>,
    pub deleted: Vec<Resource>,
    /// Resources a rehearsal meant to delete and did not: they still exist (and cost money).
    pub left_behind: Vec<Resource>,
    /// One line for cron and CI: `REHEARSAL PASSED ...`, `REHEARSAL FAILED ...`, or `run ... succeeded`.
    pub summary: String,
    /// For a run with `for_each` items: one line per item, and the failures grouped by cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<super::fleet::Fleet>,
    /// Per AWS operation (`service:Name`): calls, throttling answers and time spent waiting for the client-side
    /// rate limiter (summed over the processes that finished the run).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, CallStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    pub step: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    pub id: String,
    pub name: Option<String>,
    /// `None` for groups (`parallel`, sequences).
    pub action: Option<String>,
    pub region: Option<String>,
    /// `steps` or `finally`.
    pub phase: String,
    /// 0 for top-level steps, 1 inside a group, ...
    pub depth: u32,
    /// `succeeded`, `failed`, `skipped`, `running` (unfinished run) or `not_run`.
    pub status: String,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    /// Offsets from the run's start.
    pub start_offset_ms: Option<i64>,
    pub end_offset_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub attempts: u32,
    pub failed_attempts: u32,
    pub error: Option<String>,
    pub skip_reason: Option<String>,
    /// The step's inputs as resolved when it started.
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
    /// Facts journaled mid-step (job ids, the stack operation): what is known of a step that did not finish.
    pub recorded: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rehearsal {
    /// `passed`, `failed` or `unfinished`.
    pub verdict: String,
    /// A failover (a run that launches and verifies the DR instance, with no teardown step): it keeps its stack,
    /// and its verdict line reads `FAILOVER ...`.
    #[serde(default)]
    pub failover: bool,
    /// Launch start → DR instance verified (running the DR AMI, checks passed): the launch step starting (the
    /// `cloudformation.deploy_stack` step that launched the DR instance) to the verify step's success. `None` when
    /// the instance was not verified or the run has no launch step.
    pub rto_ms: Option<i64>,
    pub rto: Option<String>,
    /// The step the RTO starts from, when it started, and that time as an offset from the run's start.
    pub launch_step: Option<String>,
    pub launch_started_at: Option<String>,
    pub launch_offset_ms: Option<i64>,
    /// Run start → DR instance verified: the whole pipeline (back up, copy, publish, launch, verify).
    pub pipeline_ms: Option<i64>,
    pub pipeline: Option<String>,
    /// Run start → the verify step first saw the instance `running`.
    pub running_after_ms: Option<i64>,
    /// Age of the source backup (the primary-region AMI the DR AMI was copied from) when the instance was
    /// verified (or at the end of the run, if it never was). `None` when the source's creation time is unknown.
    pub rpo_ms: Option<i64>,
    pub rpo: Option<String>,
    pub rpo_measured_at: Option<String>,
    /// Why there is no RPO figure, when there is none.
    pub rpo_unknown: Option<String>,
    /// The source of the DR AMI, found through the run's lineage: its AMI, region, recovery point (for an AWS
    /// Backup copy) and creation time (from the `ec2.wait_image` step that waited for it).
    pub source_ami: Option<String>,
    pub source_region: Option<String>,
    pub source_recovery_point: Option<String>,
    pub source_ami_created_at: Option<String>,
    pub dr_ami: Option<String>,
    /// The DR AMI's own creation time (for a copy, when it was copied).
    pub dr_ami_created_at: Option<String>,
    pub dr_region: Option<String>,
    pub dr_instance: Option<String>,
    pub verified_at: Option<String>,
    pub system_status: Option<String>,
    pub instance_status: Option<String>,
    pub stack: Option<String>,
    pub teardown: Option<Teardown>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    pub step: String,
    /// The step's status (`succeeded`, `failed`, `running`, `not_run`, ...).
    pub status: String,
    pub stack: Option<String>,
    pub region: Option<String>,
    /// Whether there was a stack to delete.
    pub deleted: Option<bool>,
    pub error: Option<String>,
}

/// What a step created or deleted, as its action tells it (`Action::effects`).
pub use crate::actions::{Resource, ResourceKind};

/// RFC 3339 UTC, seconds.
pub fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn dur(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

/// What the journal says about one step beyond `RunState`.
#[derive(Default)]
struct Started {
    action: Option<String>,
    region: Option<String>,
    inputs: Map<String, Value>,
}

/// The first `step_started` of every step, by id (one pass: a fleet has thousands of steps).
fn started_all(entries: &[Entry]) -> HashMap<&str, Started> {
    let mut out = HashMap::new();
    for e in entries {
        if let Event::StepStarted {
            step,
            action,
            region,
            inputs,
        } = &e.event
        {
            out.entry(step.as_str()).or_insert_with(|| Started {
                action: action.clone(),
                region: region.clone(),
                inputs: inputs.clone().unwrap_or_default(),
            });
        }
    }
    out
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        other => Some(crate::workflow::expr::to_text(other)),
    }
}

/// Builds the report. `wf` is the run's workflow, if at hand and unchanged (names, phases, steps not run).
pub fn build(state: &RunState, entries: &[Entry], wf: Option<&Workflow>) -> Report {
    let shifted = monotonic(entries);
    let replayed;
    let (state, entries) = match &shifted {
        Some(e) => {
            replayed = RunState::replay(e).unwrap_or_else(|_| state.clone());
            (&replayed, e.as_slice())
        }
        None => (state, entries),
    };
    let wf = wf.filter(|w| w.source.digest() == state.digest);
    let steps = rows(state, entries, wf);
    let status = match &state.finished {
        Some((RunStatus::Succeeded, _)) => "succeeded",
        Some((RunStatus::Failed, _)) => "failed",
        None => "unfinished",
    };
    let failed = |r: &&StepRow| r.status == "failed";
    let culprit = match status {
        "failed" => steps
            .iter()
            .filter(failed)
            .find(|r| r.action.is_some())
            .or_else(|| steps.iter().find(failed)),
        _ => None,
    };
    let failure = culprit.map(|r| {
        let code = match state.status(&r.id) {
            Some(StepStatus::Failed { error, .. }) => error.code.clone(),
            _ => String::new(),
        };
        StepFailure {
            step: r.id.clone(),
            code,
            message: r.error.clone().unwrap_or_default(),
        }
    });
    let resumes = entries
        .iter()
        .filter(|e| matches!(e.event, Event::RunResumed { .. }))
        .count() as u32;
    let (created, deleted) = resources(&steps);
    let is_rehearsal = steps.iter().any(|r| has_role(r, Role::Verify));
    // A failover launches and verifies like a rehearsal, but has no teardown: it keeps what it launched, so nothing is
    // "left behind".
    let is_failover = is_rehearsal
        && steps.iter().any(|r| has_role(r, Role::Launch))
        && !steps.iter().any(|r| has_role(r, Role::Teardown));
    let left_behind = if is_rehearsal && !is_failover {
        left_behind(&created, &deleted)
    } else {
        Vec::new()
    };
    let rehearsal = is_rehearsal.then(|| Rehearsal {
        failover: is_failover,
        ..rehearsal(state, entries, &steps, status)
    });
    let code_of = |id: &str| match state.status(id) {
        Some(StepStatus::Failed { error, .. }) => error.code.clone(),
        _ => String::new(),
    };
    let fleet = super::fleet::build(&steps, &code_of);
    let mut report = Report {
        format: FORMAT,
        run_id: state.run_id.clone(),
        workflow: state.workflow.clone(),
        file: state.file.clone(),
        backend: state.backend.clone(),
        status: status.to_string(),
        error: state.finished.as_ref().and_then(|f| f.1.clone()),
        failure,
        started_at: when(state.started_ms),
        started_ms: state.started_ms,
        ended_at: when(state.last_ms),
        ended_ms: state.last_ms,
        duration_ms: state.last_ms - state.started_ms,
        duration: dur(state.last_ms - state.started_ms),
        resumes,
        inputs: state.inputs.clone(),
        regions: state.regions.clone(),
        steps,
        rehearsal,
        created,
        deleted,
        left_behind,
        summary: String::new(),
        fleet,
        rate_limits: rate_limits(entries),
    };
    report.summary = summary(&report);
    report
}

fn rate_limits(entries: &[Entry]) -> BTreeMap<String, CallStats> {
    let mut out: BTreeMap<String, CallStats> = BTreeMap::new();
    for e in entries {
        if let Event::RateLimits { operations } = &e.event {
            for (op, s) in operations {
                let sum = out.entry(op.clone()).or_default();
                sum.calls += s.calls;
                sum.throttled += s.throttled;
                sum.waited_ms += s.waited_ms;
            }
        }
    }
    out
}

/// A resumed run's clock starts again at the wall time, which is *before* the journal's last entry when the run
/// was simulated (simulated time runs ahead). Such a resume is moved to the last entry's time, and everything after
/// it with it, so that durations, the timeline, the RTO and the RPO stay meaningful. `None` when nothing moves.
fn monotonic(entries: &[Entry]) -> Option<Vec<Entry>> {
    let mut shift = 0;
    let mut latest = i64::MIN;
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let mut e = e.clone();
        if matches!(e.event, Event::RunResumed { .. }) && e.ts_ms + shift < latest {
            shift = latest - e.ts_ms;
        }
        e.ts_ms += shift;
        latest = latest.max(e.ts_ms);
        out.push(e);
    }
    (shift != 0).then_some(out)
}

fn rows(state: &RunState, entries: &[Entry], wf: Option<&Workflow>) -> Vec<StepRow> {
    // (id, name, phase, depth) in workflow order, else in the order steps started.
    let mut layout: Vec<(String, Option<String>, &'static str, u32)> = Vec::new();
    if let Some(wf) = wf {
        fn walk(
            steps: &[crate::workflow::Step],
            phase: &'static str,
            depth: u32,
            out: &mut Vec<(String, Option<String>, &'static str, u32)>,
        ) {
            for s in steps {
                out.push((s.id.clone(), s.name.clone(), phase, depth));
                // The steps of a `for_each` appear once per item, under their journal ids (`GROUP[KEY].STEP`).
                if let crate::workflow::StepKind::Parallel(c) | crate::workflow::StepKind::Sequence(c) = &s.kind {
                    walk(c, phase, depth + 1, out);
                }
            }
        }
        walk(&wf.steps, "steps", 0, &mut layout);
        walk(&wf.finally, "finally", 0, &mut layout);
    }
    let mut known: HashSet<String> = layout.iter().map(|(id, ..)| id.clone()).collect();
    for id in &state.order {
        if known.insert(id.clone()) {
            layout.push((id.clone(), None, "steps", 0));
        }
    }
    let mut started_all = started_all(entries);
    let offset = |t: Option<i64>| t.map(|t| t - state.started_ms);
    layout
        .into_iter()
        .map(|(id, name, phase, depth)| {
            let st = state.steps.get(&id).cloned().unwrap_or_default();
            let started = started_all.remove(id.as_str()).unwrap_or_default();
            let action = started.action.or_else(|| {
                wf.and_then(|w| w.find(&id))
                    .and_then(|s| s.action())
                    .map(|a| a.action.name.to_string())
            });
            let (status, error, skip_reason, outputs) = match &st.status {
                Some(StepStatus::Succeeded(o)) => ("succeeded", None, None, o.clone()),
                Some(StepStatus::Failed { error, .. }) => ("failed", Some(error.message.clone()), None, Map::new()),
                Some(StepStatus::Skipped(r)) => ("skipped", None, Some(r.clone()), Map::new()),
                Some(StepStatus::Running) => ("running", None, None, Map::new()),
                None => ("not_run", None, None, Map::new()),
            };
            StepRow {
                id,
                name,
                action,
                region: started.region,
                phase: phase.to_string(),
                depth,
                status: status.to_string(),
                started_ms: st.started_ms,
                ended_ms: st.finished_ms,
                start_offset_ms: offset(st.started_ms),
                end_offset_ms: offset(st.finished_ms),
                duration_ms: st.started_ms.zip(st.finished_ms).map(|(a, b)| b - a),
                attempts: st.attempts,
                failed_attempts: st.failures,
                error,
                skip_reason,
                inputs: started.inputs,
                outputs,
                recorded: st.recorded,
            }
        })
        .collect()
}

/// An output of the step, else a fact it recorded.
fn out<'a>(r: &'a StepRow, key: &str) -> Option<&'a Value> {
    r.outputs.get(key).or_else(|| r.recorded.get(key))
}

fn input<'a>(r: &'a StepRow, key: &str) -> Option<&'a Value> {
    r.inputs.get(key)
}

/// The role of a step's action in a rehearsal (launch, verify, a link of the AMI's lineage, ...).
fn role(r: &StepRow) -> Option<Role> {
    r.action
        .as_deref()
        .and_then(|a| actions::catalog().find(a))
        .and_then(|s| s.role)
}

fn has_role(r: &StepRow, role_: Role) -> bool {
    role(r) == Some(role_)
}

/// What the run created and deleted: each step's action says what its step did.
fn resources(steps: &[StepRow]) -> (Vec<Resource>, Vec<Resource>) {
    let mut created = Vec::new();
    let mut deleted = Vec::new();
    for r in steps {
        let Some(spec) = r.action.as_deref().and_then(|a| actions::catalog().find(a)) else {
            continue;
        };
        let facts = StepFacts {
            id: &r.id,
            region: r.region.as_deref(),
            succeeded: r.status == "succeeded",
            status: &r.status,
            inputs: &r.inputs,
            outputs: &r.outputs,
            recorded: &r.recorded,
        };
        let effects = actions::of(spec).effects(&facts, &created);
        created.extend(effects.created);
        deleted.extend(effects.deleted);
    }
    (created, deleted)
}

/// Stacks (and their instances) the run deployed and did not delete. A delete step that succeeded with
/// `deleted: false` found nothing to delete, which also means nothing is left.
fn left_behind(created: &[Resource], deleted: &[Resource]) -> Vec<Resource> {
    let mut out = Vec::new();
    for stack in created.iter().filter(|c| c.kind == ResourceKind::Stack) {
        let gone = deleted
            .iter()
            .any(|d| d.kind == stack.kind && d.id == stack.id && d.region == stack.region);
        if gone {
            continue;
        }
        out.push(stack.clone());
        let in_stack = format!(" of stack {}", stack.id);
        out.extend(
            created
                .iter()
                .filter(|c| {
                    c.kind == ResourceKind::Instance
                        && c.region == stack.region
                        && c.detail.as_deref().is_some_and(|d| d.ends_with(&in_stack))
                })
                .cloned(),
        );
    }
    out
}

fn rehearsal(state: &RunState, entries: &[Entry], steps: &[StepRow], status: &str) -> Rehearsal {
    let verify = steps.iter().find(|r| has_role(r, Role::Verify));
    let verified = verify.filter(|v| v.status == "succeeded");
    let verified_ms = verified.and_then(|v| v.ended_ms);
    let running_ms = verify.and_then(|v| {
        entries.iter().find_map(|e| match &e.event {
            Event::Recorded { step, key, .. } if *step == v.id && key == "running_at" => Some(e.ts_ms),
            _ => None,
        })
    });
    let dr_ami = verify.and_then(|v| text(out(v, "image_id")).or_else(|| text(input(v, "image_id"))));
    let dr_region = verify.and_then(|v| v.region.clone());
    let dr_instance = verify.and_then(|v| text(out(v, "instance_id")).or_else(|| text(input(v, "instance_id"))));
    let dr_ami_created_ms = dr_ami
        .as_deref()
        .and_then(|ami| created_ms(steps, ami, dr_region.as_deref()));

    // RTO: from the start of the launch of the DR instance to its verification.
    let launch = launch_step(steps, verify, dr_instance.as_deref());
    let launch_ms = launch.and_then(|l| l.started_ms);
    let rto_ms = verified_ms.zip(launch_ms).map(|(v, l)| (v - l).max(0));
    let pipeline_ms = verified_ms.map(|t| t - state.started_ms);

    // RPO: the age of the source backup the DR AMI was copied from.
    let rpo_at = verified_ms.unwrap_or(state.last_ms);
    let source = match &dr_ami {
        Some(ami) => source_of(steps, ami, dr_region.as_deref()),
        None if verify.is_some_and(|v| v.started_ms.is_none()) => {
            Err("the verify step did not run, so the DR AMI is unknown".to_string())
        }
        None => Err("the verify step names no DR AMI".to_string()),
    };
    let (source, source_created_ms, rpo_unknown) = match source {
        Ok(src) => match created_ms(steps, &src.ami, src.region.as_deref()) {
            Some(c) => (Some(src), Some(c), None),
            None => {
                let why = format!(
                    "the creation time of the source AMI {}{} is unknown: no `ec2.wait_image` step of this run \
                     reported it",
                    src.ami,
                    src.region.as_deref().map(|r| format!(" in {r}")).unwrap_or_default()
                );
                (Some(src), None, Some(why))
            }
        },
        Err(why) => (None, None, Some(why)),
    };
    let rpo_ms = source_created_ms.map(|c| (rpo_at - c).max(0));

    let teardown = steps
        .iter()
        .rev()
        .find(|r| has_role(r, Role::Teardown))
        .map(|t| Teardown {
            step: t.id.clone(),
            status: t.status.clone(),
            stack: text(input(t, "stack_name")),
            region: t.region.clone(),
            deleted: out(t, "deleted").and_then(Value::as_bool),
            error: t.error.clone(),
        });
    let verdict = match status {
        "unfinished" => "unfinished",
        "succeeded" if verified.is_some() => "passed",
        _ => "failed",
    };
    Rehearsal {
        failover: false,
        verdict: verdict.to_string(),
        rto_ms,
        rto: rto_ms.map(dur),
        launch_step: launch.map(|l| l.id.clone()),
        launch_started_at: launch_ms.map(when),
        launch_offset_ms: launch.and_then(|l| l.start_offset_ms),
        pipeline_ms,
        pipeline: pipeline_ms.map(dur),
        running_after_ms: running_ms.map(|t| t - state.started_ms),
        rpo_ms,
        rpo: rpo_ms.map(dur),
        rpo_measured_at: rpo_ms.map(|_| when(rpo_at)),
        rpo_unknown,
        source_ami: source.as_ref().map(|s| s.ami.clone()),
        source_region: source.as_ref().and_then(|s| s.region.clone()),
        source_recovery_point: source.as_ref().and_then(|s| s.recovery_point.clone()),
        source_ami_created_at: source_created_ms.map(when),
        dr_ami,
        dr_ami_created_at: dr_ami_created_ms.map(when),
        dr_region,
        dr_instance,
        verified_at: verified_ms.map(when),
        system_status: verified.and_then(|v| text(out(v, "system_status"))),
        instance_status: verified.and_then(|v| text(out(v, "instance_status"))),
        stack: launch.and_then(|l| text(input(l, "stack_name"))),
        teardown,
    }
}

/// The `cloudformation.deploy_stack` step that launched the DR instance: the one whose stack outputs name it, else
/// the last one that started before the verify step did (or at all, when there is no verify step start).
fn launch_step<'a>(steps: &'a [StepRow], verify: Option<&StepRow>, instance: Option<&str>) -> Option<&'a StepRow> {
    let deploys = || {
        steps
            .iter()
            .filter(|r| has_role(r, Role::Launch) && r.started_ms.is_some())
    };
    let named = instance.and_then(|i| {
        deploys().find(|r| match out(r, "outputs") {
            Some(Value::Object(o)) => o.values().any(|v| v.as_str() == Some(i)),
            _ => false,
        })
    });
    let verify_start = verify.and_then(|v| v.started_ms).unwrap_or(i64::MAX);
    named.or_else(|| {
        deploys()
            .filter(|r| r.started_ms.is_some_and(|t| t <= verify_start))
            .max_by_key(|r| r.started_ms)
    })
}

/// Where an AMI came from, as far as the run shows it.
#[derive(Debug)]
struct Source {
    ami: String,
    region: Option<String>,
    /// The recovery point copied, for an AWS Backup copy.
    recovery_point: Option<String>,
}

/// The creation time (ms) of an AMI, as reported by a successful `ec2.wait_image` step of the run that waited for
/// it (in `region`, when known).
fn created_ms(steps: &[StepRow], ami: &str, region: Option<&str>) -> Option<i64> {
    steps
        .iter()
        .filter(|r| has_role(r, Role::WaitImage) && r.status == "succeeded")
        .filter(|r| region.is_none() || r.region.is_none() || r.region.as_deref() == region)
        .find(|r| text(out(r, "image_id")).as_deref() == Some(ami))
        .and_then(|r| out(r, "creation_date"))
        .and_then(Value::as_i64)
        .map(|s| s * 1000)
}

/// The step of the run that made `ami` (in `region`, when known): a backup, an image, or a copy.
fn maker<'a>(steps: &'a [StepRow], ami: &str, region: Option<&str>) -> Option<&'a StepRow> {
    steps.iter().find(|r| {
        let made_here = match role(r) {
            Some(Role::BackupImage | Role::CreateImage | Role::CopyImage) => r.region.clone(),
            Some(Role::WaitCopy) => text(out(r, "region"))
                .or_else(|| text(out(r, "recovery_point_arn")).and_then(|a| region_from_arn(&a).map(str::to_string))),
            _ => return false,
        };
        text(out(r, "image_id")).as_deref() == Some(ami)
            && (region.is_none() || made_here.is_none() || made_here.as_deref() == region)
    })
}

/// The source backup of the DR AMI: its lineage followed back through the run's copy steps (an `ec2.copy_image`
/// step's `source_image_id`; the recovery point a `backup.start_copy_job` step copied, for the
/// `backup.wait_copy_job` step that waited for that job) to an AMI the run did not copy: one it backed up or
/// created, or one it copied from outside the run. `Err` says why it is unknown.
fn source_of(steps: &[StepRow], dr_ami: &str, dr_region: Option<&str>) -> Result<Source, String> {
    let mut at = Source {
        ami: dr_ami.to_string(),
        region: dr_region.map(str::to_string),
        recovery_point: None,
    };
    // A lineage longer than the run's steps would be a loop.
    for copies in 0..=steps.len() {
        let Some(step) = maker(steps, &at.ami, at.region.as_deref()) else {
            if copies == 0 {
                return Err(format!(
                    "this run did not make the DR AMI {dr_ami}, so which backup it was copied from is unknown"
                ));
            }
            return Ok(at);
        };
        match role(step) {
            Some(Role::CopyImage) => {
                let Some(ami) = text(input(step, "source_image_id")) else {
                    return Err(format!("the copy step `{}` names no source image", step.id));
                };
                at = Source {
                    ami,
                    region: text(input(step, "source_region")),
                    recovery_point: None,
                };
            }
            Some(Role::WaitCopy) => {
                let job = text(input(step, "job_id"));
                let start = steps
                    .iter()
                    .find(|r| has_role(r, Role::StartCopy) && job.is_some() && text(out(r, "job_id")) == job);
                let Some(start) = start else {
                    return Err(format!(
                        "no `backup.start_copy_job` step of this run started the copy job {} that step `{}` waited for",
                        job.as_deref().unwrap_or("?"),
                        step.id
                    ));
                };
                let Some(arn) = text(input(start, "recovery_point_arn")) else {
                    return Err(format!("the copy step `{}` names no recovery point", start.id));
                };
                let Some(ami) = image_id_from_arn(&arn) else {
                    return Err(format!(
                        "the recovery point {arn} copied by step `{}` is not an EC2 image",
                        start.id
                    ));
                };
                at = Source {
                    ami: ami.to_string(),
                    region: region_from_arn(&arn)
                        .map(str::to_string)
                        .or_else(|| start.region.clone()),
                    recovery_point: Some(arn.clone()),
                };
            }
            // A backup or an image of the instance: the source itself.
            _ => return Ok(at),
        }
    }
    Err(format!("the lineage of the DR AMI {dr_ami} loops"))
}

/// The one-line verdict (the last line `drflow run` prints for a rehearsal).
fn summary(r: &Report) -> String {
    let Some(h) = &r.rehearsal else {
        return format!("run {} {} {}", r.workflow, r.run_id, r.status);
    };
    let stacks: Vec<String> = r
        .left_behind
        .iter()
        .filter(|x| x.kind == ResourceKind::Stack)
        .map(|x| format!("stack {} in {}", x.id, x.region.as_deref().unwrap_or("?")))
        .collect();
    let left = match (stacks.is_empty(), r.status.as_str()) {
        (true, _) => String::new(),
        // Not torn down *yet*: resuming the run runs its teardown.
        (false, "unfinished") => format!(" (still up until the teardown runs: {})", stacks.join(", ")),
        (false, _) => format!(" LEFT BEHIND: {}", stacks.join(", ")),
    };
    if h.failover {
        return match h.verdict.as_str() {
            "passed" => format!(
                "FAILOVER DONE {} run={} rto={} pipeline={} instance={}",
                r.workflow,
                r.run_id,
                h.rto.as_deref().unwrap_or("unknown"),
                h.pipeline.as_deref().unwrap_or("unknown"),
                h.dr_instance.as_deref().unwrap_or("unknown")
            ),
            "unfinished" => format!(
                "FAILOVER UNFINISHED {} run={}: `drflow show {}` says where it stopped",
                r.workflow, r.run_id, r.run_id
            ),
            _ => format!(
                "FAILOVER FAILED {} run={} {}",
                r.workflow,
                r.run_id,
                match &r.failure {
                    Some(f) => format!("step={}: {}", f.step, one_line(&f.message)),
                    None => "the DR instance was not verified".to_string(),
                }
            ),
        };
    }
    match h.verdict.as_str() {
        "passed" => format!(
            "REHEARSAL PASSED {} run={} rto={} rpo={} pipeline={}{left}",
            r.workflow,
            r.run_id,
            h.rto.as_deref().unwrap_or("unknown"),
            h.rpo.as_deref().unwrap_or("unknown"),
            h.pipeline.as_deref().unwrap_or("unknown")
        ),
        "unfinished" => format!(
            "REHEARSAL INTERRUPTED {} run={}: resume it with: drflow resume {}{left}",
            r.workflow, r.run_id, r.run_id
        ),
        _ => {
            let why = match &r.failure {
                Some(f) => format!("step={}: {}", f.step, one_line(&f.message)),
                None => "the DR instance was not verified".to_string(),
            };
            format!("REHEARSAL FAILED {} run={} {why}{left}", r.workflow, r.run_id)
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
