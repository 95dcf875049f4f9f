//! `reef flush | compact | gc` output, and `reef compactor`: fold,
//! compaction and GC in a loop, as a process of its own against the same
//! bucket as the writers (it uses `reef-compactor` directly, no engine).

use std::time::Duration;

use anyhow::{Context, Result};
use reef_compactor::{CompactReport, CompactorOptions, FoldReport, GcReport};
use reef_manifest::Layout;
use reef_manifest::store::{DynStore, RetryingStore};
use serde_json::{Value as Json, json};

/// `reef flush` output (the report's fields, through serde).
pub fn fold_json(r: &FoldReport) -> Json {
    to_json(r)
}

/// `reef compact` output.
pub fn compact_json(r: &CompactReport) -> Json {
    to_json(r)
}

/// `reef gc` output.
pub fn gc_json(r: &GcReport) -> Json {
    to_json(r)
}

/// A report as JSON. Reports are plain data (numbers, strings, options):
/// serializing them cannot fail.
pub fn to_json<T: serde::Serialize>(value: &T) -> Json {
    serde_json::to_value(value).unwrap_or(Json::Null)
}

/// Runs rounds of fold, compaction (when level 0 is full) and GC, printing
/// one JSON line per round. A failed round is reported on stderr and the
/// loop goes on: writers are never blocked by the compactor.
///
/// Ctrl-C (SIGINT) finishes the round in progress and stops (exit 0); a
/// second one stops at once. Stopping mid-round is as safe as a crash:
/// every step is a commit by put-if-absent or a deletion GC's fences
/// allow, so an abandoned round leaves only objects the next GC removes.
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
        let (stop_tx, mut stop) = tokio::sync::watch::channel(0u32);
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                let n = *stop_tx.borrow() + 1;
                if n == 1 {
                    eprintln!(
                        "reef compactor: stopping after this round (Ctrl-C again to stop now)"
                    );
                }
                if stop_tx.send(n).is_err() {
                    break;
                }
            }
        });
        let mut round = 0u64;
        while rounds.is_none_or(|n| round < n) && *stop.borrow() == 0 {
            round += 1;
            let work = async {
                let fold = reef_compactor::fold(&store, &layout, &opts, None).await?;
                let compact = reef_compactor::compact(&store, &layout, &opts, false).await?;
                let gc = reef_compactor::gc(&store, &layout, &opts).await?;
                Ok::<Json, anyhow::Error>(json!({
                    "round": round,
                    "fold": fold_json(&fold),
                    "compact": compact_json(&compact),
                    "gc": gc_json(&gc),
                }))
            };
            // A second Ctrl-C abandons the round (safe: see above).
            let result = tokio::select! {
                r = work => r,
                _ = stop.wait_for(|n| *n >= 2) => {
                    eprintln!("reef compactor: round {round} abandoned; stopped");
                    return Ok(());
                }
            };
            match result {
                Ok(line) => {
                    use std::io::Write as _;
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{line}")?;
                    stdout.flush()?;
                }
                Err(e) => eprintln!("error: round {round}: {e:#}"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(interval_ms)) => {}
                _ = stop.wait_for(|n| *n >= 1) => {}
            }
        }
        if *stop.borrow() > 0 {
            eprintln!("reef compactor: stopped after {round} round(s)");
        }
        Ok(())
    })
}
