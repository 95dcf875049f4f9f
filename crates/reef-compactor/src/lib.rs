//! `reef-compactor`: turns the log into sorted segments and reclaims space.
//!
//! It will own (issue #5): fold (WAL objects -> one level-0 segment),
//! compaction (level 0 + overlapping level 1 -> level 1), and garbage
//! collection, each committed as a new manifest version.
//!
//! # Architecture invariant
//! It depends on `reef-manifest` and `reef-format` only, never on
//! `reef-engine`: a compactor process works from the bucket alone.
//!
//! # Core types
//! None yet: this crate is a placeholder until issue #5 lands.
//!
//! # Error semantics
//! None yet.
