//! A check's report as text for people, JSON, or the Prometheus text exposition format (for node_exporter's
//! textfile collector).

use std::fmt::Write;

use super::{Report, Status, age_words};

pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let regions: Vec<String> = {
        let mut seen: Vec<String> = Vec::new();
        for row in &r.rows {
            let name = format!("{} ({})", row.region, row.role);
            if !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen
    };
    let _ = writeln!(
        out,
        "{}: {} instance(s) in {}; {}; newest from: {}",
        r.targets,
        r.instances,
        if regions.is_empty() {
            "no region".into()
        } else {
            regions.join(" and ")
        },
        match r.max_age_secs {
            Some(m) => format!("max age {}", age_words(m)),
            None => "no max age (fresh = newest)".into(),
        },
        r.newest_source,
    );
    let header = ["INSTANCE", "REGION", "PARAMETER", "AMI", "AGE", "NEWEST", "STATUS"].map(String::from);
    let mut table = vec![header];
    for row in &r.rows {
        let v = &row.verdict;
        table.push([
            row.instance_id.clone(),
            row.region.clone(),
            row.parameter.clone(),
            match (&v.image_id, &v.image_state) {
                (Some(id), Some(state)) => format!("{id} ({state})"),
                (Some(id), None) => id.clone(),
                (None, _) => "-".into(),
            },
            v.age_secs.map_or("-".into(), age_words),
            match v.matches_newest {
                Some(true) => "yes".into(),
                Some(false) => "no".into(),
                None => "-".into(),
            },
            v.status.words(),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    for row in r.rows.iter().filter(|row| row.verdict.status != Status::Fresh) {
        let _ = writeln!(
            out,
            "{} in {}: {}: {}",
            row.instance_id,
            row.region,
            row.verdict.status.words(),
            row.verdict.reason
        );
    }
    let counts: Vec<String> = r
        .counts()
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {}", s.words()))
        .collect();
    let bad = r.rows.iter().filter(|row| row.verdict.status != Status::Fresh).count();
    let _ = writeln!(
        out,
        "{}{}",
        if counts.is_empty() {
            "nothing to check".into()
        } else {
            counts.join(", ")
        },
        if bad == 0 {
            String::new()
        } else {
            format!(": {bad} of {} not fresh", r.rows.len())
        }
    );
    out
}

pub fn json(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).unwrap_or_default();
    s.push('\n');
    s
}

/// Gauges, one sample per instance and region (an AMI age only where an AMI exists; "matches newest" only where
/// the newest is known), and the time of the check.
pub fn prometheus(r: &Report) -> String {
    let mut out = String::new();
    let labels = |row: &super::Row| {
        format!(
            "instance_id=\"{}\",region=\"{}\",role=\"{}\",parameter=\"{}\"",
            escape(&row.instance_id),
            escape(&row.region),
            row.role,
            escape(&row.parameter)
        )
    };
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (l, v) in samples {
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        }
    };
    gauge(
        "drflow_ami_age_seconds",
        "Seconds since the AMI a parameter names was created (for an AWS Backup copy, since the source backup).",
        r.rows
            .iter()
            .filter_map(|row| Some((labels(row), row.verdict.age_secs?.to_string())))
            .collect(),
    );
    gauge(
        "drflow_parameter_matches_newest",
        "1 when the parameter names the instance's newest AMI in the region, 0 when a newer one exists.",
        r.rows
            .iter()
            .filter_map(|row| Some((labels(row), u8::from(row.verdict.matches_newest?).to_string())))
            .collect(),
    );
    gauge(
        "drflow_ami_fresh",
        "1 when the parameter exists and names an available AMI that is fresh (the newest, or within the maximum age).",
        r.rows
            .iter()
            .map(|row| (labels(row), u8::from(row.verdict.status == Status::Fresh).to_string()))
            .collect(),
    );
    let _ = writeln!(
        out,
        "# HELP drflow_check_timestamp_seconds When the check ran (Unix seconds)."
    );
    let _ = writeln!(out, "# TYPE drflow_check_timestamp_seconds gauge");
    let _ = writeln!(out, "drflow_check_timestamp_seconds {}", r.checked_at);
    out
}

/// A label value as the exposition format wants it: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::super::{Newest, Row, Verdict};
    use super::*;

    fn report() -> Report {
        let row = |id: &str, region: &str, role, status, age: Option<i64>, matches| Row {
            instance_id: id.into(),
            region: region.into(),
            role,
            parameter: format!("/drflow/{id}/ami"),
            verdict: Verdict {
                status,
                image_id: age.map(|_| "ami-1".to_string()),
                image_state: age.map(|_| "available".to_string()),
                age_secs: age,
                matches_newest: matches,
                reason: if status == Status::Fresh {
                    String::new()
                } else {
                    "why".into()
                },
            },
            newest: Some(Newest {
                image_id: "ami-1".into(),
                created: 0,
            }),
        };
        Report {
            format: "drflow-check/1",
            checked_at: 1_800_000_000,
            targets: "2 listed instance(s)".into(),
            max_age_secs: Some(7200),
            newest_source: "backup",
            instances: 2,
            rows: vec![
                row("i-1", "us-east-1", "primary", Status::Fresh, Some(60), Some(true)),
                row("i-1", "us-west-2", "dr", Status::Stale, Some(9000), Some(false)),
                row("i-2", "us-east-1", "primary", Status::MissingParameter, None, None),
            ],
        }
    }

    #[test]
    fn prometheus_has_one_sample_per_row_where_the_value_is_known() {
        let p = prometheus(&report());
        let samples = |name: &str| p.lines().filter(|l| l.starts_with(&format!("{name}{{"))).count();
        assert_eq!(samples("drflow_ami_age_seconds"), 2);
        assert_eq!(samples("drflow_parameter_matches_newest"), 2);
        assert_eq!(samples("drflow_ami_fresh"), 3);
        assert!(p.contains(
            "drflow_ami_fresh{instance_id=\"i-1\",region=\"us-west-2\",role=\"dr\",parameter=\"/drflow/i-1/ami\"} 0"
        ));
        assert!(p.contains("# TYPE drflow_ami_age_seconds gauge\n"));
        assert!(p.ends_with("drflow_check_timestamp_seconds 1800000000\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn text_lists_every_row_then_what_is_wrong() {
        let t = text(&report());
        assert!(t.starts_with(
            "2 listed instance(s): 2 instance(s) in us-east-1 (primary) and us-west-2 (dr); max age 2h00m"
        ));
        assert!(t.contains("i-1 in us-west-2: stale: why\n"));
        assert!(t.ends_with("1 fresh, 1 stale, 1 missing parameter: 2 of 3 not fresh\n"));
    }
}
