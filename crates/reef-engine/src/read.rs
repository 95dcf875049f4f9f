//! The read path: a point read or scan over a consistent view (memtable
//! plus the manifest's segments, at one version).
//!
//! A point read asks the memtable first (it holds everything newer than the
//! segments), then every segment whose id range covers the id, and keeps
//! the newest entry at or below the view's version; bloom filters make the
//! segments that lack the id nearly free. Scans merge all runs with
//! `MergeIter::visible`, hiding tombstones.

use std::ops::Bound;

use reef_format::{Document, Entry, FormatError, MergeIter, Tombstones, decode_document};

use crate::error::Result;
use crate::namespace::View;
use crate::sync::read_lock;

/// A document as reads return it.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    /// Its id.
    pub id: String,
    /// Version of its last change.
    pub version: u64,
    /// Its attributes.
    pub doc: Document,
}

/// Bounds of a scan, in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanRange {
    /// First id (inclusive).
    pub from: Option<String>,
    /// End id (exclusive).
    pub to: Option<String>,
    /// Only ids starting with this.
    pub prefix: Option<String>,
    /// At most this many documents.
    pub limit: Option<usize>,
}

/// The newest entry of `id` in the view, tombstones included.
pub(crate) async fn latest(view: &View, id: &str) -> Result<Option<Entry>> {
    if let Some(e) = read_lock(&view.memtable).get(id, view.at) {
        return Ok(Some(e));
    }
    let mut best: Option<Entry> = None;
    for seg in view.segments.iter() {
        let f = seg.footer();
        if id < f.min_id.as_str() || id > f.max_id.as_str() || f.min_version > view.at {
            continue;
        }
        if let Some(e) = seg.get(id, view.at).await?
            && best.as_ref().is_none_or(|b| e.version > b.version)
        {
            best = Some(e);
        }
    }
    Ok(best)
}

pub(crate) fn to_doc(e: Entry, object: &str) -> Result<Option<Doc>> {
    let Some(bytes) = e.doc() else {
        return Ok(None);
    };
    let doc = decode_document(bytes, object)?;
    Ok(Some(Doc {
        id: e.id,
        version: e.version,
        doc,
    }))
}

/// The visible document `id`, if any.
pub(crate) async fn get(view: &View, namespace: &str, id: &str) -> Result<Option<Doc>> {
    match latest(view, id).await? {
        Some(e) => to_doc(e, namespace),
        None => Ok(None),
    }
}

/// Visible documents in the range, in id order.
pub(crate) async fn scan(view: &View, namespace: &str, range: &ScanRange) -> Result<Vec<Doc>> {
    let limit = range.limit.unwrap_or(usize::MAX);
    if limit == 0 {
        return Ok(Vec::new());
    }
    // The effective lower bound is the later of `from` and `prefix`.
    let lower = match (&range.from, &range.prefix) {
        (Some(f), Some(p)) => Some(if f >= p { f.as_str() } else { p.as_str() }),
        (Some(f), None) => Some(f.as_str()),
        (None, Some(p)) => Some(p.as_str()),
        (None, None) => None,
    };
    let from = lower.map_or(Bound::Unbounded, Bound::Included);
    let to = range
        .to
        .as_deref()
        .map_or(Bound::Unbounded, Bound::Excluded);
    type Run = std::vec::IntoIter<Result<Entry, FormatError>>;
    let mut runs: Vec<Run> = Vec::with_capacity(view.segments.len() + 1);
    let mem: Vec<Result<Entry, FormatError>> = read_lock(&view.memtable)
        .range(from, to)
        .into_iter()
        .map(Ok)
        .collect();
    runs.push(mem.into_iter());
    for seg in view.segments.iter() {
        let entries = seg.scan(from, to, usize::MAX).await?;
        runs.push(entries.into_iter().map(Ok).collect::<Vec<_>>().into_iter());
    }
    let mut out = Vec::new();
    for e in MergeIter::visible(runs, view.at, Tombstones::Hide) {
        let e = e?;
        if let Some(p) = &range.prefix
            && !e.id.starts_with(p.as_str())
        {
            if e.id.as_str() > p.as_str() {
                break;
            }
            continue;
        }
        if let Some(doc) = to_doc(e, namespace)? {
            out.push(doc);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}
