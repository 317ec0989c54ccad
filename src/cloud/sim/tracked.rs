//! A map of the simulated world's records that remembers which keys changed since it was last asked: saving the
//! world then appends only those records (`persist`), so a save costs what changed, not the whole world.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone)]
pub(crate) struct Tracked<V> {
    map: BTreeMap<String, V>,
    changed: BTreeSet<String>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Tracked {
            map: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }
}

/// Reading goes straight to the map; every way of changing it is below and marks the key.
impl<V> Deref for Tracked<V> {
    type Target = BTreeMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V> Tracked<V> {
    pub(crate) fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.changed.insert(key.clone());
        self.map.insert(key, value)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        self.changed.insert(key.to_string());
        Some(v)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<V> {
        self.changed.insert(key.to_string());
        self.map.remove(key)
    }

    pub(crate) fn entry(&mut self, key: String) -> Entry<'_, String, V> {
        self.changed.insert(key.clone());
        self.map.entry(key)
    }

    /// The keys changed since the last call, and their values now (`None`: removed).
    pub(crate) fn take_changed(&mut self) -> Vec<(String, Option<&V>)> {
        let keys = std::mem::take(&mut self.changed);
        keys.into_iter()
            .map(|k| {
                let v = self.map.get(&k);
                (k, v)
            })
            .collect()
    }

    /// Applies a change read back from the log.
    pub(crate) fn apply(&mut self, key: String, value: Option<V>) {
        match value {
            Some(v) => self.map.insert(key, v),
            None => self.map.remove(&key),
        };
    }
}

/// Equal when the records are (what changed since the last save does not matter).
impl<V: PartialEq> PartialEq for Tracked<V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<V: Serialize> Serialize for Tracked<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Tracked<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tracked {
            map: BTreeMap::deserialize(d)?,
            changed: BTreeSet::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_marks_its_key_once_reads_do_not() {
        let mut t: Tracked<u32> = Tracked::default();
        t.insert("a".into(), 1);
        t.insert("b".into(), 2);
        *t.get_mut("a").unwrap() += 10;
        assert!(t.get_mut("missing").is_none());
        let changed: Vec<(String, Option<u32>)> = t.take_changed().into_iter().map(|(k, v)| (k, v.copied())).collect();
        assert_eq!(changed, vec![("a".into(), Some(11)), ("b".into(), Some(2))]);
        // Reading changes nothing.
        assert_eq!(t.get("a"), Some(&11));
        assert_eq!(t.len(), 2);
        assert!(t.take_changed().is_empty());
        t.remove("b");
        *t.entry("c".into()).or_default() += 3;
        let changed: Vec<(String, Option<u32>)> = t.take_changed().into_iter().map(|(k, v)| (k, v.copied())).collect();
        assert_eq!(changed, vec![("b".into(), None), ("c".into(), Some(3))]);
    }
}
