//! A standalone compactor process (`reef compactor`) and writer processes
//! (`reef write`) on one bucket at once, on a local directory and on S3:
//! no acknowledged write is lost, versions stay gap-free, and the
//! compactor really folded and compacted while the writers ran.

use std::process::{Command, Stdio};

use reef_manifest::testing::{S3Server, TempDir};
use serde_json::Value;

const REEF: &str = env!("CARGO_BIN_EXE_reef");

fn reef(
    store: &str,
    env: &[(&'static str, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String) {
    let mut cmd = Command::new(REEF);
    cmd.arg("--store")
        .arg(store)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn writers_and_compactor(store: &str, env: &[(&'static str, String)]) {
    let mut compactor = Command::new(REEF);
    compactor.args([
        "--store",
        store,
        "compactor",
        "--namespace",
        "live",
        "--interval-ms",
        "5",
    ]);
    for (k, v) in env {
        compactor.env(k, v);
    }
    let mut compactor = compactor
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let (writers, each) = (3, 15);
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (store, env) = (store.to_owned(), env.to_vec());
            std::thread::spawn(move || {
                for i in 0..each {
                    let line = format!(
                        r#"{{"op":"upsert","id":"w{w}-{i:02}","doc":{{"w":{w},"i":{i}}}}}"#
                    );
                    let (ok, out) = reef(&store, &env, &["write", "live"], Some(&line));
                    assert!(ok, "write w{w}-{i}: {out}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    compactor.kill().unwrap();
    let rounds = {
        use std::io::Read;
        let mut s = String::new();
        compactor
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        compactor.wait().unwrap();
        s
    };
    let folded: u64 = rounds
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["fold"]["records"].as_u64())
        .sum();
    assert!(
        folded > 0,
        "the compactor folded while writers ran:\n{rounds}"
    );

    let (ok, out) = reef(store, env, &["flush", "live"], None);
    assert!(ok, "{out}");
    let (ok, out) = reef(store, env, &["scan", "live"], None);
    assert!(ok, "{out}");
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs.len(),
        writers * each,
        "every acknowledged write is there"
    );
    let mut versions: Vec<u64> = docs
        .iter()
        .map(|d| d["version"].as_u64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=(writers * each) as u64).collect::<Vec<_>>(),
        "gap-free versions"
    );
    for d in &docs {
        let id = d["id"].as_str().unwrap();
        let (w, i) = id[1..].split_once('-').unwrap();
        assert_eq!(d["doc"]["w"], w.parse::<u64>().unwrap());
        assert_eq!(d["doc"]["i"], i.parse::<u64>().unwrap());
    }
    let (ok, out) = reef(store, env, &["stats", "live"], None);
    assert!(ok, "{out}");
    let stats: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(stats["wal_objects"], 0);
}

#[test]
fn compactor_process_and_writers_on_a_local_directory() {
    let dir = TempDir::new("compactor-proc");
    writers_and_compactor(dir.path().to_str().unwrap(), &[]);
}

#[test]
fn compactor_process_and_writers_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let env = server.cli_env();
    writers_and_compactor(&server.url("compactor-proc"), &env);
}
