//! `reef-admin`: the operator's tools and the `reef` binary.
//!
//! It will own (issues #4 and later): `verify`, `repair` and `rebuild`,
//! working from the bucket alone, and the `reef` command-line contract of
//! DESIGN §6. Today it holds the `demo`, which drives the codecs and the
//! store layer against a local directory.
//!
//! # Core types
//! - [`demo::run`]: the README's first command.
//!
//! # Error semantics
//! The binary maps errors to the exit codes of DESIGN §6; library functions
//! here return `anyhow::Error` because they are only called by the binary.

pub mod demo;
