//! A k-way merge over sorted runs of entries (memtable, segments), with the
//! two policies Reef needs:
//!
//! - `MergeIter::visible(runs, at, tombstones)`: for reads. Per id, the
//!   newest entry with `version <= at`; with `Tombstones::Hide` an id whose
//!   visible entry is a tombstone is skipped.
//! - `MergeIter::compacting(runs, snapshots, drop_tombstones)`: for fold and
//!   compaction. Per id, keeps the newest entry plus, for each snapshot `s`,
//!   the newest entry with `version <= s`; with `drop_tombstones` (only
//!   correct when no older data lies below the output) trailing tombstones
//!   of the kept set are dropped too. Everything not kept is accounted in
//!   `dropped()` so callers can prove `input = output + dropped`.
//!
//! Invariants: input runs must each be in segment order (id ascending,
//! version descending); a run that is not yields a `Corrupt` error instead
//! of wrong output. Entries with equal (id, version) in several runs are the
//! same write seen twice: one is kept, the others are counted as dropped.
//! After yielding an error the iterator ends.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

use crate::entry::Entry;
use crate::error::{FormatError, ObjectKind};
use crate::segment::key_order;
use crate::setsum::Setsum;

/// Whether a read merge shows deletions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tombstones {
    /// Yield tombstones (an upper layer will shadow older data with them).
    Keep,
    /// Skip ids whose visible entry is a tombstone.
    Hide,
}

enum Policy {
    Visible {
        at: u64,
        tombstones: Tombstones,
    },
    Compacting {
        snapshots: Vec<u64>,
        drop_tombstones: bool,
    },
}

struct Head {
    entry: Entry,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    /// Reversed, so the max-heap pops the smallest (id, newest version,
    /// lowest run) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .entry
            .id
            .as_bytes()
            .cmp(self.entry.id.as_bytes())
            .then_with(|| self.entry.version.cmp(&other.entry.version))
            .then_with(|| other.run.cmp(&self.run))
    }
}

/// The merge iterator. `E` is the runs' error type.
pub struct MergeIter<I, E> {
    /// The runs, each with the key it last yielded (for the order check).
    runs: Vec<Run<I>>,
    heap: BinaryHeap<Head>,
    policy: Policy,
    /// The versions of the id being resolved; kept between ids so that a
    /// merge allocates no vector per id.
    group: Vec<Entry>,
    pending: std::vec::IntoIter<Entry>,
    dropped: Setsum,
    dropped_count: u64,
    primed: bool,
    failed: bool,
    _err: std::marker::PhantomData<E>,
}

impl<I, E> MergeIter<I, E>
where
    I: Iterator<Item = Result<Entry, E>>,
    E: From<FormatError>,
{
    fn new(runs: Vec<I>, policy: Policy) -> Self {
        let n = runs.len();
        MergeIter {
            runs: runs
                .into_iter()
                .map(|iter| Run { iter, last: None })
                .collect(),
            heap: BinaryHeap::with_capacity(n),
            policy,
            group: Vec::new(),
            pending: Vec::new().into_iter(),
            dropped: Setsum::EMPTY,
            dropped_count: 0,
            primed: false,
            failed: false,
            _err: std::marker::PhantomData,
        }
    }

    /// A read merge: the newest version of each id at snapshot `at`.
    pub fn visible(runs: Vec<I>, at: u64, tombstones: Tombstones) -> Self {
        Self::new(runs, Policy::Visible { at, tombstones })
    }

    /// A compaction merge keeping what `snapshots` can still see.
    pub fn compacting(runs: Vec<I>, mut snapshots: Vec<u64>, drop_tombstones: bool) -> Self {
        snapshots.sort_unstable_by(|a, b| b.cmp(a));
        snapshots.dedup();
        Self::new(
            runs,
            Policy::Compacting {
                snapshots,
                drop_tombstones,
            },
        )
    }

    /// Setsum and count of entries a compacting merge dropped so far.
    /// (A visible merge drops nothing; it only hides.)
    pub fn dropped(&self) -> (Setsum, u64) {
        (self.dropped, self.dropped_count)
    }

    /// All versions of the next id, newest first, duplicates removed, into
    /// `self.group` (empty at the end).
    fn next_group(&mut self) -> Result<(), E> {
        self.group.clear();
        if !self.primed {
            self.primed = true;
            for run in 0..self.runs.len() {
                if let Some(entry) = pull(&mut self.runs, run)? {
                    self.heap.push(Head { entry, run });
                }
            }
        }
        loop {
            let Some(mut top) = self.heap.peek_mut() else {
                break;
            };
            if self.group.first().is_some_and(|g| g.id != top.entry.id) {
                break;
            }
            // The top's successor in its run replaces it in place (one
            // sift), rather than a pop and a push (two).
            let run = top.run;
            let entry = match pull(&mut self.runs, run)? {
                Some(next) => {
                    let entry = std::mem::replace(&mut top.entry, next);
                    drop(top);
                    entry
                }
                None => PeekMut::pop(top).entry,
            };
            if let Some(same) = self.group.last().filter(|g| g.version == entry.version) {
                // The same write seen twice is fine; two different writes
                // claiming one (id, version) mean a run is damaged.
                if *same != entry {
                    return Err(E::from(run_corrupt(
                        run,
                        format!(
                            "two different entries for ({:?}, v{})",
                            entry.id, entry.version
                        ),
                    )));
                }
                self.drop_entry(&entry);
            } else {
                self.group.push(entry);
            }
        }
        Ok(())
    }

    fn drop_entry(&mut self, e: &Entry) {
        self.dropped = self.dropped.add(&e.setsum());
        self.dropped_count += 1;
    }
}

