//! `reef repair <ns> [--dry-run] [--accept-data-loss]` and `reef rebuild
//! <ns>`: run [`crate::repair`] or [`crate::rebuild`], print what was
//! done (or would be) and what is given up, then verify the result.
//! Like `verify`, they open no engine: the namespaces they are for are
//! those an engine refuses to open.

use std::fmt;
use std::sync::Arc;

use anyhow::Result;
use reef_manifest::store::DynStore;
use reef_manifest::{Layout, SystemClock, SystemRng};
use serde_json::json;

use super::exit::NotFound;
use super::output::Out;
use super::verify::{VerifyFailed, report_json, report_text};
use crate::rebuild::rebuild;
use crate::repair::{RepairOptions, RepairReport, repair};

/// Repair would give up acknowledged data and was not told it may (exit 4).
#[derive(Debug)]
pub struct RepairRefused {
    namespace: String,
    losses: usize,
}

impl fmt::Display for RepairRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "repairing {} would give up acknowledged data ({} item(s) listed above as LOSS); \
             nothing was written. Rerun with --accept-data-loss to accept exactly that loss, \
             or restore the damaged objects first",
            self.namespace, self.losses
        )
    }
}

impl std::error::Error for RepairRefused {}

/// Fails with `NotFound` when nothing of `ns` is in the store.
pub async fn ensure_exists(store: &DynStore, ns: &str) -> Result<()> {
    let layout = Layout::new(ns)?;
    if store.list(layout.root(), None, 1).await?.objects.is_empty() {
        return Err(NotFound(format!(
            "namespace {ns:?} does not exist in this store (no object under {})",
            layout.root()
        ))
        .into());
    }
    Ok(())
}

/// Runs `reef repair`.
pub async fn run(
    store: DynStore,
    ns: &str,
    dry_run: bool,
    accept_data_loss: bool,
    grace: std::time::Duration,
    json: bool,
) -> Result<()> {
    ensure_exists(&store, ns).await?;
    let opts = RepairOptions {
        dry_run,
        accept_data_loss,
        gc_grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        clock: Arc::new(SystemClock),
        rng: Arc::new(SystemRng::new()),
    };
    let report = repair(&store, ns, &opts).await?;
    let mut out = Out::new();
    if json {
        out.line(&repair_json(&report))?;
    } else {
        for line in repair_text(&report) {
            out.text(&line)?;
        }
    }
    if report.refused {
        out.finish()?;
        return Err(RepairRefused {
            namespace: ns.to_owned(),
            losses: report.losses.len(),
        }
        .into());
    }
    if dry_run {
        return out.finish().map_err(Into::into);
    }
    verify_after(&store, ns, json, out).await
}

/// Verifies the namespace after a repair or rebuild and prints the
/// report; exit 4 if it is still not clean.
pub async fn verify_after(store: &DynStore, ns: &str, json: bool, mut out: Out) -> Result<()> {
    let after = crate::verify::verify(store, ns, false, &SystemClock, None).await?;
    if json {
        out.line(&json!({"verify_after": report_json(&after)}))?;
    } else {
        out.text("afterwards:")?;
        for line in report_text(&after, false) {
            out.text(&line)?;
        }
    }
    out.finish()?;
    if !after.clean() {
        return Err(VerifyFailed::new(after.problems.len(), 1).into());
    }
    Ok(())
}

/// Runs `reef rebuild`.
pub async fn run_rebuild(store: DynStore, ns: &str, dry_run: bool, json: bool) -> Result<()> {
    ensure_exists(&store, ns).await?;
    let opts = RepairOptions {
        dry_run,
        accept_data_loss: false,
        gc_grace_ms: 0,
        clock: Arc::new(SystemClock),
        rng: Arc::new(SystemRng::new()),
    };
    let r = rebuild(&store, ns, &opts).await?;
    let mut out = Out::new();
    if json {
        out.line(&super::compactor::to_json(&r))?;
    } else {
        out.text(&format!(
            "namespace {}: rebuilt from {} object group(s), {} skipped",
            r.namespace,
            r.used.len(),
            r.skipped.len()
        ))?;
        for (tag, lines) in [
            ("used   ", &r.used),
            ("SKIPPED", &r.skipped),
            ("step   ", &r.steps),
        ] {
            for l in lines {
                out.text(&format!("  {tag} {l}"))?;
            }
        }
    }
    if dry_run {
        return out.finish().map_err(Into::into);
    }
    verify_after(&store, ns, json, out).await
}

fn repair_json(r: &RepairReport) -> serde_json::Value {
    super::compactor::to_json(r)
}

fn repair_text(r: &RepairReport) -> Vec<String> {
    let mut lines = vec![format!(
        "namespace {}: {}",
        r.namespace,
        match (r.refused, r.steps.is_empty()) {
            (true, _) => "repair refused".to_owned(),
            (false, true) => "nothing to repair".to_owned(),
            (false, false) => format!("{} step(s)", r.steps.len()),
        }
    )];
    lines.extend(r.steps.iter().map(|s| format!("  step    {s}")));
    lines.extend(r.losses.iter().map(|l| format!("  LOSS    {l}")));
    lines
}
