//! The memtable: acknowledged entries not yet folded into segments, kept
//! in segment order (id ascending, version descending) so it is itself a
//! sorted run for `MergeIter`, and so reads at an older snapshot version
//! find the right entry.
//!
//! Invariant: an entry is inserted only after the WAL object holding it is
//! durable; `bytes` is the sum of `Entry::payload_bytes` of what it holds.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

use reef_format::segment::before_to;
use reef_format::{Entry, EntryValue};

/// Sorted, multi-version entries.
#[derive(Debug, Default, Clone)]
pub struct Memtable {
    map: BTreeMap<(String, Reverse<u64>), EntryValue>,
    bytes: usize,
}

impl Memtable {
    /// Adds an entry.
    pub fn insert(&mut self, e: Entry) {
        self.bytes += e.payload_bytes();
        if let Some(old) = self.map.insert((e.id.clone(), Reverse(e.version)), e.value) {
            // Re-inserting the same (id, version) replaces it (replay of a
            // record already applied); keep the byte count honest.
            let old = Entry {
                id: e.id,
                version: e.version,
                value: old,
            };
            self.bytes -= old.payload_bytes();
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The newest entry of `id` with version `<= at`.
    pub fn get(&self, id: &str, at: u64) -> Option<Entry> {
        let start = (id.to_owned(), Reverse(at));
        let ((found_id, Reverse(version)), value) = self
            .map
            .range((Bound::Included(start), Bound::Unbounded))
            .next()?;
        (found_id == id).then(|| Entry {
            id: found_id.clone(),
            version: *version,
            value: value.clone(),
        })
    }

    /// All entries with ids in `[from, to)` (or unbounded), in segment
    /// order, all versions.
    pub fn range(&self, from: Bound<&str>, to: Bound<&str>) -> Vec<Entry> {
        let start = match from {
            Bound::Included(id) => Bound::Included((id.to_owned(), Reverse(u64::MAX))),
            Bound::Excluded(id) => Bound::Excluded((id.to_owned(), Reverse(0))),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.map
            .range((start, Bound::Unbounded))
            .take_while(|((id, _), _)| before_to(id, to))
            .map(|((id, Reverse(version)), value)| Entry {
                id: id.clone(),
                version: *version,
                value: value.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_honour_snapshot_versions() {
        let mut m = Memtable::default();
        m.insert(Entry::put("a", 1, &b"\x08\0\0\0\0"[..]));
        m.insert(Entry::delete("a", 5));
        m.insert(Entry::put("b", 3, &b"\x08\0\0\0\0"[..]));
        assert_eq!(m.get("a", u64::MAX).unwrap().version, 5);
        assert_eq!(m.get("a", 4).unwrap().version, 1);
        assert!(m.get("a", 0).is_none());
        assert!(m.get("c", 10).is_none());
        let ids: Vec<(String, u64)> = m
            .range(Bound::Unbounded, Bound::Unbounded)
            .into_iter()
            .map(|e| (e.id, e.version))
            .collect();
        assert_eq!(ids, [("a".into(), 5), ("a".into(), 1), ("b".into(), 3)]);
        assert_eq!(m.range(Bound::Excluded("a"), Bound::Unbounded).len(), 1);
        let before = m.bytes();
        m.insert(Entry::put("b", 3, &b"\x08\0\0\0\0"[..]));
        assert_eq!(
            m.bytes(),
            before,
            "replaying an entry does not double-count"
        );
    }
}
