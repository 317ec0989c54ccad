//! STS: who the caller is (preflight checks).

use async_trait::async_trait;
use aws_sdk_sts::Client;

use super::Regional;
use super::errors::from_sdk;
use crate::cloud::{AssumeRole, CallerIdentity, Cloud, CloudError, Sts};

pub(crate) struct AwsSts {
    clients: Regional<Client>,
}

impl AwsSts {
    pub(crate) fn new(clients: Regional<Client>) -> Self {
        AwsSts { clients }
    }
}

#[async_trait]
impl Sts for AwsSts {
    async fn get_caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError> {
        let out = self
            .clients
            .get(region)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| from_sdk("sts", "GetCallerIdentity", region, e))?;
        Ok(CallerIdentity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
            user_id: out.user_id().unwrap_or_default().to_string(),
        })
    }

    async fn assume_role(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError> {
        super::assume_role(self.clients.config(), region, role).await
    }
}
