//! The emulator's own self-test (`tests/emulator/selftest.py`): every extension exercised against a server of its
//! own, so an emulator change that breaks what AWS documents fails the project's tests, not only a manual run.

use std::process::Command;

use crate::common::*;

#[test]
fn the_emulator_passes_its_self_test() {
    let out = Command::new(venv_bin("python"))
        .arg(repo("tests/emulator/selftest.py"))
        .current_dir(repo("tests/emulator"))
        .output()
        .expect("the venv's python runs");
    let (stdout, stderr) = text(&out);
    let failed: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
    assert!(
        out.status.success(),
        "the emulator's self-test failed ({}):\n{}\n{stderr}",
        out.status,
        failed.join("\n")
    );
    let summary = stdout.lines().last().unwrap_or_default();
    let passed: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line: {summary:?}"));
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    // The self-test is not empty: it covers every extension (59 checks when this test was written).
    assert!(passed >= 50, "only {passed} checks ran: {summary}");
}
