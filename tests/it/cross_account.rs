//! DR in another account, over the wire: the emulator keeps each account's state apart (an access key id of 12
//! digits acts as that account; assumed-role credentials act as the role's), enforces role trust policies, and
//! copies AMIs and recovery points across accounts as AWS does. The primary account is the caller's own
//! (123456789012); the DR account (222222222222) is reached through the role `drflow-dr`.

use aws_sdk_ec2::types::Filter;
use serde_json::{Value, json};

use crate::common::accounts::{self, CALLER, DR_ACCOUNT, ROLE, create_key, create_role, dr_vault, parameter};
use crate::common::emulator::World;
use crate::common::text;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";
const EC2_WORKFLOW: &str = "dr-ami-ec2-cross-account.yaml";
const BACKUP_WORKFLOW: &str = "dr-ami-cross-account.yaml";

/// Puts an inline policy on the DR role (replacing one of that name).
fn put_role_policy(w: &World, name: &str, document: &str) {
    accounts::put_role_policy(w, PRIMARY, name, document);
}

/// What the DR account needs: the role drflow assumes (trusting `trusted`), allowed everything by its identity
/// policy; a KMS key `alias/drflow-dr` in the DR region. Returns the key's ARN.
fn dr_account(w: &World, trusted: &str) -> String {
    create_role(w, PRIMARY, &format!("arn:aws:iam::{trusted}:root"));
    let everything =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
    put_role_policy(w, "drflow", &everything.to_string());
    let arn = create_key(w, DR);
    w.emu.aws_json_as(
        "kms",
        DR,
        DR_ACCOUNT,
        "TrentService.CreateAlias",
        json!({"AliasName": "alias/drflow-dr", "TargetKeyId": arn}),
    );
    arn
}

/// Gives the DR role exactly the policy `drflow policy` prints for it (the emulator holds role sessions to their
/// identity policies), instead of everything.
fn least_privilege(w: &World, workflow: &str) {
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(
        w,
        &[
            "policy",
            &w.workflow_named(workflow),
            "-i",
            &instance,
            "--account",
            CALLER,
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    let role = doc["policies"][1]["policy"].to_string();
    put_role_policy(w, "drflow", &role);
}

fn drflow(w: &World, args: &[&str]) -> (Option<i32>, String, String) {
    let out = w.emu.drflow(&w.state(), args);
    let (stdout, stderr) = text(&out);
    (out.status.code(), stdout, stderr)
}

/// The calls the emulator saw that change something (by name: the ones these workflows make).
fn mutating_calls(w: &World) -> Vec<String> {
    const CHANGES: &[&str] = &[
        "CreateImage",
        "CopyImage",
        "ModifyImageAttribute",
        "ModifySnapshotAttribute",
        "PutParameter",
        "StartBackupJob",
        "StartCopyJob",
        "DeregisterImage",
        "DeleteSnapshot",
    ];
    let all = w.emu.control("GET", "/_drflow/calls", None);
    all.as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["operation"].as_str())
        .filter(|op| CHANGES.contains(op))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_ec2_pipeline_copies_into_the_dr_account_encrypted_with_its_key() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    let key = dr_account(&w, CALLER);
    least_privilege(&w, EC2_WORKFLOW);
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(&w, &["run", &wf, "-i", &instance]);
    assert_eq!(code, Some(0), "{out}\n{err}");

    // The role was assumed once for the run, its session named after the run.
    let assumed = w.emu.calls("AssumeRole");
    assert_eq!(assumed.len(), 1, "{assumed:?}");
    let session = assumed[0]["request"]["RoleSessionName"].as_str().unwrap();
    let run_id = out
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split_whitespace().next()))
        .unwrap();
    assert_eq!(session, format!("drflow-{run_id}"));
    assert_eq!(assumed[0]["request"]["RoleArn"], ROLE);

    // Each call in its account: the image and the sharing in the primary one, the copy in the DR one.
    let calls = w.emu.control("GET", "/_drflow/calls", None);
    let account_of = |op: &str| -> Vec<String> {
        calls
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["operation"] == op)
            .map(|c| c["account"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(account_of("CreateImage"), [CALLER]);
    assert_eq!(account_of("CopyImage"), [DR_ACCOUNT]);
    assert_eq!(
        account_of("ModifyImageAttribute"),
        [CALLER, CALLER],
        "shared, then unshared"
    );
    assert_eq!(account_of("KMS.DescribeKey").len() + account_of("DescribeKey").len(), 1);

    w.rt.block_on(async {
        // The DR parameter is the DR account's, and names a DR-account AMI encrypted with the DR key.
        let dr_ami = parameter(&w, DR, DR_ACCOUNT)
            .await
            .expect("DR parameter in the DR account");
        assert_eq!(
            parameter(&w, DR, "test").await,
            None,
            "nothing written in the primary account's DR region"
        );
        let primary_ami = parameter(&w, PRIMARY, "test").await.expect("primary parameter");
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk_as(DR, DR_ACCOUNT));
        let image = ec2.describe_images().image_ids(&dr_ami).send().await.unwrap();
        let image = &image.images()[0];
        assert_eq!(image.owner_id(), Some(DR_ACCOUNT));
        let ebs = image.block_device_mappings()[0].ebs().unwrap();
        assert_eq!(ebs.encrypted(), Some(true));
        assert_eq!(ebs.kms_key_id(), Some(key.as_str()));
        // The primary AMI is no longer shared with the DR account.
        let primary = aws_sdk_ec2::Client::new(&w.emu.sdk(PRIMARY));
        let perms = primary
            .describe_image_attribute()
            .image_id(&primary_ami)
            .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
            .send()
            .await
            .unwrap();
        assert!(perms.launch_permissions().is_empty(), "{perms:?}");
        // The DR account sees no AMI of the primary account any more.
        let shared = ec2
            .describe_images()
            .filters(Filter::builder().name("image-id").values(&primary_ami).build())
            .executable_users("self")
            .send()
            .await
            .unwrap();
        assert!(shared.images().is_empty(), "{:?}", shared.images());
    });
}

