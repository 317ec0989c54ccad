//! `drflow export` of `backup.plan_resources` (dr-follow-plan's discovery, tests/fixtures/export/discover.yaml):
//! its state machine EXECUTED on the emulator finds the same instances as `drflow run` of the same step, for a plan
//! whose selections use an ARN list, ListOfTags, StringNotEquals, StringEquals and StringLike conditions and
//! NotResources, and for one of `*` less a StringNotLike condition and an ARN pattern of any region and account;
//! a `?` pattern (a wildcard to EC2, a character to Backup) fails it with `UnsupportedSelection`.

use std::collections::BTreeSet;
use std::process::Command;

use aws_sdk_backup::types::{BackupSelection, Condition, ConditionParameter, ConditionType, Conditions};
use serde_json::Value;

use crate::common::emulator::World;
use crate::common::golden::stateless as export;
use crate::common::text as text_of;
use crate::common::*;

const FIXTURE: &str = "tests/fixtures/export/discover.yaml";
const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

fn tag(key: &str, value: &str) -> Condition {
    Condition::builder()
        .condition_type(ConditionType::Stringequals)
        .condition_key(key)
        .condition_value(value)
        .build()
        .unwrap()
}

fn param(key: &str, value: &str) -> ConditionParameter {
    ConditionParameter::builder()
        .condition_key(key)
        .condition_value(value)
        .build()
}

fn arn(id: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")
}

/// The `instance_ids` anywhere in a JSON value (a journal entry's outputs, an execution's output).
fn instance_ids(v: &Value) -> Option<BTreeSet<String>> {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(ids)) = m.get("instance_ids") {
                return Some(ids.iter().filter_map(|i| i.as_str().map(str::to_string)).collect());
            }
            m.values().find_map(instance_ids)
        }
        Value::Array(a) => a.iter().find_map(instance_ids),
        _ => None,
    }
}

/// The exported state machine executed on the world's emulator: its status, error, cause and output.
fn execute(w: &World, asl: &str, plan_id: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("discover.asl.json");
    std::fs::write(&file, asl).unwrap();
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/fixtures/export/execute_discover.py"))
        .arg(w.emu.url())
        .arg(&file)
        .arg(serde_json::json!({ "backup_plan_id": plan_id }).to_string())
        .output()
        .expect("python runs");
    let (o, e) = text_of(&out);
    assert!(out.status.success(), "{o}\n{e}");
    serde_json::from_str(o.trim()).unwrap_or_else(|err| panic!("{err}: {o}"))
}

/// `drflow run` of the fixture: the instances its step found.
fn run_discover(w: &World, plan_id: &str, state: &str) -> BTreeSet<String> {
    let input = format!("backup_plan_id={plan_id}");
    let out = w.emu.drflow(
        &w.dir.path().join(state),
        &[
            "run",
            &repo(FIXTURE).display().to_string(),
            "-i",
            &input,
            "--output",
            "json",
        ],
    );
    let (o, e) = text_of(&out);
    assert_eq!(out.status.code(), Some(0), "{o}\n{e}");
    o.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| instance_ids(&v))
        .unwrap_or_else(|| panic!("no instance_ids in: {o}"))
}

