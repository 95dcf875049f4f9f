//! One store-URL grammar (issue #14): relative paths work from the working
//! directory, `file:///abs` works, everything else that looks like a
//! scheme is refused with exit 2 and the accepted forms, and `memory://`
//! (per-process, so writes would vanish) is refused by the CLI. Nothing is
//! written by a refused command.

mod common;

use common::{TempDir, reef_in, upsert};

fn write_then_get(cwd: &TempDir, store: &str) {
    let w = reef_in(
        Some(cwd.path()),
        store,
        &["write", "n"],
        &upsert("a", serde_json::json!({"v": 1})),
    );
    assert_eq!(w.code, Some(0), "{store}: {w:?}");
    let g = reef_in(Some(cwd.path()), store, &["get", "n", "a"], "");
    assert_eq!(g.code, Some(0), "{store}: {g:?}");
}

#[test]
fn relative_paths_and_file_urls_work() {
    let cwd = TempDir::new("urls-ok");
    write_then_get(&cwd, "rs");
    assert!(
        cwd.path().join("rs/ns/n/wal").exists(),
        "rs is below the working directory"
    );
    write_then_get(&cwd, "./dot");
    let abs = cwd.path().join("abs");
    write_then_get(&cwd, &format!("file://{}", abs.display()));
    assert!(abs.join("ns/n/wal").exists());
}

#[test]
fn other_schemes_and_memory_are_refused_and_write_nothing() {
    let cwd = TempDir::new("urls-bad");
    for url in [
        "file:rel",
        "file:/tmp/reef-should-not-exist",
        "file://localhost/tmp/x",
        "file://rs",
        "s3:/bucket",
        "ftp://x",
        "memory://",
    ] {
        let r = reef_in(
            Some(cwd.path()),
            url,
            &["write", "n"],
            &upsert("a", serde_json::json!({"v": 1})),
        );
        assert_eq!(r.code, Some(2), "{url}: {r:?}");
        assert!(r.error_line().contains(url), "{url}: {}", r.error_line());
        let forms = url == "memory://" || r.error_line().contains("accepted: a path");
        assert!(forms, "{url}: {}", r.error_line());
        assert!(cwd.files().is_empty(), "{url} wrote {:?}", cwd.files());
    }
}
