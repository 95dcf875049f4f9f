//! `reef import <ns> [FILE|-]`: bulk upserts from JSON lines or one JSON
//! array of objects, streamed (memory is one batch, whatever the input's
//! size), in batches under the request limits.
//!
//! Each batch carries an idempotency key derived from its content and the
//! id options (`import:<xxh3-128>`), so re-running an import after a crash
//! or a kill replays the batches that landed (acknowledged without being
//! applied again) and writes the rest: nothing lost, nothing written twice,
//! as long as the re-run comes within the namespace's idempotency
//! retention. A bad document stops the import with exit 2 naming its line
//! (or array element); the batches before it are in, and a re-run of the
//! fixed input skips them.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result};
use reef_engine::{Engine, Error};
use reef_format::{FormatError, Op, OpKind, WriteRequest, document_from_json, parse_json};
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value as Json;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::exit::InputError;
use super::output::Out;

/// Documents per batch, at most.
pub const BATCH_DOCS: usize = 1000;
/// Bytes of input per batch, at most (well under the 64 MiB request limit).
pub const BATCH_BYTES: usize = 4 << 20;
/// One document's JSON text, at most (the document limit plus room for
/// escaping).
const DOC_TEXT_BYTES_MAX: usize = 16 << 20;

/// Where the id comes from.
#[derive(Clone, Debug)]
pub enum IdFrom {
    /// A top-level field (default `id`).
    Field(String),
    /// A JSON pointer (`/meta/sku`).
    Pointer(String),
}

/// One document's text and where it was in the input.
struct Item {
    at: String,
    text: String,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Documents in the input.
    pub documents: u64,
    /// Batches written.
    pub batches: u64,
    /// Batches an earlier run had already written (replayed, not applied).
    pub replayed_batches: u64,
    /// Input bytes read.
    pub bytes: u64,
}

/// Runs the import: reads `input` on a blocking thread, writes batches.
pub async fn run(
    engine: &Engine,
    ns: &str,
    input: Option<&Path>,
    id: &IdFrom,
    out: &mut Out,
) -> Result<Summary> {
    let (reader, total) = open(input)?;
    let bar = progress(total);
    let (tx, mut rx) = mpsc::channel::<Result<Item>>(4 * BATCH_DOCS);
    let reading = tokio::task::spawn_blocking(move || read_items(reader, &tx));
    let mut summary = Summary::default();
    let mut batch: Vec<Op> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut hasher = Hasher::new(id);
    while let Some(item) = rx.recv().await {
        let item = item?;
        summary.documents += 1;
        summary.bytes += item.text.len() as u64 + 1;
        batch_bytes += item.text.len();
        hasher.add(&item.text);
        batch.push(op(&item, id)?);
        if batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES {
            write_batch(
                engine,
                ns,
                std::mem::take(&mut batch),
                &hasher,
                &mut summary,
            )
            .await?;
            hasher = Hasher::new(id);
            batch_bytes = 0;
            bar.set_position(summary.bytes);
            bar.set_message(format!("{} documents", summary.documents));
        }
    }
    if !batch.is_empty() {
        write_batch(engine, ns, batch, &hasher, &mut summary).await?;
    }
    reading.await.context("the input reader stopped")??;
    bar.finish_and_clear();
    out.line(&serde_json::json!({
        "namespace": ns,
        "documents": summary.documents,
        "batches": summary.batches,
        "replayed_batches": summary.replayed_batches,
        "bytes": summary.bytes,
    }))?;
    Ok(summary)
}

fn open(input: Option<&Path>) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
    match input {
        None => Ok((Box::new(std::io::stdin()), None)),
        Some(p) if p.as_os_str() == "-" => Ok((Box::new(std::io::stdin()), None)),
        Some(p) => {
            let file = std::fs::File::open(p)
                .map_err(|e| InputError(format!("cannot read {}: {e}", p.display())))?;
            let len = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(file), len))
        }
    }
}

