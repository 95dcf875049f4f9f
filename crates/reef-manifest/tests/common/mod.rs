//! The shared helpers live in `reef_manifest::testing` (feature
//! `testing`), so other crates' tests use the same ones.

#![allow(unused_imports)]

pub use reef_manifest::testing::*;
