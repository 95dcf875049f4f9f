//! The read path: a point read or scan over a consistent view (memtable
//! plus the manifest's segments, at one version).
//!
//! A point read asks the memtable first (it holds everything newer than the
//! segments), then the segments whose id range covers the id, newest first,
//! stopping once no later segment can hold a newer version; it keeps the
//! newest entry at or below the view's version; bloom filters make the
//! segments that lack the id nearly free. Scans are `scan`'s.

use reef_format::{Document, Entry, decode_document};

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
    // Newest first (`open_segments`): once a version is found, a segment
    // whose newest version is no newer cannot beat it, nor can any after.
    for seg in view.segments.iter() {
        let f = seg.footer();
        if best.as_ref().is_some_and(|b| f.max_version <= b.version) {
            break;
        }
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
