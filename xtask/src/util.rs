//! Shared plumbing for every task: where the workspace lives, how to spawn
//! `cargo`, how to run a child process loudly, and the usage-error type that
//! makes `main` exit with code 2.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The workspace root (the parent of the `xtask/` directory).
pub fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// A `cargo` command running in the workspace root.
///
/// Uses the `CARGO` variable that `cargo run` sets, so the child runs with the
/// same toolchain as the one that launched xtask.
pub fn cargo() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// Renders a command roughly as a shell would show it (for banners and errors).
pub fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.is_empty() || s.contains([' ', '*', '"', '\'']) {
            format!("'{s}'")
        } else {
            s.into_owned()
        }
    };
    // Secrets never reach a banner, even the test server's made-up ones.
    let secret = |k: &OsStr| {
        let k = k.to_string_lossy();
        k.contains("SECRET") || k.contains("TOKEN")
    };
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| {
            let v = if secret(k) {
                OsStr::new("<redacted>")
            } else {
                v?
            };
            Some(format!("{}={}", k.to_string_lossy(), quote(v)))
        })
        .collect();
    parts.push(program);
    parts.extend(cmd.get_args().map(quote));
    parts.join(" ")
}

/// Echoes and runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Whether `cmd` can be run and exits 0, with its output discarded.
pub fn succeeds_quietly(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd` and returns its stdout; stderr passes through to the terminal.
pub fn capture(cmd: &mut Command) -> Result<String> {
    let shown = display(cmd);
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({})", out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{shown}` printed non-UTF-8 output"))
}

/// Today's date in UTC, `YYYY-MM-DD` (for the tables written into docs).
pub fn utc_date() -> Result<String> {
    Ok(capture(Command::new("date").args(["-u", "+%Y-%m-%d"]))?
        .trim()
        .to_owned())
}

/// Replaces the part of the file at `path` from the line `begin` to the
/// line `end` (both markers included) with `section`, which starts with
/// `begin` and ends with `end`; appends `section` if the markers are not
/// there.
pub fn replace_section(path: &Path, begin: &str, end: &str, section: &str) -> Result<()> {
    let doc =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let updated = match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{}\n\n{section}\n", doc.trim_end()),
    };
    std::fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

/// Formats a wall-clock duration for summaries, e.g. `12.3s` or `2m05s`.
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Bad command-line usage: `main` prints the usage text and exits with 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a [`UsageError`].
pub fn usage_error<T>(msg: impl Into<String>) -> Result<T> {
    Err(UsageError(msg.into()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(fmt_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn display_quotes_globs_and_shows_env() {
        let mut cmd = Command::new("/usr/bin/cargo");
        cmd.args(["test", "--bench", "*"]).env("A", "-D warnings");
        assert_eq!(display(&cmd), "A='-D warnings' cargo test --bench '*'");
    }
}
