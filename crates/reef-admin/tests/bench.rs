//! `reef bench`: a short run of each key mode prints a complete report,
//! and its writes are really in the namespace afterwards.

mod common;

use common::{TempDir, reef};

#[test]
fn a_short_bench_reports_what_it_measured_and_its_writes_are_there() {
    let dir = TempDir::new("bench");
    let s = dir.store();
    let run = reef(
        s,
        &[
            "bench",
            "b",
            "--writers",
            "3",
            "--duration",
            "300ms",
            "--ops",
            "2",
            "--json",
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let report: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    let writes = report["writes"].as_u64().unwrap();
    assert!(writes > 0, "{report}");
    for field in ["writes_per_s", "docs_per_s", "store_requests_per_write"] {
        assert!(report[field].as_f64().unwrap() > 0.0, "{field}: {report}");
    }
    let latency = &report["write_latency"];
    assert!(latency["p50_ms"].as_f64().unwrap() <= latency["p99_ms"].as_f64().unwrap());
    assert!(report["read_latency"].is_null(), "{report}");
    // Unique keys: every acknowledged op is a document.
    let scan = reef(s, &["scan", "b"], "");
    assert_eq!(scan.stdout.lines().count() as u64, 2 * writes, "{report}");

    // Uniform keys with reads: reads are measured too, and the text report
    // is for people.
    let run = reef(
        s,
        &[
            "bench",
            "b",
            "--writers",
            "2",
            "--duration",
            "300ms",
            "--keys",
            "uniform",
            "--key-space",
            "50",
            "--reads",
            "0.5",
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout.contains("reads:") && run.stdout.contains("p99"),
        "{run:?}"
    );

    for (flag, value) in [("--writers", "0"), ("--reads", "1.5"), ("--ops", "0")] {
        let bad = reef(s, &["bench", "b", flag, value], "");
        assert_eq!(bad.code, Some(2), "{bad:?}");
        assert!(bad.stderr.contains(flag), "{bad:?}");
    }
}
