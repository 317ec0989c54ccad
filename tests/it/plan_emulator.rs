//! `drflow plan` over the wire: the real binary and the SDK backend against the local AWS emulator, whose call log
//! proves what a plan calls: nothing at all without `--check`, and only read-only calls with it.

// This file uses only part of the emulator helpers.

use crate::common::emulator::World;
use crate::common::*;
use serde_json::Value;

const PRIMARY: &str = "us-east-1";
const DR: &str = "us-west-2";

/// An instance in the primary region and a `Default` vault in each of `vaults`; the call log cleared after.
fn world(vaults: &[&str]) -> World {
    let w = World::new(vaults, &[]);
    w.emu.control("DELETE", "/_drflow/calls", None);
    w
}

trait Planning {
    fn plan(&self, extra: &[&str]) -> (Option<i32>, String, String);
    fn calls(&self) -> Vec<String>;
}

impl Planning for World {
    fn plan(&self, extra: &[&str]) -> (Option<i32>, String, String) {
        let input = format!("instance_id={}", self.instance);
        let mut args = vec!["plan", "workflows/dr-ami.yaml", "-i", input.as_str()];
        args.extend_from_slice(extra);
        let out = self.emu.drflow(&self.state(), &args);
        let (o, e) = text(&out);
        (out.status.code(), o, e)
    }

    /// Every call in the emulator's log, as `service:Operation`.
    fn calls(&self) -> Vec<String> {
        match self.emu.control("GET", "/_drflow/calls", None) {
            Value::Array(calls) => calls
                .iter()
                .map(|c| {
                    format!(
                        "{}:{}",
                        c["service"].as_str().unwrap_or("?"),
                        c["operation"].as_str().unwrap_or("?")
                    )
                })
                .collect(),
            other => panic!("calls: {other}"),
        }
    }
}

/// Read-only by name: Describe*, Get*, List*, Validate*. Anything else (Start, Create, Copy, Put, Update, Delete,
/// Run, Terminate, Tag...) could change the account.
fn read_only(call: &str) -> bool {
    let op = call.split(':').nth(1).unwrap_or_default();
    ["Describe", "Get", "List", "Validate"]
        .iter()
        .any(|p| op.starts_with(p))
}

#[test]
fn plan_makes_no_call_and_plan_check_only_reads() {
    let w = world(&[PRIMARY, DR]);

    let (code, out, err) = w.plan(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("this plan made no AWS call"), "{out}");
    assert_eq!(w.calls(), Vec::<String>::new(), "a plan without --check calls nothing");
    assert!(!w.state().exists(), "a plan writes no state");

    let (code, out, err) = w.plan(&["-i", "deploy_stack=true", "--check"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let calls = w.calls();
    let writes: Vec<&String> = calls.iter().filter(|c| !read_only(c)).collect();
    assert!(writes.is_empty(), "mutating calls: {writes:?} of {calls:?}");
    for expected in [
        "sts:GetCallerIdentity",
        "ec2:DescribeInstances",
        "backup:DescribeBackupVault",
        "ssm:GetParameter",
        "cloudformation:ValidateTemplate",
        "cloudformation:DescribeStacks",
    ] {
        assert!(calls.iter().any(|c| c == expected), "no {expected} in {calls:?}");
    }
    for line in [
        "ok       caller identity in us-east-1: ",
        &format!(
            "ok       instance {} in us-east-1 (for backup): exists, running",
            w.instance
        ),
        "ok       backup vault Default in us-east-1 (for backup, copy): exists",
        "ok       backup vault Default in us-west-2 (for copy): exists",
        &format!(
            "note     SSM parameter /drflow/{}/ami in us-west-2 (for publish_dr): does not exist yet",
            w.instance
        ),
        "ok       template ../stacks/dr-ec2.yaml in us-west-2 (for deploy): workflows/../stacks/dr-ec2.yaml is valid",
        &format!(
            "ok       stack drflow-dr-{} in us-west-2 (for deploy): none: the run creates it",
            w.instance
        ),
        "Checks: 6 ok, 2 notes, 0 failed, 0 skipped",
    ] {
        assert!(out.contains(line), "missing `{line}` in\n{out}");
    }

    // The JSON document carries the same results.
    let (code, out, err) = w.plan(&["--check", "--output", "json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["format"], "drflow-plan/1");
    assert_eq!(plan["checks"]["backend"], "aws");
    assert_eq!(plan["checks"]["failed"], 0);
    assert!(w.calls().iter().all(|c| read_only(c)), "{:?}", w.calls());
}

#[test]
fn a_missing_dr_vault_fails_the_preflight_clearly() {
    let w = world(&[PRIMARY]);
    let (code, out, err) = w.plan(&["--check"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    let failed = "backup vault Default in us-west-2 (for copy): no backup vault `Default` in us-west-2";
    assert!(out.contains(&format!("FAILED   {failed}")), "{out}");
    assert!(err.contains("error: 1 of 8 preflight checks failed:"), "{err}");
    assert!(err.contains(failed), "{err}");
    assert!(out.contains("ok       backup vault Default in us-east-1"), "{out}");
    let calls = w.calls();
    assert!(calls.iter().any(|c| c == "backup:DescribeBackupVault"), "{calls:?}");
    assert!(calls.iter().all(|c| read_only(c)), "mutating calls in {calls:?}");
}

#[test]
fn plan_check_runs_a_fleets_discovery_over_the_wire_and_only_reads() {
    let w = world(&[PRIMARY, DR]);
    let ids = format!("instance_ids={}", w.instance);
    let out = w.emu.drflow(
        &w.state(),
        &["plan", "workflows/dr-fleet.yaml", "-i", ids.as_str(), "--check"],
    );
    let (out, err) = text(&out);
    assert!(
        out.contains(&format!(
            "ok       discovery step discover in us-east-1 (for fleet): instance_ids: 1 ({})",
            w.instance
        )),
        "{out}\n{err}"
    );
    assert!(
        out.contains(&format!(
            "     items     1 (found by discover, run by --check): {}\n",
            w.instance
        )),
        "{out}"
    );
    assert!(out.contains("     budget    1 wave × "), "{out}");
    let calls = w.calls();
    assert!(calls.iter().any(|c| c == "ec2:DescribeInstances"), "{calls:?}");
    assert!(calls.iter().all(|c| read_only(c)), "mutating calls in {calls:?}");
}
