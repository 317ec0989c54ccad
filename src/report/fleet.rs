//! A fleet's summary: one line per item of a `for_each` (its steps are journaled as `GROUP[KEY].STEP`), and the
//! failures grouped by cause.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{StepRow, dur};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetItem {
    /// The `for_each` group.
    pub group: String,
    pub key: String,
    /// `succeeded`, `failed`, `skipped` or `unfinished`.
    pub status: String,
    pub duration_ms: Option<i64>,
    pub duration: Option<String>,
    pub attempts: u32,
    /// The AMIs its steps reported (`image_id` outputs), in step order.
    pub amis: Vec<String>,
    /// The parameters it wrote: `NAME = VALUE (version N)`.
    pub parameters: Vec<String>,
    /// The first failed step and its error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The cause: the failed step (without its item) and the error code.
    pub cause: String,
    pub count: usize,
    pub items: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub items: Vec<FleetItem>,
    pub failures: Vec<FailureGroup>,
}

/// `GROUP[KEY].REST` → (GROUP, KEY, REST); the pseudo-step `GROUP[KEY]` (a skipped item) has an empty REST.
pub(crate) fn split(id: &str) -> Option<(&str, &str, &str)> {
    let open = id.find('[')?;
    let close = open + id[open..].find(']')?;
    let rest = id[close + 1..].strip_prefix('.').unwrap_or("");
    Some((&id[..open], &id[open + 1..close], rest))
}

/// The fleet summary, when the run has `for_each` items. `codes` gives a failed step's error code.
pub fn build(steps: &[StepRow], codes: &dyn Fn(&str) -> String) -> Option<Fleet> {
    let mut items: BTreeMap<(String, String), FleetItem> = BTreeMap::new();
    let mut spans: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut causes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in steps {
        let Some((group, key, rest)) = split(&r.id) else {
            continue;
        };
        let k = (group.to_string(), key.to_string());
        let item = items.entry(k.clone()).or_insert_with(|| FleetItem {
            group: group.to_string(),
            key: key.to_string(),
            status: "succeeded".into(),
            duration_ms: None,
            duration: None,
            attempts: 0,
            amis: Vec::new(),
            parameters: Vec::new(),
            error: None,
        });
        if rest.is_empty() && r.status == "skipped" {
            item.status = "skipped".into();
            item.error = r.skip_reason.clone();
            continue;
        }
        item.attempts += r.attempts;
        if let (Some(a), Some(b)) = (r.started_ms, r.ended_ms) {
            let span = spans.entry(k.clone()).or_insert((a, b));
            *span = (span.0.min(a), span.1.max(b));
        }
        if let Some(Value::String(ami)) = r.outputs.get("image_id")
            && !item.amis.contains(ami)
        {
            item.amis.push(ami.clone());
        }
        if let (Some(Value::String(name)), Some(Value::String(value))) = (r.outputs.get("name"), r.outputs.get("value"))
        {
            let version = r.outputs.get("version").map(Value::to_string).unwrap_or_default();
            item.parameters.push(format!("{name} = {value} (version {version})"));
        }
        match r.status.as_str() {
            "failed" if item.status != "failed" => {
                item.status = "failed".into();
                item.error = Some(format!("{rest}: {}", r.error.clone().unwrap_or_default()));
                let leaf = rest.rsplit('.').next().unwrap_or(rest);
                causes
                    .entry(format!("{leaf}: {}", codes(&r.id)))
                    .or_default()
                    .push(key.to_string());
            }
            "running" | "not_run" if item.status == "succeeded" => item.status = "unfinished".into(),
            _ => {}
        }
    }
    if items.is_empty() {
        return None;
    }
    for (k, item) in items.iter_mut() {
        if let Some((a, b)) = spans.get(k) {
            item.duration_ms = Some(b - a);
            item.duration = Some(dur(b - a));
        }
    }
    let mut failures: Vec<FailureGroup> = causes
        .into_iter()
        .map(|(cause, items)| FailureGroup {
            cause,
            count: items.len(),
            items,
        })
        .collect();
    failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    Some(Fleet {
        items: items.into_values().collect(),
        failures,
    })
}

/// The summary as Markdown: counts, failures by cause, a table of items.
pub fn markdown(f: &Fleet) -> String {
    let count = |s: &str| f.items.iter().filter(|i| i.status == s).count();
    let mut m = format!(
        "## Fleet\n\n{} items: {} succeeded, {} failed, {} skipped, {} unfinished.\n\n",
        f.items.len(),
        count("succeeded"),
        count("failed"),
        count("skipped"),
        count("unfinished")
    );
    if !f.failures.is_empty() {
        m.push_str("Failures by cause:\n\n");
        for g in &f.failures {
            m.push_str(&format!("- {} × {}: {}\n", g.count, g.cause, g.items.join(", ")));
        }
        m.push('\n');
    }
    m.push_str("| item | status | duration | attempts | AMIs | parameters | error |\n|---|---|---|---|---|---|---|\n");
    for i in &f.items {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            i.key,
            i.status,
            i.duration.as_deref().unwrap_or(""),
            i.attempts,
            i.amis.join(" "),
            i.parameters.join("<br>"),
            i.error.as_deref().unwrap_or("").replace('|', "\\\\|")
        ));
    }
    m.push('\n');
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_split_into_group_key_and_step() {
        assert_eq!(split("fleet[i-1].backup"), Some(("fleet", "i-1", "backup")));
        assert_eq!(split("fleet[i-1]"), Some(("fleet", "i-1", "")));
        assert_eq!(
            split("fleet[i-1].disks[d].snap"),
            Some(("fleet", "i-1", "disks[d].snap"))
        );
        assert_eq!(split("backup"), None);
    }
}
