//! `reef-format`: every byte Reef writes to a bucket is produced, and every
//! byte it reads is checked, by this crate.
//!
//! It is pure: no I/O, no async, no clocks, no randomness. Callers pass
//! bytes in and get typed values (or typed errors) out; the object-store
//! layer above decides where bytes come from.
//!
//! # Core types
//! - Document model: [`Value`], [`Document`], JSON conversion
//!   ([`document_from_json`]) and RFC 7396 [`merge_patch`].
//! - Write requests: [`WriteRequest`], [`Op`], [`Precondition`], validated
//!   against [`Limits`] and fingerprinted for idempotency.
//! - [`Entry`]: one version of one id (a put or a tombstone), the unit every
//!   stored object holds.
//! - Objects: [`WalRecord`] (one committed group of requests),
//!   [`segment`] ([`SegmentBuilder`], [`Segment`], and the pieces a ranged
//!   reader needs), [`Manifest`], and the control objects [`Head`],
//!   [`Lease`] and [`Checkpoint`].
//! - [`MergeIter`]: k-way merge of sorted runs for reads and compaction.
//! - [`Setsum`]: order-independent digest proving content is conserved.
//!
//! # Error semantics
//! One enum, [`FormatError`]. Decoders never panic on any input: damaged or
//! foreign bytes give `ChecksumMismatch`, `BadMagic` or `Corrupt` (all
//! `is_corruption()`), objects from a newer Reef give `UnsupportedVersion`,
//! and bad caller input gives `Invalid` naming the field. Every decode error
//! names the object (the key the caller passed) and a byte offset.
//!
//! # Architecture invariant
//! No I/O and no panics on input bytes. The format of every object is
//! specified in `docs/format.md` and pinned by golden files
//! (`tests/golden.rs`); changing a byte of it needs a version bump.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable
    )
)]

mod codec;
mod entry;
mod error;
mod frame;
mod json;
mod legacy;
pub mod limits;
mod manifest;
mod merge;
mod patch;
mod pointer;
mod request;
pub mod segment;
mod setsum;
mod value;
mod wal;
mod wire;

pub use codec::crc32;
pub use entry::{Entry, EntryValue};
pub use error::{FormatError, ObjectKind, Result};
pub use json::{
    document_from_json, document_to_json, from_document, json_type_name, parse_json, to_document,
    value_to_json,
};
pub use limits::Limits;
pub use manifest::{
    IdempotencyRecord, LEVEL_MAX, MANIFEST_FORMAT_VERSION, Manifest, RECENT_WRITERS_MAX,
    SegmentMeta, Totals, WriteSummary,
};
pub use merge::{MergeIter, Tombstones};
pub use patch::merge_patch;
pub use pointer::{CONTROL_FORMAT_VERSION, Checkpoint, Head, Lease, NAME_BYTES_MAX};
pub use request::{CheckedRequest, Op, OpKind, Precondition, WriteRequest, validate_id};
pub use segment::{BuiltSegment, Segment, SegmentBuilder, SegmentOptions};
pub use setsum::{SETSUM_BYTES, Setsum};
pub use value::{Document, Value, decode_document, encode_document};
pub use wal::{WAL_FORMAT_VERSION, WalOp, WalRecord, WalRequest};
