//! The real AWS backend: the AWS SDK for Rust behind drflow's narrow cloud traits.
//!
//! # Configuration
//! One `aws_config::defaults(BehaviorVersion::latest())` load: the standard credential chain (environment,
//! profile files with SSO and `credential_process`, web identity, ECS, IMDS), `--profile` as `profile_name`.
//! Endpoint overrides come from the SDK's own loader: `AWS_ENDPOINT_URL` for every service, or
//! `AWS_ENDPOINT_URL_EC2` / `_SSM` / `_BACKUP` / `_CLOUDFORMATION` (and `endpoint_url` in the profile). Each
//! service client is built from that one `SdkConfig` with the call's region and cached per region.
//!
//! # Retries: the workflow is the single retry authority
//! The SDK is configured with [`RetryConfig::disabled`] (one attempt per call). Every retry is then a workflow
//! step attempt: the step's retry policy decides (by error code and kind) whether and when to try again, and the
//! engine journals each attempt. With SDK retries left on, SDK attempts would multiply with step attempts
//! (3 × 5 = 15 calls for one step) and would be invisible in the journal. The cost: the SDK's own handling of
//! transient errors (clock skew, expired credentials refreshed on retry) also goes through the step's policy.
//!
//! # Timeouts
//! [`CONNECT_TIMEOUT`] to open a connection, [`ATTEMPT_TIMEOUT`] for one attempt (send and read the response).
//! A timeout surfaces as a transient `TimeoutError` (or `ConnectionError` for a connect timeout) that the step
//! may retry; the step's own `timeout` still bounds the whole step.
//!
//! # Errors
//! Every SDK error becomes a [`CloudError`](super::CloudError) through one generic helper ([`errors::from_sdk`]).

mod backup;
mod cloudformation;
mod ec2;
mod errors;
mod kms;
mod sns;
mod ssm;
mod sts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ssm::config::ProvideCredentials;

use super::Cloud;
pub use errors::ConnectError;

/// Time allowed to open a TCP/TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one attempt of one call, from sending the request to reading the whole response.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Loads the AWS configuration once and returns the SDK backend.
///
/// Credentials are resolved once here, so that a missing or expired login fails before the workflow starts
/// rather than as the first step's error.
pub async fn connect(profile: Option<&str>) -> Result<Cloud, ConnectError> {
    connect_config(profile).await.map(from_sdk_config)
}

/// The loaded configuration, its credentials checked: what [`assume_role`] starts from.
pub async fn connect_config(profile: Option<&str>) -> Result<SdkConfig, ConnectError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts());
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    let sdk = loader.load().await;
    let provider = sdk.credentials_provider().ok_or(ConnectError::NoCredentialsProvider)?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| ConnectError::Credentials {
            profile: profile.map(str::to_string),
            message: errors::chain(&e),
        })?;
    Ok(sdk)
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build()
}

/// The backend over an already loaded configuration. Whatever the configuration says, the SDK's own retries are
/// turned off and the timeouts set, so that the step's retry policy stays the only retry authority.
pub fn from_sdk_config(sdk: SdkConfig) -> Cloud {
    let sdk = sdk
        .into_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        .build();
    let sdk = Arc::new(sdk);
    Cloud {
        backend: "aws",
        backup: Arc::new(backup::AwsBackup::new(Regional::new(&sdk, |c, r| {
            aws_sdk_backup::Client::from_conf(aws_sdk_backup::config::Builder::from(c).region(r).build())
        }))),
        ec2: Arc::new(ec2::AwsEc2::new(Regional::new(&sdk, |c, r| {
            aws_sdk_ec2::Client::from_conf(aws_sdk_ec2::config::Builder::from(c).region(r).build())
        }))),
        ssm: Arc::new(ssm::AwsSsm::new(Regional::new(&sdk, |c, r| {
            aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(c).region(r).build())
        }))),
        sns: Arc::new(sns::AwsSns::new(Regional::new(&sdk, |c, r| {
            aws_sdk_sns::Client::from_conf(aws_sdk_sns::config::Builder::from(c).region(r).build())
        }))),
        sts: Arc::new(sts::AwsSts::new(Regional::new(&sdk, |c, r| {
            aws_sdk_sts::Client::from_conf(aws_sdk_sts::config::Builder::from(c).region(r).build())
        }))),
        cloudformation: Arc::new(cloudformation::AwsCloudFormation::new(Regional::new(&sdk, |c, r| {
            aws_sdk_cloudformation::Client::from_conf(
                aws_sdk_cloudformation::config::Builder::from(c).region(r).build(),
            )
        }))),
        kms: Arc::new(kms::AwsKms::new(Regional::new(&sdk, |c, r| {
            aws_sdk_kms::Client::from_conf(aws_sdk_kms::config::Builder::from(c).region(r).build())
        }))),
        limiter: None,
        account: None,
        roles: Arc::default(),
    }
}

