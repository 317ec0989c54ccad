//! Batched job polls: the waits of a fleet each poll one backup job (DescribeBackupJob) or copy job
//! (DescribeCopyJob). Polls of one kind for the same region that arrive within a short gathering window share one
//! ListBackupJobs / ListCopyJobs (filtered by creation time: the earliest of theirs), which answers up to 1,000 jobs
//! a page; each caller gets its own job. A job the list does not show (yet: the lists are eventually consistent)
//! is described alone, and so is a job whose creation time is not known yet (its first poll) or a batch too small
//! to be worth a list.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::batch::{Gathering, answer};
use super::limiter::Limiter;
use super::{Backup, BackupJob, CloudError, CopyJob};

/// How long a batch waits for more callers: small against the seconds to minutes between a wait's polls.
const GATHER: Duration = Duration::from_millis(1000);
/// The fewest polls worth a list instead of a describe each.
const LIST_MIN: usize = 3;

type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, CloudError>> + Send + 'a>>;
type Page<J> = (Vec<J>, Option<String>);

/// A kind of job a wait polls: how to describe one, how to list a page of them, and what identifies them.
pub(crate) trait JobKind: Send + Sync + 'static {
    type Job: Clone + Send + 'static;
    const DESCRIBE: (&'static str, &'static str);
    const LIST: (&'static str, &'static str);
    fn id(job: &Self::Job) -> &str;
    fn created(job: &Self::Job) -> Option<i64>;
    fn describe<'a>(backup: &'a dyn Backup, region: &'a str, id: &'a str) -> Call<'a, Self::Job>;
    fn list<'a>(
        backup: &'a dyn Backup,
        region: &'a str,
        after: i64,
        token: Option<&'a str>,
    ) -> Call<'a, Page<Self::Job>>;
}

/// Backup jobs: DescribeBackupJob, batched as ListBackupJobs.
pub(crate) struct BackupJobs;

impl JobKind for BackupJobs {
    type Job = BackupJob;
    const DESCRIBE: (&'static str, &'static str) = ("backup", "DescribeBackupJob");
    const LIST: (&'static str, &'static str) = ("backup", "ListBackupJobs");
    fn id(job: &BackupJob) -> &str {
        &job.job_id
    }
    fn created(job: &BackupJob) -> Option<i64> {
        job.creation_date
    }
    fn describe<'a>(backup: &'a dyn Backup, region: &'a str, id: &'a str) -> Call<'a, BackupJob> {
        backup.describe_backup_job(region, id)
    }
    fn list<'a>(
        backup: &'a dyn Backup,
        region: &'a str,
        after: i64,
        token: Option<&'a str>,
    ) -> Call<'a, Page<BackupJob>> {
        backup.list_backup_jobs(region, after, token)
    }
}

/// Copy jobs: DescribeCopyJob, batched as ListCopyJobs.
pub(crate) struct CopyJobs;

impl JobKind for CopyJobs {
    type Job = CopyJob;
    const DESCRIBE: (&'static str, &'static str) = ("backup", "DescribeCopyJob");
    const LIST: (&'static str, &'static str) = ("backup", "ListCopyJobs");
    fn id(job: &CopyJob) -> &str {
        &job.job_id
    }
    fn created(job: &CopyJob) -> Option<i64> {
        job.creation_date
    }
    fn describe<'a>(backup: &'a dyn Backup, region: &'a str, id: &'a str) -> Call<'a, CopyJob> {
        backup.describe_copy_job(region, id)
    }
    fn list<'a>(
        backup: &'a dyn Backup,
        region: &'a str,
        after: i64,
        token: Option<&'a str>,
    ) -> Call<'a, Page<CopyJob>> {
        backup.list_copy_jobs_since(region, after, token)
    }
}

struct Waiter<J> {
    job_id: String,
    created: i64,
    answer: oneshot::Sender<Result<J, CloudError>>,
}

pub(crate) struct JobBatches<K: JobKind> {
    open: Gathering<Waiter<K::Job>>,
    /// Job id → its CreationDate (Unix seconds), from earlier answers.
    created: Mutex<HashMap<String, i64>>,
}

impl<K: JobKind> Default for JobBatches<K> {
    fn default() -> Self {
        JobBatches {
            open: Gathering::default(),
            created: Mutex::default(),
        }
    }
}

