//! EC2: describe images and instances, create, copy and deregister images, delete snapshots.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use super::Regional;
use super::errors::from_sdk;
use crate::cloud::{CloudError, CopyImage, CreateImage, Ec2, Image, Instance, InstanceStatus};

pub(crate) struct AwsEc2 {
    clients: Regional<Client>,
}

impl AwsEc2 {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsEc2 { clients }
    }

    async fn images(&self, region: &str, ids: &[&str]) -> Result<Vec<Image>, CloudError> {
        let mut call = self.clients.get(region).describe_images();
        if ids.is_empty() {
            call = call.owners("self");
        }
        for id in ids {
            call = call.image_ids(*id);
        }
        let out = call
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DescribeImages", region, e))?;
        Ok(out.images().iter().map(image).collect())
    }
}

/// `InvalidAMIID.NotFound`: a well-formed id that does not exist (or no longer does) in that region.
const AMI_NOT_FOUND: &str = "InvalidAMIID.NotFound";

fn tags(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect()
}

fn image(i: &aws_sdk_ec2::types::Image) -> Image {
    Image {
        image_id: i.image_id().unwrap_or_default().to_string(),
        state: i.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        state_reason: i.state_reason().and_then(|r| r.message()).map(str::to_string),
        name: i.name().map(str::to_string),
        creation_date: i.creation_date().and_then(iso8601_secs),
        tags: tags(i.tags()),
        snapshot_ids: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs()?.snapshot_id())
            .map(str::to_string)
            .collect(),
    }
}

/// Unix seconds of an EC2 ISO-8601 timestamp (`2024-05-01T12:34:56.000Z`).
fn iso8601_secs(s: &str) -> Option<i64> {
    DateTime::from_str(s, DateTimeFormat::DateTime)
        .map(|t| t.secs())
        .ok()
        .or_else(|| {
            let t = humantime::parse_rfc3339_weak(s).ok()?;
            i64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()
        })
}

fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(kind);
    for (k, v) in tags {
        spec = spec.tags(Tag::builder().key(k).value(v).build());
    }
    spec.build()
}

