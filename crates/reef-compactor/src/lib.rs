//! `reef-compactor`: turns the log into sorted segments and reclaims space.
//!
//! # Core types
//! - [`fold`]: WAL after `last_applied_lsn` (read from the bucket) → one
//!   level-0 segment → manifest N+1.
//! - [`compact`]: level 0 plus overlapping level 1 → new level-1 segments.
//! - [`gc`]: deletes WAL, segments, manifests and leases no one can read.
//! - [`CompactorOptions`]: triggers, sizes and the ages GC respects.
//!
//! Each works from the bucket alone, in-process (the engine schedules them)
//! or in a separate process against the same bucket (`reef compact`,
//! `reef gc`, `reef compactor`). One round of a standalone compactor:
//!
//! ```
//! use reef_compactor::{CompactorOptions, compact, fold, gc};
//! use reef_manifest::{Layout, store::open_store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = open_store("memory://")?;
//! let layout = Layout::new("docs")?;
//! let opts = CompactorOptions::default();
//! let folded = fold(&store, &layout, &opts, None).await?; // all unfolded WAL
//! let compacted = compact(&store, &layout, &opts, false).await?; // if level 0 is full
//! let collected = gc(&store, &layout, &opts).await?; // what nothing can read
//! // An empty namespace: nothing to do, and nothing committed.
//! assert_eq!(folded.records, 0);
//! assert_eq!(compacted.manifest_version, None);
//! assert_eq!(collected.kept_manifests, Vec::<u64>::new());
//! # Ok(())
//! # }
//! ```
//!
//! # Error semantics
//! One enum, [`Error`]. A lost commit race is not an error: the change is
//! rebased when it commutes with the winner's, else abandoned and reported
//! in the returned report (see `commit.rs` for the matrix).
//!
//! # Architecture invariant
//! Depends on `reef-manifest` and `reef-format` only, never on
//! `reef-engine`. Every commit keeps `written = live + dropped`.

mod commit;
mod compact;
mod error;
mod fold;
mod gc;
mod ids;
mod invariants;
mod options;

pub use commit::{Change, Outcome, commit_change, next_manifest};
pub use compact::{CompactReport, compact};
pub use error::{Error, Result};
pub use fold::{FoldReport, fold, fold_records};
pub use gc::{GcReport, gc};
pub use ids::{base_version, new_segment_id};
pub use options::CompactorOptions;
