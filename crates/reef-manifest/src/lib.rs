//! `reef-manifest`: everything Reef does to a bucket goes through this
//! crate.
//!
//! # Core types
//! - [`store::ObjectStore`]: the operations Reef needs (get, ranged get,
//!   head, put, put-if-absent, put-if-match, list, delete) with one set of
//!   semantics on every backend: [`store::LocalStore`] (the default),
//!   [`store::MemoryStore`] and S3. [`store::open_store`] picks one from a
//!   store URL.
//! - [`Layout`]: every key of a namespace (DESIGN §4), in one place.
//! - [`ManifestStore`]: manifest versions committed by put-if-absent, HEAD
//!   advanced by CAS, `load_current` rolling forward past a lagging HEAD.
//! - [`Pins`]: leases (TTL pins, renewed by CAS) and checkpoints (named,
//!   durable pins), and the [`PinSet`] garbage collection must respect.
//! - [`Objects`]: WAL records and segments of a namespace, written with
//!   put-if-absent after a decode check, read back with their keys checked
//!   (one implementation for the engine and a standalone compactor).
//! - [`SegmentReader`]: segments read by byte range (tail, then index and
//!   bloom, then only the blocks a lookup needs), with decoded blocks in a
//!   shared, byte-bounded LRU [`BlockCache`].
//! - [`Clock`]: injected time ([`SystemClock`], [`ManualClock`]).
//! - Wrappers: [`store::CountingStore`] (requests and bytes by kind) and
//!   [`store::FaultyStore`] (seeded crashes, transient errors, lost
//!   responses, delays).
//!
//! # Error semantics
//! One enum, [`Error`]. `Error::is_transient` says whether a retry may
//! help. A lost conditional put is not an error (`PutOutcome`); a lost
//! manifest commit is `Error::ManifestConflict`. Corrupt bytes surface as
//! `Error::Format` with the object key.
//!
//! # Architecture invariant
//! Every byte this crate writes comes from `reef-format`, and every byte it
//! reads is checked by `reef-format` before use.

mod cache;
pub mod clock;
mod error;
pub mod layout;
mod leases;
#[cfg(all(test, loom))]
mod loom_store;
mod manifests;
mod objects;
pub mod rng;
mod sabotage;
mod segments;
pub mod steps;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

/// Whether the planted bug `name` is switched on: only in loom builds,
/// when `REEF_LOOM_PLANTED=<name>` (`cargo xtask loom --planted`).
#[cfg(all(test, loom))]
pub(crate) fn planted(name: &str) -> bool {
    std::env::var("REEF_LOOM_PLANTED").is_ok_and(|v| v == name)
}

pub use cache::{BlockCache, BlockKey, CacheStats};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use layout::Layout;
pub use leases::{LEASE_CLOCK_SKEW_MS, LeaseHandle, PinSet, Pins};
pub use manifests::{Committed, HEAD_CAS_RETRIES_MAX, ManifestStore};
pub use objects::{Objects, WalCursor, WalRun};
pub use rng::{Rng, SeededRng, SystemRng};
#[doc(hidden)]
pub use sabotage::Sabotage;
pub use segments::{BlockSlice, SegmentReader};
