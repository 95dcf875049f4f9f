//! A scan as a stream of documents, in bounded memory.
//!
//! On a multi-threaded tokio runtime the work runs on two cores: a
//! spawned task walks the `Scanner` (block fetch and decode, the merge,
//! the visibility rule) and hands its visible entries over in batches;
//! the stream's consumer decodes the documents. Otherwise (a
//! current-thread runtime, or none) the steps are read in line.
//!
//! Invariants:
//! - At most three batches are alive: one the consumer decodes, one in
//!   the channel (`BATCHES_IN_FLIGHT`), one the task holds while it
//!   waits to send. A batch ends once it holds entries from
//!   `BATCH_STEPS_MAX` steps (steps that gave none pin nothing), or
//!   `BATCH_ENTRIES_MAX` entries or `BATCH_BYTES_MAX` bytes (at most one
//!   step's worth past those), with the blocks its entries point into:
//!   memory is bounded by these settings, never by the range.
//! - Dropping the stream stops the task: its next send fails, and the
//!   handle aborts it at its next await (a fetch under way is dropped).
//! - The stream ends at the task's announced end or after its first
//!   error, a document that fails to decode included, and then lets go
//!   of the task at once. A task that vanishes (a panic, its runtime shut
//!   down) ends the stream with `ScanTaskFailed`, never with a silently
//!   short scan.
//! - The task holds what the stream keeps (a snapshot's lease) until it
//!   has handed over its last batch (or the stream ends); what is left in
//!   batches needs no segment.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::runtime::RuntimeFlavor;

use super::Scanner;
use super::batch::Batch;
use crate::error::{Error, Result};
use crate::read::{Doc, to_doc};

/// Batches waiting between the reading task and its consumer: one waits
/// while the consumer decodes another and the task merges a third. One is
/// enough to keep both cores busy; more would only hold more memory.
const BATCHES_IN_FLIGHT: usize = 1;

/// A scan's documents, in id order, as a stream; see `Engine::scan_stream`.
pub type DocStream = futures_util::stream::BoxStream<'static, Result<Doc>>;

/// The scan as a stream that owns its state (and `keep`, e.g. a snapshot's
/// lease, for as long as steps are read).
///
/// The state moves once per batch, not per document: a document is then
/// one pop from the batch and one decode (moving the scanner per document
/// was 8% of a full scan). Steps are read on a spawned task on a
/// multi-threaded tokio runtime (see the module doc), in line otherwise.
pub(crate) fn stream<K: Send + 'static>(scanner: Scanner, keep: K) -> DocStream {
    let namespace = scanner.namespace.clone();
    // Only a multi-threaded runtime runs the task beside the consumer; on
    // a current-thread one it would only take turns with it.
    let batches = match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            read_ahead(&runtime, scanner, keep)
        }
        _ => in_line(scanner, keep),
    };
    decoded(batches, namespace)
}

/// The documents of `batches`, decoded by the consumer.
fn decoded(batches: Batches, namespace: String) -> DocStream {
    Box::pin(Decoded {
        batches,
        batch: Batch::default(),
        namespace,
        ended: false,
    })
}

/// The consumer's half: each batch's documents decoded in turn. The first
/// error, a batch's or a document's, is the stream's last item (a
/// flattening combinator would go on after a document that fails to
/// decode, and a consumer that logs errors and reads on would get a scan
/// missing one). One hand-written poll rather than a stack of
/// combinators: those cost 7% of a full scan.
struct Decoded {
    batches: Batches,
    batch: Batch,
    namespace: String,
    ended: bool,
}

impl Decoded {
    /// Nothing more is handed out: the batches (and with them the reading
    /// task, its batches and what it keeps, a snapshot's lease) go now,
    /// not when the caller drops the stream.
    fn end(&mut self) {
        self.ended = true;
        self.batch = Batch::default();
        self.batches = Box::pin(futures_util::stream::empty());
    }
}

