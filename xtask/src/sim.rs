//! `cargo xtask sim|soak`, and the CI step that proves the simulation
//! bites: each runs the whole-system simulation (the `sim` test target of
//! reef-admin, with its own main) with the given flags.
//!
//! - `sim [flags]`: release build; flags go to the simulator unchanged
//!   (`--seeds N`, `--first-seed S`, `--seed S`, `--steps K`, `--faults
//!   a,b`, `--knob NAME`, `--expect-violation`).
//! - `soak [flags]`: 10,000 seeds of 500 steps unless the flags say more.
//! - `sim-knobs` (a CI step): with each safety fix switched off in turn,
//!   the simulation must find a violation within `KNOB_SEEDS` seeds.

use anyhow::Result;

use crate::util;

/// Seeds each knob run may take before it must have found a violation: the
/// size of the CI slice. A run stops at its first violation, so most knobs
/// cost a few hundred seeds; the rarest race (`skip-pin-check`: a snapshot
/// taken just as GC raises the floor) shows about once per 1,000–2,000
/// seeds, so 2,000 missed it when unrelated changes moved the schedules
/// (CI, 2026-12-04). 10,000 makes a miss unlikely (about e^-6) and costs
/// at most ~4 minutes of a debug build when a knob is really uncaught.
const KNOB_SEEDS: &str = "10000";

/// Steps per seed for the knob runs (the same as the default slice).
const KNOB_STEPS: &str = "500";

fn simulator(release: bool, flags: &[String]) -> Result<()> {
    let mut cmd = util::cargo();
    cmd.arg("test");
    if release {
        cmd.arg("--release");
    }
    cmd.args(["-p", "reef-admin", "--test", "sim", "--"])
        .args(flags);
    util::run(&mut cmd)
}

/// `cargo xtask sim [flags]`.
pub fn sim(flags: &[String]) -> Result<()> {
    simulator(true, flags)
}

/// `cargo xtask soak [flags]`: many seeds; later flags win.
pub fn soak(flags: &[String]) -> Result<()> {
    let mut all: Vec<String> = ["--seeds", "10000", "--steps", "500"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.extend_from_slice(flags);
    simulator(true, &all)
}

/// CI: every knob is caught within the slice (debug build, as `test`).
pub fn knobs() -> Result<()> {
    // The simulator owns the list of knobs (see `reef_manifest::Sabotage`).
    let mut list = util::cargo();
    list.args([
        "test",
        "-p",
        "reef-admin",
        "--test",
        "sim",
        "--",
        "--list-knobs",
    ]);
    let names = util::capture(&mut list)?;
    let knobs: Vec<&str> = names
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::ensure!(!knobs.is_empty(), "the simulator listed no knobs");
    for knob in knobs {
        let flags: Vec<String> = [
            "--knob",
            knob,
            "--expect-violation",
            "--seeds",
            KNOB_SEEDS,
            "--steps",
            KNOB_STEPS,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        simulator(false, &flags)?;
    }
    Ok(())
}
