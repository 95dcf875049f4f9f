//! Group commit: concurrent requests to one namespace share one WAL object.
//!
//! A writer enqueues its request; if no leader is running it spawns one.
//! The leader drains the queue in batches (bounded by bytes and count),
//! resolves each batch in order against current state, writes one WAL
//! record with put-if-absent at `last_lsn + 1`, applies it, and answers
//! every request in it. Requests that arrive meanwhile wait for the next
//! batch: batching happens while a PUT is in flight, never by sleeping.
//! Before it cuts a batch the leader yields to the scheduler while the
//! queue grows, so the writers it just answered join the next batch
//! rather than the one after (`let_answered_writers_requeue`).
//!
//! Races and failures:
//! - put-if-absent reports the LSN taken: the leader reads the object back.
//!   Ours (an earlier attempt whose response was lost) means committed.
//!   Theirs means another writer got there first: catch up from the WAL
//!   and resolve the whole batch again (preconditions are re-checked
//!   against the new state), at most `lsn_race_retries_max` times.
//! - transient store errors are retried (with jittered exponential
//!   backoff) by the engine's `RetryingStore`, under every request.
//! - a request whose precondition fails is rejected alone; an idempotency
//!   key already committed replays its original result.
//! - planning meets a segment that another process's GC collected: adopt
//!   the newest manifest and plan again.
//! - after the put lands, the stale-writer fence (`Namespace::fence`)
//!   reads HEAD: an LSN already folded is not acknowledged (`Fenced`).
//!
//! Invariant: a request is acknowledged only after the WAL record holding
//! it is durable, confirmed unfolded by a HEAD read that followed the put,
//! and applied; two writers never both acknowledge one LSN (put-if-absent
//! decides).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use reef_format::{CheckedRequest, OpKind, WalRecord, WalRequest, WriteSummary};
use reef_manifest::store::{Object, PutOutcome};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::namespace::{Fence, Namespace};
use crate::options::EngineOptions;
use crate::read;
use crate::resolve::{Current, Overlay, resolve};
use crate::sync::read_lock;

/// What a write did (DESIGN §2).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WriteResult {
    /// LSN of the WAL record holding the request (for a replay, the
    /// original one; 0 if the request changed nothing and wrote nothing).
    pub lsn: u64,
    /// First version assigned, if any op applied.
    pub first_version: Option<u64>,
    /// Last version assigned, if any op applied.
    pub last_version: Option<u64>,
    /// Upserts applied.
    pub upserted: u32,
    /// Patches applied.
    pub patched: u32,
    /// Deletes applied.
    pub deleted: u32,
    /// Patches and deletes of missing ids, skipped.
    pub skipped: u32,
    /// True when this answers a retry of an already committed request.
    pub replayed: bool,
}

impl WriteResult {
    fn from_summary(s: &WriteSummary, replayed: bool) -> WriteResult {
        WriteResult {
            lsn: s.lsn,
            first_version: s.versions.map(|v| v.0),
            last_version: s.versions.map(|v| v.1),
            upserted: s.upserted,
            patched: s.patched,
            deleted: s.deleted,
            skipped: s.skipped,
            replayed,
        }
    }
}

pub(crate) struct Pending {
    req: CheckedRequest,
    tx: oneshot::Sender<Result<WriteResult>>,
}

/// Whether a leader is running or requests are queued.
pub(crate) fn busy(ns: &Namespace) -> bool {
    ns.queue.busy()
}

