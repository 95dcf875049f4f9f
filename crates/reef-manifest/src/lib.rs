//! `reef-manifest`: everything Reef does to a bucket goes through this crate.
//!
//! It will own (issue #3): the object-store abstraction over fusio (local
//! directory, memory, S3) with put-if-absent and CAS, the namespace object
//! layout, manifest versions committed by put-if-absent with a CAS'd HEAD
//! pointer, leases and checkpoints, the counting and fault-injecting store
//! wrappers, and the ranged, cached segment reader.
//!
//! # Architecture invariant
//! Every byte it writes is produced (and every byte it reads is checked) by
//! `reef-format`; this crate adds I/O and never re-implements a codec.
//!
//! # Core types
//! None yet: this crate is a placeholder until issue #3 lands.
//!
//! # Error semantics
//! None yet.
