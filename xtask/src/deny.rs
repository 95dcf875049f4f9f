//! `cargo xtask deny`: runs cargo-deny against `deny.toml` (licenses,
//! advisories, bans, sources). Not part of `ci` because it needs the network
//! for the advisory database.

use anyhow::{Result, bail};

use crate::util;

/// Runs `cargo deny check`, or explains how to install cargo-deny.
pub fn run() -> Result<()> {
    if !util::succeeds_quietly(util::cargo().args(["deny", "--version"])) {
        eprintln!("cargo-deny is not installed. Install it with:");
        eprintln!("    cargo install cargo-deny --locked");
        bail!("cargo-deny is not installed");
    }
    util::run(util::cargo().args(["deny", "check"]))
}
