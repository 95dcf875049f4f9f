//! `Engine`: the entry point. Serves any number of namespaces of one
//! bucket, opening (recovering) each on first use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use reef_format::{CheckedRequest, WriteRequest};
use reef_manifest::layout::{NAMESPACES_PREFIX, validate_namespace};
use reef_manifest::store::{DynStore, RetryingStore};
use reef_manifest::{BlockCache, LeaseHandle, Pins};

use crate::commit::{WriteResult, submit};
use crate::error::{Error, Result};
use crate::namespace::{Namespace, View};
use crate::options::EngineOptions;
use crate::read::{self, Doc, ScanRange};
use crate::scan::{self, DocStream};
use crate::sync::read_lock;

/// A namespace's figures (`reef stats`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Stats {
    /// The namespace.
    pub namespace: String,
    /// Current manifest version (0 before the first fold).
    pub manifest_version: u64,
    /// WAL folded into segments up to here.
    pub last_applied_lsn: u64,
    /// Newest WAL record applied.
    pub last_lsn: u64,
    /// Unfolded WAL objects (`last_lsn - last_applied_lsn`).
    pub wal_objects: u64,
    /// Live segments per level.
    pub segments: BTreeMap<u8, usize>,
    /// Bytes of live segments plus the ids and documents not yet folded.
    pub bytes: u64,
    /// Memory the unfolded entries hold: ids, documents and the index
    /// around them (what `EngineOptions::memtable_bytes_max` bounds,
    /// together with a replaced table still being freed after a fold).
    pub memtable_bytes: u64,
    /// Newest version.
    pub last_version: u64,
    /// The GC floor: manifest versions below it may be collected.
    pub gc_floor: u64,
    /// Bytes written to segments per byte folded (none before a fold).
    pub write_amplification: Option<f64>,
    /// The last background fold/compaction/GC failure, if the last
    /// attempt failed.
    pub background_error: Option<String>,
}

/// Attempts at leasing a retained version before a snapshot gives up (each
/// failed one means GC raised the floor past the version just adopted).
const SNAPSHOT_ATTEMPTS_MAX: u32 = 8;

/// A consistent view of one namespace that later writes do not change. It
/// holds a lease on its manifest version (renewed in the background,
/// released on drop), so GC in any process keeps what it reads.
#[derive(Clone)]
pub struct Snapshot {
    namespace: String,
    view: View,
    _lease: Option<Arc<SnapshotLease>>,
}

/// The lease behind a snapshot; dropping the last clone releases it.
struct SnapshotLease {
    renewer: tokio::task::JoinHandle<()>,
    release: Option<(Pins, LeaseHandle)>,
}

impl Drop for SnapshotLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if let Some((pins, handle)) = self.release.take() {
            // Best effort: an unreleased lease simply expires.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = pins.release(handle).await;
                });
            }
        }
    }
}

impl Snapshot {
    /// Version the snapshot reads at.
    pub fn version(&self) -> u64 {
        self.view.at
    }

    /// The manifest version the snapshot reads (and its lease pins; 0 if
    /// the namespace had no manifest yet).
    pub fn manifest_version(&self) -> u64 {
        self.view.manifest_version
    }

    /// The document `id` as of the snapshot.
    pub async fn get(&self, id: &str) -> Result<Option<Doc>> {
        read::get(&self.view, &self.namespace, id)
            .await
            .map_err(|e| self.expired(e))
    }

    /// Documents in the range as of the snapshot.
    pub async fn scan(&self, range: &ScanRange) -> Result<Vec<Doc>> {
        scan::collect(self.view.clone(), &self.namespace, range)
            .await
            .map_err(|e| self.expired(e))
    }

    /// Documents in the range as of the snapshot, as a stream read in
    /// bounded memory (see [`Engine::scan_stream`]). The stream keeps the
    /// snapshot's lease alive until it has read its last batch (what it
    /// still holds then needs no segment), so it may outlive `self`.
    pub fn scan_stream(&self, range: &ScanRange) -> DocStream {
        let (namespace, version) = (self.namespace.clone(), self.view.manifest_version);
        let scanner = scan::Scanner::new(self.view.clone(), &self.namespace, range);
        let stream = scan::stream(scanner, self._lease.clone());
        Box::pin(futures_util::TryStreamExt::map_err(stream, move |e| {
            expired(e, &namespace, version)
        }))
    }