#[async_trait]
impl Ec2 for AwsEc2 {
    /// AWS fails the whole call with `InvalidAMIID.NotFound` when any of the ids does not exist; the trait wants
    /// the missing ones left out, so the ids are then asked for one by one. `InvalidAMIID.Malformed` stays an
    /// error. No ids: the account's own images.
    async fn describe_images(&self, region: &str, image_ids: &[String]) -> Result<Vec<Image>, CloudError> {
        let mut ids: Vec<&str> = Vec::new();
        for id in image_ids {
            if !ids.contains(&id.as_str()) {
                ids.push(id);
            }
        }
        match self.images(region, &ids).await {
            Err(e) if e.code == AMI_NOT_FOUND && ids.len() > 1 => {
                let mut found = Vec::new();
                for id in ids {
                    match self.images(region, &[id]).await {
                        Ok(images) => found.extend(images),
                        Err(e) if e.code == AMI_NOT_FOUND => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(found)
            }
            Err(e) if e.code == AMI_NOT_FOUND => Ok(Vec::new()),
            other => other,
        }
    }

    async fn describe_instance_status(
        &self,
        region: &str,
        instance_id: &str,
    ) -> Result<Option<InstanceStatus>, CloudError> {
        let out = self
            .clients
            .get(region)
            .describe_instance_status()
            .instance_ids(instance_id)
            .include_all_instances(true)
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DescribeInstanceStatus", region, e))?;
        let status = |s: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
            s.and_then(|s| s.status())
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
        };
        Ok(out.instance_statuses().first().map(|st| InstanceStatus {
            instance_id: st.instance_id().unwrap_or(instance_id).to_string(),
            state: st
                .instance_state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
                .unwrap_or_default(),
            system_status: status(st.system_status()),
            instance_status: status(st.instance_status()),
        }))
    }

    async fn describe_instances(&self, region: &str, instance_ids: &[String]) -> Result<Vec<Instance>, CloudError> {
        let out = self
            .clients
            .get(region)
            .describe_instances()
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DescribeInstances", region, e))?;
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| Instance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                image_id: i.image_id().unwrap_or_default().to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                tags: tags(i.tags()),
            })
            .collect())
    }

    async fn find_instances(
        &self,
        region: &str,
        wanted: &std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<Instance>, CloudError> {
        use aws_sdk_ec2::types::Filter;
        let mut filters: Vec<Filter> = wanted
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        filters.push(
            Filter::builder()
                .name("instance-state-name")
                .set_values(Some(
                    ["pending", "running", "stopping", "stopped"].map(String::from).to_vec(),
                ))
                .build(),
        );
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .clients
                .get(region)
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("ec2", "DescribeInstances", region, e))?;
            found.extend(out.reservations().iter().flat_map(|r| r.instances()).map(|i| {
                Instance {
                    instance_id: i.instance_id().unwrap_or_default().to_string(),
                    image_id: i.image_id().unwrap_or_default().to_string(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map(|n| n.as_str().to_string())
                        .unwrap_or_default(),
                    tags: tags(i.tags()),
                }
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn find_image_by_name(&self, region: &str, name: &str) -> Result<Option<Image>, CloudError> {
        let out = self
            .clients
            .get(region)
            .describe_images()
            .owners("self")
            .filters(aws_sdk_ec2::types::Filter::builder().name("name").values(name).build())
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DescribeImages", region, e))?;
        Ok(out.images().iter().map(image).find(|i| i.name.as_deref() == Some(name)))
    }

    async fn create_image(&self, region: &str, req: &CreateImage) -> Result<String, CloudError> {
        const OP: &str = "CreateImage";
        let mut call = self
            .clients
            .get(region)
            .create_image()
            .instance_id(&req.instance_id)
            .name(&req.name)
            .no_reboot(req.no_reboot);
        if !req.tags.is_empty() {
            call = call
                .tag_specifications(tag_spec(ResourceType::Image, &req.tags))
                .tag_specifications(tag_spec(ResourceType::Snapshot, &req.tags));
        }
        let out = call.send().await.map_err(|e| from_sdk("ec2", OP, region, e))?;
        out.image_id().map(str::to_string).ok_or_else(|| missing(OP, region))
    }

    async fn copy_image(&self, region: &str, req: &CopyImage) -> Result<String, CloudError> {
        const OP: &str = "CopyImage";
        let mut call = self
            .clients
            .get(region)
            .copy_image()
            .source_region(&req.source_region)
            .source_image_id(&req.source_image_id)
            .name(&req.name)
            .client_token(&req.client_token);
        if req.encrypted {
            call = call.encrypted(true).set_kms_key_id(req.kms_key_id.clone());
        }
        if !req.tags.is_empty() {
            call = call
                .tag_specifications(tag_spec(ResourceType::Image, &req.tags))
                .tag_specifications(tag_spec(ResourceType::Snapshot, &req.tags));
        }
        let out = call.send().await.map_err(|e| from_sdk("ec2", OP, region, e))?;
        out.image_id().map(str::to_string).ok_or_else(|| missing(OP, region))
    }

    async fn find_images(&self, region: &str, wanted: &BTreeMap<String, String>) -> Result<Vec<Image>, CloudError> {
        use aws_sdk_ec2::types::Filter;
        let filters: Vec<Filter> = wanted
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = self
                .clients
                .get(region)
                .describe_images()
                .owners("self")
                .set_filters(Some(filters.clone()))
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| from_sdk("ec2", "DescribeImages", region, e))?;
            found.extend(out.images().iter().map(image));
            match out.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    async fn deregister_image(
        &self,
        region: &str,
        image_id: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<(String, String)>, CloudError> {
        let out = self
            .clients
            .get(region)
            .deregister_image()
            .image_id(image_id)
            .delete_associated_snapshots(delete_snapshots)
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DeregisterImage", region, e))?;
        Ok(out
            .delete_snapshot_results()
            .iter()
            .filter_map(|r| {
                let code = r.return_code().map(|c| c.as_str().to_string()).unwrap_or_default();
                Some((r.snapshot_id()?.to_string(), code))
            })
            .collect())
    }

    async fn delete_snapshot(&self, region: &str, snapshot_id: &str) -> Result<(), CloudError> {
        self.clients
            .get(region)
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "DeleteSnapshot", region, e))?;
        Ok(())
    }

    async fn share_image(&self, region: &str, image_id: &str, account: &str, share: bool) -> Result<(), CloudError> {
        use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
        let who = LaunchPermission::builder().user_id(account).build();
        let change = if share {
            LaunchPermissionModifications::builder().add(who).build()
        } else {
            LaunchPermissionModifications::builder().remove(who).build()
        };
        self.clients
            .get(region)
            .modify_image_attribute()
            .image_id(image_id)
            .launch_permission(change)
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "ModifyImageAttribute", region, e))?;
        Ok(())
    }

    async fn share_snapshot(
        &self,
        region: &str,
        snapshot_id: &str,
        account: &str,
        share: bool,
    ) -> Result<(), CloudError> {
        use aws_sdk_ec2::types::{OperationType, SnapshotAttributeName};
        self.clients
            .get(region)
            .modify_snapshot_attribute()
            .snapshot_id(snapshot_id)
            .attribute(SnapshotAttributeName::CreateVolumePermission)
            .operation_type(if share {
                OperationType::Add
            } else {
                OperationType::Remove
            })
            .user_ids(account)
            .send()
            .await
            .map_err(|e| from_sdk("ec2", "ModifySnapshotAttribute", region, e))?;
        Ok(())
    }
}

/// An answer without the new image id. Not transient: CreateImage has no client token, so a blind retry could
/// create a second image.
fn missing(operation: &str, region: &str) -> CloudError {
    CloudError::new("ec2", operation, region, "ResponseError", "the response has no ImageId")
        .with_kind(crate::cloud::ErrorKind::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ec2_timestamps() {
        assert_eq!(iso8601_secs("2024-05-01T12:34:56.000Z"), Some(1_714_566_896));
        assert_eq!(iso8601_secs("2024-05-01T12:34:56Z"), Some(1_714_566_896));
        assert_eq!(iso8601_secs("2024-05-01 12:34:56"), Some(1_714_566_896));
        assert_eq!(iso8601_secs("yesterday"), None);
    }

    #[test]
    fn reads_tags() {
        let t = [
            Tag::builder().key("Name").value("web").build(),
            Tag::builder().key("empty").build(),
        ];
        let m = tags(&t);
        assert_eq!(m.get("Name").map(String::as_str), Some("web"));
        assert_eq!(m.get("empty").map(String::as_str), Some(""));
    }
}
