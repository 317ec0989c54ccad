//! Where a step runs: at the top of the run, or inside the item of a `for_each`. Inside an item, a step's journal id
//! is its id prefixed with the group's and the item's key (`fleet[i-0123].backup`), so every item has its own
//! state, attempts and idempotency tokens, and a resumed run finds each item where it was.

use std::collections::HashMap;

use serde_json::Value;

use crate::workflow::Step;

#[derive(Debug, Clone, Default)]
pub(crate) struct Within {
    /// Prepended to the ids of this scope's steps.
    prefix: String,
    /// The item of the innermost `for_each`.
    item: Option<Value>,
    /// Steps of the enclosing `for_each` bodies: id → the prefix of their journal ids here.
    prefixes: HashMap<String, String>,
}

impl Within {
    /// The journal id of a step of this scope.
    pub(crate) fn id(&self, step: &str) -> String {
        format!("{}{step}", self.prefix)
    }

    /// The scope of one item of the `for_each` group journaled as `group`, whose body is `body`.
    pub(crate) fn enter(&self, group: &str, key: &str, item: Value, body: &[Step]) -> Within {
        let prefix = format!("{group}[{key}].");
        let mut prefixes = self.prefixes.clone();
        let mut all = Vec::new();
        for s in body {
            s.walk(&mut all);
        }
        for s in all {
            prefixes.insert(s.id.clone(), prefix.clone());
        }
        Within {
            prefix,
            item: Some(item),
            prefixes,
        }
    }

    /// The journal id of the step a reference names from here.
    pub(crate) fn resolve(&self, step: &str) -> String {
        match self.prefixes.get(step) {
            Some(p) => format!("{p}{step}"),
            None => step.to_string(),
        }
    }

    pub(crate) fn item(&self) -> Option<&Value> {
        self.item.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_prefix_their_steps_and_nest() {
        let top = Within::default();
        assert_eq!(top.id("fleet"), "fleet");
        let item = top.enter("fleet", "i-1", Value::from("i-1"), &[]);
        assert_eq!(item.id("backup"), "fleet[i-1].backup");
        assert_eq!(item.resolve("other"), "other");
        assert_eq!(item.item(), Some(&Value::from("i-1")));
        let inner = item.enter(&item.id("disks"), "d-2", Value::from("d-2"), &[]);
        assert_eq!(inner.id("snap"), "fleet[i-1].disks[d-2].snap");
    }
}
