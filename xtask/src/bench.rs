//! `cargo xtask bench [--quick]`: runs the criterion benches, then writes
//! a markdown summary of criterion's results to `target/bench-report.md`.

use std::fs;

use anyhow::{Context, Result};

use crate::bench_report;
use crate::metadata;
use crate::util::{self, usage_error};

/// What `cargo xtask bench` was asked to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Criterion benches (`--quick`: criterion's quick mode).
    Criterion { quick: bool },
    /// The peer harness (`peer/`): Reef and SlateDB side by side, its
    /// tables written into docs/benchmarks.md.
    Peer { seconds: u32 },
    /// The limits that are not ratios (`limits.rs`); `quick`: CI's slice.
    Limits { quick: bool },
}

/// Parses `[--quick]`, `--peer [SECONDS]` or `--limits [--quick]`.
pub fn parse_args(args: &[String]) -> Result<Mode> {
    match args {
        [] => Ok(Mode::Criterion { quick: false }),
        [q] if q == "--quick" => Ok(Mode::Criterion { quick: true }),
        [p] if p == "--peer" => Ok(Mode::Peer { seconds: 5 }),
        [l] if l == "--limits" => Ok(Mode::Limits { quick: false }),
        [l, q] if l == "--limits" && q == "--quick" => Ok(Mode::Limits { quick: true }),
        [p, s] if p == "--peer" => match s.parse() {
            Ok(seconds) if seconds > 0 => Ok(Mode::Peer { seconds }),
            _ => usage_error(format!(
                "`--peer` takes a whole number of seconds, got `{s}`"
            )),
        },
        _ => usage_error(format!(
            "`cargo xtask bench` takes `--quick`, `--peer [SECONDS]` or `--limits [--quick]`, \
             got `{}`",
            args.join(" ")
        )),
    }
}

/// Marks the peer harness's section in docs/benchmarks.md.
const PEER_BEGIN: &str = "<!-- peer:begin (written by `cargo xtask bench --peer`) -->";
const PEER_END: &str = "<!-- peer:end -->";

/// Builds and runs the peer harness, then replaces its section of
/// docs/benchmarks.md with the tables it printed, the machine and the date.
pub fn peer(seconds: u32) -> Result<()> {
    let root = util::root();
    let dir = std::env::temp_dir().join(format!("reef-peer-{}", std::process::id()));
    let mut cmd = util::cargo();
    cmd.args(["run", "--release", "-q", "--manifest-path"])
        .arg(root.join("peer/Cargo.toml"))
        .arg("--")
        .arg(&dir)
        .arg(seconds.to_string());
    println!("$ {}", util::display(&cmd));
    let out = cmd.output().context("running the peer harness")?;
    let _ = fs::remove_dir_all(&dir);
    if !out.status.success() {
        anyhow::bail!(
            "the peer harness failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tables = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{tables}");
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let section = format!(
        "{PEER_BEGIN}\nMeasured {} on {cores} cores ({cpu}), local disk, {seconds} s per \
         workload, Reef and SlateDB 0.18.0 in one process (`peer/src/main.rs`), both \
         fsyncing what they put (SlateDB's `LocalFileSystem::with_fsync(true)`).\n\n{}\n{PEER_END}",
        util::utc_date()?,
        tables.trim_end()
    );
    let path = root.join("docs/benchmarks.md");
    util::replace_section(&path, PEER_BEGIN, PEER_END, &section)?;
    println!("wrote the peer tables into {}", path.display());
    Ok(())
}

/// Runs the benches and writes the report.
pub fn run(quick: bool) -> Result<()> {
    let meta = metadata::load()?;
    let benches = metadata::bench_targets(&meta);
    if benches.is_empty() {
        println!("no bench targets yet; reporting whatever criterion results already exist");
    } else {
        // `--bench '*'`, not plain `cargo bench`: libraries are bench targets
        // too by default, and libtest rejects criterion's `--quick`.
        let mut cmd = util::cargo();
        cmd.args(["bench", "--workspace", "--bench", "*"]);
        if quick {
            cmd.args(["--", "--quick"]);
        }
        util::run(&mut cmd)?;
    }

    let target = metadata::target_dir(&meta);
    let rows = bench_report::collect(&target.join("criterion"))?;
    let table = bench_report::render(&rows);
    let out = target.join("bench-report.md");
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    fs::write(&out, &table).with_context(|| format!("writing {}", out.display()))?;
    println!("\n{table}");
    println!("wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Mode, parse_args};

    #[test]
    fn quick_peer_and_limits_are_accepted() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_args(&[]).unwrap(), Mode::Criterion { quick: false });
        assert_eq!(
            parse_args(&args(&["--quick"])).unwrap(),
            Mode::Criterion { quick: true }
        );
        assert_eq!(
            parse_args(&args(&["--peer"])).unwrap(),
            Mode::Peer { seconds: 5 }
        );
        assert_eq!(
            parse_args(&args(&["--peer", "2"])).unwrap(),
            Mode::Peer { seconds: 2 }
        );
        assert!(parse_args(&args(&["--peer", "0"])).is_err());
        assert!(parse_args(&["--fast".to_string()]).is_err());
        assert_eq!(
            parse_args(&args(&["--limits"])).unwrap(),
            Mode::Limits { quick: false }
        );
        assert_eq!(
            parse_args(&args(&["--limits", "--quick"])).unwrap(),
            Mode::Limits { quick: true }
        );
        assert!(parse_args(&args(&["--limits", "2"])).is_err());
    }
}
