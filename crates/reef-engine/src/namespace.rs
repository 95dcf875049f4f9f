//! One namespace's in-memory state and how it is rebuilt from the bucket.
//!
//! Recovery (DESIGN §3.5) = newest manifest + replay, in LSN order, of every
//! WAL object after `manifest.last_applied_lsn`. The same catch-up serves
//! `refresh()` and a writer that lost an LSN race: it applies whatever
//! other writers committed. Replay is deterministic because WAL records
//! hold resolved entries.
//!
//! Invariants: `last_lsn` is the newest WAL record applied, and every
//! record `<= last_lsn` is applied exactly once; LSNs after the manifest's
//! are contiguous (a hole is an error naming the missing object, never
//! skipped; a listing's gap is first checked by reading the key, and a
//! record missing because a newer manifest folded it is not a hole);
//! versions strictly increase across records.

use std::collections::HashMap;
use std::sync::Arc;

use reef_format::{Manifest, WalRecord, WriteSummary};
use reef_manifest::store::{DynStore, Object};
use reef_manifest::{BlockCache, Layout, ManifestStore, Objects, SegmentReader};

use crate::error::{Error, Result};
use crate::memtable::{self, Memtable};
use crate::sync::{Mutex, MutexGuard, RwLock};

/// A committed idempotency key.
#[derive(Clone, Debug)]
pub(crate) struct IdemEntry {
    pub fingerprint: u128,
    pub summary: WriteSummary,
    pub committed_at_ms: u64,
}

/// What a namespace knows; handles are `Arc`s so readers take a consistent
/// view without holding the lock.
pub(crate) struct State {
    pub manifest: Arc<Manifest>,
    pub segments: Arc<Vec<Arc<SegmentReader>>>,
    pub memtable: Arc<RwLock<Memtable>>,
    pub last_lsn: u64,
    pub last_version: u64,
    pub idempotency: HashMap<String, IdemEntry>,
    idempotency_pruned_len: usize,
    /// The last background fold/compaction/GC error, for `stats`.
    pub background_error: Option<String>,
    /// Since when unfolded WAL has been waiting (the age fold trigger).
    pub unfolded_since: Option<tokio::time::Instant>,
}

/// A namespace served by an engine.
pub(crate) struct Namespace {
    pub name: String,
    pub layout: Layout,
    pub manifests: ManifestStore,
    pub objects: Objects,
    pub store: DynStore,
    pub cache: Arc<BlockCache>,
    pub state: Mutex<State>,
    /// Held by the group-commit leader and by `refresh`: one mutator.
    pub commit: tokio::sync::Mutex<()>,
    /// Room under the memtable budget: wakes writers waiting for it, and
    /// counts replaced tables still being freed.
    pub room: Arc<memtable::Room>,
    /// Wakes `close` when the commit leader goes idle.
    pub idle: tokio::sync::Notify,
    pub queue: crate::group::GroupQueue<crate::commit::Pending>,
    /// The claim on the background maintenance cycle.
    pub scheduler: crate::schedule::Scheduler,
    /// Test-only: safety rules switched off.
    pub sabotage: reef_manifest::Sabotage,
}

/// What the stale-writer fence found for a WAL record this writer put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fence {
    /// Not folded: the slot was never anyone else's; acknowledge.
    Unfolded,
    /// Folded, and the fold took our record: it is durable.
    FoldedOurs,
    /// Folded from another writer's record: ours is a stray; plan again.
    FoldedOthers,
}

/// A consistent read view.
#[derive(Clone)]
pub(crate) struct View {
    /// The manifest version the segments come from.
    pub manifest_version: u64,
    pub segments: Arc<Vec<Arc<SegmentReader>>>,
    pub memtable: Arc<RwLock<Memtable>>,
    pub at: u64,
}

