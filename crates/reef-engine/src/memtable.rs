//! The memtable: acknowledged entries not yet folded into segments, kept
//! in segment order (id ascending, version descending) so it is itself a
//! sorted run for `MergeIter`, and so reads at an older snapshot version
//! find the right entry.
//!
//! Invariant: an entry is inserted only after the WAL object holding it is
//! durable; `payload_bytes` is the sum of `Entry::payload_bytes` of what it
//! holds, and `bytes` adds `ENTRY_OVERHEAD_BYTES` per entry: the memory the
//! memtable's budget bounds, checked against a heap count in
//! `tests/memtable_memory.rs`.
//!
//! A namespace's current table sits behind an `Arc<RwLock<_>>` that views
//! share. When a newer manifest is adopted, [`switch`] gives the namespace
//! a *new* table holding only what that manifest did not fold, and never
//! edits the old one: a view taken before the switch pairs the old
//! segments with the old table, and editing it would take the folded
//! entries from under a reader whose segments do not have them
//! (loom-checked below).

use std::cmp::Reverse;
use std::collections::{BTreeMap, btree_map};
use std::ops::Bound;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reef_format::segment::before_to;
use reef_format::{Entry, EntryValue};

use crate::sync::{RwLock, read_lock, write_lock};

/// Adds a durable record's entries to the namespace's current table.
/// (Callers hold the namespace's state lock, so a view sees all of a
/// record or none.)
pub(crate) fn apply(table: &RwLock<Memtable>, entries: impl IntoIterator<Item = Entry>) {
    let mut t = write_lock(table);
    for e in entries {
        t.insert(e);
    }
}

/// What a table keeps once a manifest that folded every version
/// `<= folded_version` is adopted: copied from `source` before the state
/// lock is taken, so readers taking views do not wait behind the copy
/// (tens of thousands of entries, milliseconds). Only the commit lock's
/// holder applies to a table, and adopting holds it, so no one else adds
/// to it between the copy and `switch`; `switch` checks anyway and copies
/// again under the lock if the table is not the one copied or has had an
/// insert since.
pub(crate) struct Unfolded {
    source: Arc<RwLock<Memtable>>,
    inserts_seen: u64,
    folded_version: u64,
    kept: Memtable,
}

/// Copies what `table` keeps past `folded_version` (see [`Unfolded`]).
pub(crate) fn unfolded(table: Arc<RwLock<Memtable>>, folded_version: u64) -> Unfolded {
    let (inserts_seen, kept) = {
        let t = read_lock(&table);
        (t.inserts, t.newer_than(folded_version))
    };
    Unfolded {
        source: table,
        inserts_seen,
        folded_version,
        kept,
    }
}

/// Switches the namespace to the table `unfolded` copied: a new table, so
/// views of the old one keep what they read. (Callers hold the state lock
/// and install the manifest's segments in the same critical section.)
/// Returns the old table, for the caller to let go of once the lock is
/// released (see [`release`]).
#[must_use = "the old table: let go of it once the state lock is released"]
pub(crate) fn switch(
    table: &mut Arc<RwLock<Memtable>>,
    unfolded: Unfolded,
) -> Arc<RwLock<Memtable>> {
    let kept = {
        let t = read_lock(table);
        if Arc::ptr_eq(table, &unfolded.source) && t.inserts == unfolded.inserts_seen {
            unfolded.kept
        } else {
            t.newer_than(unfolded.folded_version)
        }
    };
    #[cfg(all(test, loom))]
    if crate::sync::planted("switch-edits-in-place") {
        // Planted bug: the shared table is edited, not replaced.
        *write_lock(table) = kept;
        return Arc::clone(table);
    }
    std::mem::replace(table, Arc::new(RwLock::new(kept)))
}

/// Room under the memtable budget: wakes writers waiting for it, and
/// counts the bytes of replaced tables still being freed, which the budget
/// counts with the current table's (`release`).
#[derive(Debug, Default)]
pub(crate) struct Room {
    /// Notified whenever room may have grown.
    pub(crate) wake: tokio::sync::Notify,
    freeing: AtomicUsize,
}

impl Room {
    /// Bytes of replaced tables not yet freed.
    pub(crate) fn freeing(&self) -> usize {
        self.freeing.load(Ordering::Acquire)
    }
}

