//! WAL records and segments as objects of one namespace: the single place
//! both the engine (which writes WAL) and a standalone compactor (which
//! reads WAL and writes segments) go through.
//!
//! Invariants: what is written was encoded by reef-format and decoded again
//! before the PUT ("check twice"); WAL and segments are created only with
//! put-if-absent (they are immutable); a WAL record read back must carry
//! the LSN its key names.

use bytes::Bytes;
use reef_format::{BuiltSegment, WalRecord};

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::store::{DynStore, Object, PutOutcome, list_all};

/// Most WAL objects a `WalCursor` asks the store for in one call (the
/// store bounds how many are in flight at once; the caller's byte budget
/// bounds what they hold): a local directory serves each call with thread
/// hops, which cost more than reading 50 small objects on this machine, so
/// fewer, larger calls cost less.
const WAL_READS_PER_CALL: usize = 4096;

/// WAL records read in LSN order by [`WalCursor::next`] (and
/// [`Objects::read_wal_after`]).
#[derive(Clone, Debug, Default)]
pub struct WalRun {
    /// Contiguous records, starting right after the requested LSN.
    pub records: Vec<WalRecord>,
    /// The LSN the run stopped at because it has no object although the
    /// listing named it or a later LSN. The caller must explain it: folded
    /// and collected (a newer manifest's `last_applied_lsn` covers it), or
    /// a true hole.
    pub missing: Option<u64>,
}

/// WAL and segment objects of one namespace.
#[derive(Clone, Debug)]
pub struct Objects {
    store: DynStore,
    layout: Layout,
}