impl futures_util::Stream for Decoded {
    type Item = Result<Doc>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Doc>>> {
        use std::task::Poll;
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(e) = this.batch.pop(&this.namespace) {
                match e.and_then(|e| to_doc(e, &this.namespace)) {
                    Ok(Some(doc)) => return Poll::Ready(Some(Ok(doc))),
                    Ok(None) => continue,
                    Err(e) => {
                        this.end();
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            match std::task::ready!(this.batches.poll_next_unpin(cx)) {
                Some(Ok(batch)) => this.batch = batch,
                Some(Err(e)) => {
                    this.end();
                    return Poll::Ready(Some(Err(e)));
                }
                None => this.end(),
            }
        }
    }
}

type Batches = BoxStream<'static, Result<Batch>>;

/// The steps, read when the consumer asks for them.
fn in_line<K: Send + 'static>(scanner: Scanner, keep: K) -> Batches {
    Box::pin(futures_util::stream::try_unfold(
        (scanner, keep),
        |(mut scanner, keep)| async move {
            let batch = scanner.next_batch().await?;
            Ok(batch.map(|batch| (batch, (scanner, keep))))
        },
    ))
}

/// What the reading task sends: a batch's entries, its error, or the end.
enum Sent {
    Batch(Result<Batch>),
    End,
}

/// The steps, read on a spawned task up to `BATCHES_IN_FLIGHT` batches
/// ahead of the consumer. The task ends after the scan's end or its first
/// error, or when the stream is dropped (its send fails, and the handle
/// aborts it at its next await).
fn read_ahead<K: Send + 'static>(
    runtime: &tokio::runtime::Handle,
    mut scanner: Scanner,
    keep: K,
) -> Batches {
    let namespace = scanner.namespace.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
    let task = runtime.spawn(async move {
        let _keep = keep;
        loop {
            let sent = match scanner.next_batch().await {
                Ok(Some(batch)) => Sent::Batch(Ok(batch)),
                Ok(None) => Sent::End,
                Err(e) => Sent::Batch(Err(e)),
            };
            let last = !matches!(sent, Sent::Batch(Ok(_)));
            if tx.send(sent).await.is_err() || last {
                return;
            }
        }
    });
    received(rx, AbortOnDrop(task), namespace)
}

/// The consumer's side of `read_ahead`: what `rx` brings, ended by the
/// task's `End`, its first error, or an error if the task vanished.
fn received(
    rx: tokio::sync::mpsc::Receiver<Sent>,
    task: AbortOnDrop,
    namespace: String,
) -> Batches {
    let reader = Reader {
        rx,
        _task: task,
        namespace,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(reader, |mut r| async move {
        if r.done {
            return None;
        }
        match r.rx.recv().await {
            Some(Sent::Batch(batch)) => {
                r.done = batch.is_err();
                Some((batch, r))
            }
            Some(Sent::End) => None,
            // The task is gone without saying it finished: it panicked
            // (or its runtime shut down). Ending here would pass a cut
            // scan off as a whole one.
            None => {
                r.done = true;
                let e = Error::ScanTaskFailed {
                    namespace: r.namespace.clone(),
                };
                Some((Err(e), r))
            }
        }
    }))
}

/// The consumer's side of `read_ahead`.
struct Reader {
    rx: tokio::sync::mpsc::Receiver<Sent>,
    _task: AbortOnDrop,
    namespace: String,
    /// An error was handed out: the stream ends after it.
    done: bool,
}