fn progress(total: Option<u64>) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{spinner} import: {bar:30} {binary_bytes}/{binary_total_bytes}, {msg}, {binary_bytes_per_sec}, ETA {eta}"
    } else {
        "{spinner} import: {binary_bytes}, {msg}, {binary_bytes_per_sec}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// The op for one document: an upsert of the whole object, id taken from
/// it.
fn op(item: &Item, id: &IdFrom) -> Result<Op> {
    let bad = |why: String| InputError(format!("{}: {why}", item.at));
    let json = parse_json(&item.text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let found = match id {
        IdFrom::Field(f) => json.get(f),
        IdFrom::Pointer(p) => json.pointer(p),
    };
    let id_text = match found {
        Some(Json::String(s)) => s.clone(),
        Some(Json::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(bad(format!(
                "the id ({}) must be a string or an integer, found {}",
                describe(id),
                reef_format::json_type_name(other)
            ))
            .into());
        }
        None => return Err(bad(format!("no id: {} is missing", describe(id))).into()),
    };
    let doc = document_from_json(&json, "document").map_err(|e| bad(e.to_string()))?;
    Ok(Op {
        kind: OpKind::Upsert,
        id: id_text,
        doc: Some(doc),
        precondition: None,
    })
}

fn describe(id: &IdFrom) -> String {
    match id {
        IdFrom::Field(f) => format!("field {f:?}"),
        IdFrom::Pointer(p) => format!("pointer {p:?}"),
    }
}

async fn write_batch(
    engine: &Engine,
    ns: &str,
    ops: Vec<Op>,
    hasher: &Hasher,
    summary: &mut Summary,
) -> Result<()> {
    let request = WriteRequest {
        ops,
        idempotency_key: Some(hasher.key()),
    };
    let ops_len = request.ops.len() as u64;
    let invalid = |field: String, reason: String, documents: u64| {
        InputError(format!(
            "batch {} (documents {}..): {field}: {reason}",
            summary.batches + 1,
            documents + 1 - ops_len
        ))
    };
    // Checked (documents encoded) once; a retry clones a pointer.
    let request = match request.check(engine.limits()) {
        Ok(checked) => checked,
        Err(FormatError::Invalid { field, reason }) => {
            return Err(invalid(field, reason, summary.documents).into());
        }
        Err(e) => return Err(Error::Format(e).into()),
    };
    let mut attempt = 1;
    let result = loop {
        match engine.write_checked(ns, request.clone()).await {
            Ok(r) => break r,
            // Temporary: wait and retry (the key makes it safe).
            Err(e) if e.kind() == reef_engine::ErrorKind::Transient && attempt < 8 => {
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt.min(6))).await;
                attempt += 1;
            }
            Err(Error::Invalid { field, reason, .. }) => {
                return Err(invalid(field, reason, summary.documents).into());
            }
            Err(e) => return Err(e.into()),
        }
    };
    summary.batches += 1;
    if result.replayed {
        summary.replayed_batches += 1;
    }
    Ok(())
}

/// The batch's idempotency key: its documents' text and the id option.
struct Hasher(xxhash_rust::xxh3::Xxh3);

impl Hasher {
    fn new(id: &IdFrom) -> Hasher {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        h.update(format!("{id:?}").as_bytes());
        Hasher(h)
    }

    fn add(&mut self, text: &str) {
        self.0.update(&(text.len() as u64).to_le_bytes());
        self.0.update(text.as_bytes());
    }

    fn key(&self) -> String {
        format!("import:{:032x}", self.0.digest128())
    }
}

/// Reads JSON lines, or one JSON array (the first non-blank byte is `[`),
/// sending each document's text. Runs on a blocking thread.
fn read_items(reader: Box<dyn Read + Send>, tx: &mpsc::Sender<Result<Item>>) -> Result<()> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let first = loop {
        let buf = reader.fill_buf()?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                let b = buf[i];
                reader.consume(i);
                break Some(b);
            }
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    match first {
        None => Ok(()),
        Some(b'[') => read_array(reader, tx),
        Some(_) => read_lines(reader, tx),
    }
}

fn read_lines(mut reader: impl BufRead, tx: &mpsc::Sender<Result<Item>>) -> Result<()> {
    let mut raw = Vec::new();
    for n in 1u64.. {
        raw.clear();
        // Bounded while read: a line longer than the limit stops here.
        let cap = DOC_TEXT_BYTES_MAX as u64 + 1;
        if (&mut reader).take(cap).read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        if raw.len() > DOC_TEXT_BYTES_MAX {
            let err = InputError(format!("line {n}: longer than {DOC_TEXT_BYTES_MAX} bytes"));
            let _ = tx.blocking_send(Err(err.into()));
            return Ok(());
        }
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t.trim(),
            Err(e) => {
                let err = InputError(format!("line {n}: not valid UTF-8 ({e})"));
                let _ = tx.blocking_send(Err(err.into()));
                return Ok(());
            }
        };
        if text.is_empty() {
            continue;
        }
        let item = Item {
            at: format!("line {n}"),
            text: text.to_owned(),
        };
        if tx.blocking_send(Ok(item)).is_err() {
            return Ok(()); // The writer stopped (an error it reports).
        }
    }
    Ok(())
}

fn read_array(reader: impl Read, tx: &mpsc::Sender<Result<Item>>) -> Result<()> {
    // One element at a time, each bounded while read (serde_json bounds
    // the nesting depth): the array is never held whole.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let capped = Capped {
        inner: reader,
        read: std::sync::Arc::clone(&read),
    };
    let mut de = serde_json::Deserializer::from_reader(capped);
    let sent = Elements { tx, read }
        .deserialize(&mut de)
        .map_err(|e| InputError(format!("the input array: {e}")))?;
    if sent {
        de.end()
            .map_err(|e| InputError(format!("after the input array: {e}")))?;
    }
    Ok(())
}

/// Sends each element of a JSON array as raw text, one at a time (so the
/// array is never held whole). Returns false if the receiver went away.
struct Elements<'a> {
    tx: &'a mpsc::Sender<Result<Item>>,
    /// Bytes read since the last element ended (reset here).
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A reader that fails once `DOC_TEXT_BYTES_MAX` bytes were read since the
/// last reset: one array element may not be longer.
struct Capped<R> {
    inner: R,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let n = self.inner.read(buf)?;
        let total = self.read.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > DOC_TEXT_BYTES_MAX as u64 {
            return Err(std::io::Error::other(format!(
                "an array element longer than {DOC_TEXT_BYTES_MAX} bytes"
            )));
        }
        Ok(n)
    }
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let mut n = 0u64;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            n += 1;
            let item = Item {
                at: format!("array element {n}"),
                text: raw.get().to_owned(),
            };
            self.read.store(0, std::sync::atomic::Ordering::Relaxed);
            if self.tx.blocking_send(Ok(item)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