#[test]
fn the_exported_discovery_finds_the_instances_drflow_run_finds() {
    let (code, asl, err) = export(&["export", FIXTURE]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        !asl.contains("lambda:invoke"),
        "a single-region export calls no function"
    );
    let w = World::new(&[REGION], &[]);
    let (plan_id, odd_plan, negated, ids) = w.rt.block_on(async {
        let ids: [String; 7] = [
            w.launch(REGION, &[("team", "web"), ("stage", "prod")]).await,
            w.launch(REGION, &[("team", "web"), ("stage", "test")]).await,
            w.launch(REGION, &[("team", "db")]).await,
            w.launch(REGION, &[]).await,
            w.launch(REGION, &[("team", "web")]).await,
            w.launch(REGION, &[("team", "web"), ("stage", "prod")]).await,
            w.launch(REGION, &[("team", "wxb")]).await,
        ];
        // A terminated instance is never selected.
        let ec2 = aws_sdk_ec2::Client::new(&w.emu.sdk(REGION));
        ec2.terminate_instances()
            .instance_ids(&ids[5])
            .send()
            .await
            .expect("terminate");
        let backup = aws_sdk_backup::Client::new(&w.emu.sdk(REGION));
        let role = "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole";
        let plan_id = w.backup_plan(REGION, "discover", "hourly", None).await;
        let selections = [
            // An ARN list: one of this region and account, one matching any region and account, one of another
            // region (none of these instances).
            BackupSelection::builder()
                .selection_name("by-arn")
                .iam_role_arn(role)
                .resources(arn(&ids[3]))
                .resources(format!("arn:aws:ec2:*:*:instance/{}", ids[2]))
                .resources(format!("arn:aws:ec2:us-west-2:{ACCOUNT}:instance/{}", ids[0]))
                .build()
                .unwrap(),
            // Tagged team=web (or team=nobody: no instance), stage not test (missing counts): ids 0, 4 (5 is
            // terminated).
            BackupSelection::builder()
                .selection_name("by-tags")
                .iam_role_arn(role)
                .list_of_tags(tag("aws:ResourceTag/team", "web"))
                .list_of_tags(tag("aws:ResourceTag/team", "nobody"))
                .conditions(
                    Conditions::builder()
                        .string_not_equals(param("aws:ResourceTag/stage", "test"))
                        .build(),
                )
                .build()
                .unwrap(),
            // Every instance tagged stage=prod and team like w*b, but not id 0: none left but the terminated one.
            BackupSelection::builder()
                .selection_name("all-but")
                .iam_role_arn(role)
                .resources("arn:aws:ec2:*")
                .not_resources(arn(&ids[0]))
                .conditions(
                    Conditions::builder()
                        .string_equals(param("aws:ResourceTag/stage", "prod"))
                        .string_like(param("aws:ResourceTag/team", "w*b"))
                        .build(),
                )
                .build()
                .unwrap(),
        ];
        for s in selections {
            backup
                .create_backup_selection()
                .backup_plan_id(&plan_id)
                .backup_selection(s)
                .send()
                .await
                .expect("selection");
        }
        // Every instance whose team is not like w* (a missing tag counts), but not ids[3] (an ARN pattern of any
        // region and account).
        let negated = w.backup_plan(REGION, "negated", "hourly", None).await;
        backup
            .create_backup_selection()
            .backup_plan_id(&negated)
            .backup_selection(
                BackupSelection::builder()
                    .selection_name("not-web")
                    .iam_role_arn(role)
                    .resources("*")
                    .not_resources(format!("arn:aws:ec2:*:*:instance/{}", ids[3]))
                    .conditions(
                        Conditions::builder()
                            .string_not_like(param("aws:ResourceTag/team", "w*"))
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("selection");
        // `?` is a character to Backup (this selects nothing) but a wildcard to EC2 (it would select `wxb`).
        let odd_plan = w.backup_plan(REGION, "odd", "hourly", None).await;
        backup
            .create_backup_selection()
            .backup_plan_id(&odd_plan)
            .backup_selection(
                BackupSelection::builder()
                    .selection_name("odd")
                    .iam_role_arn(role)
                    .list_of_tags(tag("aws:ResourceTag/team", "w?b"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("selection");
        (plan_id, odd_plan, negated, ids)
    });

    let expected: BTreeSet<String> = [&ids[0], &ids[2], &ids[3], &ids[4]].into_iter().cloned().collect();
    let by_run = run_discover(&w, &plan_id, "state");
    assert_eq!(by_run, expected, "drflow run");
    let r = execute(&w, &asl, &plan_id);
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    let out = &r["output"]["steps"]["discover"];
    let found = instance_ids(out).unwrap_or_else(|| panic!("{r}"));
    assert_eq!(found, by_run, "the state machine finds what drflow run finds");
    let listed = out["instance_ids"].as_array().unwrap();
    assert_eq!(listed.len(), found.len(), "no duplicates: {out}");
    assert_eq!(out["count"], listed.len());

    let by_run = run_discover(&w, &negated, "negated");
    assert!(
        by_run.contains(&ids[2]) && !by_run.contains(&ids[3]) && !by_run.contains(&ids[0]),
        "{by_run:?}"
    );
    let r = execute(&w, &asl, &negated);
    assert_eq!(r["status"], "SUCCEEDED", "{r}");
    assert_eq!(instance_ids(&r["output"]["steps"]["discover"]), Some(by_run), "{r}");

    assert!(run_discover(&w, &odd_plan, "odd").is_empty());
    let r = execute(&w, &asl, &odd_plan);
    assert_eq!(r["status"], "FAILED", "{r}");
    assert_eq!(r["error"], "UnsupportedSelection", "{r}");
    let cause = r["cause"].as_str().unwrap_or_default();
    assert!(cause.contains("`odd`") && cause.contains("w?b"), "{cause}");
}
