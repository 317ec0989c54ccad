//! Where `check` looks for the newest AMI of an instance in a region, to tell whether the parameter follows it.

use std::collections::HashMap;

use futures_util::StreamExt;

use super::{CONCURRENCY, Newest, retried};
use crate::cloud::{Cloud, image_id_from_arn, newest_completed};

/// The source of "newest".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewestSource {
    /// Nothing is compared: the maximum age decides.
    None,
    /// The newest COMPLETED recovery point of the instance in each region's AWS Backup vault (in the DR region,
    /// the copies, which keep their source's creation date).
    Backup { vault: String, dr_vault: String },
}

impl NewestSource {
    pub fn name(&self) -> &'static str {
        match self {
            NewestSource::None => "none",
            NewestSource::Backup { .. } => "backup",
        }
    }

    /// Words for the report's header.
    pub fn describe(&self) -> String {
        match self {
            NewestSource::None => "none".into(),
            NewestSource::Backup { vault, dr_vault } => {
                format!("AWS Backup vaults {vault} (primary) and {dr_vault} (dr)")
            }
        }
    }

    /// The vault looked in for a region of this role (`primary` or `dr`).
    pub(super) fn vault(&self, role: &str) -> Option<&str> {
        match self {
            NewestSource::None => None,
            NewestSource::Backup { vault, dr_vault } => Some(if role == "primary" { vault } else { dr_vault }),
        }
    }

    pub(super) fn needs_resource_arns(&self) -> bool {
        !matches!(self, NewestSource::None)
    }
}

/// What the source knows of one instance in one region.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    pub newest: Option<Newest>,
    /// When each AMI the source lists was made, by id: for an AWS Backup copy, its source backup's creation date
    /// (what the RPO counts from), not the copy's.
    pub created: HashMap<String, i64>,
}

/// What the source knows of each instance in `region` (`role`: primary or dr), or why it could not be asked. An
/// instance left out has nothing to compare with.
pub(super) async fn lookup(
    source: &NewestSource,
    cloud: &Cloud,
    region: &str,
    role: &str,
    instances: &[String],
    resource_arns: Option<&HashMap<String, String>>,
) -> HashMap<String, Result<Known, String>> {
    let (NewestSource::Backup { vault, dr_vault }, Some(arns)) = (source, resource_arns) else {
        return HashMap::new();
    };
    let vault = if role == "primary" { vault } else { dr_vault };
    futures_util::stream::iter(instances.iter().map(|id| async move {
        let arn = &arns[id];
        let listed = retried(|| cloud.backup.list_recovery_points(region, vault, arn, None)).await;
        let known = listed.map_err(|e| e.to_string()).map(|points| Known {
            newest: newest_completed(&points).and_then(|p| {
                Some(Newest {
                    image_id: image_id_from_arn(&p.arn)?.to_string(),
                    created: p.creation_date,
                })
            }),
            created: points
                .iter()
                .filter_map(|p| Some((image_id_from_arn(&p.arn)?.to_string(), p.creation_date)))
                .collect(),
        });
        (id.clone(), known)
    }))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await
}
