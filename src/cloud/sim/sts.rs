//! STS: who the simulated caller is.

use async_trait::async_trait;

use std::sync::Arc;

use super::Sim;
use super::ids::ACCOUNT;
use crate::cloud::{AssumeRole, CallerIdentity, Cloud, CloudError, Sts};

impl Sim {
    /// The client of a region whose calls assume `role_arn` (STS AssumeRole, session `session`): the same
    /// simulated world (one account holds every region's resources), answering GetCallerIdentity as the role.
    /// A role the scenario lists in `denied_roles` cannot be assumed (AccessDenied).
    pub(crate) async fn assume(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError> {
        let (role_arn, session, account) = (&role.role_arn, &role.session_name, role.account.clone());
        self.call("sts", "AssumeRole", region, |ctx| {
            if ctx.scenario.denied_roles.iter().any(|r| r == role_arn) {
                let message = format!(
                    "User: arn:aws:iam::{}:user/drflow-simulated is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                    ACCOUNT
                );
                return Err(ctx.err("AccessDenied", message));
            }
            Ok(())
        })
        .await?;
        let role_name = role_arn.rsplit('/').next().unwrap_or_default();
        let who = Arc::new(Assumed {
            sim: self.clone(),
            identity: CallerIdentity {
                arn: format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session}"),
                user_id: format!("AROADRFLOWSIMULATED:{session}"),
                account: account.clone(),
            },
        });
        Ok(Cloud {
            sts: who.clone(),
            kms: who,
            account: Some(account),
            ..self.cloud()
        })
    }
}

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

    async fn assume_role(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError> {
        self.assume(region, role).await
    }
}

/// The simulator seen with a role's credentials: it answers GetCallerIdentity as the role's session.
pub(super) struct Assumed {
    pub sim: Sim,
    pub identity: CallerIdentity,
}

#[async_trait]
impl Sts for Assumed {
    async fn get_caller_identity(&self, region: &str) -> Result<CallerIdentity, CloudError> {
        let identity = self.identity.clone();
        self.sim
            .call("sts", "GetCallerIdentity", region, |_| Ok(identity))
            .await
    }

    async fn assume_role(&self, region: &str, role: &AssumeRole) -> Result<Cloud, CloudError> {
        self.sim.assume(region, role).await
    }
}

#[async_trait]
impl crate::cloud::Kms for Assumed {
    async fn describe_key(&self, region: &str, key: &str) -> Result<Option<crate::cloud::KmsKey>, CloudError> {
        super::kms::describe_key(&self.sim, &self.identity.account, region, key).await
    }

    async fn get_key_policy(&self, region: &str, key: &str) -> Result<String, CloudError> {
        super::kms::get_key_policy(&self.sim, &self.identity.account, region, key).await
    }
}