impl Namespace {
    /// Opens (recovers) a namespace from the bucket.
    pub async fn open(
        name: &str,
        store: DynStore,
        cache: Arc<BlockCache>,
        sabotage: reef_manifest::Sabotage,
    ) -> Result<Namespace> {
        let layout = Layout::new(name)?;
        let manifests = ManifestStore::new(Arc::clone(&store), layout.clone());
        let manifest = manifests.load_current().await?.unwrap_or_default();
        let segments = open_segments(&store, &layout, &manifest, &cache, &[]).await?;
        let idempotency = manifest
            .idempotency
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    IdemEntry {
                        fingerprint: r.fingerprint,
                        summary: r.summary.clone(),
                        committed_at_ms: r.committed_at_ms,
                    },
                )
            })
            .collect();
        let state = State {
            last_lsn: manifest.last_applied_lsn,
            last_version: manifest.last_version,
            manifest: Arc::new(manifest),
            segments: Arc::new(segments),
            memtable: Arc::default(),
            idempotency,
            idempotency_pruned_len: 0,
            background_error: None,
            unfolded_since: None,
        };
        let ns = Namespace {
            name: name.to_owned(),
            objects: Objects::new(Arc::clone(&store), layout.clone()),
            layout,
            manifests,
            store,
            cache,
            state: Mutex::new(state),
            commit: tokio::sync::Mutex::new(()),
            room: Arc::default(),
            idle: tokio::sync::Notify::new(),
            queue: crate::group::GroupQueue::default(),
            scheduler: crate::schedule::Scheduler::default(),
            sabotage,
        };
        ns.catch_up().await?;
        Ok(ns)
    }

    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        // Every mutation of State completes under the guard: poison is
        // benign (as for `read_lock`).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A view of everything applied so far.
    pub fn view(&self) -> View {
        let s = self.lock_state();
        View {
            manifest_version: s.manifest.version,
            segments: Arc::clone(&s.segments),
            memtable: Arc::clone(&s.memtable),
            at: s.last_version,
        }
    }

    /// Applies every WAL record committed after our `last_lsn` (and a newer
    /// manifest, if one was committed). Callers hold `commit` or are
    /// opening.
    ///
    /// The read side of the stale-writer fence: a record is applied only if
    /// HEAD, read *after* the record was fetched, shows its LSN unfolded. A
    /// WAL slot GC freed can be refilled by a stale writer's late put (a
    /// "stray" that writer never acknowledges); GC freed it only after HEAD
    /// covered it, so that HEAD read sees it folded and the stray is
    /// skipped. A record still above `last_applied_lsn` then is the only
    /// record that slot ever held.
    ///
    /// The WAL is applied a batch at a time (`RECOVERY_BATCH` records or
    /// `RECOVERY_BYTES`), so recovery holds two batches, not all unfolded
    /// WAL: the next is fetched while this one is applied (the reads are
    /// the store's, the applying is ours, so they overlap). HEAD is read
    /// after each batch is fetched and before it is applied, as above.
    pub async fn catch_up(&self) -> Result<()> {
        loop {
            self.adopt_newer_manifest().await?;
            let last = self.lock_state().last_lsn;
            let mut wal = self.objects.wal_after(last).await?;
            let mut run = wal.next_within(RECOVERY_BATCH, RECOVERY_BYTES).await?;
            let missing = loop {
                if !self.sabotage.apply_strays {
                    self.adopt_if_head_moved().await?;
                }
                let folded = self.lock_state().manifest.last_applied_lsn;
                let records = std::mem::take(&mut run.records);
                let last_run = run.missing.is_some() || records.is_empty();
                let apply = async move {
                    for record in records.into_iter().filter(|r| r.lsn > folded) {
                        self.apply(record)?;
                    }
                    Ok::<(), Error>(())
                };
                if last_run {
                    apply.await?;
                    break run.missing;
                }
                // `next` is polled first: its reads start before the
                // applying (which never waits) runs.
                let (next, applied) =
                    tokio::join!(wal.next_within(RECOVERY_BATCH, RECOVERY_BYTES), apply);
                applied?;
                run = next?;
            };
            let Some(missing) = missing else {
                return Ok(());
            };
            // Gone because a newer manifest folded it and GC collected it
            // (then start again from that manifest), or a true hole.
            self.adopt_newer_manifest().await?;
            if self.lock_state().manifest.last_applied_lsn < missing {
                return Err(self.inconsistent(format!(
                    "WAL hole: {} is missing but later WAL exists",
                    self.layout.wal_key(missing)
                )));
            }
        }
    }

    /// The stale-writer fence (DESIGN §3.2), run after this writer put
    /// its WAL record for `lsn` and before it acknowledges or re-plans.
    ///
    /// GC deletes `wal/x` only after making sure HEAD names a manifest M
    /// with `M.last_applied_lsn >= x`. If our put-if-absent landed in a slot
    /// GC had freed, that deletion, and so HEAD >= M, came before our put,
    /// and this HEAD read comes after it: we see `lsn` folded. If `lsn` is
    /// not folded, no manifest had folded it when HEAD was read, so the
    /// slot never held another record and every later fold and recovery
    /// reads ours. If it is folded, the manifest's `recent_writers` say
    /// which record the fold took (each planned record carries a fresh id
    /// in `writer_id`): ours (another process folded it between
    /// our put and this read: it is durable) or another writer's (we were
    /// stale; ours is a stray nobody applies). Beyond that window the
    /// outcome is unknown: `Fenced`. No clock, pause bound or shared
    /// setting is involved.
    ///
    /// `head` is HEAD (`None`: absent) as read after the slot was seen
    /// holding the record the put reported: after a put that wrote, in the
    /// same store call (`Objects::put_wal_then_head`); after one that found
    /// the slot taken, read again after the read-back (`put_durably`).
    /// Cost: no request of its own when the put wrote, one small GET when
    /// it did not (plus a manifest load when HEAD moved, which adopting
    /// needs anyway).
    pub async fn fence(&self, record: &WalRecord, head: Option<Object>) -> Result<Fence> {
        let lsn = record.lsn;
        let head = self.manifests.head_version_of(head).await?;
        self.adopt_if_past(head).await?;
        let s = self.lock_state();
        let last_applied_lsn = s.manifest.last_applied_lsn;
        if lsn > last_applied_lsn {
            return Ok(Fence::Unfolded);
        }
        match s.manifest.folded_writer(lsn) {
            Some(w) if w == record.writer_id => Ok(Fence::FoldedOurs),
            Some(_) => Ok(Fence::FoldedOthers),
            None => Err(Error::Fenced {
                namespace: self.name.clone(),
                lsn,
                last_applied_lsn,
            }),
        }
    }

    /// Reads HEAD and adopts the newest manifest if HEAD names a newer one
    /// than ours (one small GET when nothing changed).
    async fn adopt_if_head_moved(&self) -> Result<()> {
        let head = self.manifests.head_version().await?;
        self.adopt_if_past(head).await
    }

    /// Adopts the newest manifest if `head` (a version HEAD named) is
    /// newer than ours.
    async fn adopt_if_past(&self, head: Option<u64>) -> Result<()> {
        if head.is_some_and(|h| h > self.lock_state().manifest.version) {
            self.adopt_newer_manifest().await?;
        }
        Ok(())
    }

    /// Adopts a manifest newer than ours: its segments replace the folded
    /// part of the memtable, which is switched, never edited, so views
    /// taken before keep theirs. Callers hold the commit lock (as every
    /// caller of `catch_up` and `fence` does), so no record is applied
    /// while the kept entries are copied.
    pub async fn adopt_newer_manifest(&self) -> Result<()> {
        let ours = self.lock_state().manifest.version;
        let Some(newer) = self.manifests.load_current().await? else {
            return Ok(());
        };
        if newer.version <= ours {
            return Ok(());
        }
        {
            // M1 (docs/architecture.md): a newer manifest folds at least
            // as far. One that does not (damage, or a repair that broke
            // it) is refused: adopting it would drop what this engine
            // already let go from its memtable, silently.
            let s = self.lock_state();
            let had = &s.manifest;
            if newer.last_applied_lsn < had.last_applied_lsn
                || newer.last_version < had.last_version
            {
                return Err(self.inconsistent(format!(
                    "{} goes backwards from {} (last_applied_lsn {} < {} or last_version {} < {}); \
                     refusing to adopt it: reopen, and run `reef verify`",
                    self.layout.manifest_key(newer.version),
                    self.layout.manifest_key(had.version),
                    newer.last_applied_lsn,
                    had.last_applied_lsn,
                    newer.last_version,
                    had.last_version
                )));
            }
        }
        let open = Arc::clone(&self.lock_state().segments);
        let segments = open_segments(&self.store, &self.layout, &newer, &self.cache, &open).await?;
        // The state lock only for the table's handle, not for the copy.
        let table = Arc::clone(&self.lock_state().memtable);
        let kept = memtable::unfolded(table, newer.last_version);
        let mut s = self.lock_state();
        let old_table = memtable::switch(&mut s.memtable, kept);
        s.last_lsn = s.last_lsn.max(newer.last_applied_lsn);
        s.last_version = s.last_version.max(newer.last_version);
        for r in &newer.idempotency {
            s.idempotency
                .entry(r.key.clone())
                .or_insert_with(|| IdemEntry {
                    fingerprint: r.fingerprint,
                    summary: r.summary.clone(),
                    committed_at_ms: r.committed_at_ms,
                });
        }
        s.segments = Arc::new(segments);
        if s.last_lsn <= newer.last_applied_lsn {
            s.unfolded_since = None;
        }
        s.manifest = Arc::new(newer);
        drop(s);
        // The old table is let go of (on a multi-threaded runtime, by a
        // task of its own: this one holds the commit lock), its bytes
        // counted in `room` before writers waiting for room are woken to
        // look again.
        memtable::release(old_table, &self.room);
        self.room.wake.notify_waiters();
        Ok(())
    }

    /// Applies one durable WAL record (ours or another writer's). The
    /// record's entries move into the memtable: copying each id cost the
    /// commit leader an allocation per entry, and freeing the record's
    /// copy another.
    pub fn apply(&self, record: WalRecord) -> Result<()> {
        let mut s = self.lock_state();
        if record.lsn != s.last_lsn + 1 {
            return Err(self.inconsistent(format!(
                "{} applied after lsn {}",
                self.layout.wal_key(record.lsn),
                s.last_lsn
            )));
        }
        if let Some(first) = record.entries().next()
            && first.version <= s.last_version
        {
            return Err(self.inconsistent(format!(
                "{} reuses version {} (last was {})",
                self.layout.wal_key(record.lsn),
                first.version,
                s.last_version
            )));
        }
        if let Some(last) = record.entries().last() {
            s.last_version = last.version;
        }
        for req in &record.requests {
            if let Some(key) = &req.idempotency_key {
                s.idempotency.insert(
                    key.clone(),
                    IdemEntry {
                        fingerprint: req.fingerprint,
                        summary: req.summary(record.lsn),
                        committed_at_ms: record.timestamp_ms,
                    },
                );
            }
        }
        let entries = record.requests.into_iter().flat_map(|r| r.ops);
        memtable::apply(&s.memtable, entries.map(|op| op.entry));
        s.last_lsn = record.lsn;
        s.unfolded_since
            .get_or_insert_with(tokio::time::Instant::now);
        Ok(())
    }

    /// Drops idempotency keys past retention (the namespace's, from its
    /// manifest, else the compactor options' default), amortised: only when
    /// the map has doubled since the last pass.
    pub fn prune_idempotency(&self, now_ms: u64, opts: &reef_compactor::CompactorOptions) {
        let mut s = self.lock_state();
        if s.idempotency.len() < 2 * s.idempotency_pruned_len + 1024 {
            return;
        }
        let retention_ms = match s.manifest.idempotency_retention_ms {
            0 => opts.idempotency_retention_ms,
            ms => ms,
        };
        let cutoff = now_ms.saturating_sub(retention_ms);
        s.idempotency.retain(|_, e| e.committed_at_ms >= cutoff);
        s.idempotency_pruned_len = s.idempotency.len();
    }

    pub fn inconsistent(&self, reason: String) -> Error {
        Error::Inconsistent {
            namespace: self.name.clone(),
            reason,
        }
    }
}

