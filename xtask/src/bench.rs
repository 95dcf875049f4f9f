//! `cargo xtask bench [--quick]`: runs the criterion benches, then writes
//! a markdown summary of criterion's results to `target/bench-report.md`.

use std::fs;

use anyhow::{Context, Result};

use crate::bench_report;
use crate::metadata;
use crate::util::{self, usage_error};

/// Parses `[--quick]`; returns whether quick mode was asked for.
pub fn parse_args(args: &[String]) -> Result<bool> {
    match args {
        [] => Ok(false),
        [q] if q == "--quick" => Ok(true),
        _ => usage_error(format!(
            "`cargo xtask bench` takes only `--quick`, got `{}`",
            args.join(" ")
        )),
    }
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
    use super::parse_args;

    #[test]
    fn only_quick_is_accepted() {
        assert!(!parse_args(&[]).unwrap());
        assert!(parse_args(&["--quick".to_string()]).unwrap());
        assert!(parse_args(&["--fast".to_string()]).is_err());
    }
}
