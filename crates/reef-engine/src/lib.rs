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
mod schedule;
mod sync;

pub use commit::WriteResult;
pub use engine::{Engine, Snapshot, Stats};
pub use error::{Error, ErrorKind, Result};
pub use options::EngineOptions;
pub use read::{Doc, ScanRange};
