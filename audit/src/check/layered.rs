//! The checker's maps, shaped so that a checker read back from a snapshot can go on at once:
//! what the snapshot held stays a sorted array (looked up by binary search), and only what is
//! added since goes into a hash map.
//!
//! Reading a snapshot of a million stamps into a hash map costs a million random inserts, which
//! is most of what a second audit run would take; reading them into arrays already sorted costs
//! one pass over the bytes. A check that starts from nothing puts everything in the hash map, as
//! before, and pays for sorting only when it is written out ([`Layered::sorted`]).
//!
//! It must not decide anything about entries; it only stores. A key is either in the sorted part
//! or in the hash map, never both: values are inserted only for keys absent from both.

use std::collections::HashMap;
use std::hash::Hash;

/// A map from `K` to `V`: a sorted part read from a snapshot and a hash map of what came since.
#[derive(Debug)]
pub(super) struct Layered<K, V> {
    /// Keys read back from a snapshot, strictly increasing.
    keys: Vec<K>,
    /// The value of each of `keys`, at the same position.
    values: Vec<V>,
    /// Entries added since, whose keys are not in `keys`.
    recent: HashMap<K, V>,
}

impl<K, V> Default for Layered<K, V> {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            values: Vec::new(),
            recent: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Copy, V> Layered<K, V> {
    /// A map of the entries `keys[i] -> values[i]`; `None` unless the keys are strictly
    /// increasing and as many as the values.
    pub(super) fn from_sorted(keys: Vec<K>, values: Vec<V>) -> Option<Self> {
        let increasing = keys.windows(2).all(|pair| pair[0] < pair[1]);
        (increasing && keys.len() == values.len()).then(|| Self {
            keys,
            values,
            recent: HashMap::new(),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len() + self.recent.len()
    }

    pub(super) fn get(&self, key: &K) -> Option<&V> {
        match self.keys.binary_search(key) {
            Ok(at) => self.values.get(at),
            Err(_) => self.recent.get(key),
        }
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.keys.binary_search(key) {
            Ok(at) => self.values.get_mut(at),
            Err(_) => self.recent.get_mut(key),
        }
    }

    pub(super) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// The value of `key`, first made by `make` if there is none.
    pub(super) fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        match self.keys.binary_search(&key) {
            Ok(at) => &mut self.values[at],
            Err(_) => self.recent.entry(key).or_insert_with(make),
        }
    }

    /// Adds `key -> value` unless `key` has a value already: then returns false and keeps it.
    pub(super) fn insert_new(&mut self, key: K, value: V) -> bool {
        if self.keys.binary_search(&key).is_ok() {
            return false;
        }
        match self.recent.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                true
            }
        }
    }

    /// Every value, in no particular order.
    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.values.iter().chain(self.recent.values())
    }

    /// Every entry in key order (what a snapshot writes, so that it reads back sorted).
    pub(super) fn sorted(&self) -> Vec<(&K, &V)> {
        let mut recent: Vec<(&K, &V)> = self.recent.iter().collect();
        recent.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(self.len());
        let mut old = self.keys.iter().zip(&self.values).peekable();
        let mut new = recent.into_iter().peekable();
        loop {
            let take_old = match (old.peek(), new.peek()) {
                (Some(a), Some(b)) => a.0 < b.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_old { old.next() } else { new.next() };
            out.extend(next);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map_across_both_parts() {
        let mut map: Layered<u32, &str> =
            Layered::from_sorted(vec![2, 4, 6], vec!["two", "four", "six"]).unwrap_or_default();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&4), Some(&"four"));
        assert!(!map.insert_new(4, "again"), "in the sorted part");
        assert!(map.insert_new(5, "five"));
        assert!(!map.insert_new(5, "again"), "in the recent part");
        assert_eq!(map.get(&5), Some(&"five"));
        *map.get_or_insert_with(6, || "new") = "SIX";
        *map.get_or_insert_with(1, || "one") = "ONE";
        if let Some(v) = map.get_mut(&2) {
            *v = "TWO";
        }
        assert!(map.contains_key(&1) && !map.contains_key(&3));
        assert_eq!(map.len(), 5);
        let sorted: Vec<(u32, &str)> = map.sorted().into_iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(
            sorted,
            vec![(1, "ONE"), (2, "TWO"), (4, "four"), (5, "five"), (6, "SIX")]
        );
        assert_eq!(map.values().count(), 5);
    }

    #[test]
    fn only_strictly_increasing_keys_make_a_sorted_part() {
        assert!(Layered::from_sorted(vec![1, 1], vec![(), ()]).is_none());
        assert!(Layered::from_sorted(vec![2, 1], vec![(), ()]).is_none());
        assert!(Layered::from_sorted(vec![1, 2], vec![()]).is_none());
        assert!(Layered::<u8, ()>::from_sorted(vec![], vec![]).is_some());
    }
}
