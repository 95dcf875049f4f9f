//! Compaction: every level-0 segment, plus the level-1 segments whose id
//! ranges overlap them, merged into new level-1 segments cut at about
//! `l1_segment_bytes_target`.
//!
//! Policy: compact when level 0 holds `compaction_l0_trigger` segments
//! (default 4). Level 1 is the bottom level, so the merge keeps only the
//! newest version of each id and drops tombstones: every older version of
//! an id lives in the inputs (all of level 0 and every overlapping level-1
//! segment), and readers pinned to older manifests keep those manifests'
//! segments. Write amplification is then about one rewrite of the
//! overlapping level-1 data per `trigger` folds; `Totals` tracks it.

use std::ops::Bound;
use std::sync::Arc;

use reef_format::{FormatError, MergeIter, SegmentBuilder, SegmentMeta, Setsum};
use reef_manifest::steps::RangeSteps;
use reef_manifest::store::DynStore;
use reef_manifest::{BlockCache, Layout, ManifestStore, Objects, SegmentReader};

use crate::commit::{Change, Outcome, commit_change};
use crate::error::Result;
use crate::ids::new_segment_id;
use crate::options::CompactorOptions;

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Input segments (0: nothing to do).
    pub inputs: usize,
    /// Output segments.
    pub outputs: usize,
    /// Entries read.
    pub entries_in: u64,
    /// Entries written.
    pub entries_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// The committed manifest version, if committed.
    pub manifest_version: Option<u64>,
    /// Why the compaction gave up, if it did.
    pub abandoned: Option<String>,
    /// Committed, but HEAD could not be moved to it: why.
    pub head_error: Option<String>,
}

/// Compacts if level 0 has reached the trigger (or `force` and level 0 is
/// not empty).
#[tracing::instrument(name = "compact", skip_all, fields(namespace = layout.namespace()))]
pub async fn compact(
    store: &DynStore,
    layout: &Layout,
    opts: &CompactorOptions,
    force: bool,
) -> Result<CompactReport> {
    let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let base = manifests.load_current().await?.unwrap_or_default();
    let l0: Vec<&SegmentMeta> = base.segments.iter().filter(|s| s.level == 0).collect();
    if l0.is_empty() || (!force && l0.len() < opts.compaction_l0_trigger) {
        return Ok(CompactReport::default());
    }
    let (lo, hi) = l0.iter().fold(
        (l0[0].min_id.clone(), l0[0].max_id.clone()),
        |(lo, hi), s| (lo.min(s.min_id.clone()), hi.max(s.max_id.clone())),
    );
    let inputs: Vec<SegmentMeta> = base
        .segments
        .iter()
        .filter(|s| s.level == 0 || (s.max_id >= lo && s.min_id <= hi))
        .cloned()
        .collect();

    // Inputs are read once, sequentially: no point caching their blocks.
    let cache = Arc::new(BlockCache::new(0));
    let mut report = CompactReport {
        inputs: inputs.len(),
        ..CompactReport::default()
    };
    // Another compaction may replace an input and GC collect it while we
    // work: ours could not commit anyway.
    let collected = |key: &str| format!("input {key} was collected meanwhile");
    let mut readers = Vec::with_capacity(inputs.len());
    for meta in &inputs {
        let key = layout.segment_key(meta.id);
        let opened = SegmentReader::open(
            Arc::clone(store),
            &key,
            Some(meta.object_bytes),
            Arc::clone(&cache),
        )
        .await;
        match opened {
            Ok(reader) => readers.push(Arc::new(reader)),
            Err(reef_manifest::Error::NotFound { .. }) => {
                report.abandoned = Some(collected(&key));
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        }
        report.bytes_in += meta.object_bytes;
    }
    // The merge runs in steps (`RangeSteps`): a few 1 MiB runs of
    // read-ahead blocks per input in memory (the one in use, the next
    // being fetched, the one before while the step's entries share it),
    // plus each input's index and bloom
    // filter (kept by its reader) and the output segment being built, never
    // the inputs' contents. The builder copies what it keeps. Every version of an id falls in one step, so each step's
    // merge decides exactly as a merge of everything would.
    let mut steps = RangeSteps::new(readers, Bound::Unbounded, Bound::Unbounded);
    let mut dropped = (Setsum::EMPTY, 0u64);
    let mut outputs = Vec::new();
    let mut builder = SegmentBuilder::new(opts.segment.clone());
    loop {
        let end = steps.next_end();
        let to = end.as_deref().map_or(Bound::Unbounded, Bound::Included);
        let runs = match steps.read(to).await {
            Ok(runs) => runs,
            Err(reef_manifest::Error::NotFound { key }) => {
                report.abandoned = Some(collected(&key));
                return Ok(report);
            }
            Err(e) => return Err(e.into()),
        };
        report.entries_in += runs.iter().map(|r| r.len() as u64).sum::<u64>();
        let runs = runs
            .into_iter()
            .map(|run| run.into_iter().map(Ok::<_, FormatError>))
            .collect();
        let mut merge = MergeIter::compacting(runs, Vec::new(), true);
        for e in merge.by_ref() {
            builder.add(&e?)?;
            if builder.estimated_bytes() >= opts.l1_segment_bytes_target {
                let full =
                    std::mem::replace(&mut builder, SegmentBuilder::new(opts.segment.clone()));
                outputs.push(write_l1(&objects, full, opts, base.version).await?);
            }
        }
        let (sum, count) = merge.dropped();
        dropped = (dropped.0.add(&sum), dropped.1 + count);
        if end.is_none() {
            break;
        }
    }
    if builder.entry_count() > 0 {
        outputs.push(write_l1(&objects, builder, opts, base.version).await?);
    }
    report.outputs = outputs.len();
    report.entries_out = outputs.iter().map(|s| s.entry_count).sum();
    report.bytes_out = outputs.iter().map(|s| s.object_bytes).sum();
    let change = Change::Compact {
        inputs: inputs.iter().map(|s| s.id).collect(),
        outputs,
        dropped,
    };
    match commit_change(&manifests, base, &change, opts).await? {
        Outcome::Committed(m, head_error) => {
            report.manifest_version = Some(m.version);
            report.head_error = head_error;
        }
        Outcome::Abandoned(why) => report.abandoned = Some(why),
    }
    Ok(report)
}

/// Writes one output under a fresh id carrying the base version (so GC can
/// tell from the key whether its writer can still commit).
async fn write_l1(
    objects: &Objects,
    builder: SegmentBuilder,
    opts: &CompactorOptions,
    base_version: u64,
) -> Result<SegmentMeta> {
    let id = new_segment_id(opts.rng.as_ref(), base_version);
    let built = builder.finish()?;
    objects.put_segment(id, &built).await?;
    Ok(SegmentMeta::from_footer(
        id,
        1,
        built.bytes.len() as u64,
        &built.footer,
    ))
}
