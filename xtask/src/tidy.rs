//! The `tidy` check: every Rust source file we own starts with a `//!`
//! module doc saying what the file owns.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util;

/// Directories (relative to the workspace root) whose `*.rs` files are checked.
const ROOTS: &[&str] = &["crates", "xtask", "fuzz/fuzz_targets", "peer/src"];

/// Runs the check and fails listing every offending file.
pub fn run() -> Result<()> {
    let root = util::root();
    let mut files = Vec::new();
    for dir in ROOTS {
        let dir = root.join(dir);
        if dir.is_dir() {
            collect_rs_files(&dir, &mut files)?;
        }
    }
    files.sort();

    let mut offenders = Vec::new();
    for file in &files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        if let Err(why) = check_source(&text) {
            let rel = file.strip_prefix(&root).unwrap_or(file);
            offenders.push(format!("{} ({why})", rel.display()));
        }
    }

    println!(
        "tidy: checked {} .rs files under {}",
        files.len(),
        ROOTS.join(", ")
    );
    if !offenders.is_empty() {
        for o in &offenders {
            eprintln!("  missing `//!` module doc: {o}");
        }
        bail!(
            "{} file(s) do not start with a `//!` module doc saying what the file owns",
            offenders.len()
        );
    }
    Ok(())
}

/// Checks that the first non-empty line of `text` is a `//!` doc comment.
pub fn check_source(text: &str) -> Result<(), &'static str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        None => Err("file is empty"),
        Some(first) if first.starts_with("//!") => Ok(()),
        Some(_) => Err("first non-empty line is not `//!`"),
    }
}

/// Recursively collects `*.rs` files, skipping hidden and `target` directories.
fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if !name.starts_with('.') && name != "target" {
                collect_rs_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_source;

    #[test]
    fn accepts_module_doc_after_blank_lines() {
        assert!(check_source("\n\n  //! Owns things.\nfn main() {}\n").is_ok());
        assert!(check_source("\u{feff}//! BOM first.\n").is_ok());
    }

    #[test]
    fn rejects_missing_module_doc() {
        assert!(check_source("").is_err());
        assert!(check_source("   \n").is_err());
        assert!(check_source("// plain comment\n//! late doc\n").is_err());
        assert!(check_source("#![forbid(unsafe_code)]\n//! doc\n").is_err());
        assert!(check_source("/// item doc\nfn f() {}\n").is_err());
    }
}
