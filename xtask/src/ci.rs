//! `cargo xtask ci`: the ordered list of CI steps, the cargo-backed steps
//! themselves, and the runner that prints a banner per step, stops at the
//! first failure and ends with a per-step wall-time summary.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::rgw::{self, Rgw};
use crate::{fuzz, layering, limits, loom, metadata, sim, tidy, util};

/// One CI step; each is also its own `cargo xtask <name>` subcommand.
pub struct Step {
    /// Subcommand name and banner label.
    pub name: &'static str,
    /// One-line description for the usage text.
    pub about: &'static str,
    /// The step body.
    pub run: fn() -> Result<()>,
}

/// The CI steps, in the order `cargo xtask ci` runs them.
pub const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        about: "cargo fmt --all -- --check",
        run: fmt,
    },
    Step {
        name: "tidy",
        about: "every .rs file starts with a `//!` module doc",
        run: tidy::run,
    },
    Step {
        name: "layering",
        about: "crate dependency edges point down; reef-format stays runtime-free",
        run: layering::run,
    },
    Step {
        name: "clippy",
        about: "cargo clippy --workspace --all-targets -- -D warnings",
        run: clippy,
    },
    Step {
        name: "test",
        about: "cargo test --workspace (incl. doc tests), S3 tests on the run's Ceph RGW",
        run: test,
    },
    Step {
        name: "sim-knobs",
        about: "the simulation catches each safety fix switched off (debug build)",
        run: sim::knobs,
    },
    Step {
        name: "loom-models",
        about: "loom models of the concurrent core, and their planted bugs",
        run: loom::ci,
    },
    Step {
        name: "bench-test",
        about: "run every criterion bench once in test mode, the peer harness briefly, and the limits' steps at toy sizes",
        run: bench_test,
    },
    Step {
        name: "examples",
        about: "run the library examples (embed, service, optimistic, snapshot; s3 on the run's RGW)",
        run: examples,
    },
    Step {
        name: "doc",
        about: "cargo doc --workspace --no-deps with RUSTDOCFLAGS=-D warnings",
        run: doc,
    },
    Step {
        name: "fuzz-slice",
        about: "every fuzz target for REEF_FUZZ_SECONDS (default 5) seconds",
        run: fuzz::slice,
    },
];

/// Looks up a step by subcommand name.
pub fn step(name: &str) -> Option<&'static Step> {
    STEPS.iter().find(|s| s.name == name)
}

/// Runs every step in order, stopping at the first failure.
pub fn run_all() -> Result<()> {
    let total = Instant::now();
    // One S3 server for the whole run (the steps that talk S3 use it),
    // stopped when this returns, failed or not.
    let rgw = Rgw::start()?;
    if let Some(rgw) = &rgw {
        rgw.share();
    }
    let mut results: Vec<(&str, Duration, bool)> = Vec::new();
    let mut failure = None;
    for (i, step) in STEPS.iter().enumerate() {
        println!(
            "\n==> [{}/{}] {}: {}",
            i + 1,
            STEPS.len(),
            step.name,
            step.about
        );
        let start = Instant::now();
        let outcome = (step.run)();
        let elapsed = start.elapsed();
        results.push((step.name, elapsed, outcome.is_ok()));
        if let Err(e) = outcome {
            eprintln!(
                "==> {} FAILED after {}: {e:#}",
                step.name,
                util::fmt_duration(elapsed)
            );
            failure = Some((step.name, e));
            break;
        }
        println!("==> {} ok ({})", step.name, util::fmt_duration(elapsed));
    }

    println!("\n==> summary");
    for step in STEPS {
        match results.iter().find(|(name, ..)| *name == step.name) {
            Some((_, d, true)) => {
                println!("  ok       {:<12} {:>8}", step.name, util::fmt_duration(*d))
            }
            Some((_, d, false)) => {
                println!("  FAILED   {:<12} {:>8}", step.name, util::fmt_duration(*d))
            }
            None => println!("  skipped  {}", step.name),
        }
    }
    println!(
        "  total    {:<12} {:>8}",
        "",
        util::fmt_duration(total.elapsed())
    );

    match failure {
        Some((name, e)) => Err(e.context(format!("ci step `{name}` failed"))),
        None => {
            println!("==> ci passed");
            Ok(())
        }
    }
}

