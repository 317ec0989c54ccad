//! `drflow check`: fresh, stale, missing and unavailable cases through the real binary, in text, JSON and the
//! Prometheus exposition format; read-only by the call log; static mistakes refused before any call.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::*;

const TAGGED: &str = "i-0123456789abcdef0";
const PLAIN: &str = "i-0aaaaaaaaaaaaaaaa";
const BARE: &str = "i-0bbbbbbbbbbbbbbbb";
const ORPHAN: &str = "i-0cccccccccccccccc";

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
    // The primary backup was made about 20 simulated minutes before the end of the run; its DR copy is as old as
    // the backup it copies (the RPO counts from the backup, not from the copy), though the copied AMI is younger.
    let (s, reason, row) = status(TAGGED, "us-east-1");
    assert_eq!(s, "stale", "{row}");
    assert!(reason.contains("old (max 15m)"), "{reason}");
    assert_eq!(row["matches_newest"], true, "{row}");
    let age = row["age_secs"].as_i64().unwrap();
    assert!((15 * 60..30 * 60).contains(&age), "{row}");
    let (s, _, dr) = status(TAGGED, "us-west-2");
    assert_eq!(s, "stale", "{dr}");
    assert_eq!(dr["matches_newest"], true, "{dr}");
    assert!((dr["age_secs"].as_i64().unwrap() - age).abs() <= 30, "{dr} vs {row}");
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
    assert_eq!(gauge("drflow_ami_fresh", TAGGED, "us-west-2"), Some(0.0));
    assert_eq!(gauge("drflow_parameter_matches_newest", TAGGED, "us-west-2"), Some(1.0));
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
            .ends_with("2 stale, 1 unavailable, 1 missing image, 2 missing parameter: 6 of 6 not fresh"),
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
    // Per instance and region: age, matches newest, fresh; and the time of the check.
    assert_eq!(parse_prometheus(&body).len(), 3 * 2 + 1, "{body}");
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
        (vec!["check", "--simulate", "--newest", "none"], "give --max-age"),
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

/// Two instances with a plan's past: A's parameters still name its 3-hour-old recovery point though a 1-hour-old
/// one (copied) exists; B's name its newest, 2 hours old.
const HISTORY: &str = r#"
instances:
  - {id: i-0aaaaaaaaaaaaaaaa, region: us-east-1}
  - {id: i-0bbbbbbbbbbbbbbbb, region: us-east-1}
  - {id: i-0cccccccccccccccc, region: us-east-1}
images:
  - {id: ami-0ccccccccccccccc1, region: us-east-1, age: 3d}
parameters:
  - {name: /drflow/i-0cccccccccccccccc/ami, region: us-east-1, value: ami-0ccccccccccccccc1}
plan_history:
  - instance: i-0aaaaaaaaaaaaaaaa
    region: us-east-1
    dr_region: us-west-2
    points:
      - {age: 3h, published_as: /drflow/i-0aaaaaaaaaaaaaaaa/ami}
      - {age: 1h}
  - instance: i-0bbbbbbbbbbbbbbbb
    region: us-east-1
    dr_region: us-west-2
    points:
      - {age: 2h, published_as: /drflow/i-0bbbbbbbbbbbbbbbb/ami}
"#;