/// Lets go of a table `switch` replaced. The adopting task holds the
/// commit lock, and freeing a table nothing else holds (tens of thousands
/// of ids, documents and nodes) took it 40–50 ms at 64 writers, with
/// every writer waiting. On a multi-threaded runtime a task of its own
/// frees it instead, `FREE_SLICE_ENTRIES` entries at a time with a yield
/// between slices; its bytes stay in `room` (and so in the budget) until
/// freed, and `room` wakes writers after each slice. On any other runtime,
/// or none, it is freed here, under the commit lock. A table a view still
/// holds is freed, whole, by the view's last holder (outside the budget,
/// as a view's table always was). The count errs high: documents the new
/// table kept are shared with the old one and counted in both until the
/// old one is freed.
pub(crate) fn release(old: Arc<RwLock<Memtable>>, room: &Arc<Room>) {
    // Loom models no runtime: the table is dropped here.
    #[cfg(loom)]
    drop((old, room));
    #[cfg(not(loom))]
    if let Ok(runtime) = tokio::runtime::Handle::try_current()
        && runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        && let Ok(table) = Arc::try_unwrap(old)
    {
        let table = table.into_inner().unwrap_or_else(|p| p.into_inner());
        let counted = Counted::new(table.bytes(), Arc::clone(room));
        let entries = table.map.into_iter();
        runtime.spawn(free_in_slices(entries, counted));
    }
}

/// `release`'s task: frees `entries` a slice at a time, taking each
/// slice's bytes out of `counted`.
#[cfg(not(loom))]
async fn free_in_slices(mut entries: btree_map::IntoIter<Key, EntryValue>, mut counted: Counted) {
    loop {
        let mut slice_bytes = 0;
        for _ in 0..FREE_SLICE_ENTRIES {
            let Some((key, value)) = entries.next() else {
                return;
            };
            slice_bytes += held_payload(&key.id, &value) + ENTRY_OVERHEAD_BYTES;
        }
        counted.freed(slice_bytes);
        tokio::task::yield_now().await;
    }
}

/// Bytes a freeing task still counts in its `Room`. Dropped (the task
/// done, or dropped with its runtime, which frees what is left), it takes
/// the rest out and wakes waiting writers.
#[cfg(not(loom))]
struct Counted {
    bytes: usize,
    room: Arc<Room>,
}

#[cfg(not(loom))]
impl Counted {
    fn new(bytes: usize, room: Arc<Room>) -> Counted {
        room.freeing.fetch_add(bytes, Ordering::AcqRel);
        Counted { bytes, room }
    }

    fn freed(&mut self, bytes: usize) {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        self.room.freeing.fetch_sub(bytes, Ordering::AcqRel);
        self.room.wake.notify_waiters();
    }
}

#[cfg(not(loom))]
impl Drop for Counted {
    fn drop(&mut self) {
        let rest = self.bytes;
        self.freed(rest);
    }
}

/// Entries `release` frees between yields: about 0.2 ms of frees (1,024
/// gave the same throughput and a slightly higher p999 at 64 writers on
/// tmpfs).
const FREE_SLICE_ENTRIES: usize = 256;

/// The payload one held entry counts in `payload_bytes`: its id and
/// document (`Entry::payload_bytes`, for an entry already taken apart).
fn held_payload(id: &str, value: &EntryValue) -> usize {
    id.len() + value.doc_bytes()
}

/// Heap bytes one entry costs beyond its id and document: its slot in the
/// map's nodes (key, version and value handle, nodes about half full), the
/// id's and the shared document handle's blocks, and the allocator's
/// header on each block. Measured at 175 bytes requested per entry
/// (`tests/memtable_memory.rs`; 146 before the key carried its 16-byte
/// head), plus three blocks' headers. Without it a namespace of 100-byte
/// documents held about twice its budget.
pub(crate) const ENTRY_OVERHEAD_BYTES: usize = 224;

