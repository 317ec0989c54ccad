//! Batched DescribeImages: the AMI waits of a fleet poll one image each, at nearly the same moments. Calls for the
//! same region that arrive within a short gathering window (or while the batch waits for its rate-limiter token)
//! share one DescribeImages call with all their ids; each caller gets the images it asked for. A batch runs as a
//! task of its own, so a caller that gives up (a timeout) does not strand the others.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::limiter::Limiter;
use super::{CloudError, Ec2, Image};

/// How long a batch waits for more callers before it asks for a token: a second, small against the 15 s and more
/// between the polls of a wait, and enough to gather the waits of a fleet whose calls the rate limiter spread out
/// (on the simulator, DescribeImages per instance drops from 4.0 to 0.6).
const GATHER: Duration = Duration::from_millis(1000);
/// Ids per call (DescribeImages documents no maximum; this keeps requests small).
const MAX_IDS: usize = 200;

const DESCRIBE: (&str, &str) = ("ec2", "DescribeImages");

type Answer = Result<Vec<Image>, CloudError>;

struct Waiter {
    ids: Vec<String>,
    answer: oneshot::Sender<Answer>,
}

/// Callers gathered per region for the next batched call (shared by the batches of images and of backup jobs).
pub(super) struct Gathering<W> {
    open: Mutex<HashMap<String, Vec<W>>>,
}

impl<W> Default for Gathering<W> {
    fn default() -> Self {
        Gathering {
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl<W> Gathering<W> {
    /// Adds a caller to the region's open batch; `true` for the first, which starts the batch.
    pub(super) fn join(&self, region: &str, waiter: W) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let batch = open.entry(region.to_string()).or_default();
        batch.push(waiter);
        batch.len() == 1
    }

    /// The region's batch, closed: later callers start the next one.
    pub(super) fn take(&self, region: &str) -> Vec<W> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(region).unwrap_or_default()
    }
}

/// What the batch answered a caller; an error if the batch went away without answering.
pub(super) async fn answer<T>(
    rx: oneshot::Receiver<Result<T, CloudError>>,
    (service, operation): (&str, &str),
    region: &str,
) -> Result<T, CloudError> {
    match rx.await {
        Ok(answer) => answer,
        Err(_) => Err(CloudError::new(
            service,
            operation,
            region,
            "InternalError",
            "the batched call was dropped",
        )),
    }
}

/// Open batches per region.
#[derive(Default)]
pub(crate) struct ImageBatches {
    open: Gathering<Waiter>,
}

impl ImageBatches {
    pub(crate) async fn describe(
        self: &Arc<Self>,
        ec2: &Arc<dyn Ec2>,
        limiter: &Arc<Limiter>,
        region: &str,
        ids: &[String],
    ) -> Answer {
        let (tx, rx) = oneshot::channel();
        let waiter = Waiter {
            ids: ids.to_vec(),
            answer: tx,
        };
        if self.open.join(region, waiter) {
            let (me, ec2, limiter, region) = (self.clone(), ec2.clone(), limiter.clone(), region.to_string());
            tokio::spawn(async move { me.send(&ec2, &limiter, &region).await });
        }
        answer(rx, DESCRIBE, region).await
    }

    async fn send(&self, ec2: &Arc<dyn Ec2>, limiter: &Limiter, region: &str) {
        tokio::time::sleep(GATHER).await;
        limiter.acquire(region, "ec2", "DescribeImages").await;
        let waiters = self.open.take(region);
        if waiters.is_empty() {
            return;
        }
        let ids: Vec<String> = waiters
            .iter()
            .flat_map(|w| w.ids.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = HashMap::new();
        let mut failed = None;
        for (n, chunk) in ids.chunks(MAX_IDS).enumerate() {
            if n > 0 {
                limiter.acquire(region, "ec2", "DescribeImages").await;
            }
            match limiter.send(region, DESCRIBE, ec2.describe_images(region, chunk)).await {
                Ok(images) => found.extend(images.into_iter().map(|i| (i.image_id.clone(), i))),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => {
                for w in waiters {
                    let mine = w.ids.iter().filter_map(|id| found.get(id).cloned()).collect();
                    let _ = w.answer.send(Ok(mine));
                }
            }
            // A throttle or 5xx is every caller's: each retries by its own policy.
            Some(e) if e.kind.is_transient() || waiters.len() == 1 => {
                for w in waiters {
                    let _ = w.answer.send(Err(e.clone()));
                }
            }
            // One caller's bad id (InvalidAMIID.Malformed) must not fail the others: each asks alone.
            Some(_) => {
                for w in waiters {
                    limiter.acquire(region, "ec2", "DescribeImages").await;
                    let answer = limiter
                        .send(region, DESCRIBE, ec2.describe_images(region, &w.ids))
                        .await;
                    let _ = w.answer.send(answer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cloud::sim::testutil::{EAST, sim};

    #[tokio::test(start_paused = true)]
    async fn concurrent_describes_share_one_call_and_a_bad_id_fails_only_its_caller() {
        let sim = sim();
        let public = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
        let base = sim
            .cloud()
            .ssm
            .get_parameter(EAST, public)
            .await
            .unwrap()
            .unwrap()
            .value;
        let cloud = sim.cloud().limited();
        let ask = |ids: Vec<String>| {
            let c = cloud.clone();
            tokio::spawn(async move { c.ec2.describe_images(EAST, &ids).await })
        };
        let describes = || sim.calls().iter().filter(|c| c.operation == "DescribeImages").count();

        // Twenty waits at the same moment: one call. Each gets its own image, or none for an unknown id.
        let asked: Vec<_> = (0..20)
            .map(|k| {
                if k % 2 == 0 {
                    base.clone()
                } else {
                    format!("ami-{k:017x}")
                }
            })
            .map(|id| ask(vec![id]))
            .collect();
        for (k, a) in asked.into_iter().enumerate() {
            let images = a.await.unwrap().unwrap();
            assert_eq!(images.len(), usize::from(k % 2 == 0), "caller {k}");
        }
        assert_eq!(describes(), 1);

        // A malformed id fails the batch: each caller then asks alone, and only its own call fails.
        let asked: Vec<_> = ["bogus".to_string(), base.clone(), base.clone()]
            .into_iter()
            .map(|id| ask(vec![id]))
            .collect();
        let answers: Vec<_> = futures_answers(asked).await;
        assert_eq!(answers[0].as_ref().unwrap_err().code, "InvalidAMIID.Malformed");
        assert_eq!(answers[1].as_ref().unwrap().len(), 1);
        assert_eq!(answers[2].as_ref().unwrap().len(), 1);
        assert_eq!(describes(), 1 + 1 + 3);
    }

    async fn futures_answers<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}
