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
mod ssm;

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
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
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
    Ok(from_sdk_config(sdk))
}

/// The backend over an already loaded configuration.
pub fn from_sdk_config(sdk: SdkConfig) -> Cloud {
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
        cloudformation: Arc::new(cloudformation::AwsCloudFormation::new(Regional::new(&sdk, |c, r| {
            aws_sdk_cloudformation::Client::from_conf(
                aws_sdk_cloudformation::config::Builder::from(c).region(r).build(),
            )
        }))),
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

/// Over the wire against the local emulator (tests/emulator), never AWS: run with
/// `DRFLOW_EMULATOR_INSTANCE=i-... AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=test
/// AWS_SECRET_ACCESS_KEY=test cargo test --lib cloud::aws -- --ignored --nocapture`.
#[cfg(test)]
mod emulator_tests {
    use std::collections::BTreeMap;

    use crate::cloud::{CopyImage, CreateImage, ErrorKind};

    #[tokio::test]
    #[ignore = "needs the local emulator (tests/emulator) and DRFLOW_EMULATOR_INSTANCE"]
    async fn against_the_emulator() {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "refusing to run against {endpoint:?}"
        );
        let instance = std::env::var("DRFLOW_EMULATOR_INSTANCE").expect("DRFLOW_EMULATOR_INSTANCE");
        let cloud = super::connect(None).await.unwrap();
        let (east, west) = ("us-east-1", "us-west-2");

        let instances = cloud
            .ec2
            .describe_instances(east, std::slice::from_ref(&instance))
            .await
            .unwrap();
        println!("instances: {instances:?}");
        assert_eq!(instances.len(), 1);

        let tags = BTreeMap::from([("drflow:test".to_string(), "yes".to_string())]);
        let req = CreateImage {
            instance_id: instance.clone(),
            name: format!("wire-{}", fastrand::u32(..)),
            no_reboot: true,
            tags,
        };
        let ami = cloud.ec2.create_image(east, &req).await.unwrap();
        let images = cloud
            .ec2
            .describe_images(east, std::slice::from_ref(&ami))
            .await
            .unwrap();
        println!("created: {images:?}");
        assert_eq!(images[0].tags.get("drflow:test").map(String::as_str), Some("yes"));
        assert!(images[0].creation_date.is_some());

        let missing = "ami-00000000deadbeef".to_string();
        assert!(
            cloud
                .ec2
                .describe_images(east, std::slice::from_ref(&missing))
                .await
                .unwrap()
                .is_empty()
        );
        let both = cloud
            .ec2
            .describe_images(east, &[missing.clone(), ami.clone()])
            .await
            .unwrap();
        assert_eq!(
            both.iter().map(|i| i.image_id.as_str()).collect::<Vec<_>>(),
            [ami.as_str()]
        );
        let bad = cloud.ec2.describe_images(east, &["not-an-ami".to_string()]).await;
        println!("malformed id: {bad:?}");

        let copy = CopyImage {
            source_region: east.into(),
            source_image_id: ami.clone(),
            name: "wire-copy".into(),
            client_token: format!("tok-{}", fastrand::u32(..)),
        };
        let copied = cloud.ec2.copy_image(west, &copy).await.unwrap();
        let again = cloud.ec2.copy_image(west, &copy).await.unwrap();
        println!("copy {ami} -> {copied} (same client token again -> {again})");
        assert_eq!(
            cloud
                .ec2
                .describe_images(west, std::slice::from_ref(&copied))
                .await
                .unwrap()
                .len(),
            1
        );

        assert_eq!(cloud.ssm.get_parameter(east, "/drflow/wire/none").await.unwrap(), None);

        let vault = cloud.backup.describe_backup_vault(west, "Default").await.unwrap();
        println!("vault: {vault:?}");
        let e = cloud.backup.describe_backup_vault(west, "Nope").await.unwrap_err();
        println!("missing vault: {e}");
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e = cloud
            .backup
            .describe_backup_job(east, "00000000-0000-0000-0000-000000000000")
            .await
            .unwrap_err();
        println!("missing job: {e}");

        let cfn = &cloud.cloudformation;
        assert_eq!(cfn.describe_stack(west, "drflow-wire-none").await.unwrap(), None);
        let template = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n";
        cfn.validate_template(west, template).await.unwrap();
        let e = cfn.validate_template(west, "Resources: [").await.unwrap_err();
        println!("invalid template: {e}");
        let e = cfn.stack_failure_reason(west, "drflow-wire-none").await.unwrap_err();
        println!("events of a missing stack: {e}");
        for stack in ["drflow-dr-".to_string() + &instance] {
            if let Some(s) = cfn.describe_stack(west, &stack).await.unwrap() {
                println!("stack: {s:?}");
                println!(
                    "failure reason: {:?}",
                    cfn.stack_failure_reason(west, &stack).await.unwrap()
                );
            }
        }
    }
}