/// A key of the map, in segment order: id ascending, then version
/// descending. `head` is the id's first 16 bytes, zero-padded and read as
/// a big-endian number, compared before the id: two ids whose heads differ
/// are ordered by their heads (a zero pad sorts below any byte but NUL,
/// as the shorter of two ids that agree that far does; against a NUL the
/// heads tie and the ids decide), so most comparisons of a search read
/// the node alone and not the id's heap block. Applying a 64-writer batch
/// spent about a microsecond per entry searching, most of it fetching ids
/// from the heap (docs/benchmarks.md, "Applying a batch").
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    head: u128,
    id: String,
    version: Reverse<u64>,
}

impl Key {
    fn new(id: String, version: u64) -> Key {
        Key {
            head: head(&id),
            id,
            version: Reverse(version),
        }
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.head
            .cmp(&other.head)
            .then_with(|| self.id.cmp(&other.id))
            .then(self.version.cmp(&other.version))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// An id's first 16 bytes, zero-padded, as a big-endian number.
#[expect(
    clippy::big_endian_bytes,
    reason = "an in-memory sort key, never stored: big-endian so that numbers order as the bytes do"
)]
fn head(id: &str) -> u128 {
    let mut bytes = [0u8; 16];
    let n = id.len().min(16);
    bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
    u128::from_be_bytes(bytes)
}

/// Sorted, multi-version entries.
#[derive(Debug, Default, Clone)]
pub struct Memtable {
    map: BTreeMap<Key, EntryValue>,
    payload_bytes: usize,
    /// Inserts ever made into this table (a replay's re-insert included),
    /// so a copy can tell that the table changed after it was made.
    inserts: u64,
}

impl Memtable {
    /// Adds an entry. The id moves into the map rather than being copied
    /// (trimmed to its length, which is what the budget counts; a no-op
    /// for the exact-sized ids of decoded records); re-inserting an
    /// `(id, version)` already held replaces its value (replay of a record
    /// already applied) and keeps the byte count honest.
    pub fn insert(&mut self, e: Entry) {
        self.inserts += 1;
        let added = e.payload_bytes();
        let mut id = e.id;
        id.shrink_to_fit();
        match self.map.entry(Key::new(id, e.version)) {
            btree_map::Entry::Vacant(slot) => {
                slot.insert(e.value);
                self.payload_bytes += added;
            }
            btree_map::Entry::Occupied(mut slot) => {
                let old = slot.insert(e.value);
                self.payload_bytes =
                    self.payload_bytes + added - held_payload(&slot.key().id, &old);
            }
        }
    }

    /// A new table of the entries with versions above `folded_version`.
    /// It copies only what it keeps, and builds the map from input already
    /// in key order (`BTreeMap`'s bulk build: no search per entry; its
    /// sort finds one run). The bulk build packs nodes full, so `bytes`,
    /// which assumes half-full nodes, overstates such a table a little:
    /// on the budget's safe side.
    fn newer_than(&self, folded_version: u64) -> Memtable {
        let map: BTreeMap<Key, EntryValue> = self
            .map
            .iter()
            .filter(|(k, _)| k.version.0 > folded_version)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let payload_bytes = map.iter().map(|(k, v)| held_payload(&k.id, v)).sum();
        Memtable {
            map,
            payload_bytes,
            inserts: 0,
        }
    }

    /// Memory held: ids, documents and the index around them (what
    /// `memtable_bytes_max` and the fold trigger count).
    pub fn bytes(&self) -> usize {
        self.payload_bytes + self.map.len() * ENTRY_OVERHEAD_BYTES
    }

    /// Bytes of ids and documents held (what a fold writes, about).
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// The newest entry of `id` with version `<= at`.
    pub fn get(&self, id: &str, at: u64) -> Option<Entry> {
        let start = Key::new(id.to_owned(), at);
        let (found, value) = self
            .map
            .range((Bound::Included(start), Bound::Unbounded))
            .next()?;
        (found.id == id).then(|| Entry {
            id: found.id.clone(),
            version: found.version.0,
            value: value.clone(),
        })
    }