/// Submits a validated request and waits for its outcome.
pub(crate) async fn submit(
    ns: &Arc<Namespace>,
    opts: &Arc<EngineOptions>,
    req: CheckedRequest,
) -> Result<WriteResult> {
    wait_for_room(ns, opts).await?;
    let (tx, rx) = oneshot::channel();
    let bytes = req.bytes();
    // The caller's copy (a pointer) outlives the leader's, so the request
    // (its ops, documents and encodings) is freed here once answered, not
    // by the leader between answering a batch and cutting the next: 64
    // requests' frees cost it about 40 µs a batch.
    let _freed_here = req.clone();
    let become_leader = ns.queue.push(Pending { req, tx }, bytes);
    if become_leader {
        // A task of its own: a caller that gives up must not strand the
        // requests queued behind it.
        tokio::spawn(lead(Arc::clone(ns), Arc::clone(opts)));
    }
    rx.await.map_err(|_| Error::Inconsistent {
        namespace: ns.name.clone(),
        reason: "the commit leader stopped without answering".to_owned(),
    })?
}

async fn wait_for_room(ns: &Namespace, opts: &EngineOptions) -> Result<()> {
    let deadline = tokio::time::Instant::now() + opts.backpressure_wait_max;
    loop {
        let notified = ns.room.wake.notified();
        // Replaced tables still being freed count too (`memtable::release`).
        let bytes = read_lock(&ns.lock_state().memtable).bytes() + ns.room.freeing();
        if bytes <= opts.memtable_bytes_max {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Err(Error::Overloaded {
                namespace: ns.name.clone(),
                memtable_bytes: bytes,
                budget_bytes: opts.memtable_bytes_max,
            });
        }
    }
}

async fn lead(ns: Arc<Namespace>, opts: Arc<EngineOptions>) {
    loop {
        let_answered_writers_requeue(&ns).await;
        let Some(batch) = ns
            .queue
            .next_batch(opts.group_requests_max, opts.group_bytes_max)
        else {
            ns.idle.notify_waiters();
            return;
        };
        let requests: Vec<&CheckedRequest> = batch.iter().map(|p| &p.req).collect();
        let results = commit_batch(&ns, &opts, &requests).await;
        for (p, r) in batch.into_iter().zip(results) {
            // A caller that stopped waiting just does not hear the answer.
            let _ = p.tx.send(r);
        }
        crate::background::maybe_schedule(&ns, &opts);
    }
}

/// Most scheduler passes the leader gives writers before cutting a batch.
const REQUEUE_YIELDS_MAX: usize = 8;

/// Lets the writers the last batch answered (woken, but not yet run) send
/// their next requests before the next batch is cut: yields while each
/// pass grows the queue, at most `REQUEUE_YIELDS_MAX` times. Without it,
/// a batch left at once with the requests that arrived during the last
/// put, and the writers it answered waited for the batch after: the
/// writers split into two cohorts taking turns, each riding half the
/// puts. A yield costs no time when nothing else is runnable; it never
/// waits on a clock, so safety does not depend on it (it only decides
/// which batch a request rides).
async fn let_answered_writers_requeue(ns: &Namespace) {
    let mut queued = ns.queue.len();
    for _ in 0..REQUEUE_YIELDS_MAX {
        tokio::task::yield_now().await;
        let now = ns.queue.len();
        if now == queued {
            return;
        }
        queued = now;
    }
}

/// How one request of a batch ends.
enum Outcome {
    Rejected(Error),
    Replay(WriteSummary),
    /// Same key and ops as the batch's request `usize`: its result, replayed.
    SameAs(usize),
    Applied(usize),
}

