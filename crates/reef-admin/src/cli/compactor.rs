//! `reef flush | compact | gc` output, and `reef compactor`: fold,
//! compaction and GC in a loop, as a process of its own against the same
//! bucket as the writers (it uses `reef-compactor` directly, no engine).

use std::time::Duration;

use anyhow::{Context, Result};
use reef_compactor::{CompactReport, CompactorOptions, FoldReport, GcReport};
use reef_manifest::Layout;
use reef_manifest::store::{DynStore, RetryingStore};
use serde_json::{Value as Json, json};

/// `reef flush` output.
pub fn fold_json(r: &FoldReport) -> Json {
    json!({
        "records": r.records,
        "entries_in": r.entries_in,
        "entries_out": r.entries_out,
        "segment": r.segment.map(|id| format!("{id:032x}")),
        "segment_bytes": r.segment_bytes,
        "manifest_version": r.manifest_version,
        "abandoned": r.abandoned,
        "head_error": r.head_error,
    })
}

/// `reef compact` output.
pub fn compact_json(r: &CompactReport) -> Json {
    json!({
        "inputs": r.inputs,
        "outputs": r.outputs,
        "entries_in": r.entries_in,
        "entries_out": r.entries_out,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "manifest_version": r.manifest_version,
        "abandoned": r.abandoned,
        "head_error": r.head_error,
    })
}

/// `reef gc` output.
pub fn gc_json(r: &GcReport) -> Json {
    json!({
        "wal": r.wal,
        "segments": r.segments,
        "manifests": r.manifests,
        "leases": r.leases,
        "kept_manifests": r.kept_manifests,
    })
}

/// Runs rounds of fold, compaction (when level 0 is full) and GC, printing
/// one JSON line per round. A failed round is reported on stderr and the
/// loop goes on: writers are never blocked by the compactor.
pub fn run(store: DynStore, namespace: &str, interval_ms: u64, rounds: Option<u64>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let layout = Layout::new(namespace)?;
    let opts = CompactorOptions::default();
    let store: DynStore =
        std::sync::Arc::new(RetryingStore::new(store, 8, Duration::from_millis(5)));
    runtime.block_on(async {
        let mut round = 0u64;
        while rounds.is_none_or(|n| round < n) {
            round += 1;
            let result: Result<Json> = async {
                let fold = reef_compactor::fold(&store, &layout, &opts, None).await?;
                let compact = reef_compactor::compact(&store, &layout, &opts, false).await?;
                let gc = reef_compactor::gc(&store, &layout, &opts).await?;
                Ok(json!({
                    "round": round,
                    "fold": fold_json(&fold),
                    "compact": compact_json(&compact),
                    "gc": gc_json(&gc),
                }))
            }
            .await;
            match result {
                Ok(line) => {
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{line}")?;
                    stdout.flush()?;
                }
                Err(e) => eprintln!("error: round {round}: {e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
        Ok(())
    })
}
