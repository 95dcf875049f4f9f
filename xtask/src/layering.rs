//! The `layering` check: workspace crates may only depend downwards, and
//! `reef-format` stays a pure, runtime-free leaf.
//!
//! Order (bottom to top): reef-format <- reef-manifest <- reef-compactor <-
//! reef-engine <- reef-admin. A crate's normal and build dependencies may name
//! only workspace crates strictly below it (dev-dependencies are exempt).
//! Separately, reef-format's whole normal dependency closure (from cargo's
//! resolve graph) must contain no tokio, no fusio and no other reef crate.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use anyhow::{Result, bail};
use serde_json::Value;

use crate::metadata;

/// Workspace crates from the bottom layer to the top.
pub const LAYERS: &[&str] = &[
    "reef-format",
    "reef-manifest",
    "reef-compactor",
    "reef-engine",
    "reef-admin",
];

/// Workspace members that are tooling, outside the layering: nothing may
/// depend on them and they may not depend on the layered crates.
const TOOLING: &[&str] = &["xtask"];

/// The crate whose dependency closure must stay free of runtimes and I/O.
const LEAF: &str = "reef-format";

/// What the check looked at and what it found wrong.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every workspace edge checked, as `from -> to (kind)` plus a verdict.
    pub edges: Vec<String>,
    /// The leaf crate's normal dependency closure (package names).
    pub leaf_closure: BTreeSet<String>,
    /// Human-readable violations; empty means the check passed.
    pub violations: Vec<String>,
}

/// Runs the check against `cargo metadata` and prints what it checked.
pub fn run() -> Result<()> {
    let meta = metadata::load()?;
    let outcome = check(&meta);
    println!("layering order (bottom -> top): {}", LAYERS.join(" <- "));
    println!("workspace dependency edges (normal + build):");
    if outcome.edges.is_empty() {
        println!("  (none)");
    }
    for edge in &outcome.edges {
        println!("  {edge}");
    }
    let closure: Vec<&str> = outcome.leaf_closure.iter().map(String::as_str).collect();
    println!(
        "{LEAF} normal dependency closure ({} crates): {}",
        closure.len(),
        if closure.is_empty() {
            "(empty)".to_string()
        } else {
            closure.join(", ")
        }
    );
    if !outcome.violations.is_empty() {
        for v in &outcome.violations {
            eprintln!("  layering violation: {v}");
        }
        bail!("{} layering violation(s)", outcome.violations.len());
    }
    println!("layering: ok");
    Ok(())
}

/// Checks the metadata; pure so it can be unit-tested on synthetic JSON.
pub fn check(meta: &Value) -> Outcome {
    let mut out = Outcome::default();
    let members = metadata::workspace_packages(meta);
    let member_names: BTreeSet<&str> = members.iter().filter_map(|p| p["name"].as_str()).collect();

    for layer in LAYERS {
        if !member_names.contains(layer) {
            out.violations
                .push(format!("expected workspace crate `{layer}` is missing"));
        }
    }
    for name in &member_names {
        if !LAYERS.contains(name) && !TOOLING.contains(name) {
            out.violations.push(format!(
                "workspace crate `{name}` is not in the layering order; add it to LAYERS in xtask/src/layering.rs"
            ));
        }
    }

    // Direct edges between workspace members, deduplicated per (from, to).
    let mut edges: BTreeMap<(usize, &str, &str), BTreeSet<&str>> = BTreeMap::new();
    for pkg in &members {
        let from = pkg["name"].as_str().unwrap_or("?");
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let kind = match dep["kind"].as_str() {
                None => "normal",
                Some("build") => "build",
                Some(_) => continue, // dev-dependencies may point anywhere
            };
            let Some(to) = dep["name"].as_str() else {
                continue;
            };
            if member_names.contains(to) {
                let rank = rank(from).unwrap_or(usize::MAX);
                edges.entry((rank, from, to)).or_default().insert(kind);
            }
        }
    }
    for ((_, from, to), kinds) in edges {
        let kinds: Vec<&str> = kinds.into_iter().collect();
        let label = format!("{from} -> {to} ({})", kinds.join("+"));
        match (rank(from), rank(to)) {
            (Some(f), Some(t)) if t < f => out.edges.push(format!("ok         {label}")),
            (Some(_), Some(_)) => {
                out.edges.push(format!("VIOLATION  {label}"));
                out.violations.push(format!(
                    "{label}: `{from}` may only depend on crates below it ({})",
                    below(from)
                ));
            }
            _ => {
                out.edges.push(format!("VIOLATION  {label}"));
                out.violations.push(format!(
                    "{label}: tooling crates ({}) must not take part in workspace dependency edges",
                    TOOLING.join(", ")
                ));
            }
        }
    }

    check_leaf_closure(meta, &mut out);
    out
}

