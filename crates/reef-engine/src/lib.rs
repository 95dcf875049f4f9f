//! `reef-engine`: the write path, the read path and recovery.
//!
//! # Core types
//! - [`Engine`]: opens namespaces of one bucket lazily; [`Engine::write`]
//!   applies a [`reef_format::WriteRequest`] atomically and durably;
//!   [`Engine::get`], [`Engine::scan`] and [`Engine::snapshot`] read;
//!   [`Engine::refresh`] catches up with other processes' writes.
//! - [`WriteResult`]: what a write did (DESIGN §2), flagged `replayed` for
//!   a retried idempotency key.
//! - [`EngineOptions`]: limits, memory budget, group-commit bounds, retries.
//!
//! Runs on a tokio runtime with time enabled (retries back off, writers
//! wait for memory budget).
//!
//! # Error semantics
//! One enum, [`Error`]; [`Error::kind`] says what to do: fix the input
//! (`Invalid`), re-read and decide (`Conflict`: a precondition failed or an
//! idempotency key was reused; nothing was applied), retry later
//! (`Transient`: contention, overload, storage hiccups; with an
//! idempotency key the retry is safe), or stop (`Corrupt`, `Internal`).
//!
//! # Architecture invariant
//! A write is acknowledged only after its WAL object is durable, and WAL
//! objects hold resolved entries, so recovery is a deterministic replay.

mod background;
mod commit;
mod engine;
mod error;
mod group;
mod memtable;
mod namespace;
mod options;
mod read;
mod resolve;
mod scan;
mod schedule;
mod sync;

pub use commit::WriteResult;
pub use engine::{Engine, Snapshot, Stats};
pub use error::{Error, ErrorKind, Result};
pub use options::EngineOptions;
pub use read::{Doc, ScanRange};
pub use scan::DocStream;

/// Everything an embedding program needs, in one `use`:
///
/// ```no_run
/// use reef_engine::prelude::*;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let engine = Engine::open(open_store("./reef-data")?, EngineOptions::default()).await?;
/// let doc = Document::from_iter([("name".to_owned(), Value::String("ada".into()))]);
/// engine.write("people", WriteRequest::new([Op::upsert("u1", doc).if_absent()])).await?;
/// engine.close().await?;
/// # Ok(()) }
/// ```
pub mod prelude {
    pub use crate::{
        Doc, DocStream, Engine, EngineOptions, Error, ErrorKind, ScanRange, Snapshot, WriteResult,
    };
    pub use reef_format::{
        Document, Op, OpKind, Precondition, Value, WriteRequest, from_document, to_document,
    };
    pub use reef_manifest::store::{DynStore, open_store};
}