    fn expired(&self, e: Error) -> Error {
        expired(e, &self.namespace, self.view.manifest_version)
    }
}

/// A leased snapshot only loses a segment if its lease ran out.
fn expired(e: Error, namespace: &str, version: u64) -> Error {
    if e.is_collected_segment() {
        Error::SnapshotExpired {
            namespace: namespace.to_owned(),
            version,
        }
    } else {
        e
    }
}

/// The Reef engine.
pub struct Engine {
    store: DynStore,
    options: Arc<EngineOptions>,
    cache: Arc<BlockCache>,
    namespaces: tokio::sync::Mutex<HashMap<String, Arc<Namespace>>>,
    /// The namespaces already open, for the read path's lookup: a shared
    /// lock taken for a moment, where `namespaces` (held while one opens)
    /// would make every read queue behind every other.
    /// (std's lock, not the loom shim's: no loom model covers the engine.)
    open: std::sync::RwLock<HashMap<String, Arc<Namespace>>>,
    /// Set by `close`: later calls are refused (`Error::Closed`).
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over `store`. Namespaces are opened on first use.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A directory, `file:///…`, `s3://bucket/prefix`, or `memory://`.
    /// let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(store: DynStore, options: EngineOptions) -> Result<Engine> {
        options
            .limits
            .check()
            .map_err(|e| Error::invalid("(engine)", e))?;
        // Every request the engine makes rides out transient failures; the
        // WAL put's own "taken" answer is resolved by reading it back.
        let store: DynStore = Arc::new(RetryingStore::new(
            store,
            options.transient_retries_max,
            options.backoff_base,
        ));
        Ok(Engine {
            cache: Arc::new(BlockCache::new(options.block_cache_bytes)),
            store,
            options: Arc::new(options),
            namespaces: tokio::sync::Mutex::default(),
            open: std::sync::RwLock::default(),
            closed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    async fn namespace(&self, name: &str) -> Result<Arc<Namespace>> {
        validate_namespace(name)?;
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Closed {
                namespace: name.to_owned(),
            });
        }
        let open = self
            .open
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned();
        if let Some(ns) = open {
            return Ok(ns);
        }
        let mut map = self.namespaces.lock().await;
        if let Some(ns) = map.get(name) {
            return Ok(Arc::clone(ns));
        }
        let ns = Arc::new(
            Namespace::open(
                name,
                Arc::clone(&self.store),
                Arc::clone(&self.cache),
                self.options.compactor.sabotage,
            )
            .await?,
        );
        crate::background::start_ticker(&ns, &self.options);
        map.insert(name.to_owned(), Arc::clone(&ns));
        self.open
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&ns));
        Ok(ns)
    }

    /// Applies a request atomically; returns once it is durable.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// let doc = Document::from_iter([("n".to_owned(), Value::I64(1))]);
    /// let result = engine
    ///     .write("docs", WriteRequest::new([Op::upsert("a", doc).if_absent()]).idempotency_key("req-1"))
    ///     .await?;
    /// assert_eq!(result.upserted, 1);
    /// // The same key and ops again: the original result, applied once.
    /// let doc = Document::from_iter([("n".to_owned(), Value::I64(1))]);
    /// let again = engine
    ///     .write("docs", WriteRequest::new([Op::upsert("a", doc).if_absent()]).idempotency_key("req-1"))
    ///     .await?;
    /// assert!(again.replayed);
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write(&self, namespace: &str, request: WriteRequest) -> Result<WriteResult> {
        if self.options.read_only {
            return Err(Error::ReadOnly {
                namespace: namespace.to_owned(),
            });
        }
        validate_namespace(namespace)?;
        let checked = request
            .check(&self.options.limits)
            .map_err(|e| Error::invalid(namespace, e))?;
        self.write_checked(namespace, checked).await
    }

    /// `write` of a request already checked (`WriteRequest::check`): its
    /// documents were encoded once and are not encoded again. Checked
    /// against other limits than this engine's, it is checked again.
    /// Retrying a `CheckedRequest` clones a pointer, not the documents.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// let checked = WriteRequest::new([Op::upsert("a", Document::new())])
    ///     .idempotency_key("req-1")
    ///     .check(engine.limits())?;
    /// let first = engine.write_checked("docs", checked.clone()).await?;
    /// // A retry clones a pointer and replays the original result.
    /// let again = engine.write_checked("docs", checked).await?;
    /// assert_eq!((first.upserted, again.replayed), (1, true));
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_checked(
        &self,
        namespace: &str,
        request: CheckedRequest,
    ) -> Result<WriteResult> {
        if self.options.read_only {
            return Err(Error::ReadOnly {
                namespace: namespace.to_owned(),
            });
        }
        validate_namespace(namespace)?;
        let request = if request.limits() == &self.options.limits {
            request
        } else {
            request
                .request()
                .clone()
                .check(&self.options.limits)
                .map_err(|e| Error::invalid(namespace, e))?
        };
        let ns = self.namespace(namespace).await?;
        submit(&ns, &self.options, request).await
    }

    /// The document `id` as a `T` (any `Deserialize` type), with its
    /// version; a document that does not fit `T` is `Invalid`.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Person { name: String }
    /// let ada = Person { name: "ada".into() };
    /// engine.write("people", WriteRequest::new([Op::upsert("u1", to_document(&ada)?)])).await?;
    /// let (back, version) = engine.get_as::<Person>("people", "u1").await?.ok_or("missing")?;
    /// assert_eq!((back, version), (ada, 1));
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<(T, u64)>> {
        let Some(doc) = self.get(namespace, id).await? else {
            return Ok(None);
        };
        let value = reef_format::from_document(&doc.doc).map_err(|e| Error::Invalid {
            namespace: namespace.to_owned(),
            field: format!("document {id:?}"),
            reason: e.to_string(),
        })?;
        Ok(Some((value, doc.version)))
    }

    /// The document `id`, if present.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// assert_eq!(engine.get("docs", "a").await?.map(|d| d.version), Some(1));
    /// assert!(engine.get("docs", "b").await?.is_none());
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(&self, namespace: &str, id: &str) -> Result<Option<Doc>> {
        let ns = self.namespace(namespace).await?;
        match read::get(&ns.view(), namespace, id).await {
            Err(e) if e.is_collected_segment() => {
                crate::background::adopt(&ns).await?;
                read::get(&ns.view(), namespace, id).await
            }
            other => other,
        }
    }

    /// Documents in id order within the range.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// let ops = ["user/1", "user/2", "team/1"].map(|id| Op::upsert(id, Document::new()));
    /// engine.write("docs", WriteRequest::new(ops)).await?;
    /// let users = ScanRange { prefix: Some("user/".into()), ..ScanRange::default() };
    /// let ids: Vec<String> = engine.scan("docs", &users).await?.into_iter().map(|d| d.id).collect();
    /// assert_eq!(ids, ["user/1", "user/2"]);
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scan(&self, namespace: &str, range: &ScanRange) -> Result<Vec<Doc>> {
        let ns = self.namespace(namespace).await?;
        match scan::collect(ns.view(), namespace, range).await {
            Err(e) if e.is_collected_segment() => {
                crate::background::adopt(&ns).await?;
                scan::collect(ns.view(), namespace, range).await
            }
            other => other,
        }
    }

    /// Documents in id order within the range, as a stream read in
    /// bounded memory: a step of the scan holds a few runs of blocks per
    /// segment and at most a thousand memtable ids, and at most three
    /// batches of steps (each at most 8,192 documents, 1 MiB or 64 steps,
    /// plus one step) are alive at once, whatever the range's size. On a
    /// multi-threaded tokio runtime a task of its own reads the steps
    /// while the caller decodes documents; `limit` and dropping the stream
    /// early both stop the reading.
    ///
    /// The stream reads the namespace as it is now. If a scan outlives
    /// maintenance (fold, compaction and GC's grace period), a segment it
    /// still needs may be collected and the stream ends with an error
    /// whose `is_collected_segment()` is true; scan a [`Snapshot`] to pin
    /// what a long scan reads.
    ///
    /// ```
    /// use futures_util::TryStreamExt;
    /// use reef_engine::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("reef-doc-scan-{}", std::process::id()));
    /// # let dir = dir.to_str().ok_or("path")?;
    /// let engine = Engine::open(open_store(dir)?, EngineOptions::default()).await?;
    /// let ops = ["a", "b", "c"].map(|id| Op::upsert(id, Document::new()));
    /// engine.write("docs", WriteRequest::new(ops)).await?;
    /// let mut docs = engine.scan_stream("docs", &ScanRange::default()).await?;
    /// let mut ids = Vec::new();
    /// while let Some(doc) = docs.try_next().await? {
    ///     ids.push(doc.id);
    /// }
    /// assert_eq!(ids, ["a", "b", "c"]);
    /// # engine.close().await?;
    /// # std::fs::remove_dir_all(dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn scan_stream(&self, namespace: &str, range: &ScanRange) -> Result<DocStream> {
        let ns = self.namespace(namespace).await?;
        Ok(scan::stream(
            scan::Scanner::new(ns.view(), namespace, range),
            (),
        ))
    }

    /// A consistent view as of now, pinned by a lease while it lives. The
    /// lease is checked against the GC floor after it is placed; a view
    /// whose manifest may already be collected is replaced by the newest
    /// one and leased again.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// let v = |n| Document::from_iter([("n".to_owned(), Value::I64(n))]);
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", v(1))])).await?;
    /// let snapshot = engine.snapshot("docs").await?;
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", v(2))])).await?;
    /// // The snapshot still reads the first version; the engine the second.
    /// assert_eq!(snapshot.get("a").await?.ok_or("missing")?.doc, v(1));
    /// assert_eq!(engine.get("docs", "a").await?.ok_or("missing")?.doc, v(2));
    /// drop(snapshot); // releases the lease
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn snapshot(&self, namespace: &str) -> Result<Snapshot> {
        let ns = self.namespace(namespace).await?;
        let pins = self.pins(&ns);
        let ttl = self.options.snapshot_lease_ttl_ms;
        for _ in 0..SNAPSHOT_ATTEMPTS_MAX {
            let view = ns.view();
            if view.manifest_version == 0 {
                // No manifest yet: nothing in the bucket for GC to take.
                return Ok(Snapshot {
                    namespace: namespace.to_owned(),
                    view,
                    _lease: None,
                });
            }
            match pins
                .acquire("reef-engine snapshot", view.manifest_version, ttl)
                .await
            {
                Ok(handle) => return Ok(self.leased(namespace, view, &pins, handle, ttl)),
                Err(reef_manifest::Error::VersionCollected { .. }) => {
                    crate::background::adopt(&ns).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Contention {
            namespace: namespace.to_owned(),
            attempts: SNAPSHOT_ATTEMPTS_MAX,
        })
    }

    fn leased(
        &self,
        namespace: &str,
        view: View,
        pins: &Pins,
        handle: LeaseHandle,
        ttl: u64,
    ) -> Snapshot {
        let (renew_pins, mut renew_handle) = (pins.clone(), handle.clone());
        let renewer = tokio::spawn(async move {
            let period = std::time::Duration::from_millis((ttl / 3).max(1));
            loop {
                tokio::time::sleep(period).await;
                if renew_pins.renew(&mut renew_handle, ttl).await.is_err() {
                    return;
                }
            }
        });
        Snapshot {
            namespace: namespace.to_owned(),
            view,
            _lease: Some(Arc::new(SnapshotLease {
                renewer,
                release: Some((pins.clone(), handle)),
            })),
        }
    }

    /// The namespace's pins, with this engine's clock, random source and
    /// (test-only) sabotage.
    fn pins(&self, ns: &Namespace) -> Pins {
        Pins::new(
            Arc::clone(&self.store),
            ns.layout.clone(),
            Arc::clone(&self.options.compactor.clock),
            Arc::clone(&self.options.rng),
        )
        .with_sabotage(self.options.compactor.sabotage)
    }

    /// The limits this engine checks requests against (what a caller
    /// passes to `WriteRequest::check` for `write_checked`).
    pub fn limits(&self) -> &reef_format::Limits {
        &self.options.limits
    }

    /// The store this engine works on (for tools that manage pins).
    pub fn store(&self) -> DynStore {
        Arc::clone(&self.store)
    }

    /// A read-only view of the namespace as checkpoint `name` pinned it:
    /// the checkpoint's manifest, its segments and nothing else (a
    /// checkpoint pins a manifest; the writes it covers are the ones that
    /// manifest folded). No lease: the checkpoint keeps it from GC. A
    /// missing checkpoint is `Store(NotFound)` naming its key.
    pub async fn checkpoint_snapshot(&self, namespace: &str, name: &str) -> Result<Snapshot> {
        let ns = self.namespace(namespace).await?;
        let manifest = self.pins(&ns).open_checkpoint(name, &ns.manifests).await?;
        let segments =
            crate::namespace::open_segments(&self.store, &ns.layout, &manifest, &ns.cache, &[])
                .await?;
        Ok(Snapshot {
            namespace: namespace.to_owned(),
            view: View {
                manifest_version: manifest.version,
                segments: Arc::new(segments),
                memtable: Arc::new(crate::sync::RwLock::new(
                    crate::memtable::Memtable::default(),
                )),
                at: manifest.last_version,
            },
            _lease: None,
        })
    }

    /// Catches up with every write acknowledged (by any process) before
    /// this call began: a newer manifest and newer WAL records.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// // Another process (here: another engine on the same store) writes...
    /// let other = Engine::open(engine.store(), EngineOptions::default()).await?;
    /// other.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// // ...and this one sees it once it refreshes.
    /// engine.refresh("docs").await?;
    /// assert!(engine.get("docs", "a").await?.is_some());
    /// # other.close().await?;
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn refresh(&self, namespace: &str) -> Result<()> {
        let ns = self.namespace(namespace).await?;
        let _mutator = ns.commit.lock().await;
        ns.catch_up().await
    }

    /// Figures of a namespace.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// let stats = engine.stats("docs").await?;
    /// assert_eq!((stats.last_lsn, stats.wal_objects), (1, 1));
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn stats(&self, namespace: &str) -> Result<Stats> {
        let ns = self.namespace(namespace).await?;
        let s = ns.lock_state();
        let (memtable_bytes, memtable_payload) = {
            let t = read_lock(&s.memtable);
            (t.bytes() as u64, t.payload_bytes() as u64)
        };
        let mut segments = BTreeMap::new();
        for seg in &s.manifest.segments {
            *segments.entry(seg.level).or_insert(0) += 1;
        }
        let segment_bytes: u64 = s.manifest.segments.iter().map(|m| m.object_bytes).sum();
        Ok(Stats {
            namespace: namespace.to_owned(),
            manifest_version: s.manifest.version,
            last_applied_lsn: s.manifest.last_applied_lsn,
            last_lsn: s.last_lsn,
            wal_objects: s.last_lsn.saturating_sub(s.manifest.last_applied_lsn),
            segments,
            bytes: segment_bytes + memtable_payload,
            memtable_bytes,
            last_version: s.last_version,
            gc_floor: s.manifest.gc_floor,
            write_amplification: s.manifest.totals.write_amplification(),
            background_error: s.background_error.clone(),
        })
    }

    /// Folds the namespace's unfolded WAL into a level-0 segment now.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// let report = engine.flush("docs").await?;
    /// assert_eq!(report.records, 1);
    /// assert_eq!(engine.stats("docs").await?.wal_objects, 0);
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush(&self, namespace: &str) -> Result<reef_compactor::FoldReport> {
        let ns = self.namespace(namespace).await?;
        crate::background::flush(&ns, &self.options).await
    }

    /// Compacts level 0 into level 1 (when level 0 is full, or `force`).
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// for id in ["a", "b"] {
    ///     engine.write("docs", WriteRequest::new([Op::upsert(id, Document::new())])).await?;
    ///     engine.flush("docs").await?; // one level-0 segment each
    /// }
    /// engine.compact("docs", true).await?;
    /// let levels = engine.stats("docs").await?.segments;
    /// assert_eq!(levels.get(&0), None);
    /// assert_eq!(levels.get(&1), Some(&1));
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compact(
        &self,
        namespace: &str,
        force: bool,
    ) -> Result<reef_compactor::CompactReport> {
        let ns = self.namespace(namespace).await?;
        crate::background::compact(&ns, &self.options, force).await
    }

    /// One garbage-collection pass.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// engine.flush("docs").await?;
    /// // Nothing is past its grace period yet: GC deletes nothing readable.
    /// engine.gc("docs").await?;
    /// assert!(engine.get("docs", "a").await?.is_some());
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn gc(&self, namespace: &str) -> Result<reef_compactor::GcReport> {
        let ns = self.namespace(namespace).await?;
        crate::background::gc(&ns, &self.options).await
    }

    /// Whether the namespace has any object in the bucket (its first write
    /// creates it). One LIST of at most one key; nothing is opened.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// assert!(!engine.exists("docs").await?);
    /// engine.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await?;
    /// assert!(engine.exists("docs").await?);
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn exists(&self, namespace: &str) -> Result<bool> {
        validate_namespace(namespace)?;
        let layout = reef_manifest::Layout::new(namespace)?;
        // Any key (`any_under`: on a local directory, the first file met,
        // not the first of a sorted walk of 10,000 WAL objects). A listing
        // is not a snapshot: one made while a fold's GC swept the WAL it
        // had just read could come back empty, so an empty one is asked
        // once more: a namespace that exists keeps objects through every
        // fold, and a second look starts from the directory as it is now.
        for _ in 0..2 {
            if self.store.any_under(layout.root()).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Names of the namespaces in the bucket, sorted.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// for ns in ["b", "a"] {
    ///     engine.write(ns, WriteRequest::new([Op::upsert("x", Document::new())])).await?;
    /// }
    /// assert_eq!(engine.namespaces().await?, ["a", "b"]);
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn namespaces(&self) -> Result<Vec<String>> {
        // Names only: one delimiter listing on S3, not every object of
        // every namespace.
        let mut names = self.store.list_dirs(NAMESPACES_PREFIX).await?;
        names.retain(|n| validate_namespace(n).is_ok());
        Ok(names)
    }

    /// Waits until every queued and in-flight write has been answered and
    /// any background cycle has finished, then closes; no cycle starts
    /// after that (`Scheduler::close`, loom-checked). (A leader task may be
    /// spawned but not yet hold the commit lock, so the queue, not the
    /// lock, says when all is done.) Takes `&self`, so an engine shared in
    /// an `Arc` closes without unwrapping it; every call after `close`
    /// fails with `Error::Closed` (one that raced it may still complete,
    /// durably). Closing twice is fine.
    ///
    /// ```
    /// # use reef_engine::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let engine = Engine::open(open_store("memory://")?, EngineOptions::default()).await?;
    /// let engine = std::sync::Arc::new(engine);
    /// let writer = std::sync::Arc::clone(&engine);
    /// tokio::spawn(async move {
    ///     writer.write("docs", WriteRequest::new([Op::upsert("a", Document::new())])).await
    /// }).await??;
    /// engine.close().await?; // no Arc::try_unwrap needed
    /// assert!(engine.get("docs", "a").await.is_err()); // closed
    /// # engine.close().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn close(&self) -> Result<()> {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let map = self.namespaces.lock().await;
        for ns in map.values() {
            ns.scheduler.close();
            loop {
                // Register before checking, so a leader that goes idle in
                // between still wakes us.
                let idle = ns.idle.notified();
                if !crate::commit::busy(ns) && !crate::background::folding(ns) {
                    break;
                }
                idle.await;
            }
            drop(ns.commit.lock().await);
        }
        Ok(())
    }
}
