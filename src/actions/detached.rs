//! An action run outside any run (`plan --check`'s discovery and previews, `drflow check`): nothing is journaled,
//! no one is asked to approve, and each try is cut at a timeout, throttling and other transient failures tried
//! again twice (1 s, then 2 s later).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{ActionError, Ctx, Recorder, RunInfo, approval};
use crate::cloud::Cloud;

/// Tries in all: the first and two retries of transient failures.
const ATTEMPTS: u32 = 3;

/// What an action records outside a run is forgotten: there is no earlier attempt to re-attach to.
struct Forget;

#[async_trait]
impl Recorder for Forget {
    async fn record(&self, _: &str, _: &Value) {}

    fn recorded(&self, _: &str) -> Option<Value> {
        None
    }
}

/// A context for `region` that journals nothing (`token` names the caller, e.g. `drflow-plan-check`).
pub fn ctx<'a>(cloud: &'a Cloud, region: &'a str, token: &'a str, base_dir: &'a Path, run: &'a RunInfo) -> Ctx<'a> {
    Ctx {
        cloud,
        region,
        token,
        recorder: &Forget,
        base_dir,
        run,
        approvals: &approval::NoApprovals,
    }
}

/// An action's checks before a run (`Action::gate`) for a step in region `name` (code `code`), made with that
/// region's credentials (`run.for_region`); `run` is the run's client with every role's.
pub async fn gate(
    action: &dyn super::Action,
    run: &Cloud,
    name: &str,
    code: &str,
    base_dir: &Path,
    known: &super::Values,
) -> Result<(), ActionError> {
    let info = RunInfo::default();
    let ctx = ctx(run.for_region(name), code, "drflow-gate", base_dir, &info);
    action.gate(&ctx, run, known).await
}

/// `call` until it succeeds, fails for good, or has been tried `ATTEMPTS` times; each try cut at `timeout`. The
/// error is the last one's words.
pub async fn retried<T, F, Fut>(timeout: Duration, mut call: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ActionError>>,
{
    let mut attempt = 1;
    loop {
        match tokio::time::timeout(timeout, call()).await {
            Ok(Ok(out)) => return Ok(out),
            Ok(Err(e)) if e.class().transient && attempt < ATTEMPTS => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "did not finish within {}",
                    crate::workflow::format_duration(timeout)
                ));
            }
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        attempt += 1;
    }
}
