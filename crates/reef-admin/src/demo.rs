//! `reef demo`: a one-minute tour for a newcomer, on a real local store.
//! Until the engine lands (preconditions, group commit, recovery) it drives
//! the layers that exist: a write request
//! is validated and committed as a WAL record (put-if-absent, fsynced), a
//! second writer loses that LSN, the entries are folded into a segment and
//! a manifest commits it, reads come back through the ranged, cached
//! segment reader, and one flipped bit is caught.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use reef_format::{
    Entry, FormatError, Limits, Manifest, MergeIter, Op, OpKind, SegmentBuilder, SegmentMeta,
    SegmentOptions, Tombstones, WalOp, WalRecord, WalRequest, WriteRequest, decode_document,
    document_from_json, document_to_json, encode_document,
};
use reef_manifest::store::{DynStore, LocalStore, PutOutcome};
use reef_manifest::{BlockCache, Layout, ManifestStore, Objects, SegmentReader};
use serde_json::json;

/// Prints a line; a closed stdout (`reef demo | head`) is an error the
/// binary turns into a quiet exit, never a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

/// Runs the demo against the local directory `dir`, namespace `demo`.
pub fn run(dir: &Path) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(tour(dir))
}

async fn tour(dir: &Path) -> Result<()> {
    let store: DynStore = Arc::new(LocalStore::new(dir));
    let layout = Layout::new("demo")?;
    let objects = Objects::new(Arc::clone(&store), layout.clone());
    let manifests = ManifestStore::new(Arc::clone(&store), layout.clone());
    let limits = Limits::default();
    let base = manifests.load_current().await?.unwrap_or_default();
    let lsn = objects
        .list_wal(base.last_applied_lsn)
        .await?
        .last()
        .copied()
        .unwrap_or(base.last_applied_lsn)
        + 1;
    let first_version = base.last_version + 1;

    say!("1. A write request of three upserts, validated against the limits:");
    let people = [
        ("user/ada", json!({"name": "Ada Lovelace", "born": 1815})),
        ("user/alan", json!({"name": "Alan Turing", "born": 1912})),
        ("user/grace", json!({"name": "Grace Hopper", "born": 1906})),
    ];
    let mut request = WriteRequest {
        ops: Vec::new(),
        idempotency_key: Some(format!("demo-{lsn}")),
    };
    for (id, doc) in &people {
        request.ops.push(Op {
            kind: OpKind::Upsert,
            id: (*id).to_owned(),
            doc: Some(document_from_json(doc, "doc")?),
            precondition: None,
        });
        say!("   upsert {id} {doc}");
    }
    say!(
        "   ok: {} bytes, fingerprint {:032x}",
        request.validate(&limits)?,
        request.fingerprint()
    );

    say!("2. Committed as WAL record lsn {lsn} with put-if-absent (durable before acknowledged):");
    let mut ops = Vec::new();
    for (i, op) in request.ops.iter().enumerate() {
        let doc = op.doc.as_ref().context("upsert without doc")?;
        let entry = Entry::put(
            op.id.clone(),
            first_version + i as u64,
            encode_document(doc, &limits)?,
        );
        ops.push(WalOp {
            kind: op.kind,
            entry,
        });
    }
    let record = WalRecord {
        lsn,
        writer_epoch: base.writer_epoch.max(1),
        writer_id: std::process::id().into(),
        timestamp_ms: 0,
        requests: vec![WalRequest {
            idempotency_key: request.idempotency_key.clone(),
            fingerprint: request.fingerprint(),
            skipped: 0,
            ops,
        }],
    };
    ensure!(
        matches!(objects.put_wal(&record).await?, PutOutcome::Written(_)),
        "lsn {lsn} was taken"
    );
    let summary = record.requests[0].summary(lsn);
    say!(
        "   {} -> versions {:?}, setsum {}",
        layout.wal_key(lsn),
        summary.versions,
        record.setsum().to_hex()
    );
    let zombie = WalRecord {
        writer_epoch: 0,
        writer_id: 0,
        ..record.clone()
    };
    let outcome = objects.put_wal(&zombie).await?;
    say!("   a second writer trying lsn {lsn}: {outcome:?} (it must reload and retry)");

    say!(
        "3. Folded into a sorted, checksummed level-0 segment; manifest {} commits it:",
        base.version + 1
    );
    let run: Vec<Result<Entry, FormatError>> = record.entries().cloned().map(Ok).collect();
    let mut builder = SegmentBuilder::new(SegmentOptions::default());
    for entry in MergeIter::visible(vec![run.into_iter()], u64::MAX, Tombstones::Keep) {
        builder.add(&entry?)?;
    }
    let built = builder.finish()?;
    let segment_id = u128::from(base.version + 1);
    objects.put_segment(segment_id, &built).await?;
    let mut next = Manifest {
        version: base.version + 1,
        last_applied_lsn: lsn,
        last_version: summary.versions.map_or(base.last_version, |(_, last)| last),
        ..base.clone()
    };
    next.segments.push(SegmentMeta::from_footer(
        segment_id,
        0,
        built.bytes.len() as u64,
        &built.footer,
    ));
    next.totals.written = next.totals.written.add(&record.setsum());
    next.totals.written_count += record.entries().count() as u64;
    next.check_accounting("demo manifest")?;
    manifests.commit(&next).await?;
    say!(
        "   {} ({} bytes); written = live + dropped holds: {}",
        layout.segment_key(segment_id),
        built.bytes.len(),
        next.totals.written.to_hex()
    );

    say!("4. Reads through the ranged, cached segment reader:");
    let cache = Arc::new(BlockCache::new(8 << 20));
    let reader = SegmentReader::open(
        Arc::clone(&store),
        &layout.segment_key(segment_id),
        Some(built.bytes.len() as u64),
        cache,
    )
    .await?;
    let hit = reader
        .get("user/grace", u64::MAX)
        .await?
        .context("user/grace missing")?;
    let doc = decode_document(hit.doc().context("tombstone")?, reader.key())?;
    say!(
        "   get user/grace -> version {} {}",
        hit.version,
        document_to_json(&doc)
    );
    say!(
        "   get user/nobody -> {:?} (the bloom filter answered)",
        reader.get("user/nobody", u64::MAX).await?.map(|e| e.id)
    );
    let current = manifests.load_current().await?.context("no manifest")?;
    say!(
        "   reopened: manifest {} with {} segment(s), last_applied_lsn {}",
        current.version,
        current.segments.len(),
        current.last_applied_lsn
    );

    say!("5. One flipped bit in a stored WAL object is caught, never served:");
    let key = layout.wal_key(lsn);
    let mut damaged = store
        .get(&key)
        .await?
        .context("wal vanished")?
        .bytes
        .to_vec();
    if let Some(b) = damaged.get_mut(40) {
        *b ^= 0x01;
    }
    match WalRecord::decode(&damaged.into(), &key) {
        Err(err) => say!("   {err}"),
        Ok(_) => bail!("a damaged WAL record decoded"),
    }
    say!(
        "Done. The bucket is {}; run the demo again to add to it.",
        dir.display()
    );
    Ok(())
}
