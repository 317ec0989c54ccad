//! `drflow check`: are the published AMIs fresh? For each protected instance and each region, the parameter
//! `PREFIX/INSTANCE_ID/ami` exists, names an AMI that exists and is `available` there, and that AMI is the newest
//! (or no older than a maximum age). Read-only: it calls only operations the table in `cloud::operations` marks as
//! changing nothing (a test reads the call log).
//!
//! It sits beside `session`: it builds no run and journals nothing; the command line gives it a client.

mod discover;
mod evaluate;
mod newest;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

pub use evaluate::{Newest, Status, Verdict, age_words, evaluate};
use newest::Known;
pub use newest::NewestSource;

use crate::cloud::{Cloud, CloudError, Image, Parameter};

/// Which instances are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    Instances(Vec<String>),
    /// Every instance (not terminated) with all these tags, in the primary region.
    Tags(BTreeMap<String, String>),
    /// Every instance an AWS Backup plan (in the primary region) selects.
    BackupPlan(String),
}

impl Targets {
    pub fn describe(&self) -> String {
        match self {
            Targets::Instances(ids) => format!("{} listed instance(s)", ids.len()),
            Targets::Tags(tags) => {
                let t: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("instances tagged {}", t.join(", "))
            }
            Targets::BackupPlan(id) => format!("instances of AWS Backup plan {id}"),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Request {
    pub targets: Targets,
    /// Region codes: where the instances run, and the DR region.
    pub primary: String,
    pub dr: String,
    /// Parameters are `PREFIX/INSTANCE_ID/ami`.
    pub prefix: String,
    pub max_age_secs: Option<i64>,
    pub newest: NewestSource,
}

impl Request {
    pub fn parameter(&self, instance_id: &str) -> String {
        format!("{}/{instance_id}/ami", self.prefix.trim_end_matches('/'))
    }

    fn regions(&self) -> [(&'static str, &str); 2] {
        [("primary", &self.primary), ("dr", &self.dr)]
    }
}

/// One instance in one region.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub instance_id: String,
    pub region: String,
    /// `primary` or `dr`.
    pub role: &'static str,
    pub parameter: String,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub newest: Option<Newest>,
}

/// Everything a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    /// Unix seconds.
    pub checked_at: i64,
    pub targets: String,
    pub max_age_secs: Option<i64>,
    /// Where the newest AMI was looked for (`none`, `backup`).
    pub newest_source: &'static str,
    /// The same, in words.
    pub newest_from: String,
    pub instances: usize,
    pub rows: Vec<Row>,
}

impl Report {
    /// How many rows have each status, worst first.
    pub fn counts(&self) -> Vec<(Status, usize)> {
        let mut counts: BTreeMap<Status, usize> = BTreeMap::new();
        for r in &self.rows {
            *counts.entry(r.verdict.status).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    pub fn all_fresh(&self) -> bool {
        self.rows.iter().all(|r| r.verdict.status == Status::Fresh)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The protected instances could not be found: nothing was checked.
    #[error("cannot list the protected instances ({targets}): {message}")]
    Discovery { targets: String, message: String },
}

/// Calls in flight at once (the shared rate limiter paces them further).
const CONCURRENCY: usize = 16;
/// DescribeImages ids per call.
const IMAGES_PER_CALL: usize = 100;
/// Attempts of one read: the first and two retries of throttling and other transient failures.
const ATTEMPTS: u32 = 3;

/// Checks every protected instance in both regions, at `now` (Unix seconds).
pub async fn run(req: &Request, cloud: &Cloud, now: i64) -> Result<Report, CheckError> {
    let instances = discover::instances(req, cloud)
        .await
        .map_err(|e| CheckError::Discovery {
            targets: req.targets.describe(),
            message: e,
        })?;
    let resource_arns = match req.newest.needs_resource_arns() {
        true => Some(
            discover::resource_arns(req, cloud, &instances)
                .await
                .map_err(|e| CheckError::Discovery {
                    targets: req.targets.describe(),
                    message: e,
                })?,
        ),
        false => None,
    };
    let mut rows = Vec::with_capacity(instances.len() * 2);
    for (role, region) in req.regions() {
        let params = parameters(req, cloud, region, &instances).await;
        let ids: Vec<String> = params
            .values()
            .filter_map(|p| p.as_ref().ok().and_then(Option::as_ref).map(|p| p.value.clone()))
            .collect();
        let images = images(cloud, region, ids).await;
        let newest = newest::lookup(&req.newest, cloud, region, role, &instances, resource_arns.as_ref()).await;
        for id in &instances {
            let parameter = req.parameter(id);
            let known = newest.get(id).cloned().unwrap_or(Ok(Known::default()));
            let verdict = match (&params[id], &images, &known) {
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => failed(e),
                (Ok(p), Ok(images), Ok(known)) => {
                    let image = p.as_ref().and_then(|p| images.get(&p.value)).map(|img| {
                        // A copy made by AWS Backup is as old as the backup it copies: its RPO counts from there.
                        let mut img = img.clone();
                        if let Some(created) = known.created.get(&img.image_id) {
                            img.creation_date = Some(*created);
                        }
                        img
                    });
                    let mut v = evaluate(p.as_ref(), image.as_ref(), known.newest.as_ref(), req.max_age_secs, now);
                    // Freshness was to be told by the newest recovery point, and there is none to tell it by.
                    if v.status == Status::Fresh && req.max_age_secs.is_none() && known.newest.is_none() {
                        v.status = Status::Stale;
                        v.reason = format!(
                            "no COMPLETED recovery point of the instance in {} to compare with: give --max-age",
                            req.newest.vault(role).unwrap_or("the vault")
                        );
                    }
                    v
                }
            };
            rows.push(Row {
                instance_id: id.clone(),
                region: region.to_string(),
                role,
                parameter,
                verdict,
                newest: known.ok().and_then(|k| k.newest),
            });
        }
    }
    rows.sort_by(|a, b| (&a.instance_id, a.role != "primary").cmp(&(&b.instance_id, b.role != "primary")));
    Ok(Report {
        format: "drflow-check/1",
        checked_at: now,
        targets: req.targets.describe(),
        max_age_secs: req.max_age_secs,
        newest_source: req.newest.name(),
        newest_from: req.newest.describe(),
        instances: instances.len(),
        rows,
    })
}

fn failed(message: &str) -> Verdict {
    Verdict {
        status: Status::Error,
        image_id: None,
        image_state: None,
        age_secs: None,
        matches_newest: None,
        reason: message.to_string(),
    }
}

/// Each instance's parameter in the region (`None`: it does not exist), or why it could not be read.
async fn parameters(
    req: &Request,
    cloud: &Cloud,
    region: &str,
    instances: &[String],
) -> HashMap<String, Result<Option<Parameter>, String>> {
    futures_util::stream::iter(instances.iter().map(|id| async move {
        let name = req.parameter(id);
        let got = retried(|| cloud.ssm.get_parameter(region, &name)).await;
        (id.clone(), got.map_err(|e| e.to_string()))
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await
}

/// The images that exist among `ids`, by id.
async fn images(cloud: &Cloud, region: &str, mut ids: Vec<String>) -> Result<HashMap<String, Image>, String> {
    ids.sort();
    ids.dedup();
    let mut found = HashMap::new();
    for chunk in ids.chunks(IMAGES_PER_CALL) {
        let images = retried(|| cloud.ec2.describe_images(region, chunk))
            .await
            .map_err(|e| e.to_string())?;
        found.extend(images.into_iter().map(|i| (i.image_id.clone(), i)));
    }
    Ok(found)
}

/// One read, tried again after 1 s and 2 s when it failed transiently (throttling, 5xx, a lost connection).
pub(crate) async fn retried<T, F, Fut>(mut call: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.kind.is_transient() && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
