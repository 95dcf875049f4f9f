//! What users expect of a command line (issue #12): `REEF_STORE`,
//! humane durations, completions and a man page, the namespace as an
//! argument of `compactor` and a clean Ctrl-C there, exit codes listed in
//! `--help`.
#![allow(
    clippy::disallowed_methods,
    reason = "process tests: real time while another process runs"
)]

mod common;

use std::process::{Command, Stdio};

use common::{REEF, TempDir, reef};

fn reef_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(REEF);
    cmd.args(args).env_remove("REEF_STORE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn reef_store_names_the_store_and_the_flag_wins() {
    let dir = TempDir::new("env-store");
    let other = TempDir::new("env-store-other");
    let mut child = Command::new(REEF)
        .args(["write", "ns1"])
        .env("REEF_STORE", dir.store())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"op":"upsert","id":"a","doc":{}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(dir.has_wal("ns1"));
    let out = reef_env(&["namespaces"], &[("REEF_STORE", dir.store())]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ns1\n");
    let out = reef_env(
        &["--store", other.store(), "namespaces"],
        &[("REEF_STORE", dir.store())],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn durations_read_as_people_write_them() {
    let dir = TempDir::new("durations");
    let s = dir.store();
    let w = reef(s, &["write", "ns1"], r#"{"op":"upsert","id":"a","doc":{}}"#);
    assert_eq!(w.code, Some(0), "{w:?}");
    for grace in ["10m", "90s", "1h30m", "600", "0"] {
        let run = reef(s, &["gc", "ns1", "--grace", grace], "");
        assert_eq!(run.code, Some(0), "--grace {grace}: {run:?}");
    }
    let run = reef(s, &["gc", "ns1", "--grace", "ten minutes"], "");
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("90s, 10m"), "{run:?}");
}

#[test]
fn completions_man_page_and_help_come_from_the_parser() {
    for shell in ["bash", "zsh", "fish"] {
        let out = reef_env(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("import") && text.contains("repair"),
            "{shell}"
        );
    }
    let out = reef_env(&["man"], &[]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains(".TH reef") && page.contains("REEF_STORE"),
        "{page}"
    );
    let out = reef_env(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for code in ["65 stored data", "75 temporary", "4 verify"] {
        assert!(help.contains(code), "--help lists exit code {code}: {help}");
    }
}

#[test]
fn the_compactor_takes_the_namespace_as_an_argument_and_stops_cleanly_on_ctrl_c() {
    let dir = TempDir::new("compactor-ctrl-c");
    let s = dir.store();
    let w = reef(s, &["write", "ns1"], r#"{"op":"upsert","id":"a","doc":{}}"#);
    assert_eq!(w.code, Some(0), "{w:?}");
    // The older --namespace spelling still works.
    let old = reef(s, &["compactor", "--namespace", "ns1", "--rounds", "1"], "");
    assert_eq!(old.code, Some(0), "{old:?}");

    let child = Command::new(REEF)
        .args(["--store", s, "compactor", "ns1", "--interval-ms", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it run a few rounds, then SIGINT.
    std::thread::sleep(std::time::Duration::from_millis(600));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stopped after"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().count() >= 1, "{stdout}");
    for line in stdout.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

/// Runs `reef --store <store> <args>` on a pseudo-terminal (util-linux
/// `script`), returning what the terminal showed (stdout and stderr).
fn on_a_terminal(store: &str, args: &str) -> String {
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{REEF} --store {store} {args}"),
            "/dev/null",
        ])
        .env_remove("REEF_STORE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Progress is for people: on a terminal, import, flush, compact, gc and
/// verify draw it on stderr; piped, stderr stays empty and stdout is data.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let dir = TempDir::new("progress");
    let s = dir.store();
    let lines: String = (0..2000)
        .map(|i| format!("{{\"id\":\"d{i:04}\",\"n\":{i}}}\n"))
        .collect();
    let file = dir.path().join("docs.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let file = file.to_str().unwrap();

    let shown = on_a_terminal(s, &format!("import ns1 {file}"));
    assert!(shown.contains("import:"), "{shown}");
    for (command, label) in [
        ("flush ns1", "flush ns1:"),
        ("compact ns1", "compact ns1:"),
        ("gc ns1", "gc ns1:"),
        ("verify ns1", "verify ns1:"),
    ] {
        let shown = on_a_terminal(s, command);
        assert!(
            shown.contains(label) && shown.contains("read"),
            "{command}: {shown}"
        );
    }

    let piped = reef(s, &["import", "ns2", file], "");
    assert_eq!(
        (piped.code, piped.stderr.as_str()),
        (Some(0), ""),
        "{piped:?}"
    );
    for command in ["flush", "compact", "gc", "verify"] {
        let piped = reef(s, &[command, "ns2"], "");
        assert_eq!(piped.code, Some(0), "{command}: {piped:?}");
        assert_eq!(piped.stderr, "", "{command}");
        assert!(!piped.stdout.contains("read,"), "{command}: {piped:?}");
    }
}
