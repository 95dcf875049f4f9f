//! Reads criterion's on-disk results (`<criterion dir>/**/new/benchmark.json`
//! and `estimates.json`) and renders them as a markdown table with human
//! time units and MB/s (10^6 bytes) or Melem/s throughput.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// One benchmark's summarised result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Criterion group id.
    pub group: String,
    /// Function id and parameter, e.g. `decode/4096`; `-` when neither exists.
    pub bench: String,
    /// Mean time per iteration, in nanoseconds.
    pub mean_ns: f64,
    /// Throughput per iteration as criterion recorded it, if any.
    pub throughput: Option<Value>,
}

/// Collects every complete result under `dir`, sorted by group and name.
/// Entries lacking either JSON file (or with unreadable JSON) are skipped.
pub fn collect(dir: &Path) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    if dir.is_dir() {
        walk(dir, &mut rows)?;
    }
    rows.sort_by(|a, b| (&a.group, &a.bench).cmp(&(&b.group, &b.bench)));
    Ok(rows)
}

fn walk(dir: &Path, rows: &mut Vec<Row>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        if entry.file_name() == "new" {
            match read_row(&path) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(e) => eprintln!("skipping {}: {e:#}", path.display()),
            }
        } else {
            walk(&path, rows)?;
        }
    }
    Ok(())
}

/// Reads one `new/` directory; `Ok(None)` when a file is missing.
fn read_row(new_dir: &Path) -> Result<Option<Row>> {
    let (bench_file, est_file) = (
        new_dir.join("benchmark.json"),
        new_dir.join("estimates.json"),
    );
    if !bench_file.is_file() || !est_file.is_file() {
        return Ok(None);
    }
    let id: Value = serde_json::from_str(&fs::read_to_string(&bench_file)?)
        .with_context(|| format!("parsing {}", bench_file.display()))?;
    let est: Value = serde_json::from_str(&fs::read_to_string(&est_file)?)
        .with_context(|| format!("parsing {}", est_file.display()))?;
    let mean_ns = est["mean"]["point_estimate"]
        .as_f64()
        .context("estimates.json has no mean.point_estimate")?;
    let group = id["group_id"]
        .as_str()
        .context("benchmark.json has no group_id")?;
    let parts: Vec<&str> = [&id["function_id"], &id["value_str"]]
        .into_iter()
        .filter_map(Value::as_str)
        .collect();
    let bench = if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join("/")
    };
    let throughput = Some(id["throughput"].clone()).filter(|t| !t.is_null());
    Ok(Some(Row {
        group: group.to_string(),
        bench,
        mean_ns,
        throughput,
    }))
}

/// Renders the rows as a markdown table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("# Reef benchmark report\n\n");
    if rows.is_empty() {
        out.push_str("No criterion results found (run `cargo xtask bench`).\n");
        return out;
    }
    out.push_str("| group | benchmark | mean time / iter | throughput |\n");
    out.push_str("|---|---|---:|---:|\n");
    for r in rows {
        let tp = r
            .throughput
            .as_ref()
            .map_or_else(|| "-".to_string(), |t| throughput(t, r.mean_ns));
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            cell(&r.group),
            cell(&r.bench),
            human_time(r.mean_ns),
            tp
        ));
    }
    out
}

/// Escapes a string for a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Formats nanoseconds with a unit that keeps the number readable.
pub fn human_time(ns: f64) -> String {
    let (value, unit) = if ns < 1.0 {
        (ns * 1e3, "ps")
    } else if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{value:.2} {unit}")
}

/// Formats criterion's throughput (`{"Bytes": n}`, `{"Elements": n}`, ...)
/// as a rate given the mean time per iteration.
pub fn throughput(t: &Value, mean_ns: f64) -> String {
    // n units per iteration / (mean_ns * 1e-9 s) / 1e6 = n * 1e3 / mean_ns mega-units per second.
    let rate = |n: &Value| n.as_f64().map(|n| n * 1e3 / mean_ns);
    let fmt = |n: &Value, unit: &str| {
        rate(n).map_or_else(
            || "?".to_string(),
            // Slow ops (point lookups) must not print as "0.0".
            |r| {
                if r < 1.0 {
                    format!("{r:.4} {unit}")
                } else {
                    format!("{r:.1} {unit}")
                }
            },
        )
    };
    if mean_ns <= 0.0 {
        return "-".to_string();
    }
    if let Some(n) = t.get("Bytes").or_else(|| t.get("BytesDecimal")) {
        fmt(n, "MB/s")
    } else if let Some(n) = t.get("Elements") {
        fmt(n, "Melem/s")
    } else if let Some(n) = t.get("Bits") {
        fmt(n, "Mbit/s")
    } else if let Some(both) = t.get("ElementsAndBytes") {
        format!(
            "{}, {}",
            fmt(&both["elements"], "Melem/s"),
            fmt(&both["bytes"], "MB/s")
        )
    } else {
        format!("? ({t})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, bench: Option<Value>, est: Option<Value>) {
        fs::create_dir_all(dir).unwrap();
        if let Some(b) = bench {
            fs::write(dir.join("benchmark.json"), b.to_string()).unwrap();
        }
        if let Some(e) = est {
            fs::write(dir.join("estimates.json"), e.to_string()).unwrap();
        }
    }

    #[test]
    fn units_and_rates() {
        assert_eq!(human_time(0.25), "250.00 ps");
        assert_eq!(human_time(512.0), "512.00 ns");
        assert_eq!(human_time(1_500.0), "1.50 µs");
        assert_eq!(human_time(2_000_000.0), "2.00 ms");
        assert_eq!(human_time(3e9), "3.00 s");
        // 1 MB per iteration in 1 ms = 1000 MB/s.
        assert_eq!(throughput(&json!({"Bytes": 1_000_000}), 1e6), "1000.0 MB/s");
        assert_eq!(
            throughput(&json!({"Elements": 1000}), 1e3),
            "1000.0 Melem/s"
        );
        assert_eq!(
            throughput(
                &json!({"ElementsAndBytes": {"elements": 1, "bytes": 2}}),
                1e3
            ),
            "1.0 Melem/s, 2.0 MB/s"
        );
    }

    #[test]
    fn collects_complete_entries_and_skips_the_rest() {
        let root = std::env::temp_dir().join(format!("xtask-bench-report-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let est = json!({"mean": {"point_estimate": 2000.0}});
        write(
            &root.join("codec/decode/4096/new"),
            Some(
                json!({"group_id": "codec", "function_id": "decode", "value_str": "4096",
                        "throughput": {"Bytes": 4096}}),
            ),
            Some(est.clone()),
        );
        write(
            &root.join("plain/new"),
            Some(
                json!({"group_id": "plain", "function_id": null, "value_str": null,
                        "throughput": null}),
            ),
            Some(est.clone()),
        );
        write(
            &root.join("codec/decode/4096/base"),
            None,
            Some(est.clone()),
        );
        write(
            &root.join("broken/new"),
            Some(json!({"group_id": "broken"})),
            None,
        );
        fs::create_dir_all(root.join("codec/report")).unwrap();

        let rows = collect(&root).unwrap();
        let _ = fs::remove_dir_all(&root);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            (rows[0].group.as_str(), rows[0].bench.as_str()),
            ("codec", "decode/4096")
        );
        assert_eq!(rows[1].bench, "-");
        let table = render(&rows);
        assert!(
            table.contains("| codec | decode/4096 | 2.00 µs | 2048.0 MB/s |"),
            "{table}"
        );
        assert!(table.contains("| plain | - | 2.00 µs | - |"), "{table}");
    }
}
