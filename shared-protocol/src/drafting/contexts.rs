//! Each session's tokens, keyed by (peer, session), at most `capacity` of them:
//! what a scout holds and what a titan believes each scout holds. Past the
//! capacity the least recently used entry goes; forgetting one costs a unit
//! with the whole context, never a wrong one.

use std::collections::HashMap;
use std::hash::Hash;

#[derive(Debug)]
struct Entry {
    tokens: Vec<u32>,
    used: u64,
}

#[derive(Debug)]
pub(crate) struct Contexts<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
    /// Bumped on each use, for least-recently-used eviction.
    uses: u64,
}

impl<K: Clone + Eq + Hash> Contexts<K> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            uses: 0,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&[u32]> {
        self.entries.get(key).map(|e| e.tokens.as_slice())
    }

    /// The entry to change; counts as a use.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut Vec<u32>> {
        self.uses += 1;
        let used = self.uses;
        self.entries.get_mut(key).map(|e| {
            e.used = used;
            &mut e.tokens
        })
    }

    /// The entry for `key`, made empty if absent (evicting the least recently used
    /// one when full); counts as a use.
    pub(crate) fn entry(&mut self, key: K) -> &mut Vec<u32> {
        self.uses += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            tokens: Vec::new(),
            used: 0,
        });
        entry.used = self.uses;
        &mut entry.tokens
    }

    pub(crate) fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

#[cfg(test)]
mod tests {
    use super::Contexts;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut c = Contexts::new(2);
        c.entry(1).push(10);
        c.entry(2).push(20);
        // Using 1 makes 2 the oldest.
        c.get_mut(&1).expect("held").push(11);
        c.entry(3).push(30);
        assert_eq!(c.get(&1), Some(&[10, 11][..]));
        assert_eq!(c.get(&2), None);
        assert_eq!(c.get(&3), Some(&[30][..]));
        // An entry already held is not a new one: nothing is evicted.
        c.entry(3).push(31);
        assert_eq!(c.get(&1), Some(&[10, 11][..]));
        c.retain(|k| *k != 1);
        c.remove(&3);
        assert_eq!((c.get(&1), c.get(&3)), (None, None));
    }
}
