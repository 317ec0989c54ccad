//! What a live view knows of a workflow's `for_each` groups before any item runs: each group's steps (its stages,
//! in workflow order) and the steps at the top of its body (an item ends with the last of them).

use std::collections::HashMap;

use crate::workflow::{StepKind, Workflow};

#[derive(Debug, Clone, Default)]
pub(crate) struct GroupLayout {
    /// Every step of the body, depth first (ids without the item: `backup`).
    pub stages: Vec<String>,
    /// The body's top-level steps: a failure there that aborts ends the item, the last one's end finishes it.
    pub top: Vec<String>,
}

/// The `for_each` groups of a workflow, by step id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub groups: HashMap<String, GroupLayout>,
}

impl Layout {
    pub(crate) fn of(wf: &Workflow) -> Layout {
        let mut groups = HashMap::new();
        for step in wf.all_steps() {
            if let StepKind::ForEach(fe) = &step.kind {
                let mut all = Vec::new();
                for s in &fe.steps {
                    s.walk(&mut all);
                }
                groups.insert(
                    step.id.clone(),
                    GroupLayout {
                        stages: all.iter().map(|s| s.id.clone()).collect(),
                        top: fe.steps.iter().map(|s| s.id.clone()).collect(),
                    },
                );
            }
        }
        Layout { groups }
    }
}
