//! `reef demo`: a one-minute tour for a newcomer, on a real local store,
//! through the engine like any user's write: atomic conditional upserts,
//! an idempotent retry, a refused precondition, a merge patch, a fold into
//! a segment, recovery in a fresh engine, and a flipped bit caught.
//!
//! Invariant: the demo only ever writes through `Engine::write`/`flush`,
//! into a namespace of its own (`demo`, else the first free `demo-N`), so
//! it never disturbs data anyone else wrote.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use reef_engine::{Engine, EngineOptions, ScanRange};
use reef_format::{
    Op, OpKind, Precondition, WalRecord, WriteRequest, document_from_json, document_to_json,
};
use reef_manifest::Layout;
use reef_manifest::store::{DynStore, LocalStore};
use serde_json::json;

/// Prints a line; a closed stdout (`reef demo | head`) is an error the
/// binary turns into a quiet exit, never a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

/// The most `demo-N` namespaces the demo looks through for a free one.
const DEMO_NAMESPACES_MAX: u32 = 1000;

/// Runs the demo against the local directory `dir`.
pub fn run(dir: &Path) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(tour(dir))
}

fn op(
    kind: OpKind,
    id: &str,
    doc: Option<serde_json::Value>,
    p: Option<Precondition>,
) -> Result<Op> {
    Ok(Op {
        kind,
        id: id.to_owned(),
        doc: doc.map(|d| document_from_json(&d, "doc")).transpose()?,
        precondition: p,
    })
}

async fn free_namespace(engine: &Engine) -> Result<String> {
    let taken = engine.namespaces().await?;
    (1..=DEMO_NAMESPACES_MAX)
        .map(|n| {
            if n == 1 {
                "demo".to_owned()
            } else {
                format!("demo-{n}")
            }
        })
        .find(|name| !taken.contains(name))
        .context("every demo namespace name is taken")
}

async fn tour(dir: &Path) -> Result<()> {
    let store: DynStore = Arc::new(LocalStore::new(dir));
    let options = EngineOptions {
        background: false,
        ..EngineOptions::default()
    };
    let engine = Engine::open(Arc::clone(&store), options.clone()).await?;
    let ns = free_namespace(&engine).await?;
    say!(
        "Namespace {ns:?} in {} (a fresh one: the demo never touches data it did not write).",
        dir.display()
    );

    say!("1. One atomic request of three upserts, each only if the id is absent:");
    let people = [
        ("user/ada", json!({"name": "Ada Lovelace", "born": 1815})),
        ("user/alan", json!({"name": "Alan Turing", "born": 1912})),
        ("user/grace", json!({"name": "Grace Hopper", "born": 1906})),
    ];
    let mut ops = Vec::new();
    for (id, doc) in &people {
        say!("   upsert {id} {doc}");
        ops.push(op(
            OpKind::Upsert,
            id,
            Some(doc.clone()),
            Some(Precondition::Absent),
        )?);
    }
    let request = WriteRequest {
        ops,
        idempotency_key: Some("demo-first-write".to_owned()),
    };
    let first = engine.write(&ns, request.clone()).await?;
    let layout = Layout::new(&ns)?;
    say!(
        "   acknowledged once {} was durable: lsn {}, versions {}..={}",
        layout.wal_key(first.lsn),
        first.lsn,
        first.first_version.unwrap_or(0),
        first.last_version.unwrap_or(0)
    );

    say!("2. The same request retried with its idempotency key is answered, not applied again:");
    let again = engine.write(&ns, request).await?;
    say!("   replayed: {}, lsn {}", again.replayed, again.lsn);

    say!("3. A failed precondition rejects the whole request; nothing of it is written:");
    let refused = engine
        .write(
            &ns,
            WriteRequest {
                ops: vec![
                    op(
                        OpKind::Upsert,
                        "user/linus",
                        Some(json!({"name": "Linus"})),
                        None,
                    )?,
                    op(
                        OpKind::Upsert,
                        "user/ada",
                        Some(json!({"name": "?"})),
                        Some(Precondition::Absent),
                    )?,
                ],
                idempotency_key: None,
            },
        )
        .await;
    match refused {
        Err(e) => say!("   {e}"),
        Ok(_) => bail!("a request with a failed precondition was applied"),
    }
    say!(
        "   user/linus present: {}",
        engine.get(&ns, "user/linus").await?.is_some()
    );

    say!("4. A JSON merge patch, only if user/ada is still at the version we read:");
    let before = engine
        .get(&ns, "user/ada")
        .await?
        .context("user/ada missing")?
        .version;
    engine
        .write(
            &ns,
            WriteRequest {
                ops: vec![op(
                    OpKind::Patch,
                    "user/ada",
                    Some(json!({"title": "Countess of Lovelace", "born": null})),
                    Some(Precondition::Version(before)),
                )?],
                idempotency_key: None,
            },
        )
        .await?;
    let ada = engine
        .get(&ns, "user/ada")
        .await?
        .context("user/ada missing")?;
    say!(
        "   version {before} -> {}: {}",
        ada.version,
        document_to_json(&ada.doc)
    );

    say!("5. One flipped bit in a stored WAL object is caught, never served:");
    let key = layout.wal_key(first.lsn);
    let mut damaged = store
        .get(&key)
        .await?
        .context("WAL object missing")?
        .bytes
        .to_vec();
    if let Some(b) = damaged.get_mut(40) {
        *b ^= 0x01;
    }
    match WalRecord::decode(&damaged.into(), &key) {
        Err(err) => say!("   {err}"),
        Ok(_) => bail!("a damaged WAL record decoded"),
    }

    say!("6. A fold turns the WAL into a sorted, checksummed segment and commits a manifest:");
    let fold = engine.flush(&ns).await?;
    say!(
        "   {} WAL records -> {} entries in one level-0 segment; manifest {}",
        fold.records,
        fold.entries_out,
        fold.manifest_version.unwrap_or(0)
    );
    engine.close().await?;

    say!("7. A fresh engine recovers everything from the bucket alone:");
    let fresh = Engine::open(store, options).await?;
    for doc in fresh.scan(&ns, &ScanRange::default()).await? {
        say!(
            "   {} v{} {}",
            doc.id,
            doc.version,
            document_to_json(&doc.doc)
        );
    }
    let stats = fresh.stats(&ns).await?;
    say!(
        "   manifest {}, last_applied_lsn {}, {} unfolded WAL objects",
        stats.manifest_version,
        stats.last_applied_lsn,
        stats.wal_objects
    );
    fresh.close().await?;

    let store_arg = dir.display();
    say!("Next, try:");
    say!("   reef --store {store_arg} get {ns} user/grace");
    say!("   reef --store {store_arg} scan {ns} --prefix user/");
    say!(
        "   echo '{{\"op\":\"upsert\",\"id\":\"user/linus\",\"doc\":{{\"name\":\"Linus\"}}}}' | reef --store {store_arg} write {ns}"
    );
    say!("   reef --store {store_arg} stats {ns}");
    Ok(())
}