/// Most WAL records recovery fetches, checks against HEAD and applies at a
/// time...
const RECOVERY_BATCH: usize = 4096;

/// ...and most bytes of WAL objects (plus the record that crosses it):
/// recovery holds two batches (`catch_up`), whatever the records' sizes.
const RECOVERY_BYTES: u64 = 8 << 20;

/// Segment opens in flight at once (each costs two ranged GETs).
const SEGMENT_OPENS_IN_FLIGHT: usize = 16;

/// Readers for the manifest's segments, newest first (by `max_version`, so
/// a point read can stop at the first segment that cannot hold a newer
/// version). Readers in `open` are reused: a segment key names immutable
/// bytes (put-if-absent), so adopting a manifest costs requests only for
/// the segments it adds.
pub(crate) async fn open_segments(
    store: &DynStore,
    layout: &Layout,
    manifest: &Manifest,
    cache: &Arc<BlockCache>,
    open: &[Arc<SegmentReader>],
) -> Result<Vec<Arc<SegmentReader>>> {
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let known: HashMap<&str, &Arc<SegmentReader>> = open.iter().map(|r| (r.key(), r)).collect();
    // Owned plans, so the futures below borrow nothing (they run inside a
    // spawned task: each has to be `Send` for every lifetime).
    let plans: Vec<(String, u64, Option<Arc<SegmentReader>>)> = manifest
        .segments
        .iter()
        .map(|meta| {
            let key = layout.segment_key(meta.id);
            let reuse = known
                .get(key.as_str())
                .filter(|r| meta.matches(r.object_bytes(), r.footer()))
                .map(|r| Arc::clone(r));
            (key, meta.object_bytes, reuse)
        })
        .collect();
    let opens = plans.into_iter().map(|(key, len, reuse)| {
        let (store, cache) = (Arc::clone(store), Arc::clone(cache));
        async move {
            match reuse {
                Some(reader) => Ok(reader),
                None => SegmentReader::open(store, &key, Some(len), cache)
                    .await
                    .map(Arc::new),
            }
        }
    });
    let mut readers: Vec<Arc<SegmentReader>> = futures_util::stream::iter(opens)
        .buffered(SEGMENT_OPENS_IN_FLIGHT)
        .try_collect()
        .await?;
    readers.sort_by_key(|r| std::cmp::Reverse(r.footer().max_version));
    Ok(readers)
}
