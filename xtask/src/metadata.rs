//! Everything xtask asks of `cargo metadata`: loading it, and small queries
//! over it (workspace members, the target directory, bench targets).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::util;

/// Runs `cargo metadata --format-version 1` (with the resolve graph).
pub fn load() -> Result<Value> {
    let mut cmd = util::cargo();
    cmd.args(["metadata", "--format-version", "1"]);
    let out = util::capture(&mut cmd)?;
    serde_json::from_str(&out).context("could not parse `cargo metadata` output")
}

/// The packages that are workspace members.
pub fn workspace_packages(meta: &Value) -> Vec<&Value> {
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    packages(meta)
        .filter(|p| p["id"].as_str().is_some_and(|id| members.contains(&id)))
        .collect()
}

/// All packages in the metadata (workspace members and dependencies).
pub fn packages(meta: &Value) -> impl Iterator<Item = &Value> {
    meta["packages"].as_array().into_iter().flatten()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR` and config).
pub fn target_dir(meta: &Value) -> PathBuf {
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| util::root().join("target"))
}

/// Names of `[[bench]]` targets in workspace members, as `package/bench`.
pub fn bench_targets(meta: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for pkg in workspace_packages(meta) {
        let pkg_name = pkg["name"].as_str().unwrap_or("?");
        for target in pkg["targets"].as_array().into_iter().flatten() {
            let is_bench = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bench"));
            if is_bench {
                out.push(format!(
                    "{pkg_name}/{}",
                    target["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_bench_targets_of_members_only() {
        let meta = json!({
            "workspace_members": ["a 0.1.0"],
            "packages": [
                {"id": "a 0.1.0", "name": "a", "targets": [
                    {"name": "a", "kind": ["lib"]},
                    {"name": "codec", "kind": ["bench"]}
                ]},
                {"id": "dep 1.0.0", "name": "dep", "targets": [
                    {"name": "x", "kind": ["bench"]}
                ]}
            ],
            "target_directory": "/t"
        });
        assert_eq!(bench_targets(&meta), vec!["a/codec".to_string()]);
        assert_eq!(target_dir(&meta), PathBuf::from("/t"));
    }
}