#[test]
fn a_missing_kms_key_stops_the_run_before_any_change() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    dr_account(&w, CALLER);
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(&w, &["run", &wf, "-i", &instance, "-i", "dr_kms_key=alias/no-such-key"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains("step `copy`")
            && err.contains("KMS key `alias/no-such-key` does not exist in us-west-2 (account 222222222222)"),
        "{err}"
    );
    assert!(err.contains("refused before any change"), "{err}");
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
    // `plan --check` reports the same, read-only.
    let (code, out, _) = drflow(
        &w,
        &[
            "plan",
            &wf,
            "--check",
            "-i",
            &instance,
            "-i",
            "dr_kms_key=alias/no-such-key",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(out.contains("FAILED   before-run check of step copy"), "{out}");
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
}

#[test]
fn a_key_policy_that_leaves_the_role_out_is_named_before_any_change() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    let key = dr_account(&w, CALLER);
    // Only another role of the DR account may use the key.
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::222222222222:role/someone-else"}, "Action": "kms:*", "Resource": "*"}]});
    w.emu.aws_json_as(
        "kms",
        DR,
        DR_ACCOUNT,
        "TrentService.PutKeyPolicy",
        json!({"KeyId": key, "PolicyName": "default", "Policy": policy.to_string()}),
    );
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, _, err) = drflow(&w, &["run", &wf, "-i", &instance]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not allow kms:CreateGrant to arn:aws:iam::222222222222:role/drflow-dr"),
        "{err}"
    );
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
}

#[test]
fn a_role_that_does_not_trust_the_caller_stops_the_run_before_any_call_that_changes_something() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    dr_account(&w, "333333333333");
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(&w, &["run", &wf, "-i", &instance]);
    assert_eq!(code, Some(6), "{out}\n{err}");
    assert!(
        err.contains("region `dr` (us-west-2) cannot act as arn:aws:iam::222222222222:role/drflow-dr")
            && err.contains("AccessDenied")
            && err.contains("sts:AssumeRole"),
        "{err}"
    );
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
    // `plan --check` shows each account's identity: the caller's, and the role it cannot assume.
    let (code, out, _) = drflow(&w, &["plan", &wf, "--check", "-i", &instance]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("ok       caller identity in us-east-1: arn:aws:sts::123456789012"),
        "{out}"
    );
    assert!(
        out.contains("FAILED   caller identity arn:aws:iam::222222222222:role/drflow-dr"),
        "{out}"
    );
}

#[test]
fn plan_check_names_both_accounts() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    dr_account(&w, CALLER);
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(&w, &["plan", &wf, "--check", "-i", &instance]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("dr       us-west-2  as arn:aws:iam::222222222222:role/drflow-dr"),
        "{out}"
    );
    assert!(
        out.contains("arn:aws:sts::222222222222:assumed-role/drflow-dr/drflow-plan-check (account 222222222222)"),
        "{out}"
    );
    assert!(
        out.contains("ok       before-run check of step copy in us-west-2"),
        "{out}"
    );
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
}

#[test]
fn the_backup_pipeline_copies_into_the_dr_accounts_vault() {
    let w = World::new(&[PRIMARY], &[BACKUP_WORKFLOW]);
    let key = dr_account(&w, CALLER);
    dr_vault(&w, (PRIMARY, DR), &key, Some(CALLER));
    least_privilege(&w, BACKUP_WORKFLOW);
    let wf = w.workflow_named(BACKUP_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, out, err) = drflow(&w, &["run", &wf, "-i", &instance]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let copies = w.emu.calls("StartCopyJob");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0]["account"], CALLER);
    assert_eq!(
        copies[0]["request"]["DestinationBackupVaultArn"],
        "arn:aws:backup:us-west-2:222222222222:backup-vault:Default"
    );
    w.rt.block_on(async {
        let dr_ami = parameter(&w, DR, DR_ACCOUNT)
            .await
            .expect("DR parameter in the DR account");
        assert!(parameter(&w, PRIMARY, "test").await.is_some());
        // The DR vault of the DR account holds the copy, and its AMI is the DR account's.
        accounts::assert_dr_copy(&w, DR, &dr_ami).await;
    });
}

