//! `cargo xtask loom [--planted]` (also a CI step): the loom models of the
//! engine's concurrent core (`reef-engine/src/group.rs`, `schedule.rs`),
//! with a bounded preemption count.
//!
//! Only reef-engine is built with `--cfg loom` (`cargo rustc`), so no
//! dependency changes its code paths and nothing else is rebuilt.
//! `--planted` also sets `--cfg reef_loom_planted`, which switches on a
//! test-only bug in each model's code; the run must then fail.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util;

/// Preemptions loom explores per execution (more grows the search fast).
const PREEMPTIONS_MAX: &str = "3";

/// Builds the engine's unit tests with `--cfg loom` and returns the test
/// binary.
fn build(planted: bool) -> Result<std::path::PathBuf> {
    let mut cmd = util::cargo();
    cmd.args([
        "rustc",
        "-p",
        "reef-engine",
        "--lib",
        "--profile",
        "test",
        "--message-format",
        "json-render-diagnostics",
        "--",
        "--cfg",
        "loom",
    ]);
    if planted {
        cmd.args(["--cfg", "reef_loom_planted"]);
    }
    let out = util::capture(&mut cmd)?;
    out.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .context("cargo rustc built no test binary for reef-engine")
}

/// Runs the models; with `planted`, requires every model to fail.
pub fn run(planted: bool) -> Result<()> {
    let exe = build(planted)?;
    let models = ["group::loom_models", "schedule::loom_models"];
    for model in models {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([model, "--test-threads=1"])
            .env("LOOM_MAX_PREEMPTIONS", PREEMPTIONS_MAX);
        if planted {
            if util::succeeds_quietly(&mut cmd) {
                bail!("loom missed the bug planted in {model}");
            }
            println!("loom caught the bug planted in {model}");
        } else {
            util::run(&mut cmd)?;
        }
    }
    Ok(())
}

/// The CI step: the models pass, and each planted bug is caught.
pub fn ci() -> Result<()> {
    run(false)?;
    run(true)
}