#[test]
fn check_compares_each_parameter_with_the_newest_recovery_point_of_its_vault() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let scenario = state.join("history.yaml");
    std::fs::write(&scenario, HISTORY).unwrap();
    let scenario = scenario.display().to_string();
    let ids = format!("{PLAIN},{BARE},{ORPHAN}");
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--scenario",
            &scenario,
            "--instance-ids",
            &ids,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = drflow(state, &args);
        let report: Value = serde_json::from_str(&text(&o).0).unwrap_or_else(|e| panic!("{e}: {}", text(&o).1));
        (o.status.code(), report)
    };
    let row = |report: &Value, instance: &str, region: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance_id"] == instance && r["region"] == region)
            .cloned()
            .unwrap()
    };
    // Without a maximum age, only the newest is fresh: A is behind in both regions.
    let (code, report) = check(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(report["newest_source"], "backup");
    for region in ["us-east-1", "us-west-2"] {
        let a = row(&report, PLAIN, region);
        assert_eq!(
            (a["status"].as_str(), a["matches_newest"].as_bool()),
            (Some("stale"), Some(false)),
            "{a}"
        );
        assert!(a["reason"].as_str().unwrap().starts_with("the newest is ami-"), "{a}");
        let newest_age = report["checked_at"].as_i64().unwrap() - a["newest"]["created"].as_i64().unwrap();
        assert!((3500..3700).contains(&newest_age), "{a}");
        assert!(
            (3 * 3600 - 100..3 * 3600 + 100).contains(&a["age_secs"].as_i64().unwrap()),
            "{a}"
        );
        let b = row(&report, BARE, region);
        assert_eq!(
            (b["status"].as_str(), b["matches_newest"].as_bool()),
            (Some("fresh"), Some(true)),
            "{b}"
        );
        // In the DR region too the age is the source backup's: 2 hours.
        assert!(
            (2 * 3600 - 100..2 * 3600 + 100).contains(&b["age_secs"].as_i64().unwrap()),
            "{b}"
        );
    }
    // C (an AMI made outside the plan) has no recovery point to be compared with: not vouched for as fresh.
    let c = row(&report, ORPHAN, "us-east-1");
    assert_eq!(c["status"], "stale", "{c}");
    assert_eq!(
        c["reason"],
        "no COMPLETED recovery point of the instance in Default to compare with: give --max-age"
    );
    // Within a maximum age of 4 hours, being behind is tolerated (the next hourly follow publishes it) ...
    let (code, report) = check(&["--max-age", "4h"]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(row(&report, BARE, "us-west-2")["status"], "fresh");
    assert_eq!(row(&report, PLAIN, "us-west-2")["status"], "fresh");
    assert!(
        row(&report, ORPHAN, "us-east-1")["reason"]
            .as_str()
            .unwrap()
            .contains("old (max 4h00m)")
    );
    assert_eq!(row(&report, PLAIN, "us-west-2")["matches_newest"], false);
    // ... and beyond 150 minutes, A's 3 hours are not, whatever is newer.
    let (code, report) = check(&["--max-age", "150m"]);
    assert_eq!(code, Some(1));
    assert_eq!(row(&report, PLAIN, "us-east-1")["status"], "stale");
    assert_eq!(row(&report, BARE, "us-east-1")["status"], "fresh");
    // The vault to look in is the user's: one that does not exist is an error for every row, not "fresh".
    let (code, report) = check(&["--dr-vault", "Nope"]);
    assert_eq!(code, Some(1));
    let dr = row(&report, BARE, "us-west-2");
    assert_eq!(dr["status"], "error", "{dr}");
}

/// Over the wire, against the emulator: A's parameters name its newest recovery point (1 hour old), B's its only one
/// (5 hours old), C has none, D's primary parameter names an AMI still pending. Checked with a maximum age of 2h.
#[test]
fn check_over_the_wire_fresh_stale_missing_and_unavailable() {
    use serde_json::json;

    let (primary, dr) = ("us-east-1", "us-west-2");
    let w = crate::common::emulator::World::new(&[primary, dr], &[]);
    let ids: Vec<String> = w.rt.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..4 {
            ids.push(w.launch(primary, &[]).await);
        }
        ids
    });
    let [a, b, c, d] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    let seed = |instance: &str, points: Value| -> Vec<Value> {
        let body = json!({"instance_id": instance, "region": primary, "dr_region": dr, "points": points});
        match w.emu.control("POST", "/_drflow/seed-plan-history", Some(body))["points"].clone() {
            Value::Array(p) => p,
            other => panic!("{other}"),
        }
    };
    let pa = seed(a, json!([{"age_seconds": 3 * 3600}, {"age_seconds": 3600}]));
    let pb = seed(b, json!([{"age_seconds": 5 * 3600}]));
    let put = |region: &str, name: String, value: &str, data_type: &str| {
        w.rt.block_on(async {
            aws_sdk_ssm::Client::new(&w.emu.sdk(region))
                .put_parameter()
                .name(name)
                .value(value)
                .data_type(data_type)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .overwrite(true)
                .send()
                .await
                .expect("put");
        })
    };
    let param = |id: &str| format!("/drflow/{id}/ami");
    let field = |p: &Value, k: &str| p[k].as_str().unwrap().to_string();
    put(primary, param(a), &field(&pa[1], "image_id"), "aws:ec2:image");
    put(dr, param(a), &field(&pa[1], "dr_image_id"), "aws:ec2:image");
    put(primary, param(b), &field(&pb[0], "image_id"), "aws:ec2:image");
    put(dr, param(b), &field(&pb[0], "dr_image_id"), "aws:ec2:image");
    // D: an AMI that stays pending (an aws:ec2:image parameter would refuse it: written as text, as a hand-made
    // parameter could be).
    w.emu.config(1000, 1);
    let pending = w.rt.block_on(async {
        aws_sdk_ec2::Client::new(&w.emu.sdk(primary))
            .create_image()
            .instance_id(d)
            .name("pending")
            .send()
            .await
            .unwrap()
            .image_id()
            .unwrap()
            .to_string()
    });
    put(primary, param(d), &pending, "text");
    w.emu.control("DELETE", "/_drflow/calls", None);

    let state = w.state();
    let list = ids.join(",");
    let check = |output: &str| {
        let o = w.emu.drflow(
            &state,
            &["check", "--instance-ids", &list, "--max-age", "2h", "--output", output],
        );
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
        out
    };
    let report: Value = serde_json::from_str(&check("json")).unwrap();
    let row = |instance: &str, region: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance_id"] == instance && r["region"] == region)
            .cloned()
            .unwrap()
    };
    for region in [primary, dr] {
        let ra = row(a, region);
        assert_eq!(
            (ra["status"].as_str(), ra["matches_newest"].as_bool()),
            (Some("fresh"), Some(true)),
            "{ra}"
        );
        let rb = row(b, region);
        assert_eq!(
            (rb["status"].as_str(), rb["matches_newest"].as_bool()),
            (Some("stale"), Some(true)),
            "{rb}"
        );
        let age = rb["age_secs"].as_i64().unwrap();
        assert!((5 * 3600 - 60..5 * 3600 + 60).contains(&age), "{rb}");
        assert_eq!(row(c, region)["status"], "missing_parameter");
    }
    let rd = row(d, primary);
    assert_eq!(rd["status"], "unavailable", "{rd}");
    assert!(rd["reason"].as_str().unwrap().contains("is pending"), "{rd}");
    assert_eq!(row(d, dr)["status"], "missing_parameter");

    let samples = parse_prometheus(&check("prometheus"));
    let fresh = |instance: &str, region: &str| samples[&("drflow_ami_fresh".to_string(), series(instance, region))];
    assert_eq!(
        (fresh(a, primary), fresh(a, dr), fresh(b, dr), fresh(d, primary)),
        (1.0, 1.0, 0.0, 0.0)
    );
    let age = samples[&("drflow_ami_age_seconds".to_string(), series(b, dr))];
    assert!((5.0 * 3600.0 - 60.0..5.0 * 3600.0 + 60.0).contains(&age), "{age}");

    // Read-only over the wire too: the emulator saw only calls that change nothing.
    let calls = match w.emu.control("GET", "/_drflow/calls", None) {
        Value::Array(c) => c,
        other => panic!("{other}"),
    };
    assert!(calls.len() >= 2 * 4 * 2, "{} calls", calls.len());
    let changing: Vec<String> = calls
        .iter()
        .map(|c| {
            (
                c["service"].as_str().unwrap().to_string(),
                c["operation"].as_str().unwrap().to_string(),
            )
        })
        .filter(|(s, op)| drflow::cloud::operations::mutates_call(s, op))
        .map(|(s, op)| format!("{s}:{op}"))
        .collect();
    assert!(changing.is_empty(), "{changing:?}");
}
