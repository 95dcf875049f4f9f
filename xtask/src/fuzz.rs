//! `cargo xtask fuzz` and the CI fuzz slice: discovering cargo-fuzz targets
//! in `fuzz/`, installing cargo-fuzz when missing, and running each target for
//! a bounded time with a fixed seed and the checked-in seed corpora.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::{self, usage_error};

/// The cargo-fuzz version that `.ci/run` and xtask install when it is missing.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// Seconds per target when neither `--seconds` nor `REEF_FUZZ_SECONDS` is given.
const DEFAULT_SECONDS: u64 = 5;
/// libFuzzer seed when `REEF_FUZZ_SEED` is not set (fixed so runs repeat).
const DEFAULT_SEED: u64 = 1;

/// Parsed `cargo xtask fuzz` arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Only this target; `None` runs every target.
    pub target: Option<String>,
    /// Explicit `--seconds`; `None` falls back to the environment/default.
    pub seconds: Option<u64>,
}

/// Parses `[<target>] [--seconds N]`.
pub fn parse_args(args: &[String]) -> Result<Options> {
    let mut opts = Options {
        target: None,
        seconds: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = if arg == "--seconds" {
            match it.next() {
                Some(v) => Some(v.as_str()),
                None => return usage_error("`--seconds` needs a value"),
            }
        } else {
            arg.strip_prefix("--seconds=")
        };
        if let Some(v) = value {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => opts.seconds = Some(n),
                _ => {
                    return usage_error(format!("`--seconds` wants a positive integer, got `{v}`"));
                }
            }
        } else if arg.starts_with('-') {
            return usage_error(format!("unknown fuzz option `{arg}`"));
        } else if opts.target.is_some() {
            return usage_error("`cargo xtask fuzz` takes at most one target");
        } else {
            opts.target = Some(arg.clone());
        }
    }
    Ok(opts)
}

/// The CI step: every target, time from `REEF_FUZZ_SECONDS` or the default.
pub fn slice() -> Result<()> {
    run(&Options {
        target: None,
        seconds: None,
    })
}

/// Runs the selected fuzz targets; fails naming every target that crashed.
pub fn run(opts: &Options) -> Result<()> {
    let dir = util::root().join("fuzz");
    if !dir.join("Cargo.toml").is_file() {
        if let Some(t) = &opts.target {
            bail!(
                "no fuzz crate at {} (asked for target `{t}`)",
                dir.display()
            );
        }
        println!(
            "no fuzz targets yet ({} does not exist); skipping",
            dir.display()
        );
        return Ok(());
    }
    let seconds = match opts.seconds {
        Some(s) => s,
        None => env_u64("REEF_FUZZ_SECONDS", DEFAULT_SECONDS)?,
    };
    if seconds == 0 {
        bail!("REEF_FUZZ_SECONDS must be at least 1 (libFuzzer treats 0 as 'forever')");
    }
    let seed = env_u64("REEF_FUZZ_SEED", DEFAULT_SEED)?;

    ensure_cargo_fuzz()?;
    let all = list_targets(&dir)?;
    let targets = match &opts.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!(
            "unknown fuzz target `{t}`; known targets: {}",
            all.join(", ")
        ),
        None => all,
    };
    if targets.is_empty() {
        println!("no fuzz targets yet (`cargo fuzz list` is empty); skipping");
        return Ok(());
    }
    println!(
        "fuzzing {} target(s) for {seconds}s each, seed {seed}",
        targets.len()
    );

    let mut failed = Vec::new();
    for target in &targets {
        if let Err(e) = run_target(&dir, target, seconds, seed) {
            let artifacts = dir.join("artifacts").join(target);
            eprintln!(
                "fuzz target `{target}` FAILED: {e:#}\n  crash inputs (if any) are in {}\n  \
                 reproduce with: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run {target} <artifact>",
                artifacts.display()
            );
            failed.push(format!("{target} (artifacts: {})", artifacts.display()));
        }
    }
    if !failed.is_empty() {
        bail!("fuzz target(s) failed: {}", failed.join("; "));
    }
    Ok(())
}

/// One bounded libFuzzer run of `target`.
fn run_target(dir: &Path, target: &str, seconds: u64, seed: u64) -> Result<()> {
    println!("\n--> fuzz {target} ({seconds}s)");
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let mut cmd = fuzz_cargo(dir);
    cmd.args(["fuzz", "run", target]).arg(&corpus);
    let seeds: PathBuf = dir.join("seeds").join(target);
    if seeds.is_dir() {
        // libFuzzer writes new inputs to the first corpus dir only, so the
        // checked-in seeds stay read-only.
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-seed={seed}"));
    util::run(&mut cmd)
}

/// A `cargo` command in `fuzz/` that may use nightly-only flags.
///
/// The pinned stable toolchain needs `RUSTC_BOOTSTRAP=1` for cargo-fuzz's
/// `-Zsanitizer=address` and friends.
fn fuzz_cargo(dir: &Path) -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.current_dir(dir).env("RUSTC_BOOTSTRAP", "1");
    cmd
}

/// Target names as cargo-fuzz itself sees them (`cargo fuzz list`), which
/// stays right however the `[[bin]]` entries in fuzz/Cargo.toml are spelled.
fn list_targets(dir: &Path) -> Result<Vec<String>> {
    let out = util::capture(fuzz_cargo(dir).args(["fuzz", "list"]))?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Installs the pinned cargo-fuzz if `cargo fuzz --version` does not work.
pub fn ensure_cargo_fuzz() -> Result<()> {
    if util::succeeds_quietly(util::cargo().args(["fuzz", "--version"])) {
        return Ok(());
    }
    println!("cargo-fuzz is not installed; installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    util::run(util::cargo().args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
    .context("installing cargo-fuzz")
}

/// Reads a positive integer from the environment, or `default` when unset.
fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}=`{v}` is not an integer")),
        Err(_) => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_target_and_seconds() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            Options {
                target: None,
                seconds: None
            }
        );
        assert_eq!(
            parse_args(&args(&["frame", "--seconds", "30"])).unwrap(),
            Options {
                target: Some("frame".into()),
                seconds: Some(30)
            }
        );
        assert_eq!(
            parse_args(&args(&["--seconds=2"])).unwrap(),
            Options {
                target: None,
                seconds: Some(2)
            }
        );
    }

    #[test]
    fn rejects_bad_usage() {
        for bad in [
            &["--seconds"][..],
            &["--seconds", "0"],
            &["--seconds", "x"],
            &["a", "b"],
            &["-v"],
        ] {
            let err = parse_args(&args(bad)).unwrap_err();
            assert!(err.is::<util::UsageError>(), "{bad:?}: {err}");
        }
    }
}
