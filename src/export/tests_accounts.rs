//! Steps in another account (`accounts`): a Task's `Credentials`, `accounts.NAME` known at export, and the located
//! refusals; the forms of `ec2.share_image` / `ec2.unshare_image`.

use serde_json::{Value, json};

use super::{ExportError, Options, asl};
use crate::workflow::{Source, parse};

const ROLE: &str = "arn:aws:iam::222222222222:role/drflow-dr";

fn export(regions: &str, steps: &str, home: Option<&str>) -> Result<Value, ExportError> {
    let yaml = format!("version: 1\nname: t\nregions:\n{regions}\nsteps:\n{steps}");
    let wf = parse(Source::new("test.yaml", &yaml), crate::actions::catalog()).unwrap_or_else(|p| panic!("{p:?}"));
    let opts = Options {
        home: home.map(str::to_string),
        ..Options::default()
    };
    asl(&wf, &[], &[], &opts).map(|e| e.definition)
}

/// Every Task state, nested ones included.
fn tasks(def: &Value) -> Vec<(String, Value)> {
    fn walk(states: &Value, out: &mut Vec<(String, Value)>) {
        for (k, v) in states.as_object().into_iter().flatten() {
            if v["Type"] == "Task" {
                out.push((k.clone(), v.clone()));
            }
            for b in v["Branches"].as_array().into_iter().flatten() {
                walk(&b["States"], out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&def["States"], &mut out);
    out
}

fn state(def: &Value, name: &str) -> Value {
    def["States"][name].clone()
}

fn regions(extra: &str) -> String {
    format!("  primary: us-east-1\n  dr:\n    region: us-west-2\n    role_arn: {ROLE}\n{extra}")
}

const SHARE: &str = "  - id: share\n    action: ec2.share_image\n    region: primary\n    with: {image_id: ami-1, account_id: '${{ accounts.dr }}'}\n  - id: put\n    action: ssm.put_parameter\n    region: dr\n    with: {name: /x, value: '${{ accounts.dr }}'}\n";

#[test]
fn a_step_in_the_roles_region_calls_with_its_credentials_and_its_account_is_known() {
    let def = export(&regions(""), SHARE, None).unwrap();
    let all = tasks(&def);
    let (dr, primary): (Vec<_>, Vec<_>) = all.iter().partition(|(k, _)| k.starts_with("put"));
    assert!(!dr.is_empty() && !primary.is_empty());
    for (name, t) in &dr {
        assert_eq!(t["Credentials"], json!({"RoleArn": ROLE}), "{name}");
        assert!(
            t["Resource"].as_str().unwrap().starts_with("arn:aws:states:::aws-sdk:"),
            "{name}"
        );
    }
    // The primary region's calls (the caller's account) go through the function, without a role.
    for (name, t) in &primary {
        assert!(t.get("Credentials").is_none(), "{name}");
        assert_eq!(t["Resource"], "arn:aws:states:::lambda:invoke", "{name}");
    }
    // `accounts.dr` is the role's account, written in.
    assert_eq!(state(&def, "share")["Parameters"]["in"]["account_id"], "222222222222");
    assert_eq!(state(&def, "put")["Parameters"]["in"]["value"], "222222222222");
}

#[test]
fn a_role_outside_the_state_machines_region_or_with_an_external_id_is_refused_located() {
    let Err(ExportError::Refused(r)) = export(&regions(""), SHARE, Some("primary")) else {
        panic!("not refused")
    };
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].step, "put");
    assert!(r[0].location.starts_with("test.yaml:"), "{r:?}");
    assert!(
        r[0].reason.contains("reached through role") && r[0].reason.contains("--state-machine-region dr"),
        "{r:?}"
    );
    let Err(ExportError::Refused(r)) = export(&regions("    external_id: xyz\n"), SHARE, None) else {
        panic!("not refused")
    };
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(
        r[0].reason.contains("external_id") && r[0].reason.contains("no external id"),
        "{r:?}"
    );
}

#[test]
fn sharing_an_image_grants_launch_and_create_volume_permission_per_snapshot() {
    for (action, op) in [("share_image", "Add"), ("unshare_image", "Remove")] {
        let steps = format!(
            "  - id: s\n    action: ec2.{action}\n    region: dr\n    with: {{image_id: ami-1, account_id: '111111111111'}}\n"
        );
        let def = export(&regions(""), &steps, None).unwrap();
        let all = tasks(&def);
        let launch = &all.iter().find(|(k, _)| k.contains("ModifyImageAttribute")).unwrap().1;
        assert_eq!(
            launch["Parameters"]["LaunchPermission"],
            json!({op: [{"UserId": "111111111111"}]})
        );
        let volumes = &all
            .iter()
            .find(|(k, _)| k.contains("ModifySnapshotAttribute"))
            .unwrap()
            .1;
        assert_eq!(volumes["Parameters"]["OperationType"], op.to_lowercase());
        assert_eq!(volumes["Parameters"]["UserIds"], json!(["111111111111"]));
        assert_eq!(volumes["Parameters"]["SnapshotId.$"], "$.each.device.v.Ebs.SnapshotId");
        assert_eq!(volumes["Credentials"]["RoleArn"], ROLE);
        let describe = &all.iter().find(|(k, _)| k.contains("DescribeImages")).unwrap().1;
        // Unsharing an image that is gone has nothing to do; sharing it fails.
        assert_eq!(describe.get("Catch").is_some(), action == "unshare_image", "{describe}");
    }
}

const FINALLY: &str = "version: 1\nname: t\nregions: {primary: us-east-1}\nsteps:\n  - id: a\n    action: drflow.echo\n    with: {value: x}\n  - id: b\n    action: drflow.fail\n    with: {message: boom}\nfinally:\n  - id: undo\n    when: WHEN\n    action: drflow.echo\n    with: {value: y}\n";

fn finally(when: &str) -> Result<Value, ExportError> {
    let yaml = FINALLY.replace("WHEN", when);
    let wf = parse(Source::new("test.yaml", &yaml), crate::actions::catalog()).unwrap_or_else(|p| panic!("{p:?}"));
    asl(&wf, &[], &[], &Options::default()).map(|e| e.definition)
}

#[test]
fn finally_tells_whether_a_top_level_step_succeeded_and_keeps_the_outputs_before_a_failure() {
    let def = finally("${{ steps.a.status == 'succeeded' }}").unwrap();
    let choice = &def["States"]["undo: when"];
    assert_eq!(
        choice["Choices"][0],
        json!({"Variable": "$.steps.a", "IsPresent": true, "Next": "undo"})
    );
    let negated = finally("${{ steps.a.status != 'succeeded' }}").unwrap();
    assert_eq!(
        negated["States"]["undo: when"]["Choices"][0]["Not"],
        json!({"Variable": "$.steps.a", "IsPresent": true})
    );
    // A main step's failure is caught at the step: the main steps end with the outputs of those before it and the
    // run marked failed (then `finally`, then the execution fails with the step's error).
    let main = &def["States"]["Main"]["Branches"][0]["States"];
    assert_eq!(main["b: attempt"]["Catch"][0]["Next"], "b: failed");
    assert_eq!(main["b: failed"]["Next"], "main: end");
    assert_eq!(main["b: failed"]["Parameters"]["steps.$"], "$.steps");
    assert_eq!(main["b: failed"]["Parameters"]["run"]["status"], "failed");
    for (when, reason) in [
        ("${{ steps.a.status == 'failed' }}", "only `== 'succeeded'`"),
        ("${{ steps.b.error == '' }}", "status and error are not kept"),
    ] {
        let Err(ExportError::Refused(r)) = finally(when) else {
            panic!("{when}: not refused")
        };
        assert!(
            r.iter().any(|r| r.step == "undo" && r.reason.contains(reason)),
            "{when}: {r:?}"
        );
    }
}