    /// Entries with ids in `[from, to)` (or unbounded), in segment order,
    /// all versions, stopping after the versions of `ids_max` (at least
    /// one) distinct ids; also returns the last id taken when it stopped
    /// early.
    pub fn range_ids(
        &self,
        from: Bound<&str>,
        to: Bound<&str>,
        ids_max: usize,
    ) -> (Vec<Entry>, Option<String>) {
        let start = match from {
            Bound::Included(id) => Bound::Included(Key::new(id.to_owned(), u64::MAX)),
            Bound::Excluded(id) => Bound::Excluded(Key::new(id.to_owned(), 0)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out: Vec<Entry> = Vec::new();
        let mut ids = 0;
        for (Key { id, version, .. }, value) in self.map.range((start, Bound::Unbounded)) {
            if !before_to(id, to) {
                break;
            }
            if out.last().is_none_or(|last| last.id != *id) {
                if ids == ids_max.max(1) {
                    let last = out.last().map(|e| e.id.clone());
                    return (out, last);
                }
                ids += 1;
            }
            out.push(Entry {
                id: id.clone(),
                version: version.0,
                value: value.clone(),
            });
        }
        (out, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    /// Ids that meet the head's edges: shorter than, exactly and longer
    /// than 16 bytes, sharing 16-byte prefixes, a NUL (which pads the
    /// same as nothing), bytes above 0x7f.
    fn id() -> impl Strategy<Value = String> {
        let byte = prop_oneof![
            Just('\0'),
            Just('a'),
            Just('b'),
            Just('\u{7f}'),
            Just('é'),
            Just('\u{10ffff}'),
        ];
        let tail =
            proptest::collection::vec(byte, 0..6).prop_map(|cs| cs.into_iter().collect::<String>());
        (0..22usize, tail).prop_map(|(n, tail)| "p".repeat(n) + &tail)
    }

    /// Every `(id, version)` `range_ids` yields from `from` to the end.
    fn ids_from(m: &Memtable, from: Bound<&str>) -> Vec<(String, u64)> {
        m.range_ids(from, Bound::Unbounded, usize::MAX)
            .0
            .into_iter()
            .map(|e| (e.id, e.version))
            .collect()
    }

    proptest! {
        /// The map's order, with the heads, is exactly segment order (id
        /// ascending, version descending), and `get` and `range_ids` find
        /// what that order says, for held ids and ids beside them.
        #[test]
        fn keys_keep_segment_order(entries in proptest::collection::vec((id(), 1..5u64), 1..40)) {
            let doc = &b"\x08\0\0\0\0"[..];
            let mut m = Memtable::default();
            for (id, version) in &entries {
                m.insert(Entry::put(id.as_str(), *version, doc));
            }
            let got = ids_from(&m, Bound::Unbounded);
            let mut expected: Vec<(String, u64)> = entries.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            expected.dedup();
            prop_assert_eq!(&got, &expected);
            // `get` at every version from 0 to past the newest, of every
            // id held and of ids that share a held id's head but are not
            // held: the newest version at or below, or nothing.
            let mut probes: Vec<String> = expected.iter().map(|(id, _)| id.clone()).collect();
            probes.extend(expected.iter().map(|(id, _)| format!("{id}\0")));
            probes.extend(expected.iter().map(|(id, _)| format!("{id}p")));
            for probe in &probes {
                for at in [0, 1, 2, 3, 4, 5, u64::MAX] {
                    let want = expected
                        .iter()
                        .find(|(id, v)| id == probe && *v <= at)
                        .cloned();
                    let found = m.get(probe, at).map(|e| (e.id, e.version));
                    prop_assert_eq!(found, want, "get({:?}, {})", probe, at);
                }
            }
            // `range_ids` from each probe, included and excluded.
            for probe in &probes {
                let from_in = ids_from(&m, Bound::Included(probe.as_str()));
                let want_in: Vec<(String, u64)> =
                    expected.iter().filter(|(id, _)| id >= probe).cloned().collect();
                prop_assert_eq!(from_in, want_in, "from {:?} included", probe);
                let from_ex = ids_from(&m, Bound::Excluded(probe.as_str()));
                let want_ex: Vec<(String, u64)> =
                    expected.iter().filter(|(id, _)| id > probe).cloned().collect();
                prop_assert_eq!(from_ex, want_ex, "from {:?} excluded", probe);
            }
        }
    }

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
            .range_ids(Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .0
            .into_iter()
            .map(|e| (e.id, e.version))
            .collect();
        assert_eq!(ids, [("a".into(), 5), ("a".into(), 1), ("b".into(), 3)]);
        assert_eq!(
            m.range_ids(Bound::Excluded("a"), Bound::Unbounded, usize::MAX)
                .0
                .len(),
            1
        );
        let before = m.bytes();
        m.insert(Entry::put("b", 3, &b"\x08\0\0\0\0"[..]));
        assert_eq!(
            m.bytes(),
            before,
            "replaying an entry does not double-count"
        );
        let bigger = &b"\x08\0\0\0\0\0\0\0\0\0"[..];
        m.insert(Entry::put("b", 3, bigger));
        assert_eq!(
            m.bytes(),
            before + bigger.len() - 5,
            "a replaced value is counted at its new size"
        );
        assert_eq!(
            m.get("b", 3).unwrap().doc().map(|d| d.len()),
            Some(bigger.len())
        );
    }

    #[test]
    fn switch_keeps_unfolded_versions_and_leaves_the_old_table_whole() {
        let doc = &b"\x08\0\0\0\0"[..];
        let mut table = Arc::new(RwLock::new(Memtable::default()));
        apply(
            &table,
            [
                Entry::put("a", 1, doc),
                Entry::put("a", 4, doc),
                Entry::delete("b", 2),
                Entry::put("c", 5, doc),
            ],
        );
        let view = Arc::clone(&table);
        let kept = unfolded(Arc::clone(&table), 4);
        let old = switch(&mut table, kept);
        assert!(
            Arc::ptr_eq(&old, &view),
            "switch hands back the table it replaced"
        );
        let all = |t: &RwLock<Memtable>| -> Vec<(String, u64)> {
            read_lock(t)
                .range_ids(Bound::Unbounded, Bound::Unbounded, usize::MAX)
                .0
                .into_iter()
                .map(|e| (e.id, e.version))
                .collect()
        };
        assert_eq!(all(&table), [("c".into(), 5)]);
        assert_eq!(
            all(&view).len(),
            4,
            "a view of the old table keeps all it read"
        );
        let mut expected = Memtable::default();
        expected.insert(Entry::put("c", 5, doc));
        assert_eq!(read_lock(&table).bytes(), expected.bytes());
    }

    #[test]
    fn switch_copies_again_when_the_table_grew_after_the_copy() {
        let doc = &b"\x08\0\0\0\0"[..];
        let mut table = Arc::new(RwLock::new(Memtable::default()));
        apply(&table, [Entry::put("a", 1, doc), Entry::put("a", 4, doc)]);
        let kept = unfolded(Arc::clone(&table), 1);
        // Not what callers do (they hold the commit lock): a record
        // applied between the copy and the switch.
        apply(&table, [Entry::put("c", 5, doc)]);
        drop(switch(&mut table, kept));
        let versions: Vec<u64> = read_lock(&table)
            .range_ids(Bound::Unbounded, Bound::Unbounded, usize::MAX)
            .0
            .iter()
            .map(|e| e.version)
            .collect();
        assert_eq!(versions, [4, 5], "the entry applied after the copy is kept");

        // A replay's re-insert of an entry already held changes no count,
        // but the switch still sees it.
        let kept = unfolded(Arc::clone(&table), 1);
        let bigger = &b"\x08\0\0\0\0\0\0"[..];
        apply(&table, [Entry::put("c", 5, bigger)]);
        drop(switch(&mut table, kept));
        assert_eq!(
            read_lock(&table)
                .get("c", 5)
                .and_then(|e| e.doc().map(|d| d.len())),
            Some(bigger.len())
        );
    }

    /// A document whose bytes count their own drop.
    struct CountsDrop(Arc<AtomicUsize>);

    impl AsRef<[u8]> for CountsDrop {
        fn as_ref(&self) -> &[u8] {
            b"\x08\0\0\0\0"
        }
    }

    impl Drop for CountsDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A table of `n` entries whose documents count their drops in `freed`.
    fn counted_table(n: u64, freed: &Arc<AtomicUsize>) -> Arc<RwLock<Memtable>> {
        let table = Arc::new(RwLock::new(Memtable::default()));
        apply(
            &table,
            (1..=n).map(|v| {
                let doc = bytes::Bytes::from_owner(CountsDrop(Arc::clone(freed)));
                Entry::put(format!("id-{v:06}"), v, doc)
            }),
        );
        table
    }

    #[test]
    fn a_released_table_is_freed_on_a_task_of_its_own_and_counted_until_then() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let freed = Arc::new(AtomicUsize::new(0));
        // Several slices' worth, so the task yields between them.
        let n = 3 * FREE_SLICE_ENTRIES as u64 + 7;
        let table = counted_table(n, &freed);
        let bytes = read_lock(&table).bytes();
        let room = Arc::new(Room::default());
        // The runtime's only worker is held, so the freeing task cannot
        // run until it is let go.
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        runtime.spawn(async move {
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
        });
        held_rx.recv().unwrap();
        let _entered = runtime.enter();
        release(table, &room);
        let load = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        assert_eq!(load(&freed), 0, "not freed by the caller");
        assert_eq!(
            room.freeing(),
            bytes,
            "counted against the budget until freed"
        );
        let woken = room.wake.notified();
        go_tx.send(()).unwrap();
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), woken)
                .await
                .expect("writers waiting for room are woken as it is freed");
            for _ in 0..10_000 {
                if load(&freed) == n as usize && room.freeing() == 0 {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        });
        assert_eq!((load(&freed), room.freeing()), (n as usize, 0));
    }

    #[test]
    fn a_released_table_is_freed_in_line_off_a_multi_threaded_runtime() {
        let freed = Arc::new(AtomicUsize::new(0));
        let room = Arc::new(Room::default());
        release(counted_table(10, &freed), &room);
        assert_eq!(freed.load(Ordering::SeqCst), 10, "no runtime");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _entered = runtime.enter();
        release(counted_table(10, &freed), &room);
        assert_eq!(
            freed.load(Ordering::SeqCst),
            20,
            "a current-thread runtime may never be driven: freed here"
        );
        assert_eq!(room.freeing(), 0);
    }

    #[test]
    fn a_released_table_a_view_holds_is_freed_by_the_view() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let freed = Arc::new(AtomicUsize::new(0));
        let room = Arc::new(Room::default());
        let table = counted_table(10, &freed);
        let view = Arc::clone(&table);
        release(table, &room);
        assert_eq!(freed.load(Ordering::SeqCst), 0);
        assert_eq!(
            read_lock(&view)
                .range_ids(Bound::Unbounded, Bound::Unbounded, 100)
                .0
                .len(),
            10
        );
        drop(view);
        assert_eq!(freed.load(Ordering::SeqCst), 10);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::Mutex;

    use super::*;

    /// The part of a namespace's state a view copies.
    struct State {
        segments: Arc<Vec<Entry>>,
        table: Arc<RwLock<Memtable>>,
        last_version: u64,
    }

    fn doc(v: u64) -> Entry {
        Entry::put("a", v, &b"\x08\0\0\0\0"[..])
    }

    /// A reader takes a view (as `Namespace::view`: segments, table and
    /// version under the state lock) and reads `a` while the writer applies
    /// version 2 and then adopts a manifest that folded it. Whatever the
    /// interleaving, the view reads the version it was taken at.
    #[test]
    fn a_view_reads_its_version_across_a_switch() {
        loom::model(|| {
            let state = Arc::new(Mutex::new(State {
                segments: Arc::new(vec![doc(1)]),
                table: Arc::new(RwLock::new(Memtable::default())),
                last_version: 1,
            }));
            let writer = {
                let state = state.clone();
                loom::thread::spawn(move || {
                    {
                        let mut s = state.lock().unwrap();
                        apply(&s.table, [doc(2)]);
                        s.last_version = 2;
                    }
                    // As `Namespace::adopt_newer_manifest`: the copy
                    // before the state lock, the switch under it.
                    let table = state.lock().unwrap().table.clone();
                    let kept = unfolded(table, 2);
                    let mut s = state.lock().unwrap();
                    drop(switch(&mut s.table, kept));
                    s.segments = Arc::new(vec![doc(2), doc(1)]);
                })
            };
            let (segments, table, at) = {
                let s = state.lock().unwrap();
                (s.segments.clone(), s.table.clone(), s.last_version)
            };
            let found = read_lock(&table)
                .get("a", at)
                .or_else(|| segments.iter().find(|e| e.version <= at).cloned());
            assert_eq!(
                found.map(|e| e.version),
                Some(at),
                "a view lost its version"
            );
            writer.join().unwrap();
        });
    }
}
