//! Issue #8's process test: `reef gc --grace 0` in a loop while a
//! `reef compactor` process folds and compacts and several writer
//! processes (`reef write`, one process per write) write to one namespace,
//! on a local directory and on the S3 test server. Afterwards every
//! acknowledged write is present with its exact version and content;
//! writes refused as temporary (exit 75: a writer fenced or outrun) are
//! allowed, anything else is a failure.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use reef_manifest::testing::{S3Server, TempDir};
use serde_json::Value;

const REEF: &str = env!("CARGO_BIN_EXE_reef");
const NS: &str = "race";

type Env = Vec<(&'static str, String)>;

fn command(store: &str, env: &Env, args: &[&str]) -> Command {
    let mut cmd = Command::new(REEF);
    cmd.arg("--store").arg(store).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `reef`, feeding `stdin`; returns the exit code, stdout and stderr.
fn run(store: &str, env: &Env, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = command(store, env, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

struct Acked {
    id: String,
    version: u64,
    value: u64,
}

fn race(store: &str, env: &Env) {
    let stop = Arc::new(AtomicBool::new(false));
    let compactor: Child = command(
        store,
        env,
        &["compactor", "--namespace", NS, "--interval-ms", "1"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let gc_runs = Arc::new(AtomicU64::new(0));
    let gc_loop = {
        let (store, env, stop, runs) = (
            store.to_owned(),
            env.clone(),
            Arc::clone(&stop),
            Arc::clone(&gc_runs),
        );
        std::thread::spawn(move || {
            let mut deleted = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (code, out, err) = run(&store, &env, &["gc", NS, "--grace", "0"], "");
                // Before the first write the namespace may not exist yet;
                // a temporary refusal (HEAD contention) is fine too.
                assert!(
                    matches!(code, Some(0 | 1 | 75)),
                    "gc failed: {code:?} {err}"
                );
                if let Ok(v) = serde_json::from_str::<Value>(out.trim()) {
                    deleted += v["wal"].as_u64().unwrap_or(0) + v["segments"].as_u64().unwrap_or(0);
                }
                runs.fetch_add(1, Ordering::Relaxed);
            }
            deleted
        })
    };

    let (writers, each) = (4, 12);
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, env) = (store.to_owned(), env.clone());
            std::thread::spawn(move || {
                let (mut acked, mut refused) = (Vec::new(), 0u32);
                for i in 0..each {
                    let id = format!("w{w}-{i:02}");
                    let value = (w * 1000 + i) as u64;
                    let line = format!(r#"{{"op":"upsert","id":"{id}","doc":{{"v":{value}}}}}"#);
                    let (code, out, err) = run(&store, &env, &["write", NS], &line);
                    match code {
                        Some(0) => {
                            let r: Value = serde_json::from_str(out.trim()).unwrap();
                            acked.push(Acked {
                                id,
                                version: r["last_version"].as_u64().unwrap(),
                                value,
                            });
                        }
                        Some(75) => refused += 1,
                        other => panic!("write {id}: exit {other:?}: {err}"),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    let (mut acked, mut refused) = (Vec::new(), 0);
    for h in handles {
        let (a, r) = h.join().unwrap();
        acked.extend(a);
        refused += r;
    }
    stop.store(true, Ordering::Relaxed);
    let deleted = gc_loop.join().unwrap();
    let mut compactor = compactor;
    compactor.kill().unwrap();
    compactor.wait().unwrap();
    // One more round of everything, then check from a fresh process.
    for args in [
        &["flush", NS][..],
        &["gc", NS, "--grace", "0"],
        &["compact", NS],
    ] {
        let (code, _, err) = run(store, env, args, "");
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    let (code, out, err) = run(store, env, &["scan", NS], "");
    assert_eq!(code, Some(0), "{err}");
    let docs: std::collections::HashMap<String, Value> = out
        .lines()
        .map(|l| {
            let d: Value = serde_json::from_str(l).unwrap();
            (d["id"].as_str().unwrap().to_owned(), d)
        })
        .collect();
    for a in &acked {
        let d = docs
            .get(&a.id)
            .unwrap_or_else(|| panic!("acknowledged {} (version {}) is lost", a.id, a.version));
        assert_eq!(d["version"], a.version, "{} keeps its version", a.id);
        assert_eq!(d["doc"]["v"], a.value, "{} keeps its content", a.id);
    }
    eprintln!(
        "{} acknowledged, {refused} refused as temporary, {} gc runs deleted {deleted} objects",
        acked.len(),
        gc_runs.load(Ordering::Relaxed)
    );
    assert!(
        acked.len() >= writers * each / 2,
        "most writes get through ({} of {})",
        acked.len(),
        writers * each
    );
    assert!(deleted > 0, "GC really deleted while writers ran");
}

#[test]
fn gc_with_no_grace_races_a_compactor_and_writers_on_a_local_directory() {
    let dir = TempDir::new("gc-race");
    race(dir.path().to_str().unwrap(), &Vec::new());
}

#[test]
fn gc_with_no_grace_races_a_compactor_and_writers_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let env = server.cli_env();
    race(&server.url("gc-race"), &env);
}
