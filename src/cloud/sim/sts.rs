//! STS: who the simulated caller is.

use async_trait::async_trait;

use super::Sim;
use super::ids::ACCOUNT;
use crate::cloud::{CallerIdentity, CloudError, Sts};

#[async_trait]
impl Sts for Sim {
    async fn get_caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError> {
        self.call("sts", "GetCallerIdentity", region, |_| {
            Ok(CallerIdentity {
                account: ACCOUNT.to_string(),
                arn: format!("arn:aws:iam::{ACCOUNT}:user/drflow-simulated"),
                user_id: "AIDADRFLOWSIMULATED".to_string(),
            })
        })
        .await
    }
}
