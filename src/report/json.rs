//! The report as JSON (`report.json`): the `Report` model as is, for dashboards and alerting.

use super::model::Report;

pub fn render(r: &Report) -> String {
    let mut s = serde_json::to_string_pretty(r).expect("a report serializes");
    s.push('\n');
    s
}