async fn commit_batch(
    ns: &Namespace,
    opts: &EngineOptions,
    reqs: &[&CheckedRequest],
) -> Vec<Result<WriteResult>> {
    let _mutator = ns.commit.lock().await;
    for _attempt in 0..opts.lsn_race_retries_max {
        let (outcomes, wal_requests) = match plan(ns, reqs).await {
            Ok(p) => p,
            // Our view lists a segment another process compacted away and
            // collected: a newer manifest exists; adopt it, plan again.
            Err(e) if e.is_collected_segment() => {
                if let Err(e) = ns.catch_up().await {
                    return fail_all(reqs.len(), &e);
                }
                continue;
            }
            Err(e) => return fail_all(reqs.len(), &e),
        };
        if wal_requests.is_empty() {
            return answer(&outcomes, &[], 0);
        }
        let lsn = ns.lock_state().last_lsn + 1;
        let record = WalRecord {
            lsn,
            // A fresh nonce per planned record, not per writer: one writer
            // can put two different records at one LSN (a batch that
            // failed after its put, then the next batch), and the fence
            // must recognise the record, not the writer.
            // Never 0: repair records LSNs it cuts or skips as folded
            // by writer 0, which must match no real writer's record.
            writer_id: opts.rng.next_u64().max(1),
            timestamp_ms: opts.clock.now_ms(),
            requests: wal_requests,
        };
        let (ours, head) = match put_durably(ns, &record).await {
            Ok(put) => put,
            Err(e) => return fail_all(reqs.len(), &e),
        };
        let fence = if opts.compactor.sabotage.skip_fence {
            Ok(Fence::Unfolded)
        } else {
            ns.fence(&record, head).await
        };
        match (ours, fence) {
            (_, Err(e)) => return fail_all(reqs.len(), &e),
            (true, Ok(Fence::Unfolded)) => {
                // Answered from the record before it moves into the
                // memtable; sent only once it is applied.
                let answers = answer(&outcomes, &record.requests, lsn);
                if let Err(e) = ns.apply(record) {
                    return fail_all(reqs.len(), &e);
                }
                ns.prune_idempotency(opts.clock.now_ms(), &opts.compactor);
                return answers;
            }
            // Another process folded our record (this attempt's, or an
            // earlier one whose response was lost) before we looked: it is
            // durable and in the manifest we just adopted.
            (_, Ok(Fence::FoldedOurs)) => return answer(&outcomes, &record.requests, lsn),
            // Another writer holds this LSN (`false`), or we were stale and
            // our record landed in a slot GC had freed (`FoldedOthers`: a
            // stray nobody will apply): learn what was written, decide again.
            (false, Ok(Fence::Unfolded)) | (_, Ok(Fence::FoldedOthers)) => {
                if let Err(e) = ns.catch_up().await {
                    return fail_all(reqs.len(), &e);
                }
            }
        }
    }
    let e = Error::Contention {
        namespace: ns.name.clone(),
        attempts: opts.lsn_race_retries_max,
    };
    fail_all(reqs.len(), &e)
}

/// Resolves the batch against current state.
async fn plan(ns: &Namespace, reqs: &[&CheckedRequest]) -> Result<(Vec<Outcome>, Vec<WalRequest>)> {
    let view = ns.view();
    // Only ids some op reads: a patch, a delete (skipped when the id is
    // missing) or a precondition. An upsert without one replaces whatever
    // is there, so an id only such upserts touch is never looked up
    // (`resolve` does not read its base): a batch of 64 writers' new ids
    // no longer looks each up in the memtable and every segment. Sorted:
    // reads go out in the same order on every run (a seeded simulation
    // replays exactly).
    let ids: BTreeSet<&str> = reqs
        .iter()
        .flat_map(|r| r.request().ops.iter())
        .filter(|o| o.kind != OpKind::Upsert || o.precondition.is_some())
        .map(|o| o.id.as_str())
        .collect();
    let mut base: HashMap<String, Current> = HashMap::with_capacity(ids.len());
    for id in ids {
        let cur = read::latest(&view, id)
            .await?
            .and_then(|e| e.doc().cloned().map(|d| (e.version, d)));
        base.insert(id.to_owned(), cur);
    }
    let (mut next_version, committed): (u64, HashMap<String, (u128, WriteSummary)>) = {
        let s = ns.lock_state();
        let keys = reqs
            .iter()
            .filter_map(|r| r.request().idempotency_key.as_ref())
            .filter_map(|k| {
                s.idempotency
                    .get(k)
                    .map(|e| (k.clone(), (e.fingerprint, e.summary.clone())))
            })
            .collect();
        (s.last_version + 1, keys)
    };
    // Room for one id per request (the common case); more ops grow it.
    let mut overlay = Overlay::with_capacity(reqs.len());
    let mut wal = Vec::new();
    let mut in_batch: HashMap<&str, (u128, usize)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(reqs.len());
    for (i, req) in reqs.iter().enumerate() {
        let fp = &req.fingerprint();
        if let Some(key) = &req.request().idempotency_key {
            let conflict = || {
                Outcome::Rejected(Error::IdempotencyConflict {
                    namespace: ns.name.clone(),
                    key: key.clone(),
                })
            };
            let seen = match (committed.get(key), in_batch.get(key.as_str())) {
                (Some((f, s)), _) => Some(if f == fp {
                    Outcome::Replay(s.clone())
                } else {
                    conflict()
                }),
                (None, Some((f, j))) => Some(if f == fp {
                    Outcome::SameAs(*j)
                } else {
                    conflict()
                }),
                (None, None) => None,
            };
            if let Some(outcome) = seen {
                outcomes.push(outcome);
                continue;
            }
        }
        match resolve(&ns.name, req, &base, &mut overlay, &mut next_version) {
            Ok(w) => {
                if let Some(key) = &req.request().idempotency_key {
                    in_batch.insert(key.as_str(), (*fp, i));
                }
                outcomes.push(Outcome::Applied(wal.len()));
                wal.push(w);
            }
            Err(e) => outcomes.push(Outcome::Rejected(e)),
        }
    }
    Ok((outcomes, wal))
}

