//! Golden files (tests/golden/): the lists of cases (`NAME WORKFLOW ARGS...` per line) and the comparison, which
//! `DRFLOW_UPDATE_GOLDEN=1` turns into a rewrite.

use std::path::Path;

use super::{drflow, repo, text};

/// One case of a golden list.
pub struct Golden {
    pub name: String,
    pub workflow: String,
    pub args: Vec<String>,
}

/// The cases of `tests/golden/LIST`.
pub fn list(file: &str) -> Vec<Golden> {
    let path = repo("tests/golden").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace().map(str::to_string);
            Golden {
                name: words.next().unwrap(),
                workflow: words.next().expect("a workflow"),
                args: words.collect(),
            }
        })
        .collect()
}

/// Runs the binary with no state directory to touch (plan, policy, graph and export need none).
pub fn stateless(args: &[&str]) -> (Option<i32>, String, String) {
    let out = drflow(Path::new("/nonexistent-drflow-state"), args);
    let (o, e) = text(&out);
    (out.status.code(), o, e)
}

/// Compares (or with DRFLOW_UPDATE_GOLDEN=1 rewrites) one golden file; the problem, if any.
pub fn compare(file: &str, actual: &str) -> Option<String> {
    let path = repo("tests/golden").join(file);
    if std::env::var_os("DRFLOW_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(&path) {
        Err(_) => Some(format!("{file}: missing (DRFLOW_UPDATE_GOLDEN=1 writes it)")),
        Ok(expected) if expected != actual => {
            let (n, (want, got)) = expected
                .lines()
                .chain(std::iter::repeat("<end>"))
                .zip(actual.lines().chain(std::iter::repeat("<end>")))
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap();
            Some(format!(
                "{file}: differs at line {}\n  expected: {want}\n  actual:   {got}",
                n + 1
            ))
        }
        Ok(_) => None,
    }
}