/// Credentials renewed this long before they expire, so that a call made during a long wait never carries
/// credentials about to lapse.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The backend of a region whose calls assume a role. The caller's own credentials (`base`) ask STS for the role's
/// at once (a trust policy that does not allow the caller, a wrong external id or a missing role fail here, before
/// any other call, with STS's own error), then again, through the SDK's identity cache, [`RENEW_BEFORE`] they
/// expire. STS is asked in `region`, the region the role is for.
pub(crate) async fn assume_role(
    base: &SdkConfig,
    region: &str,
    role: &crate::cloud::AssumeRole,
) -> Result<Cloud, crate::cloud::CloudError> {
    use aws_config::identity::IdentityCache;
    use aws_sdk_sts::config::SharedCredentialsProvider;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(base)
            .region(Region::new(region.to_string()))
            .build(),
    );
    let first = sts
        .assume_role()
        .role_arn(&role.role_arn)
        .role_session_name(&role.session_name)
        .duration_seconds(role.duration_secs as i32)
        .set_external_id(role.external_id.clone())
        .send()
        .await
        .map_err(|e| errors::from_sdk("sts", "AssumeRole", region, e))?;
    let first = first.credentials().map(|c| {
        let expires = std::time::SystemTime::try_from(*c.expiration()).ok();
        aws_sdk_sts::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expires,
            "drflow-assume-role",
        )
    });
    let mut renew = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
        .session_name(&role.session_name)
        .session_length(Duration::from_secs(role.duration_secs.into()))
        .region(Region::new(region.to_string()))
        .configure(base);
    if let Some(id) = &role.external_id {
        renew = renew.external_id(id);
    }
    let provider = FirstThen {
        first: Mutex::new(first),
        then: renew.build().await,
    };
    let sdk = base
        .clone()
        .into_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .identity_cache(IdentityCache::lazy().buffer_time(RENEW_BEFORE).build())
        .build();
    let mut cloud = from_sdk_config(sdk);
    cloud.account = Some(role.account.clone());
    Ok(cloud)
}

/// The credentials of the first AssumeRole (made to check it), then fresh ones from the provider each time the
/// identity cache asks (shortly before the ones it holds expire).
#[derive(Debug)]
struct FirstThen {
    first: Mutex<Option<aws_sdk_sts::config::Credentials>>,
    then: aws_config::sts::AssumeRoleProvider,
}

impl ProvideCredentials for FirstThen {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        match self.first.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(c) => aws_credential_types::provider::future::ProvideCredentials::ready(Ok(c)),
            None => self.then.provide_credentials(),
        }
    }
}

/// One service's clients, built on first use per region from the shared configuration. Clients are cheap to
/// clone (they share their connection pool and identity cache).
pub(crate) struct Regional<C> {
    sdk: Arc<SdkConfig>,
    build: fn(&SdkConfig, Region) -> C,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> Regional<C> {
    fn new(sdk: &Arc<SdkConfig>, build: fn(&SdkConfig, Region) -> C) -> Self {
        Regional {
            sdk: Arc::clone(sdk),
            build,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration its clients are built from.
    pub(crate) fn config(&self) -> &SdkConfig {
        &self.sdk
    }

    pub(crate) fn get(&self, region: &str) -> C {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| (self.build)(&self.sdk, Region::new(region.to_string())))
            .clone()
    }
}

/// Unix seconds of an SDK timestamp.
fn unix(t: &aws_sdk_ssm::primitives::DateTime) -> i64 {
    t.secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn role_credentials_are_the_first_answer_then_renewed_by_sts() {
        // As `connect_config` loads it (a loaded configuration has the time source STS's provider needs).
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .endpoint_url("http://127.0.0.1:9")
            .retry_config(RetryConfig::disabled())
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "base", "base", None, None, "test",
            ))
            .load()
            .await;
        let first = aws_sdk_sts::config::Credentials::new("first", "secret", Some("token".into()), None, "test");
        let creds = FirstThen {
            first: Mutex::new(Some(first)),
            then: aws_config::sts::AssumeRoleProvider::builder("arn:aws:iam::222222222222:role/r")
                .session_name("drflow-run")
                .configure(&sdk)
                .build()
                .await,
        };
        assert_eq!(creds.provide_credentials().await.unwrap().access_key_id(), "first");
        // Renewing asks STS again (here: nobody answers on port 9).
        assert!(creds.provide_credentials().await.is_err());
    }

    #[tokio::test]
    async fn caches_one_client_per_region() {
        let sdk = SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build();
        let regional = Regional::new(&Arc::new(sdk), |c, r| {
            aws_sdk_ssm::Client::from_conf(aws_sdk_ssm::config::Builder::from(c).region(r).build())
        });
        let a = regional.get("us-east-1");
        let b = regional.get("us-west-2");
        let _ = regional.get("us-east-1");
        assert_eq!(a.config().region().map(|r| r.as_ref()), Some("us-east-1"));
        assert_eq!(b.config().region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(regional.clients.lock().unwrap().len(), 2);
    }
}
