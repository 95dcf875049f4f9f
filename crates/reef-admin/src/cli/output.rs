//! What `reef` prints: one JSON value per line on stdout, through a
//! fallible writer. A closed stdout surfaces as a `BrokenPipe` error that
//! the binary turns into a quiet exit, never a panic (no `println!`).

use std::io::{BufWriter, StdoutLock, Write};

use reef_engine::{Doc, Stats, WriteResult};
use reef_format::document_to_json;
use serde_json::{Value as Json, json};

/// Buffered stdout for JSON lines.
pub struct Out {
    writer: BufWriter<StdoutLock<'static>>,
    /// Documents for a person: id first, indented (a terminal, no
    /// `--json`). Pipes always get one stable JSON line per document.
    pretty: bool,
}

impl Default for Out {
    fn default() -> Self {
        Out::new()
    }
}

impl Out {
    /// Locks stdout for the rest of the command.
    pub fn new() -> Out {
        Out {
            writer: BufWriter::new(std::io::stdout().lock()),
            pretty: false,
        }
    }

    /// Documents rendered for a person when stdout is a terminal and
    /// `json` (the `--json` flag) is not set.
    pub fn pretty_on_terminal(mut self, json: bool) -> Out {
        use std::io::IsTerminal as _;
        self.pretty = !json && std::io::stdout().is_terminal();
        self
    }

    /// One document, as `get` and each `scan` line print it.
    pub fn doc(&mut self, doc: &Doc) -> std::io::Result<()> {
        if self.pretty {
            self.text(&doc_pretty(doc))
        } else {
            self.line(&doc_json(doc))
        }
    }

    /// Writes `value` as one line of JSON.
    pub fn line(&mut self, value: &Json) -> std::io::Result<()> {
        // Serialised first, so an I/O failure is a plain io::Error whose
        // kind (BrokenPipe) the binary can see.
        let mut text = value.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())
    }

    /// Writes one line of text (reports meant for people).
    pub fn text(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// Flushes what is buffered; call once at the end.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// A progress line on stderr counting bytes, for `what` (e.g. "verify
/// orders"). indicatif draws it only when stderr is a terminal, so pipes
/// and logs never see it; stdout stays data only.
pub fn byte_progress(what: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} {prefix}: {binary_bytes} read, {binary_bytes_per_sec}, {elapsed}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(what.to_owned());
    // Drawn at once: a short command would otherwise end before the
    // first steady tick and show nothing.
    bar.tick();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// A spinner on stderr for a maintenance command (flush, compact, gc):
/// what its store has moved so far, counted by `counts`. Drawn only when
/// stderr is a terminal, like `byte_progress`; dropped, it clears itself.
pub struct StoreProgress {
    bar: indicatif::ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl StoreProgress {
    /// Starts the spinner (on the current tokio runtime).
    pub fn start(
        what: &str,
        counts: impl Fn() -> reef_manifest::store::StoreCounts + Send + 'static,
    ) -> StoreProgress {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg}, {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(what.to_owned());
        let describe = move || {
            let c = counts();
            format!(
                "{} read, {} written, {} requests",
                indicatif::BinaryBytes(c.bytes_read),
                indicatif::BinaryBytes(c.bytes_written),
                c.requests()
            )
        };
        bar.set_message(describe());
        bar.tick(); // drawn at once, however short the command
        let shown = bar.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                shown.set_message(describe());
                shown.tick();
            }
        });
        StoreProgress { bar, ticker }
    }
}

impl Drop for StoreProgress {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

/// A document for a person: `id` and `version` first, then the document
/// indented (JSON objects print their keys sorted, which would put `doc`
/// before `id`).
pub fn doc_pretty(doc: &Doc) -> String {
    let body = serde_json::to_string_pretty(&document_to_json(&doc.doc))
        .unwrap_or_else(|_| "null".to_owned())
        .replace('\n', "\n  ");
    format!(
        "{{\n  \"id\": {},\n  \"version\": {},\n  \"doc\": {body}\n}}",
        Json::String(doc.id.clone()),
        doc.version
    )
}

/// `{"id","version","doc"}`, as `get` and each `scan` line print it.
pub fn doc_json(doc: &Doc) -> Json {
    json!({
        "id": doc.id,
        "version": doc.version,
        "doc": document_to_json(&doc.doc),
    })
}

/// The one object `write` prints.
pub fn write_json(result: &WriteResult) -> Json {
    super::compactor::to_json(result)
}

/// The one object `stats` prints.
pub fn stats_json(stats: &Stats) -> Json {
    super::compactor::to_json(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_result_has_every_field() {
        let result = WriteResult {
            lsn: 4,
            first_version: None,
            last_version: None,
            upserted: 0,
            patched: 0,
            deleted: 0,
            skipped: 2,
            replayed: false,
        };
        assert_eq!(
            write_json(&result),
            json!({"lsn": 4, "first_version": null, "last_version": null, "upserted": 0,
                   "patched": 0, "deleted": 0, "skipped": 2, "replayed": false})
        );
    }

    #[test]
    fn segments_are_keyed_by_level() {
        let stats = Stats {
            namespace: "n".into(),
            manifest_version: 1,
            last_applied_lsn: 2,
            last_lsn: 3,
            wal_objects: 1,
            segments: [(0u8, 2usize), (1, 1)].into(),
            bytes: 10,
            memtable_bytes: 4,
            last_version: 9,
            gc_floor: 1,
            write_amplification: Some(1.5),
            background_error: None,
        };
        assert_eq!(stats_json(&stats)["segments"], json!({"0": 2, "1": 1}));
        assert_eq!(stats_json(&stats)["write_amplification"], json!(1.5));
    }

    #[test]
    fn a_pretty_document_starts_with_its_id_and_parses_back() {
        use reef_format::{Document, Value};
        let doc = Doc {
            id: "a\"b".to_owned(),
            version: 7,
            doc: Document::from_iter([
                ("z".to_owned(), Value::I64(1)),
                ("a".to_owned(), Value::String("x".to_owned())),
            ]),
        };
        let text = doc_pretty(&doc);
        assert!(
            text.starts_with("{\n  \"id\": \"a\\\"b\",\n  \"version\": 7,"),
            "{text}"
        );
        let back: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc_json(&doc));
    }
}
