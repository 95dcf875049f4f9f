//! Fold: the WAL after the manifest's `last_applied_lsn`, read from the
//! bucket (never from a writer's memory), becomes one level-0 segment,
//! committed as manifest N+1.
//!
//! A fold keeps the newest version of each id within the folded range:
//! readers of the new manifest read at or above its `last_version`, and
//! readers pinned to older manifests keep those manifests' segments (GC
//! respects pins), so nothing anyone can read is lost.

use std::sync::Arc;

use reef_format::{
    Entry, FormatError, IdempotencyRecord, Manifest, MergeIter, SegmentBuilder, SegmentMeta,
    Setsum, WalRecord,
};
use reef_manifest::store::DynStore;
use reef_manifest::{Layout, ManifestStore, Objects};

use crate::commit::{Change, Outcome, commit_change};
use crate::error::{Error, Result};
use crate::ids::new_segment_id;
use crate::options::CompactorOptions;

/// What a fold did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FoldReport {
    /// WAL records folded (0: nothing to do, or abandoned).
    pub records: usize,
    /// Entries read from the WAL.
    pub entries_in: u64,
    /// Entries written to the segment.
    pub entries_out: u64,
    /// The new segment, if any.
    #[serde(serialize_with = "crate::ids::serialize_hex")]
    pub segment: Option<u128>,
    /// Bytes of the new segment.
    pub segment_bytes: u64,
    /// The committed manifest version, if committed.
    pub manifest_version: Option<u64>,
    /// Why the fold gave up, if it did.
    pub abandoned: Option<String>,
    /// Committed, but HEAD could not be moved to it: why.
    pub head_error: Option<String>,
}

/// Folds the namespace's unfolded WAL (up to `fold_records_max` records
/// and about `fold_bytes_max` bytes, and none after `up_to_lsn` when given: an engine folds only what it has
/// itself confirmed, so its own in-flight WAL record is never folded before
/// its writer decides whether to acknowledge it).
#[tracing::instrument(name = "fold", skip_all, fields(namespace = layout.namespace()))]
pub async fn fold(
    store: &DynStore,
    layout: &Layout,
    opts: &CompactorOptions,
    up_to_lsn: Option<u64>,
) -> Result<FoldReport> {
    let manifests = ManifestStore::new(Arc::clone(store), layout.clone());
    let objects = Objects::new(Arc::clone(store), layout.clone());
    let base = manifests.load_current().await?.unwrap_or_default();
    let cap = up_to_lsn.map_or(usize::MAX, |u| {
        usize::try_from(u.saturating_sub(base.last_applied_lsn)).unwrap_or(usize::MAX)
    });
    let run = read_bounded(
        &objects,
        base.last_applied_lsn,
        opts.fold_records_max.min(cap),
        opts.fold_bytes_max,
    )
    .await?;
    if let Some(missing) = run.missing {
        // Folded by someone else and collected since we listed, or a hole.
        let current = manifests.load_current().await?.unwrap_or_default();
        if current.last_applied_lsn >= missing {
            return Ok(FoldReport {
                abandoned: Some(format!(
                    "another fold advanced last_applied_lsn past {missing}"
                )),
                ..FoldReport::default()
            });
        }
        return Err(Error::Inconsistent {
            namespace: layout.namespace().to_owned(),
            reason: format!(
                "WAL hole: {} is missing but later WAL exists",
                layout.wal_key(missing)
            ),
        });
    }
    let records = run.records;
    if records.is_empty() {
        return Ok(FoldReport::default());
    }
    let (change, mut report) = fold_records(&objects, &base, &records, opts, base.version).await?;
    match commit_change(&manifests, base, &change, opts).await? {
        Outcome::Committed(m, head_error) => {
            report.manifest_version = Some(m.version);
            report.head_error = head_error;
        }
        Outcome::Abandoned(why) => report.abandoned = Some(why),
    }
    Ok(report)
}

/// The unfolded WAL after `after`, in LSN order: at most `records_max`
/// records whose objects' listed sizes add up to at most `bytes_max` (at
/// least one record, however large), cut before anything is read. Stops
/// at a missing LSN, as `Objects::read_wal_after` does. This is what
/// bounds a fold's memory by configuration: the records, and the segment
/// built from them.
async fn read_bounded(
    objects: &Objects,
    after: u64,
    records_max: usize,
    bytes_max: usize,
) -> Result<reef_manifest::WalRun> {
    let bytes_max = u64::try_from(bytes_max).unwrap_or(u64::MAX);
    let mut cursor = objects.wal_after_sized(after).await?;
    Ok(cursor.next_within(records_max, bytes_max).await?)
}

/// Folds `records` (consecutive, the first right after
/// `base.last_applied_lsn`) into one level-0 segment written to the
/// bucket, whose id carries `segment_base` as its operation's base
/// version. Returns the change to commit on top of `base` and the report
/// so far. `fold` uses it on the WAL it read; `reef repair` uses it to fold
/// forward from an older manifest in one commit.
pub async fn fold_records(
    objects: &Objects,
    base: &Manifest,
    records: &[WalRecord],
    opts: &CompactorOptions,
    segment_base: u64,
) -> Result<(Change, FoldReport)> {
    let to_lsn = records.last().map_or(base.last_applied_lsn, |r| r.lsn);
    let mut written = (Setsum::EMPTY, 0u64);
    let mut idempotency = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_version = base.last_version;
    for r in records {
        written.0 = written.0.add(&r.setsum());
        for req in &r.requests {
            if let Some(key) = &req.idempotency_key {
                idempotency.push(IdempotencyRecord {
                    key: key.clone(),
                    fingerprint: req.fingerprint,
                    committed_at_ms: r.timestamp_ms,
                    summary: req.summary(r.lsn),
                });
            }
        }
        for e in r.entries() {
            last_version = last_version.max(e.version);
            entries.push(e.clone());
        }
    }
    written.1 = entries.len() as u64;
    let entries_in = written.1;
    entries.sort_by(|a, b| {
        a.id.as_bytes()
            .cmp(b.id.as_bytes())
            .then(b.version.cmp(&a.version))
    });

    let run = entries.into_iter().map(Ok::<_, FormatError>);
    let mut merge = MergeIter::compacting(vec![run], Vec::new(), false);
    let mut builder = SegmentBuilder::new(opts.segment.clone());
    for e in merge.by_ref() {
        builder.add(&e?)?;
    }
    let dropped = merge.dropped();
    let entries_out = builder.entry_count();
    let (segment, segment_bytes) = if entries_out > 0 {
        let built = builder.finish()?;
        let id = new_segment_id(opts.rng.as_ref(), segment_base);
        objects.put_segment(id, &built).await?;
        let bytes = built.bytes.len() as u64;
        (
            Some(SegmentMeta::from_footer(id, 0, bytes, &built.footer)),
            bytes,
        )
    } else {
        (None, 0)
    };
    let report = FoldReport {
        records: records.len(),
        entries_in,
        entries_out,
        segment: segment.as_ref().map(|s| s.id),
        segment_bytes,
        ..FoldReport::default()
    };
    let change = Change::Fold {
        from_lsn: base.last_applied_lsn,
        to_lsn,
        last_version,
        segment,
        written,
        dropped,
        idempotency,
        writers: records.iter().map(|r| r.writer_id).collect(),
    };
    Ok((change, report))
}
