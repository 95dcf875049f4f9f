//! Shared helpers for the `reef` binary's tests: a self-cleaning temporary
//! store directory and a runner that feeds stdin and captures the outcome.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub mod corrupt;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// The binary under test.
pub const REEF: &str = env!("CARGO_BIN_EXE_reef");

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reef-cli-{tag}-{:016x}-{n}", nonce()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The directory as a `--store` argument.
    pub fn store(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Whether any WAL object directory exists for `ns`.
    pub fn has_wal(&self, ns: &str) -> bool {
        self.0.join("ns").join(ns).join("wal").exists()
    }

    /// Every file below the directory (relative paths), for "nothing
    /// written" checks.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of one `reef` invocation.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// The first line of stderr (the one-line error).
    pub fn error_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }

    /// Asserts exit 0 and returns stdout's JSON lines.
    pub fn ok_lines(&self) -> Vec<Value> {
        assert_eq!(self.code, Some(0), "{self:?}");
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    /// Asserts exit 0 and exactly one JSON line, and returns it.
    pub fn ok_json(&self) -> Value {
        let lines = self.ok_lines();
        assert_eq!(lines.len(), 1, "{self:?}");
        lines.into_iter().next().unwrap()
    }
}

/// Runs `reef --store <store> <args>` with `stdin` as its input.
pub fn reef(store: &str, args: &[&str], stdin: &str) -> Run {
    reef_in(None, store, args, stdin)
}

/// As [`reef`], in working directory `cwd` when given.
pub fn reef_in(cwd: Option<&Path>, store: &str, args: &[&str], stdin: &str) -> Run {
    let mut cmd = Command::new(REEF);
    cmd.arg("--store").arg(store).args(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let bytes = stdin.as_bytes().to_vec();
    // A feeder thread: large inputs must not deadlock against the output
    // pipes, and a process that exits without reading is not an error.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run::from_output(out)
}

/// `reef write <ns>` with `lines` as input.
pub fn write(store: &str, ns: &str, lines: &[String]) -> Run {
    reef(store, &["write", ns], &lines.join("\n"))
}

/// `reef scan <ns>`'s documents.
pub fn scan(store: &str, ns: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["scan", ns];
    args.extend_from_slice(extra);
    reef(store, &args, "").ok_lines()
}

/// `reef stats <ns>`.
pub fn stats(store: &str, ns: &str) -> Value {
    reef(store, &["stats", ns], "").ok_json()
}

/// One upsert line.
pub fn upsert(id: &str, doc: Value) -> String {
    serde_json::json!({"op": "upsert", "id": id, "doc": doc}).to_string()
}

/// A random value, so concurrent test runs never share a directory.
pub fn nonce() -> u64 {
    use reef_manifest::Rng;
    reef_manifest::SystemRng::new().next_u64()
}