/// Aborts the reading task when the stream is dropped, so a scan given
/// up does not go on fetching blocks.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::{StreamExt, TryStreamExt};
    use reef_format::Entry;
    use reef_manifest::BlockCache;

    use super::*;
    use crate::memtable::Memtable;
    use crate::namespace::View;
    use crate::read::ScanRange;
    use crate::scan::collect;
    use crate::scan::tests::{doc, k_segment_of, k_segment_on, view_of};
    use crate::sync::RwLock;

    /// The ids of a stream's documents, or its first error.
    async fn ids_of(mut docs: DocStream) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        while let Some(doc) = docs.try_next().await? {
            ids.push(doc.id);
        }
        Ok(ids)
    }

    /// Read ahead on a task or in line, a stream hands out what the
    /// scan's own walk does, batches spanning steps and all, for whole
    /// ranges, limits that end inside a batch and prefixes.
    #[tokio::test]
    async fn read_ahead_and_in_line_streams_agree_with_the_walk() {
        let (_, seg) = k_segment_of(4_000, Arc::new(BlockCache::new(1 << 20))).await;
        let ranges = [
            ScanRange::default(),
            ScanRange {
                limit: Some(1_500),
                ..ScanRange::default()
            },
            ScanRange {
                prefix: Some("k01".to_owned()),
                ..ScanRange::default()
            },
            ScanRange {
                from: Some("k00500".to_owned()),
                to: Some("k03000".to_owned()),
                limit: Some(2_047),
                ..ScanRange::default()
            },
        ];
        let runtime = tokio::runtime::Handle::current();
        for range in ranges {
            let walked: Vec<String> = collect(view_of(&seg), "t", &range)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect();
            assert!(!walked.is_empty());
            let ahead = read_ahead(&runtime, Scanner::new(view_of(&seg), "t", &range), ());
            let line = in_line(Scanner::new(view_of(&seg), "t", &range), ());
            for batches in [ahead, line] {
                let docs = decoded(batches, "t".to_owned());
                assert_eq!(ids_of(docs).await.unwrap(), walked, "{range:?}");
            }
        }
    }

    /// Dropping a stream stops its reading task: it fetches no more
    /// blocks, and lets go of what the stream keeps (a snapshot's lease)
    /// at once, not at the scan's end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_stream_stops_its_reading_task() {
        // About 4 MiB: read-ahead (at most 1 MiB a fetch) is far from its
        // end when the stream is dropped.
        let (store, seg) = k_segment_of(40_000, Arc::new(BlockCache::new(0))).await;
        let keep = Arc::new(());
        let range = ScanRange::default();
        let mut docs = stream(Scanner::new(view_of(&seg), "t", &range), Arc::clone(&keep));
        assert!(docs.try_next().await.unwrap().is_some());
        assert_eq!(Arc::strong_count(&keep), 2, "the task holds it");
        let before = store.counts();
        drop(docs);
        // The task runs on another thread: give it up to 5 s to notice.
        for _ in 0..5_000 {
            if Arc::strong_count(&keep) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(Arc::strong_count(&keep), 1, "the task still runs");
        // The task may have had one fetch under way.
        let fetched = store.counts().since(&before).get_range;
        assert!(fetched <= 1, "{fetched} fetches after the drop");
    }

    /// A store whose ranged reads, once `stalled` is set, never answer;
    /// `waiting` counts the reads parked that way (dropped ones leave).
    #[derive(Debug, Default)]
    struct Stalling {
        inner: reef_manifest::store::MemoryStore,
        stalled: std::sync::atomic::AtomicBool,
        waiting: Arc<()>,
    }

    #[async_trait::async_trait]
    impl reef_manifest::store::ObjectStore for Stalling {
        async fn get(
            &self,
            key: &str,
        ) -> reef_manifest::Result<Option<reef_manifest::store::Object>> {
            self.inner.get(key).await
        }
        async fn get_range(
            &self,
            key: &str,
            range: std::ops::Range<u64>,
        ) -> reef_manifest::Result<bytes::Bytes> {
            if self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                let _parked = Arc::clone(&self.waiting);
                std::future::pending::<()>().await;
            }
            self.inner.get_range(key, range).await
        }
        async fn get_range_sized(
            &self,
            key: &str,
            range: std::ops::Range<u64>,
        ) -> reef_manifest::Result<(bytes::Bytes, u64)> {
            self.inner.get_range_sized(key, range).await
        }
        async fn head(
            &self,
            key: &str,
        ) -> reef_manifest::Result<Option<reef_manifest::store::ObjectMeta>> {
            self.inner.head(key).await
        }
        async fn put(&self, key: &str, bytes: bytes::Bytes) -> reef_manifest::Result<()> {
            self.inner.put(key, bytes).await
        }
        async fn put_if_absent(
            &self,
            key: &str,
            bytes: bytes::Bytes,
        ) -> reef_manifest::Result<reef_manifest::store::PutOutcome> {
            self.inner.put_if_absent(key, bytes).await
        }
        async fn put_if_match(
            &self,
            key: &str,
            bytes: bytes::Bytes,
            expected: &reef_manifest::store::Tag,
        ) -> reef_manifest::Result<reef_manifest::store::PutOutcome> {
            self.inner.put_if_match(key, bytes, expected).await
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> reef_manifest::Result<reef_manifest::store::ListPage> {
            self.inner.list(prefix, start_after, limit).await
        }
        async fn delete(&self, key: &str) -> reef_manifest::Result<()> {
            self.inner.delete(key).await
        }
    }

    /// Dropping a stream whose task waits on a fetch that never answers
    /// aborts the task there: the fetch is dropped and what the stream
    /// keeps is let go, not held for as long as the fetch takes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_stream_aborts_a_fetch_under_way() {
        let store = Arc::new(Stalling::default());
        let cache = Arc::new(BlockCache::new(0));
        let seg = k_segment_on(store.clone(), 1_000, cache).await;
        // The segment is open; from now on every block fetch hangs.
        store
            .stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let keep = Arc::new(());
        let range = ScanRange::default();
        let docs = stream(Scanner::new(view_of(&seg), "t", &range), Arc::clone(&keep));
        // Whether `what` comes to have `count` holders (besides the clone
        // this check holds) within 5 s.
        let wait_for = |what: &Arc<()>, count: usize| {
            let what = Arc::clone(what);
            async move {
                for _ in 0..5_000 {
                    if Arc::strong_count(&what) == count + 1 {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                false
            }
        };
        assert!(wait_for(&store.waiting, 2).await, "the task never fetched");
        drop(docs);
        assert!(
            wait_for(&store.waiting, 1).await,
            "the fetch was not dropped"
        );
        assert!(
            wait_for(&keep, 1).await,
            "the task still holds what it keeps"
        );
    }

    /// A document that fails to decode ends the stream with its error,
    /// read ahead or in line: the documents after it are not handed out
    /// as if the scan had only skipped one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_that_fails_to_decode_ends_the_stream() {
        let mut table = Memtable::default();
        table.insert(Entry::put("a", 1, doc(1)));
        table.insert(Entry::put(
            "b",
            2,
            bytes::Bytes::from_static(b"\xff not a document"),
        ));
        table.insert(Entry::put("c", 3, doc(3)));
        let view = View {
            manifest_version: 1,
            segments: Arc::new(Vec::new()),
            memtable: Arc::new(RwLock::new(table)),
            at: u64::MAX,
        };
        let ids = |mut docs: DocStream| async move {
            let mut got = Vec::new();
            while let Some(d) = docs.next().await {
                got.push(d.map(|d| d.id).map_err(|e| e.kind()));
            }
            got
        };
        let range = ScanRange::default();
        let ahead = ids(stream(Scanner::new(view.clone(), "t", &range), ())).await;
        // A current-thread runtime on a thread of its own: in line.
        let line = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(ids(stream(Scanner::new(view, "t", &range), ())))
        })
        .join()
        .unwrap();
        let expected = vec![Ok("a".to_owned()), Err(crate::ErrorKind::Corrupt)];
        assert_eq!(ahead, expected, "read ahead");
        assert_eq!(line, expected, "in line");
    }

    /// A stream that ended at an error lets go of its reading task (its
    /// batches, and what it keeps) at once, though the caller still holds
    /// the stream.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_ended_by_an_error_lets_go_of_its_task() {
        let (_, seg) = k_segment_of(40_000, Arc::new(BlockCache::new(0))).await;
        let mut table = Memtable::default();
        table.insert(Entry::put("a", 1, bytes::Bytes::from_static(b"\xff")));
        let view = View {
            memtable: Arc::new(RwLock::new(table)),
            ..view_of(&seg)
        };
        let keep = Arc::new(());
        let range = ScanRange::default();
        let mut docs = stream(Scanner::new(view, "t", &range), Arc::clone(&keep));
        assert!(docs.try_next().await.is_err());
        for _ in 0..5_000 {
            if Arc::strong_count(&keep) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(Arc::strong_count(&keep), 1, "the task still runs");
        assert!(docs.next().await.is_none());
    }

    /// The consumer's side: a channel that closes without the task's
    /// `End` (the task panicked, or its runtime shut down) ends the
    /// stream with an error, not as if the scan were complete.
    #[tokio::test]
    async fn a_channel_closed_without_the_end_ends_the_stream_in_an_error() {
        let (tx, rx) = tokio::sync::mpsc::channel(BATCHES_IN_FLIGHT);
        let mut batch = Batch::default();
        batch.push(Entry::put("a", 1, doc(1)));
        tx.send(Sent::Batch(Ok(batch))).await.unwrap();
        drop(tx);
        let task = AbortOnDrop(tokio::spawn(async {}));
        let mut batches = received(rx, task, "t".to_owned());
        assert_eq!(batches.try_next().await.unwrap().unwrap().len(), 1);
        let e = batches.try_next().await.unwrap_err();
        assert!(matches!(e, Error::ScanTaskFailed { .. }), "{e}");
        assert!(batches.next().await.is_none(), "nothing after the error");
    }
}
