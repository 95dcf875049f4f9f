//! `cargo xtask deny`: runs cargo-deny against `deny.toml`: licenses, bans
//! and sources (offline), then advisories (needs the RustSec database from
//! github.com). Not part of `ci`: it needs cargo-deny installed, and the
//! advisory database needs a network CI does not have.

use anyhow::{Result, bail};

use crate::util;

/// Runs `cargo deny check`, or explains how to install cargo-deny.
pub fn run() -> Result<()> {
    if !util::succeeds_quietly(util::cargo().args(["deny", "--version"])) {
        eprintln!("cargo-deny is not installed. Install it with:");
        eprintln!("    cargo install cargo-deny --locked");
        bail!("cargo-deny is not installed");
    }
    // Licences, bans and sources need only the lock file.
    util::run(util::cargo().args(["deny", "check", "licenses", "bans", "sources"]))?;
    // Advisories need the RustSec database from github.com, which some
    // networks (this project's CI among them) cannot reach: say so plainly
    // rather than pass silently.
    if util::run(util::cargo().args(["deny", "check", "advisories"])).is_err() {
        bail!(
            "licenses, bans and sources passed; advisories could not be checked \
             (the RustSec database is fetched from github.com)"
        );
    }
    Ok(())
}
