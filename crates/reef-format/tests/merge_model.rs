//! The merge iterator against a `BTreeMap` model on random runs.
//!
//! Runs are built from one random set of entries (unique per id and
//! version), scattered over up to five runs, some entries copied into two
//! runs (the same write seen twice, as after a re-fold).

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use reef_format::{Entry, FormatError, MergeIter, Setsum, Tombstones};

type Run = std::vec::IntoIter<Result<Entry, FormatError>>;

#[derive(Debug, Clone)]
struct Case {
    entries: Vec<Entry>,
    runs: Vec<Vec<Entry>>,
}

fn case() -> impl Strategy<Value = Case> {
    let entry = (any::<bool>(), 0usize..5, any::<bool>());
    (
        btree_map(("[a-e]{1,2}", 1u64..40), entry, 0..80),
        1usize..=5,
    )
        .prop_map(|(m, n_runs)| {
            let mut runs = vec![Vec::new(); n_runs];
            let mut entries = Vec::new();
            for ((id, version), (delete, run, dup)) in m {
                let e = if delete {
                    Entry::delete(id, version)
                } else {
                    Entry::put(id.clone(), version, format!("{id}@{version}"))
                };
                runs[run % n_runs].push(e.clone());
                if dup && n_runs > 1 {
                    runs[(run + 1) % n_runs].push(e.clone());
                }
                entries.push(e);
            }
            for r in &mut runs {
                r.sort_by(|a, b| {
                    a.id.as_bytes()
                        .cmp(b.id.as_bytes())
                        .then(b.version.cmp(&a.version))
                });
            }
            Case { entries, runs }
        })
}

fn to_runs(runs: &[Vec<Entry>]) -> Vec<Run> {
    runs.iter()
        .map(|r| r.iter().cloned().map(Ok).collect::<Vec<_>>().into_iter())
        .collect()
}

/// The model read: newest entry per id with version <= at.
fn model_read(entries: &[Entry], at: u64, hide: bool) -> Vec<Entry> {
    let mut newest: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.version <= at) {
        let slot = newest.entry(e.id.as_str()).or_insert(e);
        if e.version > slot.version {
            *slot = e;
        }
    }
    newest
        .into_values()
        .filter(|e| !(hide && e.is_tombstone()))
        .cloned()
        .collect()
}

fn sum<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Setsum {
    entries
        .into_iter()
        .fold(Setsum::EMPTY, |s, e| s.add(&e.setsum()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn visible_merge_equals_model(c in case(), at in 0u64..45, hide in any::<bool>()) {
        let mode = if hide { Tombstones::Hide } else { Tombstones::Keep };
        let got: Vec<Entry> = MergeIter::visible(to_runs(&c.runs), at, mode)
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(got, model_read(&c.entries, at, hide));
    }

    #[test]
    fn compaction_preserves_every_snapshot_and_conserves_content(
        c in case(),
        snapshots in vec(0u64..45, 0..4),
        drop_tombstones in any::<bool>(),
    ) {
        let mut merge = MergeIter::compacting(to_runs(&c.runs), snapshots.clone(), drop_tombstones);
        let out: Vec<Entry> = merge.by_ref().collect::<Result<_, _>>().unwrap();
        // Output is itself a valid run: strictly in segment order.
        for w in out.windows(2) {
            let ordered = w[0].id.as_bytes() < w[1].id.as_bytes()
                || (w[0].id == w[1].id && w[0].version > w[1].version);
            prop_assert!(ordered, "{:?} then {:?}", w[0], w[1]);
        }
        // written (every copy in every run) = live (output) + dropped.
        let input: Vec<&Entry> = c.runs.iter().flatten().collect();
        let (dropped, dropped_count) = merge.dropped();
        prop_assert_eq!(sum(input.iter().copied()), sum(&out).add(&dropped));
        prop_assert_eq!(input.len() as u64, out.len() as u64 + dropped_count);
        // Every protected view reads the same from the output as from the
        // input; with tombstones dropped, only the tombstone-hiding view is
        // promised.
        let mut views: Vec<u64> = snapshots.clone();
        views.push(u64::MAX);
        for at in views {
            let hide_views: &[bool] = if drop_tombstones { &[true] } else { &[true, false] };
            for &hide in hide_views {
                prop_assert_eq!(
                    model_read(&out, at, hide),
                    model_read(&c.entries, at, hide),
                    "view at {} (hide tombstones: {})", at, hide
                );
            }
        }
        if drop_tombstones {
            // No id's oldest kept entry is a tombstone.
            let mut oldest: BTreeMap<&str, &Entry> = BTreeMap::new();
            for e in &out {
                oldest.insert(e.id.as_str(), e);
            }
            prop_assert!(oldest.values().all(|e| !e.is_tombstone()));
        }
    }
}
