//! `reef-store-torture`: hammers a local store from one process, so tests
//! (and operators checking their own file system) can race several
//! processes against one directory, or kill one mid-operation.
//!
//! ```text
//! reef-store-torture put-once <root> <key> <token>       prints "won" or "lost"
//! reef-store-torture cas-increment <root> <key> <n>      n successful CAS increments
//! reef-store-torture cas-forever <root> <key> <pause_ms> CAS increments until killed,
//!                                                        pausing mid-CAS while locked
//! ```
//! The counter object holds a decimal number; a missing one counts as 0.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use reef_manifest::store::{LocalStore, ObjectStore, PutOutcome};

async fn increment(store: &LocalStore, key: &str) -> Result<bool, String> {
    let current = store.get(key).await.map_err(|e| e.to_string())?;
    let (n, outcome) = match current {
        None => {
            let o = store.put_if_absent(key, Bytes::from_static(b"1")).await;
            (0, o)
        }
        Some(obj) => {
            let text = std::str::from_utf8(&obj.bytes).map_err(|e| e.to_string())?;
            let n: u64 = text
                .parse()
                .map_err(|e| format!("torn counter {text:?}: {e}"))?;
            let o = store
                .put_if_match(key, Bytes::from((n + 1).to_string()), &obj.tag)
                .await;
            (n, o)
        }
    };
    let _ = n;
    Ok(matches!(
        outcome.map_err(|e| e.to_string())?,
        PutOutcome::Written(_)
    ))
}

/// The WAL key `wal-cycle` puts for `lsn`.
fn wal_key(lsn: u64) -> String {
    format!("ns/n/wal/{lsn:020}.wal")
}

/// What `wal-cycle` puts for `lsn`: its own number throughout, in sizes
/// that differ, so any other object's bytes are caught.
fn wal_record(lsn: u64) -> Bytes {
    Bytes::from(format!("<{lsn}>").repeat(32 + (lsn % 5) as usize * 40))
}

async fn run(args: &[String]) -> Result<(), String> {
    match args {
        [cmd, root, key, token] if cmd == "put-once" => {
            let store = LocalStore::new(root);
            let out = store
                .put_if_absent(key, Bytes::from(token.clone()))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{}",
                if matches!(out, PutOutcome::Written(_)) {
                    "won"
                } else {
                    "lost"
                }
            );
            Ok(())
        }
        [cmd, root, key, n] if cmd == "cas-increment" => {
            let store = LocalStore::new(root);
            let n: u64 = n.parse().map_err(|e| format!("n: {e}"))?;
            let mut done = 0;
            while done < n {
                if increment(&store, key).await? {
                    done += 1;
                }
            }
            println!("done {done}");
            Ok(())
        }
        [cmd, root, key, pause_ms] if cmd == "cas-forever" => {
            let pause: u64 = pause_ms.parse().map_err(|e| format!("pause_ms: {e}"))?;
            let store = LocalStore::new(root).with_cas_pause(Duration::from_millis(pause));
            println!("running");
            loop {
                increment(&store, key).await?;
            }
        }
        [cmd, root, from, n] if cmd == "wal-cycle" => {
            let store = LocalStore::new(root);
            let from: u64 = from.parse().map_err(|e| format!("from: {e}"))?;
            let n: u64 = n.parse().map_err(|e| format!("n: {e}"))?;
            for lsn in from..from + n {
                store
                    .put_if_absent(&wal_key(lsn), wal_record(lsn))
                    .await
                    .map_err(|e| e.to_string())?;
                // Every eighth put, GC takes four of the last eight.
                if (lsn - from) % 8 == 7 {
                    let old: Vec<String> = (lsn - 7..lsn - 3).map(wal_key).collect();
                    store.delete_many(&old).await.map_err(|e| e.to_string())?;
                }
            }
            println!("done");
            Ok(())
        }
        _ => Err(
            "usage: reef-store-torture put-once|cas-increment|cas-forever|wal-cycle <root> <key|from> <arg>"
                .into(),
        ),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: runtime: {e}");
            return ExitCode::from(70);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