/// Writes the record; `true` once it is durable as ours, `false` if the
/// slot holds another record or none (then only the fence, which always
/// follows, can tell whether an earlier attempt of ours landed and was
/// folded). Transient failures were already retried by the engine's
/// `RetryingStore`.
///
/// With the answer comes HEAD as read after the moment the slot was seen
/// holding the record it reports, for the fence. When this put wrote, HEAD
/// is read in the same store call (`put_wal_then_head`). When the slot was
/// taken, HEAD is read again after the read-back: the read that came with
/// the put may predate an earlier attempt of ours landing late (a lost
/// response, a timed-out request still in flight), and a fence on it could
/// miss a fold that took another writer's record at this LSN in between.
async fn put_durably(ns: &Namespace, record: &WalRecord) -> Result<(bool, Option<Object>)> {
    let (outcome, head) = ns.objects.put_wal_then_head(record).await?;
    match outcome {
        PutOutcome::Written(_) => {
            tracing::debug!(
                namespace = %ns.name,
                lsn = record.lsn,
                requests = record.requests.len(),
                "WAL record written"
            );
            Ok((true, head))
        }
        // Ours if an earlier attempt landed and only its response was
        // lost; the record's bytes (with our writer id) say whose it is.
        PutOutcome::ConditionFailed => {
            let stored = ns.objects.get_wal(record.lsn).await?;
            let head = ns.manifests.get_head().await?;
            Ok((stored.as_ref() == Some(record), head))
        }
    }
}

fn answer(outcomes: &[Outcome], wal: &[WalRequest], lsn: u64) -> Vec<Result<WriteResult>> {
    let applied = |i: usize| wal.get(i).map(|w| w.summary(lsn)).unwrap_or_default();
    outcomes
        .iter()
        .map(|o| match o {
            Outcome::Rejected(e) => Err(e.clone()),
            Outcome::Replay(s) => Ok(WriteResult::from_summary(s, true)),
            Outcome::Applied(i) => Ok(WriteResult::from_summary(&applied(*i), false)),
            Outcome::SameAs(j) => match outcomes.get(*j) {
                Some(Outcome::Applied(i)) => Ok(WriteResult::from_summary(&applied(*i), true)),
                _ => Ok(WriteResult::from_summary(&WriteSummary::default(), true)),
            },
        })
        .collect()
}

fn fail_all(n: usize, e: &Error) -> Vec<Result<WriteResult>> {
    (0..n).map(|_| Err(e.clone())).collect()
}