/// `cargo fmt --all -- --check`.
fn fmt() -> Result<()> {
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))
}

/// `cargo clippy --workspace --all-targets -- -D warnings`.
fn clippy() -> Result<()> {
    util::run(util::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// `cargo test --workspace`: unit, integration and doc tests.
///
/// `PROPTEST_CASES` is deliberately left alone: whatever the caller's
/// environment says (or proptest's default) applies.
/// The S3 tests share one Ceph RGW for the step (`rgw.rs`), each under a
/// prefix of its own.
fn test() -> Result<()> {
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace"]);
    let _rgw = rgw::for_step(&mut cmd)?;
    util::run(&mut cmd)
}

/// Runs each criterion bench once in test mode so benches cannot rot.
///
/// Uses `--bench '*'` rather than `--benches`: the latter also selects every
/// library (libs are `bench = true` by default) and would run the whole unit
/// test suite a second time. Cargo rejects the glob when no bench target
/// exists, so that case is detected from `cargo metadata` and skipped.
fn bench_test() -> Result<()> {
    let meta = metadata::load()?;
    let benches = metadata::bench_targets(&meta);
    if benches.is_empty() {
        println!("no bench targets yet; nothing to run");
        return Ok(());
    }
    println!("bench targets: {}", benches.join(", "));
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace", "--bench", "*"]);
    let _rgw = rgw::for_step(&mut cmd)?;
    util::run(&mut cmd)?;
    peer_slice()?;
    // The limits' steps at toy sizes on the debug build: they run, nothing
    // is judged or written.
    limits::run(true)
}

/// The peer harness (`peer/`, Reef beside SlateDB) for a fraction of a
/// second per workload, so it builds against today's Reef and runs.
fn peer_slice() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("reef-peer-slice-{}", std::process::id()));
    let result = util::run(
        util::cargo()
            .args(["run", "--release", "-q", "--locked", "--manifest-path"])
            .arg(util::root().join("peer/Cargo.toml"))
            .arg("--")
            .arg(&dir)
            .arg("0.2"),
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The examples that run against a local directory.
const LOCAL_EXAMPLES: [&str; 4] = ["embed", "service", "optimistic", "snapshot"];

/// Runs the library's examples (reef-engine/examples) so they cannot rot:
/// each local one on a scratch directory of its own, and `s3` on the run's
/// S3 server under a prefix of its own (skipped, saying so, where no
/// server is installed and none is required).
fn examples() -> Result<()> {
    util::run(util::cargo().args(["build", "-q", "-p", "reef-engine", "--examples"]))?;
    for name in LOCAL_EXAMPLES {
        let dir = std::env::temp_dir().join(format!("reef-example-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result = util::run(util::cargo().args([
            "run",
            "-q",
            "-p",
            "reef-engine",
            "--example",
            name,
            "--",
            &dir.to_string_lossy(),
        ]));
        let _ = std::fs::remove_dir_all(&dir);
        result?;
    }
    let mut probe = Command::new("true");
    let _rgw = rgw::for_step(&mut probe)?;
    let env: std::collections::HashMap<String, String> = probe
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    let Some(bucket) = env.get("REEF_S3_BUCKET") else {
        println!("no S3 server: the s3 example is skipped");
        return Ok(());
    };
    let aws = [
        ("AWS_ENDPOINT_URL", "REEF_S3_ENDPOINT"),
        ("AWS_ACCESS_KEY_ID", "REEF_S3_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "REEF_S3_SECRET_ACCESS_KEY"),
    ];
    let mut cmd = util::cargo();
    cmd.args(["run", "-q", "-p", "reef-engine", "--example", "s3", "--"])
        .arg(format!("s3://{bucket}/examples-{}", std::process::id()))
        .env("AWS_REGION", "us-east-1");
    for (to, from) in aws {
        cmd.env(to, env.get(from).map_or("", String::as_str));
    }
    util::run(&mut cmd)
}

/// `cargo doc --workspace --no-deps` with rustdoc warnings denied.
fn doc() -> Result<()> {
    let flags = match std::env::var("RUSTDOCFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} -D warnings"),
        _ => "-D warnings".to_string(),
    };
    util::run(
        util::cargo()
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", flags),
    )
}