#[test]
fn a_dr_vault_that_refuses_the_primary_account_is_named_before_any_change() {
    let w = World::new(&[PRIMARY], &[BACKUP_WORKFLOW]);
    let key = dr_account(&w, CALLER);
    dr_vault(&w, (PRIMARY, DR), &key, None);
    let wf = w.workflow_named(BACKUP_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, _, err) = drflow(&w, &["run", &wf, "-i", &instance]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("backup vault `Default` in us-west-2 (account 222222222222) has no access policy")
            && err.contains("backup:CopyIntoBackupVault"),
        "{err}"
    );
    assert_eq!(mutating_calls(&w), Vec::<String>::new());
}

#[test]
fn an_error_in_the_dr_account_names_it() {
    let w = World::new(&[], &[EC2_WORKFLOW]);
    dr_account(&w, CALLER);
    // The DR role may do everything but write parameters.
    let deny = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "ssm:PutParameter", "Resource": "*"}]});
    put_role_policy(&w, "no-parameters", &deny.to_string());
    let wf = w.workflow_named(EC2_WORKFLOW);
    let instance = format!("instance_id={}", w.instance);
    let (code, _, err) = drflow(&w, &["run", &wf, "-i", &instance, "-i", "keep_images=0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("ssm:PutParameter in us-west-2 (account 222222222222) was denied"),
        "{err}"
    );
}

#[test]
fn each_account_gets_its_own_least_privilege_policy_and_the_role_its_trust_policy() {
    for wf in [EC2_WORKFLOW, BACKUP_WORKFLOW] {
        let out = crate::common::drflow(
            std::path::Path::new("/tmp"),
            &[
                "policy",
                &format!("workflows/{wf}"),
                "-i",
                "instance_id=i-0123456789abcdef0",
                "--account",
                CALLER,
            ],
        );
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let policies = doc["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 2, "{stdout}");
        assert_eq!(policies[0]["for"], "caller");
        assert_eq!(policies[0]["account"], CALLER);
        assert_eq!(policies[1]["for"], ROLE);
        assert_eq!(policies[1]["account"], DR_ACCOUNT);
        // The caller may assume the role, and nothing of the DR region's steps; the role only those.
        let caller = policies[0]["policy"].to_string();
        assert!(caller.contains("sts:AssumeRole") && caller.contains(ROLE), "{caller}");
        assert!(
            !caller.contains("ssm:PutParameter\"],\"Resource\":[\"arn:aws:ssm:us-west-2"),
            "{caller}"
        );
        let role = policies[1]["policy"].to_string();
        assert!(
            role.contains("arn:aws:ssm:us-west-2:222222222222:parameter/drflow/"),
            "{role}"
        );
        // (CopyImage reads the source image in the primary region: that ARN is the role's too.)
        assert!(
            !role.contains("ec2:CreateImage") && !role.contains("arn:aws:ssm:us-east-1"),
            "{role}"
        );
        assert!(!role.contains("sts:AssumeRole"), "{role}");
        let trust = &policies[1]["trust_policy"]["Statement"][0];
        assert_eq!(trust["Principal"]["AWS"], format!("arn:aws:iam::{CALLER}:root"));
        assert_eq!(trust["Action"][0], "sts:AssumeRole");
        for p in policies {
            let policy = serde_json::to_string_pretty(&p["policy"]).unwrap();
            crate::plan::lint(&policy).unwrap_or_else(|f| panic!("{wf}: parliament reports\n{f}\nfor\n{policy}"));
        }
    }
}

/// On the simulator (one world for every account): the same workflows run, and its scenario stands for a key that
/// does not exist and a role that cannot be assumed.
#[test]
fn on_the_simulator_a_missing_key_and_a_denied_role_stop_the_run_before_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let run = |scenario: &str, wf: &str| {
        let file = dir.path().join("scenario.yaml");
        std::fs::write(&file, scenario).unwrap();
        let out = crate::common::drflow(
            &state,
            &[
                "run",
                &format!("workflows/{wf}"),
                "--scenario",
                file.to_str().unwrap(),
                "-i",
                "instance_id=i-0123456789abcdef0",
            ],
        );
        let (_, err) = text(&out);
        (out.status.code(), err)
    };
    let (code, err) = run("missing_kms_keys: [alias/drflow-dr]\n", EC2_WORKFLOW);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("KMS key `alias/drflow-dr` does not exist in us-west-2 (account 222222222222)"),
        "{err}"
    );
    let (code, err) = run(&format!("denied_roles: [\"{ROLE}\"]\n"), BACKUP_WORKFLOW);
    assert_eq!(code, Some(6), "{err}");
    assert!(
        err.contains("cannot act as arn:aws:iam::222222222222:role/drflow-dr"),
        "{err}"
    );
    // Neither run journaled a step: nothing started.
    let runs = std::fs::read_dir(state.join("runs")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(runs, 0);
    // Without them, both pipelines run to the end.
    for wf in [EC2_WORKFLOW, BACKUP_WORKFLOW] {
        let (code, err) = run("{}\n", wf);
        assert_eq!(code, Some(0), "{wf}: {err}");
    }
}