/// Position of a crate in [`LAYERS`] (0 is the bottom).
fn rank(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

/// The crates a layered crate may depend on, for error messages.
fn below(name: &str) -> String {
    match rank(name) {
        Some(0) | None => "nothing in the workspace".to_string(),
        Some(r) => LAYERS[..r].join(", "),
    }
}

/// Whether a crate name is banned from the leaf crate's closure.
fn forbidden_in_leaf(name: &str) -> Option<&'static str> {
    if name == "tokio" || name.starts_with("tokio-") {
        Some("no async runtime below the engine")
    } else if name == "fusio" || name.starts_with("fusio-") {
        Some("no object-store I/O in the format crate")
    } else if name.starts_with("reef-") && name != LEAF {
        Some("the format crate is the bottom layer")
    } else {
        None
    }
}

/// Walks the resolve graph from the leaf crate along normal dependencies.
fn check_leaf_closure(meta: &Value, out: &mut Outcome) {
    let names: HashMap<&str, &str> = metadata::packages(meta)
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let Some(leaf_id) = metadata::workspace_packages(meta)
        .into_iter()
        .find(|p| p["name"] == LEAF)
        .and_then(|p| p["id"].as_str())
    else {
        return; // already reported as a missing workspace crate
    };
    let Some(nodes) = meta["resolve"]["nodes"].as_array() else {
        out.violations
            .push("`cargo metadata` has no resolve graph".to_string());
        return;
    };
    let graph: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n["id"].as_str()?, n)))
        .collect();

    // Breadth-first, remembering who pulled each crate in to explain violations.
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([leaf_id]);
    while let Some(id) = queue.pop_front() {
        let Some(node) = graph.get(id) else { continue };
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()));
            let Some(dep_id) = dep["pkg"].as_str() else {
                continue;
            };
            if normal && dep_id != leaf_id && !parent.contains_key(dep_id) {
                parent.insert(dep_id, id);
                queue.push_back(dep_id);
            }
        }
    }

    let name_of = |id: &str| names.get(id).copied().unwrap_or(id).to_string();
    let mut bad: Vec<String> = Vec::new();
    for &id in parent.keys() {
        let name = name_of(id);
        if let Some(why) = forbidden_in_leaf(&name) {
            let mut chain = vec![name.clone()];
            let mut cur = id;
            while let Some(&p) = parent.get(cur) {
                chain.push(name_of(p));
                cur = p;
            }
            chain.reverse();
            bad.push(format!(
                "{LEAF} depends (normally) on `{name}` via {}: {why}",
                chain.join(" -> ")
            ));
        }
        out.leaf_closure.insert(name);
    }
    bad.sort();
    out.violations.extend(bad);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pkg(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(n, kind)| json!({"name": n, "kind": kind}))
            .collect();
        json!({"id": format!("{name}-id"), "name": name, "dependencies": deps, "targets": []})
    }

    fn node(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(n, kind)| {
                json!({"name": n, "pkg": format!("{n}-id"), "dep_kinds": [{"kind": kind}]})
            })
            .collect();
        json!({"id": format!("{name}-id"), "deps": deps})
    }

    /// Synthetic metadata; every resolve node that is not a member becomes a
    /// registry package named after its id.
    fn meta(members: Vec<Value>, nodes: Vec<Value>) -> Value {
        let ids: Vec<Value> = members.iter().map(|p| p["id"].clone()).collect();
        let mut packages = members;
        let mut known: BTreeSet<String> = packages
            .iter()
            .filter_map(|p| p["id"].as_str().map(String::from))
            .collect();
        for n in &nodes {
            for id in std::iter::once(&n["id"])
                .chain(n["deps"].as_array().unwrap().iter().map(|d| &d["pkg"]))
            {
                let id = id.as_str().unwrap();
                if known.insert(id.to_string()) {
                    packages.push(json!({"id": id, "name": id.trim_end_matches("-id")}));
                }
            }
        }
        json!({"workspace_members": ids, "packages": packages, "resolve": {"nodes": nodes}})
    }

    fn good_members() -> Vec<Value> {
        vec![
            pkg(
                "reef-format",
                &[("crc32fast", None), ("proptest", Some("dev"))],
            ),
            pkg("reef-manifest", &[("reef-format", None)]),
            pkg(
                "reef-compactor",
                &[("reef-format", None), ("reef-manifest", None)],
            ),
            pkg(
                "reef-engine",
                &[("reef-compactor", None), ("reef-admin", Some("dev"))],
            ),
            pkg(
                "reef-admin",
                &[("reef-engine", None), ("reef-format", Some("build"))],
            ),
            pkg("xtask", &[("anyhow", None)]),
        ]
    }

    #[test]
    fn downward_edges_pass_and_dev_deps_are_exempt() {
        let nodes = vec![
            node(
                "reef-format",
                &[("crc32fast", None), ("proptest", Some("dev"))],
            ),
            node("crc32fast", &[("cfg-if", None)]),
            node("proptest", &[("tokio", None)]),
        ];
        let out = check(&meta(good_members(), nodes));
        assert!(out.violations.is_empty(), "{:?}", out.violations);
        assert_eq!(out.edges.len(), 6);
        assert!(out.edges.iter().all(|e| e.starts_with("ok")));
        let closure: Vec<&str> = out.leaf_closure.iter().map(String::as_str).collect();
        assert_eq!(closure, ["cfg-if", "crc32fast"]);
    }

    #[test]
    fn upward_and_sideways_edges_fail() {
        let mut members = good_members();
        members[1] = pkg("reef-manifest", &[("reef-engine", None)]);
        members[2] = pkg("reef-compactor", &[("reef-compactor", Some("build"))]);
        let out = check(&meta(members, vec![node("reef-format", &[])]));
        assert_eq!(out.violations.len(), 2, "{:?}", out.violations);
        assert!(out.violations[0].contains("reef-manifest -> reef-engine"));
        assert!(out.violations[1].contains("reef-compactor -> reef-compactor (build)"));
    }

    #[test]
    fn unknown_and_tooling_crates_fail() {
        let mut members = good_members();
        members.push(pkg("reef-extra", &[]));
        members[3] = pkg("reef-engine", &[("xtask", None)]);
        let out = check(&meta(members, vec![node("reef-format", &[])]));
        assert_eq!(out.violations.len(), 2, "{:?}", out.violations);
        assert!(
            out.violations
                .iter()
                .any(|v| v.contains("`reef-extra` is not in"))
        );
        assert!(
            out.violations
                .iter()
                .any(|v| v.contains("reef-engine -> xtask"))
        );
    }

    #[test]
    fn leaf_closure_rejects_runtimes_and_reef_crates() {
        let nodes = vec![
            node(
                "reef-format",
                &[("bytes", None), ("fusio-core", Some("build"))],
            ),
            node("bytes", &[("tokio-util", None), ("reef-manifest", None)]),
            node("tokio-util", &[("tokio", None)]),
        ];
        let out = check(&meta(good_members(), nodes));
        assert_eq!(out.violations.len(), 3, "{:?}", out.violations);
        assert!(
            out.violations
                .iter()
                .any(|v| v.contains("`reef-manifest` via"))
        );
        assert!(
            out.violations
                .iter()
                .any(|v| v.contains("reef-format -> bytes -> tokio-util -> tokio:"))
        );
        // build-only deps are not part of the normal closure
        assert!(!out.leaf_closure.contains("fusio-core"));
    }
}
