//! `drflow check`: fresh, stale, missing and unavailable cases through the real binary, in text, JSON and the
//! Prometheus exposition format; read-only by the call log; static mistakes refused before any call.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

const TAGGED: &str = "i-0123456789abcdef0";
const PLAIN: &str = "i-0aaaaaaaaaaaaaaaa";
const BARE: &str = "i-0bbbbbbbbbbbbbbbb";

/// The default world (TAGGED is tagged drflow:protect=true), plus PLAIN whose primary parameter names an AMI that
/// does not exist and whose DR parameter names a failed AMI, and BARE, which has no parameter.
const SCENARIO: &str = r#"
instances:
  - {id: i-0aaaaaaaaaaaaaaaa, region: us-east-1}
  - {id: i-0bbbbbbbbbbbbbbbb, region: us-east-1}
images:
  - {id: ami-0ccccccccccccccc2, region: us-west-2, state: failed}
parameters:
  - {name: /drflow/i-0aaaaaaaaaaaaaaaa/ami, region: us-east-1, value: ami-0ddddddddddddddd1}
  - {name: /drflow/i-0aaaaaaaaaaaaaaaa/ami, region: us-west-2, value: ami-0ccccccccccccccc2}
"#;

/// Every call in the simulator's call log, as (operation, mutating).
fn calls(state: &Path) -> Vec<(String, bool)> {
    let log = std::fs::read_to_string(state.join("sim/calls.jsonl")).unwrap_or_default();
    log.lines()
        .map(|l| {
            let c: Value = serde_json::from_str(l).unwrap();
            (
                format!(
                    "{}:{}",
                    c["service"].as_str().unwrap(),
                    c["operation"].as_str().unwrap()
                ),
                c["mutating"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A world where the fleet pipeline published TAGGED's AMIs (its primary backup ~20 simulated minutes old, its DR
/// copy ~12), with the scenario's other instances and parameters.
fn published(dir: &Path) -> String {
    let scenario = dir.join("scenario.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let scenario = scenario.display().to_string();
    let o = drflow(
        dir,
        &[
            "run",
            "workflows/dr-fleet.yaml",
            "--scenario",
            &scenario,
            "--output",
            "plain",
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    scenario
}

/// Parses the text exposition format strictly: every sample's metric was declared a gauge before it, labels are
/// `name="value"` pairs. Returns (metric, labels) → value.
fn parse_prometheus(body: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut declared = Vec::new();
    let mut samples = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            declared.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = inner
                    .split("\",")
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                        (k.to_string(), v.trim_end_matches('"').to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
            None => (series.to_string(), BTreeMap::new()),
        };
        assert!(declared.contains(&name), "{name} sampled before its TYPE line");
        assert!(
            samples.insert((name, labels), value).is_none(),
            "a series twice: {line}"
        );
    }
    samples
}

fn series(instance: &str, region: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("instance_id".to_string(), instance.to_string()),
        ("region".to_string(), region.to_string()),
        (
            "role".to_string(),
            if region == "us-east-1" { "primary" } else { "dr" }.to_string(),
        ),
        ("parameter".to_string(), format!("/drflow/{instance}/ami")),
    ])
}

#[test]
fn check_tells_fresh_stale_missing_and_unavailable_apart_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let scenario = published(state);
    let before = calls(state).len();
    let ids = format!("{TAGGED},{PLAIN},{BARE}");
    let args = |output: &str| {
        vec![
            "check".to_string(),
            "--scenario".into(),
            scenario.clone(),
            "--instance-ids".into(),
            ids.clone(),
            "--max-age".into(),
            "15m".into(),
            "--output".into(),
            output.into(),
        ]
    };
    let run = |output: &str| {
        let a = args(output);
        drflow(state, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let o = run("json");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o).1);
    let report: Value = serde_json::from_str(&text(&o).0).unwrap();
    assert_eq!(report["format"], "drflow-check/1");
    assert_eq!(report["instances"], 3);
    let status = |instance: &str, region: &str| {
        let row = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance_id"] == instance && r["region"] == region)
            .unwrap_or_else(|| panic!("no row for {instance} in {region}"));
        (
            row["status"].as_str().unwrap().to_string(),
            row["reason"].as_str().unwrap().to_string(),
            row.clone(),
        )
    };
    // The primary backup was made about 20 simulated minutes before the end of the run, its copy about 12.
    let (s, reason, row) = status(TAGGED, "us-east-1");
    assert_eq!(s, "stale", "{row}");
    assert!(reason.contains("old (max 15m)"), "{reason}");
    let age = row["age_secs"].as_i64().unwrap();
    assert!((15 * 60..30 * 60).contains(&age), "{row}");
    let (s, _, row) = status(TAGGED, "us-west-2");
    assert_eq!(s, "fresh", "{row}");
    assert!(row["age_secs"].as_i64().unwrap() < 15 * 60, "{row}");
    let (s, reason, _) = status(PLAIN, "us-east-1");
    assert_eq!(s, "missing_image");
    assert_eq!(
        reason,
        "the parameter names ami-0ddddddddddddddd1, which does not exist in this region"
    );
    let (s, reason, _) = status(PLAIN, "us-west-2");
    assert_eq!(s, "unavailable");
    assert!(reason.starts_with("ami-0ccccccccccccccc2 is failed"), "{reason}");
    for region in ["us-east-1", "us-west-2"] {
        assert_eq!(status(BARE, region).0, "missing_parameter");
    }

    let o = run("prometheus");
    assert_eq!(o.status.code(), Some(1));
    let samples = parse_prometheus(&text(&o).0);
    let gauge =
        |name: &str, instance: &str, region: &str| samples.get(&(name.to_string(), series(instance, region))).copied();
    assert_eq!(gauge("drflow_ami_fresh", TAGGED, "us-east-1"), Some(0.0));
    assert_eq!(gauge("drflow_ami_fresh", TAGGED, "us-west-2"), Some(1.0));
    assert_eq!(gauge("drflow_ami_fresh", BARE, "us-west-2"), Some(0.0));
    // The same age as the JSON said, give or take the simulated seconds that passed between the two checks.
    let age_again = gauge("drflow_ami_age_seconds", TAGGED, "us-east-1").unwrap();
    assert!((age_again - age as f64).abs() <= 30.0, "{age_again} vs {age}");
    // No AMI, no age: the series is absent rather than a made-up number.
    assert_eq!(gauge("drflow_ami_age_seconds", BARE, "us-east-1"), None);
    assert_eq!(samples.keys().filter(|(n, _)| n == "drflow_ami_fresh").count(), 6);
    assert!(samples.contains_key(&("drflow_check_timestamp_seconds".to_string(), BTreeMap::new())));

    let o = run("text");
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o).0;
    assert!(
        out.contains(&format!(
            "{BARE} in us-west-2: missing parameter: the parameter does not exist"
        )),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("1 fresh, 1 stale, 1 unavailable, 1 missing image, 2 missing parameter: 5 of 6 not fresh"),
        "{out}"
    );

    // Read-only: the checks added calls to the log, none of which changes anything.
    let after = calls(state);
    assert!(after.len() > before, "the check called nothing?");
    let mutating: Vec<_> = after[before..].iter().filter(|(_, m)| *m).collect();
    assert!(mutating.is_empty(), "check made changing calls: {mutating:?}");

    // Within a larger maximum age, the tagged instance (found by its tag, the default) is fresh in both regions.
    let o = drflow(state, &["check", "--scenario", &scenario, "--max-age", "1h"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).0);
    assert!(
        text(&o)
            .0
            .contains("instances tagged drflow:protect=true: 1 instance(s)"),
        "{}",
        text(&o).0
    );
}

#[test]
fn the_textfile_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let scenario = published(state);
    let file = state.join("drflow.prom");
    std::fs::write(&file, "old contents\n").unwrap();
    let o = drflow(
        state,
        &[
            "check",
            "--scenario",
            &scenario,
            "--max-age",
            "1h",
            "--output",
            "prometheus",
            "--out",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert!(text(&o).0.is_empty());
    let body = std::fs::read_to_string(&file).unwrap();
    assert_eq!(parse_prometheus(&body).len(), 2 * 2 + 1, "{body}");
    let leftovers: Vec<_> = std::fs::read_dir(state)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn static_mistakes_are_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    for (args, message) in [
        (vec!["check", "--simulate"], "give --max-age"),
        (vec!["check", "--simulate", "--max-age", "2x"], "--max-age 2x"),
        (
            vec!["check", "--simulate", "--max-age", "1h", "--region", "dr=us-wset-2"],
            "did you mean `us-west-2`?",
        ),
        (
            vec!["check", "--simulate", "--max-age", "1h", "--region", "dr=us-east-1"],
            "both us-east-1",
        ),
        (
            vec!["check", "--simulate", "--max-age", "1h", "--instance-ids", "i-12"],
            "`i-12` is not an EC2 instance id",
        ),
        (
            vec!["check", "--simulate", "--max-age", "1h", "--prefix", "drflow"],
            "--prefix `drflow`",
        ),
    ] {
        let o = drflow(state, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o).1);
        assert!(text(&o).1.contains(message), "{args:?}: {}", text(&o).1);
    }
    assert!(!state.join("sim").exists(), "a refused check opened the simulator");
}
