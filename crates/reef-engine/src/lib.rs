//! `reef-engine`: the write path, the read path and recovery.
//!
//! It will own (issue #4): namespaces opened lazily, validation, group
//! commit of write requests into one WAL object each, the memtable with its
//! memory budget and backpressure, point reads and scans, snapshots,
//! recovery from the newest manifest plus WAL replay, and in-process
//! scheduling of fold, compaction and GC.
//!
//! # Architecture invariant
//! A write is acknowledged only after its WAL object is durable.
//!
//! # Core types
//! None yet: this crate is a placeholder until issue #4 lands.
//!
//! # Error semantics
//! None yet.
