//! The shipped CloudFormation templates pass cfn-lint (installed into the project's virtualenv).

use std::process::Command;

use crate::common::{repo, venv_bin};

#[test]
fn templates_pass_cfn_lint() {
    let cfn_lint = venv_bin("cfn-lint");
    let mut templates: Vec<_> = std::fs::read_dir(repo("stacks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    assert!(!templates.is_empty());
    for t in templates {
        let out = Command::new(&cfn_lint).arg(&t).output().expect("cfn-lint runs");
        assert!(
            out.status.success(),
            "{}: {}{}",
            t.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