/// Which of one id's versions (newest first) a compaction keeps: the
/// newest and, for each snapshot, the newest at or below it; with
/// `drop_tombstones`, trailing tombstones of the kept set go too.
fn compacting_keep(group: &[Entry], snapshots: &[u64], drop_tombstones: bool) -> Vec<bool> {
    let mut keep = vec![false; group.len()];
    if let Some(k) = keep.first_mut() {
        *k = true;
    }
    for s in snapshots {
        if let Some(i) = group.iter().position(|e| e.version <= *s)
            && let Some(k) = keep.get_mut(i)
        {
            *k = true;
        }
    }
    if drop_tombstones {
        // Only the oldest kept entries may go: a tombstone with kept data
        // below it still hides that data.
        for i in (0..group.len()).rev() {
            match (keep.get(i), group.get(i)) {
                (Some(false), _) => continue,
                (Some(true), Some(e)) if e.is_tombstone() => {
                    if let Some(k) = keep.get_mut(i) {
                        *k = false;
                    }
                }
                _ => break,
            }
        }
    }
    keep
}

impl<I, E> Iterator for MergeIter<I, E>
where
    I: Iterator<Item = Result<Entry, E>>,
    E: From<FormatError>,
{
    type Item = Result<Entry, E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.next() {
                return Some(Ok(e));
            }
            if self.failed {
                return None;
            }
            if let Err(e) = self.next_group() {
                self.failed = true;
                return Some(Err(e));
            }
            if self.group.is_empty() {
                return None;
            }
            match &self.policy {
                Policy::Visible { at, tombstones } => {
                    // The newest version at or below `at` (the group is
                    // newest first); hidden if it is a tombstone and
                    // tombstones are hidden.
                    let hide = *tombstones == Tombstones::Hide;
                    let shown = self
                        .group
                        .iter()
                        .position(|e| e.version <= *at)
                        .filter(|&i| !(hide && self.group.get(i).is_some_and(Entry::is_tombstone)));
                    if let Some(i) = shown {
                        return Some(Ok(self.group.swap_remove(i)));
                    }
                }
                Policy::Compacting {
                    snapshots,
                    drop_tombstones,
                } => {
                    let keep = compacting_keep(&self.group, snapshots, *drop_tombstones);
                    let mut out = Vec::with_capacity(self.group.len());
                    for (e, kept) in std::mem::take(&mut self.group).into_iter().zip(keep) {
                        if kept {
                            out.push(e);
                        } else {
                            self.drop_entry(&e);
                        }
                    }
                    self.pending = out.into_iter();
                }
            }
        }
    }
}

/// A merge input found damaged.
fn run_corrupt(run: usize, reason: String) -> FormatError {
    FormatError::Corrupt {
        kind: ObjectKind::Segment,
        object: format!("merge run {run}"),
        offset: 0,
        reason,
    }
}

/// One input run and the key it last yielded.
struct Run<I> {
    iter: I,
    /// (id, version) of the last entry pulled; the id's buffer is reused.
    last: Option<(String, u64)>,
}

