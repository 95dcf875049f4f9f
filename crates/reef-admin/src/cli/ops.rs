//! The data commands against an open engine: `write`, `get`, `scan`,
//! `stats` and `namespaces`. Each prints JSON lines through [`Out`].
//!
//! `write` retries the whole request on `Error::Contention` only: that
//! error guarantees nothing of the request was applied, so a retry cannot
//! apply it twice (no implicit idempotency key is invented).

use std::io::Write as _;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Result;
use futures_util::TryStreamExt;
use reef_engine::{Engine, Error, ScanRange, Snapshot};
use reef_manifest::{Rng, SystemRng};
use serde_json::Value as Json;

use super::exit::{AtLine, NotFound, PartialScan};
use super::input::{ParsedRequest, split_op_field};
use super::output::{Out, stats_json, write_json};

/// Whole-request attempts after the engine's own LSN-race retries gave up.
const CONTENTION_ATTEMPTS_MAX: u32 = 5;
/// First pause between those attempts; doubles, with jitter.
const CONTENTION_BACKOFF_BASE: Duration = Duration::from_millis(20);

/// `reef write`: applies the parsed request atomically, prints its result.
pub async fn write(
    engine: &Engine,
    namespace: &str,
    parsed: &ParsedRequest,
    out: &mut Out,
) -> Result<()> {
    let mut attempt = 1;
    let result = loop {
        match engine
            .write_checked(namespace, parsed.request.clone())
            .await
        {
            Ok(result) => break result,
            Err(Error::Contention { .. }) if attempt < CONTENTION_ATTEMPTS_MAX => {
                tokio::time::sleep(jittered(CONTENTION_BACKOFF_BASE, attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(locate(error, parsed)),
        }
    };
    out.line(&write_json(&result))?;
    keep_healthy(engine, namespace).await;
    Ok(())
}

/// Unfolded bytes at which a CLI command folds before it exits. Far below
/// a long-lived engine's trigger (64 MiB), because every later command
/// opens the namespace and replays what is unfolded: 24 MB of unfolded
/// import batches cost each `reef write` or `get` about 0.1 s; 1 MiB
/// costs a few ms.
const CLI_FOLD_TRIGGER_BYTES: u64 = 1 << 20;

/// Unfolded WAL objects at which a CLI command folds before it exits
/// (about 10 µs each to list and replay on local disk: 256 cost ~3 ms).
const CLI_FOLD_TRIGGER_WAL_OBJECTS: u64 = 256;

/// Each `reef` command is a process of its own, so no background task
/// outlives it to fold: a write that leaves the namespace at or past a
/// fold trigger folds it before the process exits (then compacts if level
/// 0 is full, and collects). With a `reef compactor` running, the two
/// folds race harmlessly (one commits, the other abandons). The write is
/// already acknowledged, so a failure here is a warning on stderr, not a
/// failed command: the next write or `reef flush` tries again.
pub async fn keep_healthy(engine: &Engine, namespace: &str) {
    let due = match engine.stats(namespace).await {
        Ok(s) => {
            s.wal_objects >= CLI_FOLD_TRIGGER_WAL_OBJECTS
                || s.memtable_bytes >= CLI_FOLD_TRIGGER_BYTES
        }
        Err(_) => false,
    };
    if !due {
        return;
    }
    let done = async {
        engine.flush(namespace).await?;
        engine.compact(namespace, false).await?;
        engine.gc(namespace).await?;
        Ok::<(), Error>(())
    };
    if let Err(e) = done.await {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "warning: the write is acknowledged, but folding {namespace} afterwards failed: {e}; \
             run `reef flush {namespace}` (or keep `reef compactor` running)"
        );
    }
}

/// Names the input line of the op an engine error is about, if any.
fn locate(error: Error, parsed: &ParsedRequest) -> anyhow::Error {
    let index = match &error {
        Error::PreconditionFailed { op_index, .. } => Some(*op_index),
        Error::Invalid { field, .. } => split_op_field(field).map(|(i, _)| i),
        _ => None,
    };
    match index.and_then(|i| parsed.line_of(i)) {
        Some(line) => AtLine { line, error }.into(),
        None => error.into(),
    }
}

/// `base * 2^(attempt-1)`, scaled by a random factor in [0.5, 1.0), so
/// competing writers spread out.
fn jittered(base: Duration, attempt: u32) -> Duration {
    static RNG: LazyLock<SystemRng> = LazyLock::new(SystemRng::new);
    let step = base.saturating_mul(1 << attempt.min(8).saturating_sub(1));
    let mix = RNG.next_u64() >> 54; // 0..1024
    step / 2 + step.mul_f64(mix as f64 / 2048.0)
}

/// `reef get`: the document, or `NotFound` (exit 1).
pub async fn get(engine: &Engine, namespace: &str, id: &str, out: &mut Out) -> Result<()> {
    match engine.get(namespace, id).await? {
        Some(doc) => Ok(out.doc(&doc)?),
        None => Err(NotFound(format!("namespace {namespace}: no document with id {id:?}")).into()),
    }
}

/// `reef scan`: matching documents in id order, one per line, printed as
/// the engine's stream yields them (memory does not grow with the range).
/// A segment collected under a scan that has printed nothing yet (another
/// process's GC) is read again once; after output began, the failure is a
/// `PartialScan`.
pub async fn scan(
    engine: &Engine,
    namespace: &str,
    range: &ScanRange,
    out: &mut Out,
) -> Result<()> {
    let docs = engine.scan_stream(namespace, range).await?;
    match print(docs, out).await? {
        Err(error) if error.is_collected_segment() => {
            engine.refresh(namespace).await?;
            let docs = engine.scan_stream(namespace, range).await?;
            Ok(print(docs, out).await??)
        }
        done => Ok(done?),
    }
}

/// `reef scan --at <checkpoint>`: as `scan`, at the checkpoint's version.
pub async fn scan_snapshot(snapshot: &Snapshot, range: &ScanRange, out: &mut Out) -> Result<()> {
    Ok(print(snapshot.scan_stream(range), out).await??)
}

/// Prints a scan's documents. An engine error before the first document
/// is returned as it is (the caller may read again); after it, as a
/// `PartialScan`. Output errors are the outer `Err`.
async fn print(
    mut docs: reef_engine::DocStream,
    out: &mut Out,
) -> Result<std::result::Result<(), Error>> {
    let mut printed = 0;
    loop {
        match docs.try_next().await {
            Ok(Some(doc)) => {
                out.doc(&doc)?;
                printed += 1;
            }
            Ok(None) => return Ok(Ok(())),
            Err(error) if printed == 0 => return Ok(Err(error)),
            Err(error) => return Err(PartialScan { printed, error }.into()),
        }
    }
}

/// `reef stats`: one object of figures.
pub async fn stats(engine: &Engine, namespace: &str, out: &mut Out) -> Result<()> {
    let stats = engine.stats(namespace).await?;
    Ok(out.line(&stats_json(&stats))?)
}

/// `reef namespaces`: one JSON string per line.
/// Plain names, one per line (names need no quoting: DESIGN's namespace
/// grammar), or JSON strings with `--json`.
pub async fn namespaces(engine: &Engine, json: bool, out: &mut Out) -> Result<()> {
    for name in engine.namespaces().await? {
        if json {
            out.line(&Json::String(name))?;
        } else {
            out.text(&name)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_jittered() {
        for attempt in 1..6 {
            let step = CONTENTION_BACKOFF_BASE * (1 << (attempt - 1));
            let d = jittered(CONTENTION_BACKOFF_BASE, attempt);
            assert!(d >= step / 2 && d < step, "{attempt}: {d:?}");
        }
    }
}
