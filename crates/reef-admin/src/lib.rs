//! `reef-admin`: the operator's tools and the `reef` binary.
//!
//! It owns the `reef` command-line contract of DESIGN §6 and will own
//! (issues #4 and later) `verify`, `repair` and `rebuild`, working from the
//! bucket alone. The `demo` drives the codecs and the store layer against a
//! local directory.
//!
//! # Core types
//! - [`cli::main`]: the `reef` binary (parse, act through the engine, exit
//!   with a DESIGN §6 code).
//! - [`cli::input::parse_request`]: `reef write`'s JSON-lines input.
//! - [`demo::run`]: the README's first command.
//!
//! # Error semantics
//! The binary maps errors to the exit codes of DESIGN §6; library functions
//! here return `anyhow::Error` because they are only called by the binary.

pub mod cli;
pub mod demo;
pub mod rebuild;
pub mod repair;
pub mod verify;