impl<K: JobKind> JobBatches<K> {
    pub(crate) async fn describe(
        self: &Arc<Self>,
        backup: &Arc<dyn Backup>,
        limiter: &Arc<Limiter>,
        region: &str,
        job_id: &str,
    ) -> Result<K::Job, CloudError> {
        let known = self.lock_created().get(job_id).copied();
        let Some(created) = known else {
            return self.describe_alone(backup, limiter, region, job_id).await;
        };
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            job_id: job_id.to_string(),
            created,
            answer: tx,
        };
        if self.open.join(region, waiter) {
            let (me, backup, limiter, region) = (self.clone(), backup.clone(), limiter.clone(), region.to_string());
            tokio::spawn(async move { me.send(&backup, &limiter, &region).await });
        }
        answer(rx, K::DESCRIBE, region).await
    }

    fn lock_created(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.created.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, job: &K::Job) {
        if let Some(c) = K::created(job) {
            self.lock_created().insert(K::id(job).to_string(), c);
        }
    }

    async fn describe_alone(
        &self,
        backup: &Arc<dyn Backup>,
        limiter: &Limiter,
        region: &str,
        job_id: &str,
    ) -> Result<K::Job, CloudError> {
        limiter.acquire(region, K::DESCRIBE.0, K::DESCRIBE.1).await;
        let job = limiter
            .send(region, K::DESCRIBE, K::describe(backup.as_ref(), region, job_id))
            .await?;
        self.remember(&job);
        Ok(job)
    }

    async fn send(&self, backup: &Arc<dyn Backup>, limiter: &Limiter, region: &str) {
        tokio::time::sleep(GATHER).await;
        let waiters = self.open.take(region);
        // A list pages through every job created since the earliest of ours (ours and others'): worth it only when
        // it answers more polls than the pages it takes, twice over.
        let after = waiters.iter().map(|w| w.created).min().unwrap_or(0);
        let known_since = self.lock_created().values().filter(|c| **c >= after).count();
        let pages = known_since.div_ceil(1000).max(1);
        if waiters.len() < LIST_MIN.max(2 * pages) {
            for w in waiters {
                let answer = self.describe_alone(backup, limiter, region, &w.job_id).await;
                let _ = w.answer.send(answer);
            }
            return;
        }
        let mut wanted: HashMap<String, Waiter<K::Job>> = waiters.into_iter().map(|w| (w.job_id.clone(), w)).collect();
        // Other jobs of the account may share the pages: a page more than ours fill, then each alone.
        let max_pages = pages + 1;
        let mut token: Option<String> = None;
        for _ in 0..max_pages {
            limiter.acquire(region, K::LIST.0, K::LIST.1).await;
            let page = limiter
                .send(
                    region,
                    K::LIST,
                    K::list(backup.as_ref(), region, after, token.as_deref()),
                )
                .await;
            match page {
                Ok((jobs, next)) => {
                    for job in jobs {
                        self.remember(&job);
                        if let Some(w) = wanted.remove(K::id(&job)) {
                            let _ = w.answer.send(Ok(job));
                        }
                    }
                    token = next;
                    if token.is_none() || wanted.is_empty() {
                        break;
                    }
                }
                // A throttle or 5xx is every caller's: each retries by its own policy.
                Err(e) if e.kind.is_transient() => {
                    for (_, w) in wanted.drain() {
                        let _ = w.answer.send(Err(e.clone()));
                    }
                    return;
                }
                // Anything else (say, no permission to list): each asks alone.
                Err(_) => break,
            }
        }
        for (_, w) in wanted {
            let answer = self.describe_alone(backup, limiter, region, &w.job_id).await;
            let _ = w.answer.send(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cloud::JobState;
    use crate::cloud::sim::testutil::{EAST, backup_req};

    #[tokio::test(start_paused = true)]
    async fn polls_of_many_jobs_share_one_list_and_each_gets_its_own_job() {
        let yaml = (1..=12)
            .map(|n| format!("  - {{id: i-0ccccccccccccccc{n:x}, region: us-east-1}}\n"))
            .collect::<String>();
        let sim = crate::cloud::sim::Sim::new(
            crate::cloud::sim::Scenario::from_yaml_str(&format!("instances:\n{yaml}"), None).unwrap(),
        );
        let cloud = sim.cloud().limited();
        let mut ids = Vec::new();
        for n in 1..=12 {
            let mut req = backup_req(&format!("t{n}"));
            req.resource_arn = req
                .resource_arn
                .replace("i-0123456789abcdef0", &format!("i-0ccccccccccccccc{n:x}"));
            ids.push(cloud.backup.start_backup_job(EAST, &req).await.unwrap());
        }
        let count = |op: &str| sim.calls().iter().filter(|c| c.operation == op).count();
        let poll_all = |ids: Vec<String>| {
            let handles: Vec<_> = ids
                .into_iter()
                .map(|id| {
                    let c = cloud.clone();
                    tokio::spawn(async move { (id.clone(), c.backup.describe_backup_job(EAST, &id).await.unwrap()) })
                })
                .collect();
            async move {
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap());
                }
                out
            }
        };
        // The first poll of each job describes it (its creation time is not known yet).
        for (id, job) in poll_all(ids.clone()).await {
            assert_eq!(job.job_id, id);
        }
        assert_eq!((count("DescribeBackupJob"), count("ListBackupJobs")), (12, 0));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        // Then twelve polls at once: one list, each its own job, RUNNING.
        for (id, job) in poll_all(ids.clone()).await {
            assert_eq!((job.job_id.as_str(), job.state), (id.as_str(), JobState::Running));
            assert!(job.percent_done.is_some());
        }
        assert_eq!((count("DescribeBackupJob"), count("ListBackupJobs")), (12, 1));
        // Two at once: not worth a list.
        poll_all(ids[..2].to_vec()).await;
        assert_eq!((count("DescribeBackupJob"), count("ListBackupJobs")), (14, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn polls_of_many_copy_jobs_share_one_list_copy_jobs() {
        use crate::cloud::StartCopyJob;
        use crate::cloud::sim::testutil::{WEST, role};
        let yaml = (1..=12)
            .map(|n| format!("  - {{id: i-0ccccccccccccccc{n:x}, region: us-east-1}}\n"))
            .collect::<String>();
        let sim = crate::cloud::sim::Sim::new(
            crate::cloud::sim::Scenario::from_yaml_str(&format!("instances:\n{yaml}"), None).unwrap(),
        );
        let cloud = sim.cloud().limited();
        let mut backups = Vec::new();
        for n in 1..=12 {
            let mut req = backup_req(&format!("t{n}"));
            req.resource_arn = req
                .resource_arn
                .replace("i-0123456789abcdef0", &format!("i-0ccccccccccccccc{n:x}"));
            backups.push(cloud.backup.start_backup_job(EAST, &req).await.unwrap());
        }
        tokio::time::sleep(std::time::Duration::from_secs(6 * 3600)).await;
        let mut copies = Vec::new();
        for (n, job) in backups.iter().enumerate() {
            let done = cloud.backup.describe_backup_job(EAST, job).await.unwrap();
            assert_eq!(done.state, JobState::Completed);
            let req = StartCopyJob {
                recovery_point_arn: done.recovery_point_arn.unwrap(),
                source_vault: "Default".into(),
                destination_vault_arn: format!("arn:aws:backup:{WEST}:123456789012:backup-vault:Default"),
                iam_role_arn: role(),
                idempotency_token: format!("c{n}"),
                lifecycle: None,
            };
            copies.push(cloud.backup.start_copy_job(EAST, &req).await.unwrap());
        }
        let count = |op: &str| sim.calls().iter().filter(|c| c.operation == op).count();
        let poll_all = |ids: Vec<String>| {
            let handles: Vec<_> = ids
                .into_iter()
                .map(|id| {
                    let c = cloud.clone();
                    tokio::spawn(async move { (id.clone(), c.backup.describe_copy_job(EAST, &id).await.unwrap()) })
                })
                .collect();
            async move {
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap());
                }
                out
            }
        };
        // First polls describe (creation times unknown), then twelve at once share one list.
        poll_all(copies.clone()).await;
        assert_eq!((count("DescribeCopyJob"), count("ListCopyJobs")), (12, 0));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        for (id, job) in poll_all(copies.clone()).await {
            assert_eq!((job.job_id.as_str(), job.state), (id.as_str(), JobState::Running));
        }
        assert_eq!((count("DescribeCopyJob"), count("ListCopyJobs")), (12, 1));
    }
}
