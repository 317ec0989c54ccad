//! `ec2.prune_images` exported to Step Functions: the state machine of a prune step executed on the emulator
//! (moto's Step Functions engine) leaves the same AMIs and snapshots as `drflow run` on the same set-up, and its
//! outputs name what it did (tests/fixtures/export/execute_prune.py sets up, runs both and reports by label).

use std::process::Command;

use serde_json::{Value, json};

use crate::common::golden::stateless as run;
use crate::common::text as text_of;
use crate::common::*;

#[test]
fn an_exported_prune_leaves_what_drflow_run_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (code, asl, err) = run(&["export", "tests/fixtures/export/prune.yaml"]);
    assert_eq!(code, Some(0), "{err}");
    let file = dir.path().join("prune.asl.json");
    std::fs::write(&file, asl).unwrap();
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/fixtures/export/execute_prune.py"))
        .arg(repo("tests/emulator/server.py"))
        .arg(&file)
        .arg(env!("CARGO_BIN_EXE_drflow"))
        .arg(repo("tests/fixtures/export/prune.yaml"))
        .output()
        .expect("python runs");
    let (o, e) = text_of(&out);
    assert!(out.status.success(), "{o}\n{e}");
    let r: Value = serde_json::from_str(o.trim()).unwrap();
    assert_eq!(r["failures"], json!([]));
    let sfn = &r["results"]["sfn"];
    // Keep 2: a6 and a5 are the newest available; a1 is named by the parameter, a3 is AWS Backup's, `disabled` is
    // not available and `other` is another instance's. a2 and a4 go; a4's snapshot with it, a2's stays with a5,
    // which still uses it.
    let left = json!({
        "images": ["a1", "a3", "a5", "a6", "disabled", "other"],
        "snapshots": ["snap-a1", "snap-a2+a5", "snap-a3", "snap-a6", "snap-disabled", "snap-other"],
    });
    assert_eq!(sfn["left"], left);
    assert_eq!(
        r["results"]["run"]["left"], sfn["left"],
        "drflow run leaves something else"
    );
    assert_eq!(sfn["deregistered"], json!(["a2", "a4"]));
    assert_eq!(sfn["count"], json!(2));
    // a4's snapshot counts as deleted although the answer of its DeleteSnapshot was lost (the retry met
    // InvalidSnapshot.NotFound).
    assert_eq!(sfn["snapshots_deleted"], json!(["snap-a4"]));
    assert_eq!(sfn["kept"], json!(["a1", "a3", "a5", "a6", "disabled"]));
    // Seven AMIs of the instance: some 600 history events (6n² + 40n, see prune_images.rs).
    let events = sfn["events"].as_u64().unwrap();
    assert!((200..1000).contains(&events), "{events} events");
    // An error of DeleteSnapshot other than "in use" / "not found" fails the step with it; a4's snapshot stays.
    assert_eq!(r["results"]["denied"]["error"], "Ec2.Ec2Exception");
    assert!(
        r["results"]["denied"]["left"]
            .as_array()
            .unwrap()
            .contains(&json!("snap-a4")),
        "{}",
        r["results"]["denied"]
    );
    // Past the bound (21 AMIs of the instance), the step fails, named, and deregisters none.
    assert_eq!(r["results"]["many"], json!({"error": "TooManyImages", "left": 21}));
}