/// The next entry of run `run`, checked to follow the last one in segment
/// order (id ascending, version descending).
fn pull<I, E>(runs: &mut [Run<I>], run: usize) -> Result<Option<Entry>, E>
where
    I: Iterator<Item = Result<Entry, E>>,
    E: From<FormatError>,
{
    let Some(r) = runs.get_mut(run) else {
        return Ok(None);
    };
    let Some(next) = r.iter.next() else {
        return Ok(None);
    };
    let entry = next?;
    match &mut r.last {
        Some((id, version)) => {
            if key_order(id, *version, &entry.id, entry.version) != Ordering::Less {
                return Err(E::from(run_corrupt(
                    run,
                    format!(
                        "({:?}, v{}) out of order after ({id:?}, v{version})",
                        entry.id, entry.version
                    ),
                )));
            }
            // Reusing the buffer: no allocation per entry.
            id.clear();
            id.push_str(&entry.id);
            *version = entry.version;
        }
        None => r.last = Some((entry.id.clone(), entry.version)),
    }
    Ok(Some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Run = std::vec::IntoIter<Result<Entry, FormatError>>;

    fn run(entries: &[(&str, u64, bool)]) -> Run {
        entries
            .iter()
            .map(|&(id, v, del)| {
                Ok(if del {
                    Entry::delete(id, v)
                } else {
                    Entry::put(id, v, format!("{id}{v}"))
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    fn keys(it: impl Iterator<Item = Result<Entry, FormatError>>) -> Vec<(String, u64)> {
        it.map(|e| e.map(|e| (e.id, e.version)))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn visible_takes_newest_at_snapshot_and_hides_tombstones() {
        let runs = || {
            vec![
                run(&[("a", 5, false), ("b", 6, true)]),
                run(&[("a", 2, false), ("b", 1, false)]),
            ]
        };
        let latest = MergeIter::visible(runs(), u64::MAX, Tombstones::Hide);
        assert_eq!(keys(latest), vec![("a".into(), 5)]);
        let old = MergeIter::visible(runs(), 4, Tombstones::Hide);
        assert_eq!(keys(old), vec![("a".into(), 2), ("b".into(), 1)]);
        let with_tombs = MergeIter::visible(runs(), u64::MAX, Tombstones::Keep);
        assert_eq!(keys(with_tombs), vec![("a".into(), 5), ("b".into(), 6)]);
    }

    #[test]
    fn compacting_keeps_snapshot_versions_and_accounts_drops() {
        let input = vec![
            run(&[
                ("a", 9, false),
                ("a", 7, false),
                ("a", 3, false),
                ("b", 8, true),
            ]),
            run(&[("b", 2, false), ("c", 1, true)]),
        ];
        let total: Setsum = input
            .iter()
            .flat_map(|r| r.as_slice())
            .fold(Setsum::EMPTY, |s, e| s.add(&e.as_ref().unwrap().setsum()));
        let mut merge = MergeIter::compacting(input, vec![4], true);
        let out: Vec<Entry> = merge.by_ref().collect::<Result<_, _>>().unwrap();
        let got: Vec<_> = out.iter().map(|e| (e.id.as_str(), e.version)).collect();
        // a: newest (9) and the snapshot-4 version (3); b: tombstone 8 hides
        // b@2, which snapshot 4 still needs; c: a lone trailing tombstone.
        assert_eq!(got, vec![("a", 9), ("a", 3), ("b", 8), ("b", 2)]);
        let kept = out.iter().fold(Setsum::EMPTY, |s, e| s.add(&e.setsum()));
        let (dropped, n) = merge.dropped();
        assert_eq!(n, 2);
        assert_eq!(kept.add(&dropped), total);
    }

    #[test]
    fn out_of_order_run_is_an_error() {
        let merge = MergeIter::visible(
            vec![run(&[("b", 1, false), ("a", 1, false)])],
            u64::MAX,
            Tombstones::Keep,
        );
        let results: Vec<_> = merge.collect();
        assert!(
            results
                .iter()
                .any(|r| r.as_ref().is_err_and(FormatError::is_corruption))
        );
        assert!(
            results.last().unwrap().is_err(),
            "iterator ends after an error"
        );
    }

    #[test]
    fn conflicting_duplicates_are_an_error() {
        let runs = vec![run(&[("a", 1, false)]), run(&[("a", 1, true)])];
        let merge = MergeIter::compacting(runs, vec![], false);
        assert!(merge.collect::<Vec<_>>().iter().any(Result::is_err));
    }

    #[test]
    fn duplicates_across_runs_are_kept_once() {
        let runs = vec![run(&[("a", 1, false)]), run(&[("a", 1, false)])];
        let mut merge = MergeIter::compacting(runs, vec![], false);
        assert_eq!(keys(merge.by_ref()), vec![("a".into(), 1)]);
        assert_eq!(merge.dropped().1, 1);
    }
}
