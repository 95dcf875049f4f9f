//! Reef's task runner (`cargo xtask <command>`): owns command-line parsing,
//! the usage text and dispatch to the task modules. Exit codes: 0 success,
//! 1 a task failed, 2 bad usage.
#![allow(
    clippy::disallowed_methods,
    reason = "xtask times CI steps and names scratch directories on the real machine"
)]

mod bench;
mod bench_report;
mod ci;
mod deny;
mod fuzz;
mod layering;
mod limits;
mod loom;
mod metadata;
mod rgw;
mod sim;
mod tidy;
mod util;

use std::process::ExitCode;

use anyhow::Result;

use crate::util::{UsageError, usage_error};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<UsageError>() => {
            eprintln!("error: {e}\n");
            eprint!("{}", usage());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command named by `args[0]`.
fn dispatch(args: &[String]) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        return usage_error("no command given");
    };
    let no_args = |name: &str| match rest {
        [] => Ok(()),
        _ => usage_error(format!(
            "`{name}` takes no arguments, got `{}`",
            rest.join(" ")
        )),
    };
    match cmd.as_str() {
        "help" | "-h" | "--help" => {
            print!("{}", usage());
            Ok(())
        }
        "ci" => {
            no_args("ci")?;
            ci::run_all()
        }
        "fuzz" => fuzz::run(&fuzz::parse_args(rest)?),
        "bench" => match bench::parse_args(rest)? {
            bench::Mode::Criterion { quick } => bench::run(quick),
            bench::Mode::Peer { seconds } => bench::peer(seconds),
            bench::Mode::Limits { quick } => limits::run(quick),
        },
        "sim" => sim::sim(rest),
        "soak" => sim::soak(rest),
        "loom" => match rest {
            [] => loom::run(false),
            [flag] if flag == "--planted" => loom::run(true),
            _ => usage_error(format!(
                "`loom` takes only --planted, got `{}`",
                rest.join(" ")
            )),
        },
        "deny" => {
            no_args("deny")?;
            deny::run()
        }
        other => match ci::step(other) {
            Some(step) => {
                no_args(other)?;
                (step.run)()
            }
            None => usage_error(format!("unknown command `{other}`")),
        },
    }
}

/// The usage text, listing every command (CI steps included).
fn usage() -> String {
    let mut s = String::from(
        "\
Usage: cargo xtask <command> [args]

Commands:
  ci                     run every CI step below in order, stop at the first failure
  fuzz [<target>] [--seconds N]
                         run one or all fuzz targets for N seconds each
                         (default: REEF_FUZZ_SECONDS or 5; seed: REEF_FUZZ_SEED or 1)
  bench [--quick]        run criterion benches, write target/bench-report.md
  bench --peer [SECONDS] Reef and SlateDB 0.18 side by side (peer/), tables
                         written into docs/benchmarks.md
  bench --limits [--quick]
                         the limits that are not ratios (open, one-shot get,
                         fold, compaction, peak RSS), each command a fresh
                         `reef`; table written into docs/benchmarks.md
  sim [flags]            run the seeded whole-system simulation (release);
                         flags: --seeds N --first-seed S --seed S --steps K
                         --faults a,b,.. --knob NAME --expect-violation
  soak [flags]           the simulation over 10,000 seeds (flags as for sim)
  loom [--planted]       the loom models of the concurrent core
                         (--planted: with a test-only bug each must catch)
  deny                   cargo deny check (licenses, advisories, bans, sources)
  help                   show this text

CI steps (each also runnable on its own, e.g. `cargo xtask layering`):
",
    );
    for step in ci::STEPS {
        s.push_str(&format!("  {:<22} {}\n", step.name, step.about));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn bad_usage_is_a_usage_error() {
        for bad in [
            &[][..],
            &["frobnicate"],
            &["ci", "extra"],
            &["tidy", "x"],
            &["bench", "-q"],
        ] {
            let err = dispatch(&args(bad)).unwrap_err();
            assert!(err.is::<UsageError>(), "{bad:?}: {err}");
        }
    }

    #[test]
    fn usage_lists_every_command() {
        let text = usage();
        for cmd in ["ci", "fuzz", "bench", "sim", "soak", "loom", "deny", "help"] {
            assert!(
                text.contains(&format!("\n  {cmd} ")),
                "{cmd} missing from usage"
            );
        }
        for step in ci::STEPS {
            assert!(text.contains(step.name));
        }
    }
}