impl Objects {
    /// Objects of the namespace `layout` describes.
    pub fn new(store: DynStore, layout: Layout) -> Objects {
        Objects { store, layout }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Creates `wal/<record.lsn>` if no object has that key. The outcome
    /// says whether this call created it; `ConditionFailed` means another
    /// writer holds the LSN (or an earlier attempt of ours whose response
    /// was lost: compare with `get_wal`).
    pub async fn put_wal(&self, record: &WalRecord) -> Result<PutOutcome> {
        let key = self.layout.wal_key(record.lsn);
        let bytes = self.encode_wal(&key, record)?;
        self.store.put_if_absent(&key, bytes).await
    }

    /// `put_wal`, then (once it has returned) a read of HEAD, in one store
    /// call where the backend can (`ObjectStore::put_if_absent_then_get`):
    /// the stale-writer fence reads HEAD after every WAL put.
    pub async fn put_wal_then_head(
        &self,
        record: &WalRecord,
    ) -> Result<(PutOutcome, Option<Object>)> {
        let key = self.layout.wal_key(record.lsn);
        let bytes = self.encode_wal(&key, record)?;
        self.store
            .put_if_absent_then_get(&key, bytes, &self.layout.head_key())
            .await
    }

    /// The record's bytes, checked to decode back before they are put.
    fn encode_wal(&self, key: &str, record: &WalRecord) -> Result<Bytes> {
        let bytes = Bytes::from(record.encode()?);
        WalRecord::decode(&bytes, key)?;
        Ok(bytes)
    }

    /// The WAL record at `lsn`, or `None` if there is none.
    pub async fn get_wal(&self, lsn: u64) -> Result<Option<WalRecord>> {
        let key = self.layout.wal_key(lsn);
        match self.store.get(&key).await? {
            Some(obj) => self.decode_wal(lsn, &key, &obj.bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes the object at `key` as the WAL record for `lsn`.
    fn decode_wal(&self, lsn: u64, key: &str, bytes: &Bytes) -> Result<WalRecord> {
        let record = WalRecord::decode(bytes, key)?;
        if record.lsn != lsn {
            return Err(Error::Inconsistent {
                namespace: self.layout.namespace().to_owned(),
                reason: format!("{key} holds lsn {}", record.lsn),
            });
        }
        Ok(record)
    }

    /// LSNs of the WAL objects in the bucket with `lsn > after`, ascending.
    /// (Keys only: a local directory lists without a `statx` per object.)
    pub async fn list_wal(&self, after: u64) -> Result<Vec<u64>> {
        let mut lsns = Vec::new();
        let mut cursor = Some(self.layout.wal_key(after));
        while let Some(after_key) = cursor {
            let page = self
                .store
                .list_keys(
                    &self.layout.wal_prefix(),
                    Some(&after_key),
                    self.store.list_page_max(),
                )
                .await?;
            lsns.extend(
                page.keys
                    .iter()
                    .filter_map(|k| self.layout.parse_wal_key(k)),
            );
            cursor = page.next;
        }
        Ok(lsns)
    }

    /// `(lsn, object size)` of the WAL objects with `lsn > after`,
    /// ascending.
    async fn list_wal_sized(&self, after: u64) -> Result<Vec<(u64, u64)>> {
        let start = self.layout.wal_key(after);
        let mut listed = Vec::new();
        let mut cursor = Some(start);
        // Keys are zero-padded, so starting after `wal/<after>` lists
        // exactly the newer LSNs, in order, page by page.
        while let Some(after_key) = cursor {
            let page = self
                .store
                .list(
                    &self.layout.wal_prefix(),
                    Some(&after_key),
                    self.store.list_page_max(),
                )
                .await?;
            listed.extend(
                page.objects
                    .iter()
                    .filter_map(|o| Some((self.layout.parse_wal_key(&o.key)?, o.size))),
            );
            cursor = page.next;
        }
        Ok(listed)
    }

    /// Up to `max` WAL records after `after`, contiguous, in LSN order.
    ///
    /// A listing is not a snapshot: an object created during it can appear
    /// while an older one does not. So an LSN the listing skipped is read
    /// directly before anything is concluded, and only a direct read that
    /// finds nothing ends the run (`WalRun::missing` when later LSNs were
    /// listed, or a listed object vanished).
    pub async fn read_wal_after(&self, after: u64, max: usize) -> Result<WalRun> {
        self.wal_after(after).await?.next(max).await
    }

    /// A walk over the WAL after `after`: listed once, then read in
    /// batches (`WalCursor::next`), so a reader that applies each batch
    /// before asking for the next holds one batch, not the whole WAL.
    ///
    /// The listing is of keys only (cheaper on a local directory), so
    /// `next_within` on this cursor knows no sizes before it reads: it
    /// stops reading once the bytes read reach its budget.
    pub async fn wal_after(&self, after: u64) -> Result<WalCursor<'_>> {
        let newest = self.list_wal(after).await?.last().copied();
        Ok(WalCursor {
            objects: self,
            next: after.saturating_add(1),
            end: newest.unwrap_or(after),
            // Nothing listed: an empty walk.
            ended: newest.is_none(),
            listed: Vec::new(),
            listed_pos: 0,
        })
    }

    /// As `wal_after`, listing the objects' sizes too, for
    /// `WalCursor::next_within` to cut batches by.
    pub async fn wal_after_sized(&self, after: u64) -> Result<WalCursor<'_>> {
        let listed = self.list_wal_sized(after).await?;
        let newest = listed.last().map(|&(lsn, _)| lsn);
        Ok(WalCursor {
            objects: self,
            next: after.saturating_add(1),
            end: newest.unwrap_or(after),
            // Nothing listed: an empty walk.
            ended: newest.is_none(),
            listed,
            listed_pos: 0,
        })
    }

    /// Creates `seg/<id>` from a built segment. The same bytes already
    /// there (a retry after a lost response) is success; other bytes mean
    /// the id was reused: an error. Nothing there any more means our
    /// earlier attempt landed and GC collected it: `OutputCollected`.
    pub async fn put_segment(&self, id: u128, segment: &BuiltSegment) -> Result<()> {
        let key = self.layout.segment_key(id);
        match self
            .store
            .put_if_absent(&key, segment.bytes.clone())
            .await?
        {
            PutOutcome::Written(_) => Ok(()),
            PutOutcome::ConditionFailed => match self.store.get(&key).await? {
                // An earlier attempt of ours whose response was lost.
                Some(o) if o.bytes == segment.bytes => Ok(()),
                Some(_) => Err(Error::Inconsistent {
                    namespace: self.layout.namespace().to_owned(),
                    reason: format!("{key} already holds other bytes; segment ids must be unique"),
                }),
                None => Err(Error::OutputCollected { key }),
            },
        }
    }

    /// Every segment id in the bucket (live or not), ascending.
    pub async fn list_segments(&self) -> Result<Vec<u128>> {
        let listed = list_all(self.store.as_ref(), &self.layout.segment_prefix()).await?;
        let mut ids: Vec<u128> = listed
            .iter()
            .filter_map(|o| self.layout.parse_segment_key(&o.key))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}

/// A walk over the WAL up to the newest LSN listed when it began
/// (`Objects::wal_after`). Every LSN up to there is read directly, listed
/// or not (a listing is not a snapshot), a batch at a time
/// (`get_many_within`: two blocking calls on a local disk, where a thread
/// hop per object made recovery cost ~30 µs per WAL object; concurrent
/// GETs on S3), in LSN order; the first LSN found missing ends the walk.
pub struct WalCursor<'a> {
    objects: &'a Objects,
    next: u64,
    end: u64,
    ended: bool,
    /// The listing's `(lsn, size)`, ascending: what `next_within` cuts a
    /// batch by before reading it (empty for a walk listed by keys only,
    /// `wal_after`, or one with nothing listed, which is over).
    listed: Vec<(u64, u64)>,
    /// The first entry of `listed` not before `next`.
    listed_pos: usize,
}

impl WalCursor<'_> {
    /// The next records, at most `max`, contiguous and in LSN order; an
    /// empty run once the walk is over. `missing` names the LSN that ended
    /// it, if one was absent. After an error the cursor has not moved: the
    /// same call may be made again.
    pub async fn next(&mut self, max: usize) -> Result<WalRun> {
        self.next_within(max, u64::MAX).await
    }

    /// As `next`, and no more records once their objects add up to
    /// `bytes_max` (the first record is read whatever its size, so a walk
    /// always moves). On a sized walk (`Objects::wal_after_sized`) the
    /// batch is cut by the listed sizes before anything is read, so a
    /// caller holds at most `bytes_max` bytes of WAL objects, or one
    /// record; an LSN the listing did not name counts as `bytes_max` (its
    /// size is unknown): it is read only as a batch's first. Otherwise the
    /// reads stop at the record that brings the bytes read to `bytes_max`
    /// or past it (`ObjectStore::get_many_within`).
    pub async fn next_within(&mut self, max: usize, bytes_max: u64) -> Result<WalRun> {
        let mut run = WalRun::default();
        if self.ended || max == 0 || self.next > self.end {
            return Ok(run);
        }
        let span = u64::try_from(max - 1).unwrap_or(u64::MAX);
        let mut stop = self.end.min(self.next.saturating_add(span));
        if !self.listed.is_empty() {
            stop = self.cut(stop, bytes_max);
        }
        let mut first = self.next;
        let mut bytes = 0u64;
        loop {
            let last = stop.min(first.saturating_add(WAL_READS_PER_CALL as u64 - 1));
            let keys: Vec<String> = (first..=last)
                .map(|l| self.objects.layout.wal_key(l))
                .collect();
            let answers = self
                .objects
                .store
                .get_many_within(&keys, bytes_max.saturating_sub(bytes))
                .await;
            if answers.is_empty() || answers.len() > keys.len() {
                return Err(Error::Inconsistent {
                    namespace: self.objects.layout.namespace().to_owned(),
                    reason: format!(
                        "the store answered {} of {} WAL reads from {}",
                        answers.len(),
                        keys.len(),
                        keys.first().map_or("", String::as_str)
                    ),
                });
            }
            // The last LSN answered: `answers` is a prefix of `keys`.
            let read_to = first + (answers.len() as u64 - 1);
            // In LSN order, as sequential reads would: an error after the
            // first missing LSN is never looked at.
            for ((lsn, key), answer) in (first..=read_to).zip(&keys).zip(answers) {
                match answer? {
                    Some(obj) => {
                        bytes = bytes.saturating_add(obj.bytes.len() as u64);
                        run.records
                            .push(self.objects.decode_wal(lsn, key, &obj.bytes)?);
                    }
                    None => {
                        run.missing = Some(lsn);
                        self.ended = true;
                        return Ok(run);
                    }
                }
            }
            if read_to >= stop || bytes >= bytes_max {
                match read_to.checked_add(1) {
                    Some(n) => self.next = n,
                    None => self.ended = true,
                }
                return Ok(run);
            }
            first = read_to + 1;
        }
    }

    /// The last LSN, from `next` up to `stop`, of a batch whose listed
    /// sizes stay within `bytes_max` (at least `next` itself).
    fn cut(&mut self, stop: u64, bytes_max: u64) -> u64 {
        while self
            .listed
            .get(self.listed_pos)
            .is_some_and(|&(lsn, _)| lsn < self.next)
        {
            self.listed_pos += 1;
        }
        let mut listed = self.listed[self.listed_pos..].iter().peekable();
        let mut bytes = 0u64;
        let mut lsn = self.next;
        loop {
            let size = match listed.next_if(|&&(l, _)| l == lsn) {
                Some(&(_, size)) => size,
                None => bytes_max,
            };
            bytes = bytes.saturating_add(size);
            if lsn > self.next && bytes > bytes_max {
                return lsn - 1;
            }
            if lsn >= stop {
                return stop;
            }
            lsn += 1;
        }
    }
}
