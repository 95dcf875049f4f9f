//! `reef demo` goes through the engine and never disturbs data someone
//! else wrote (issue #8, case 6): a user's write to the namespace the
//! demo used survives the next demo run with its exact version.

mod common;

use common::{TempDir, reef, upsert};

#[test]
fn a_second_demo_run_keeps_a_users_acknowledged_write() {
    let dir = TempDir::new("demo-keeps");
    let first = reef(dir.store(), &["demo"], "");
    assert_eq!(first.code, Some(0), "{first:?}");
    let written = reef(
        dir.store(),
        &["write", "demo"],
        &upsert("mine", serde_json::json!({"keep": true})),
    )
    .ok_json();
    let version = written["last_version"].clone();

    let second = reef(dir.store(), &["demo"], "");
    assert_eq!(second.code, Some(0), "{second:?}");
    let got = reef(dir.store(), &["get", "demo", "mine"], "");
    assert_eq!(
        got.code,
        Some(0),
        "the acknowledged write survives: {got:?}"
    );
    let doc = got.ok_json();
    assert_eq!(doc["version"], version, "with its exact version");
    assert_eq!(doc["doc"], serde_json::json!({"keep": true}));
}
