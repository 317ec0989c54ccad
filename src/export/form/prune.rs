//! The states of an action step that nothing reaches: a check known at export (a literal input) goes straight to
//! one side, and the states built for the other would be left behind (statelint: "No transition found to state").

use std::collections::BTreeSet;

use serde_json::Value;

use crate::export::build::Chain;

/// Removes the states added since `before` that `entry` does not lead to.
pub(crate) fn unreachable(states: &mut Chain, before: &BTreeSet<String>, entry: &str) {
    let mut seen = BTreeSet::new();
    let mut todo = vec![entry.to_string()];
    while let Some(name) = todo.pop() {
        if before.contains(&name) || !seen.insert(name.clone()) {
            continue;
        }
        let Some(state) = states.states.get(&name) else {
            continue;
        };
        let mut next: Vec<&str> = Vec::new();
        next.extend(state["Next"].as_str());
        next.extend(state["Default"].as_str());
        for key in ["Choices", "Catch"] {
            next.extend(
                state[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["Next"].as_str()),
            );
        }
        todo.extend(next.into_iter().map(str::to_string));
    }
    states
        .states
        .retain(|k, _: &mut Value| before.contains(k) || seen.contains(k));
}
