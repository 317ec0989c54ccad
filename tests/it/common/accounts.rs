//! A second AWS account on the emulator (an access key id of 12 digits acts as that account): its role, KMS key,
//! Backup vault and parameters, for the cross-account tests of `drflow run` (tests/it/cross_account.rs) and of the
//! exported state machine (tests/it/export_accounts.rs).

use serde_json::json;

use super::emulator::World;

/// The DR account of the tests, and the role drflow (or the state machine) assumes in it.
pub const DR_ACCOUNT: &str = "222222222222";
pub const ROLE: &str = "arn:aws:iam::222222222222:role/drflow-dr";
/// The caller's own account (the emulator's default).
pub const CALLER: &str = "123456789012";

/// Creates the role `drflow-dr` in the DR account, trusting `principal` (an account root or role ARN).
pub fn create_role(w: &World, region: &str, principal: &str) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}]});
    iam(
        w,
        region,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "drflow-dr"),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ],
    );
}

/// Puts an inline policy on the DR role (replacing one of that name).
pub fn put_role_policy(w: &World, region: &str, name: &str, document: &str) {
    iam(
        w,
        region,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "drflow-dr"),
            ("PolicyName", name),
            ("PolicyDocument", document),
        ],
    );
}

fn iam(w: &World, region: &str, params: &[(&str, &str)]) {
    let mut all = vec![("Version", "2010-05-08")];
    all.extend_from_slice(params);
    w.emu.aws_query_as("iam", region, DR_ACCOUNT, &all);
}

/// A KMS key of the DR account in `region`: its ARN.
pub fn create_key(w: &World, region: &str) -> String {
    let key = w.emu.aws_json_as(
        "kms",
        region,
        DR_ACCOUNT,
        "TrentService.CreateKey",
        json!({"Description": "DR copies"}),
    );
    key["KeyMetadata"]["Arn"].as_str().unwrap().to_string()
}

/// The DR account's `Default` vault in `dr` encrypted with `key`, accepting copies from `allow` (an account) when
/// given; cross-account backup turned on in the caller's `primary` region.
pub fn dr_vault(w: &World, (primary, dr): (&str, &str), key: &str, allow: Option<&str>) {
    w.rt.block_on(async {
        let vaults = aws_sdk_backup::Client::new(&w.emu.sdk_as(dr, DR_ACCOUNT));
        vaults
            .create_backup_vault()
            .backup_vault_name("Default")
            .encryption_key_arn(key)
            .send()
            .await
            .unwrap();
        if let Some(account) = allow {
            let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                "Action": "backup:CopyIntoBackupVault", "Resource": "*"}]});
            vaults
                .put_backup_vault_access_policy()
                .backup_vault_name("Default")
                .policy(policy.to_string())
                .send()
                .await
                .unwrap();
        }
        aws_sdk_backup::Client::new(&w.emu.sdk(primary))
            .update_global_settings()
            .global_settings("isCrossAccountBackupEnabled", "true")
            .send()
            .await
            .unwrap();
    });
}

/// The instance's AMI parameter (`/drflow/INSTANCE/ami`) in `region` of the account `account_key` acts as.
pub async fn parameter(w: &World, region: &str, account_key: &str) -> Option<String> {
    let ssm = aws_sdk_ssm::Client::new(&w.emu.sdk_as(region, account_key));
    ssm.get_parameter()
        .name(format!("/drflow/{}/ami", w.instance))
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter().and_then(|p| p.value()).map(str::to_string))
}

/// The DR account's `Default` vault in `region` holds one recovery point, the copy of `dr_ami`, and that AMI is the
/// DR account's own.
pub async fn assert_dr_copy(w: &World, region: &str, dr_ami: &str) {
    let points = aws_sdk_backup::Client::new(&w.emu.sdk_as(region, DR_ACCOUNT))
        .list_recovery_points_by_backup_vault()
        .backup_vault_name("Default")
        .send()
        .await
        .unwrap();
    assert_eq!(points.recovery_points().len(), 1);
    let arn = points.recovery_points()[0].recovery_point_arn().unwrap();
    assert!(arn.ends_with(dr_ami), "{arn} vs {dr_ami}");
    let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk_as(region, DR_ACCOUNT));
    let image = ec2.describe_images().image_ids(dr_ami).send().await.unwrap();
    assert_eq!(image.images()[0].owner_id(), Some(DR_ACCOUNT));
}
