//! `cargo xtask loom [--planted]` (also a CI step): the loom models of the
//! concurrent core, with a bounded preemption count.
//!
//! Each crate with models is built alone with `--cfg loom` (`cargo
//! rustc`), so no dependency changes its code paths and nothing else is
//! rebuilt. `--planted` runs each model again with
//! `REEF_LOOM_PLANTED=<bug>`, which switches on a test-only bug in the
//! code that model covers (see `sync::planted`); every model must then
//! fail.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util;

/// Preemptions loom explores per execution (more grows the search fast).
const PREEMPTIONS_MAX: &str = "3";

/// A model: the crate, the test, and the bug planted for it.
struct Model {
    krate: &'static str,
    test: &'static str,
    planted: &'static str,
    /// What the failure with the bug planted must say: a failure for any
    /// other reason (loom's own limits, a build problem) is not a catch.
    says: &'static str,
}

const MODELS: &[Model] = &[
    Model {
        krate: "reef-engine",
        test: "group::loom_models::no_request_is_stranded_and_one_leader_runs",
        planted: "queue-two-step-release",
        says: "deadlock",
    },
    Model {
        krate: "reef-engine",
        test: "schedule::loom_models::no_trigger_is_lost_and_one_cycle_runs",
        planted: "no-second-look",
        says: "work left with no cycle to do it",
    },
    Model {
        krate: "reef-engine",
        test: "schedule::loom_models::no_cycle_runs_after_close",
        planted: "claim-ignores-close",
        says: "a cycle ran after close returned",
    },
    Model {
        krate: "reef-engine",
        test: "memtable::loom_models::a_view_reads_its_version_across_a_switch",
        planted: "switch-edits-in-place",
        says: "a view lost its version",
    },
    Model {
        krate: "reef-manifest",
        test: "leases::loom_models::a_released_lease_stays_released",
        planted: "renew-unconditionally",
        says: "a released lease came back",
    },
];

/// Builds `krate`'s unit tests with `--cfg loom` and returns the binary.
fn build(krate: &str) -> Result<std::path::PathBuf> {
    let mut cmd = util::cargo();
    cmd.args([
        "rustc",
        "-p",
        krate,
        "--lib",
        "--profile",
        "test",
        "--message-format",
        "json-render-diagnostics",
        "--",
        "--cfg",
        "loom",
    ]);
    let out = util::capture(&mut cmd)?;
    out.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .with_context(|| format!("cargo rustc built no test binary for {krate}"))
}

/// Runs the models; with `planted`, requires every model to fail with its
/// bug switched on.
pub fn run(planted: bool) -> Result<()> {
    let mut built = std::collections::BTreeMap::new();
    for model in MODELS {
        if !built.contains_key(model.krate) {
            built.insert(model.krate, build(model.krate)?);
        }
        let mut cmd = std::process::Command::new(&built[model.krate]);
        cmd.args([model.test, "--exact", "--test-threads=1"])
            .env("LOOM_MAX_PREEMPTIONS", PREEMPTIONS_MAX);
        if planted {
            cmd.env("REEF_LOOM_PLANTED", model.planted);
            let out = cmd
                .stdin(std::process::Stdio::null())
                .output()
                .with_context(|| format!("running {}", model.test))?;
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() || !said.contains(model.says) {
                bail!(
                    "loom missed `{}` planted for {} (wanted a failure saying {:?})",
                    model.planted,
                    model.test,
                    model.says
                );
            }
            println!("loom caught `{}` in {}", model.planted, model.test);
        } else {
            cmd.env_remove("REEF_LOOM_PLANTED");
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
