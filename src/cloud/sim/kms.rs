//! KMS, read-only: every key exists, enabled and customer-managed, except the scenario's `missing_kms_keys`;
//! `alias/aws/ebs` is the AWS managed key.

use async_trait::async_trait;

use super::Sim;
use super::ids::ACCOUNT;
use crate::cloud::{CloudError, Kms, KmsKey};

/// The key id the simulator gives a key name (stable, so the same key answers the same).
fn key_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[async_trait]
impl Kms for Sim {
    async fn describe_key(&self, region: &str, key: &str) -> Result<Option<KmsKey>, CloudError> {
        describe_key(self, ACCOUNT, region, key).await
    }

    async fn get_key_policy(&self, region: &str, key: &str) -> Result<String, CloudError> {
        get_key_policy(self, ACCOUNT, region, key).await
    }
}

/// The keys of `account` (one simulated world holds every account's: a role's client sees them as its own).
pub(super) async fn describe_key(
    sim: &Sim,
    account: &str,
    region: &str,
    key: &str,
) -> Result<Option<KmsKey>, CloudError> {
    sim.call("kms", "DescribeKey", region, |ctx| {
        if ctx.scenario.missing_kms_keys.iter().any(|k| k == key) {
            return Ok(None);
        }
        let name = key
            .rsplit_once(":alias/")
            .map_or(key.to_string(), |(_, a)| format!("alias/{a}"));
        let id = key_id(&name);
        Ok(Some(KmsKey {
            arn: format!("arn:aws:kms:{region}:{account}:key/{id}"),
            key_id: id,
            state: "Enabled".into(),
            usage: "ENCRYPT_DECRYPT".into(),
            spec: "SYMMETRIC_DEFAULT".into(),
            manager: if name == "alias/aws/ebs" { "AWS" } else { "CUSTOMER" }.into(),
        }))
    })
    .await
}

/// The default key policy: the account's IAM policies decide.
pub(super) async fn get_key_policy(sim: &Sim, account: &str, region: &str, _key: &str) -> Result<String, CloudError> {
    sim.call("kms", "GetKeyPolicy", region, |_| {
        Ok(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
        ))
    })
    .await
}
