//! KMS, read-only: the key that encrypts DR copies, and its policy.

use async_trait::async_trait;
use aws_sdk_kms::Client;

use super::Regional;
use super::errors::from_sdk;
use crate::cloud::{CloudError, Kms, KmsKey};

pub(crate) struct AwsKms {
    clients: Regional<Client>,
}

impl AwsKms {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsKms { clients }
    }
}

#[async_trait]
impl Kms for AwsKms {
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KmsKey>, CloudError> {
        let out = match self.clients.get(region).describe_key().key_id(key_id).send().await {
            Ok(out) => out,
            Err(e) => {
                let e = from_sdk("kms", "DescribeKey", region, e);
                return if e.code == "NotFoundException" {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        Ok(out.key_metadata().map(|m| KmsKey {
            key_id: m.key_id().to_string(),
            arn: m.arn().unwrap_or_default().to_string(),
            state: m.key_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            usage: m.key_usage().map(|s| s.as_str().to_string()).unwrap_or_default(),
            spec: m.key_spec().map(|s| s.as_str().to_string()).unwrap_or_default(),
            manager: m.key_manager().map(|s| s.as_str().to_string()).unwrap_or_default(),
        }))
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> Result<String, CloudError> {
        let out = self
            .clients
            .get(region)
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send()
            .await
            .map_err(|e| from_sdk("kms", "GetKeyPolicy", region, e))?;
        Ok(out.policy().unwrap_or_default().to_string())
    }
}
