//! `drflow runs` and `drflow show`.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::Format;
use crate::engine::journal::Event;
use crate::engine::{self, StepStatus};
use crate::error::Error;
use crate::workflow::format_duration;

fn dur(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn runs(state_dir: &Path) -> Result<u8, Error> {
    let runs = engine::list_runs(state_dir)?;
    if runs.is_empty() {
        println!("no runs in {}", state_dir.display());
        return Ok(0);
    }
    println!(
        "{:<22} {:<20} {:<20} {:<8} {:<20} TOOK",
        "RUN", "WORKFLOW", "STATUS", "BACKEND", "STARTED"
    );
    for r in runs {
        let status = match (&r.finished, &r.waiting) {
            (Some((s, _)), _) => format!("{s:?}").to_lowercase(),
            (None, Some(_)) => "waiting for approval".into(),
            (None, None) => "unfinished".into(),
        };
        println!(
            "{:<22} {:<20} {:<20} {:<8} {:<20} {}",
            r.run_id,
            r.workflow,
            status,
            r.backend,
            when(r.started_ms),
            dur(r.last_ms - r.started_ms)
        );
    }
    Ok(0)
}

pub fn show(state_dir: &Path, run_id: &str, format: Format) -> Result<u8, Error> {
    let (state, entries) = engine::load_run(state_dir, run_id)?;
    let status = match (&state.finished, &state.waiting) {
        (Some((s, _)), _) => format!("{s:?}").to_lowercase(),
        (None, Some(step)) => format!(
            "waiting for approval at step `{step}` (`drflow approve {run_id}` or `drflow reject {run_id} --reason ...`)"
        ),
        (None, None) => "unfinished (resume it with `drflow resume`)".into(),
    };
    // Approval steps: what was asked and shown, and who decided.
    let approvals: Vec<Value> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::ApprovalRequested { step, message, plan } => Some(json!({
                "step": step, "event": "requested", "at": when(e.ts_ms), "message": message, "plan": plan,
            })),
            Event::ApprovalDecided { step, decision } => {
                let mut v = serde_json::to_value(decision).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("step".into(), json!(step));
                    m.insert("event".into(), json!("decided"));
                }
                Some(v)
            }
            _ => None,
        })
        .collect();
    let mut steps = Vec::new();
    for id in &state.order {
        let st = &state.steps[id];
        let action = entries.iter().find_map(|e| match &e.event {
            Event::StepStarted {
                step, action, region, ..
            } if step == id => Some((action.clone(), region.clone())),
            _ => None,
        });
        let failures: Vec<Value> = entries
            .iter()
            .filter_map(|e| match &e.event {
                Event::AttemptFailed {
                    step,
                    attempt,
                    error,
                    retry_in_ms,
                } if step == id => Some(json!({"attempt": attempt, "code": error.code, "message": error.message, "retry_in_ms": retry_in_ms})),
                _ => None,
            })
            .collect();
        let (outputs, error) = match &st.status {
            Some(StepStatus::Succeeded(o)) => (Value::Object(o.clone()), Value::Null),
            Some(StepStatus::Failed { error, .. }) => (Value::Null, Value::String(error.message.clone())),
            Some(StepStatus::Skipped(r)) => (Value::Null, Value::String(r.clone())),
            _ => (Value::Null, Value::Null),
        };
        steps.push(json!({
            "id": id,
            "action": action.as_ref().and_then(|a| a.0.clone()),
            "region": action.as_ref().and_then(|a| a.1.clone()),
            "status": st.status.as_ref().map_or("pending", StepStatus::name),
            "attempts": st.attempts,
            "failed_attempts": failures,
            "duration_ms": match (st.started_ms, st.finished_ms) { (Some(a), Some(b)) => Some(b - a), _ => None },
            "recorded": st.recorded,
            "outputs": outputs,
            "error": error,
        }));
    }
    if format == Format::Json {
        let doc = json!({
            "run_id": state.run_id, "workflow": state.workflow, "file": state.file, "backend": state.backend,
            "status": status, "error": state.finished.as_ref().and_then(|f| f.1.clone()),
            "inputs": state.inputs, "regions": state.regions,
            "started": when(state.started_ms), "duration_ms": state.last_ms - state.started_ms, "steps": steps,
            "waiting_for_approval": state.waiting, "approvals": approvals,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        return Ok(0);
    }
    println!("run      {}", state.run_id);
    println!("workflow {} ({})", state.workflow, state.file);
    println!("backend  {}", state.backend);
    println!("status   {status}");
    if let Some((_, Some(e))) = &state.finished {
        println!("error    {e}");
    }
    println!(
        "started  {}   took {}",
        when(state.started_ms),
        dur(state.last_ms - state.started_ms)
    );
    println!("inputs   {}", Value::Object(state.inputs.clone()));
    println!();
    for s in &steps {
        let d = s["duration_ms"].as_i64().map(dur).unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<10} {:>8}  attempts {}  {} {}",
            s["id"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            d,
            s["attempts"],
            s["action"].as_str().unwrap_or("group"),
            s["region"].as_str().map(|r| format!("in {r}")).unwrap_or_default()
        );
        for f in s["failed_attempts"].as_array().into_iter().flatten() {
            println!(
                "    attempt {} failed: {} ({}){}",
                f["attempt"],
                f["message"].as_str().unwrap_or(""),
                f["code"].as_str().unwrap_or(""),
                f["retry_in_ms"]
                    .as_u64()
                    .map(|ms| format!(", retried after {}", dur(ms as i64)))
                    .unwrap_or_default()
            );
        }
        if let Some(o) = s["outputs"].as_object().filter(|o| !o.is_empty()) {
            println!("    outputs: {}", Value::Object(o.clone()));
        }
        if let Some(e) = s["error"].as_str() {
            println!("    {e}");
        }
    }
    for a in &approvals {
        println!();
        match a["event"].as_str() {
            Some("requested") => {
                println!(
                    "approval requested at step `{}` ({}): {}",
                    a["step"].as_str().unwrap_or(""),
                    a["at"].as_str().unwrap_or(""),
                    a["message"].as_str().unwrap_or("")
                );
                if state.waiting.as_deref() == a["step"].as_str() {
                    for line in a["plan"].as_str().unwrap_or("").lines() {
                        println!("    {line}");
                    }
                }
            }
            _ => println!(
                "{} at step `{}` by {} ({}), {} at {}{}",
                if a["approved"] == json!(true) {
                    "approved"
                } else {
                    "rejected"
                },
                a["step"].as_str().unwrap_or(""),
                a["os_user"].as_str().unwrap_or(""),
                a["aws_arn"].as_str().unwrap_or(""),
                a["how"].as_str().unwrap_or(""),
                a["decided_at"].as_str().unwrap_or(""),
                a["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default()
            ),
        }
    }
    // A fleet: one line per item, and the failures by cause.
    let report = crate::report::build(&state, &entries, None);
    if let Some(f) = &report.fleet {
        println!();
        print!("{}", crate::report::fleet::markdown(f));
    }
    // What the rate limiter saw: the calls that were throttled or had to wait for a token.
    let busy: Vec<_> = report
        .rate_limits
        .iter()
        .filter(|(_, s)| s.throttled > 0 || s.waited_ms > 0)
        .collect();
    if !busy.is_empty() {
        println!();
        println!("AWS calls throttled or rate-limited:");
        for (op, s) in busy {
            println!(
                "  {op}: {} calls, {} throttled, waited {} for a token",
                s.calls,
                s.throttled,
                crate::workflow::format_duration(std::time::Duration::from_millis(s.waited_ms))
            );
        }
    }
    Ok(0)
}
