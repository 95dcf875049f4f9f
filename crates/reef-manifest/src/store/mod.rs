//! The object-store abstraction: exactly the operations Reef needs, with
//! the same semantics on every backend (DESIGN §5).
//!
//! Semantics every backend keeps (checked by `tests/conformance.rs`):
//! - `put_if_absent` creates the object only if no object has the key; of
//!   any number of concurrent callers exactly one gets `Created`.
//! - `put_if_match` replaces the object only if its current tag equals the
//!   given one; a missing object is a mismatch (S3 answers 404 there).
//! - An object is visible whole or not at all; `put` replaces atomically.
//! - `list` returns keys that start with the prefix (plain string prefix:
//!   callers end prefixes with `/`), sorted bytewise, in pages.
//! - `delete` of a missing key succeeds (idempotent).
//! - Tags are opaque; equal tags mean equal content (S3 ETag, content
//!   hash on local disk, generation on memory).
//!
//! Keys are restricted (see `validate_key`) because backends encode other
//! characters differently (a fusio quirk) and because dot-segments are
//! reserved for the local backend's temporary files.

mod counting;
mod faulty;
mod local;
mod memory;
mod retrying;
mod s3;
mod spares;
mod url;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};

pub use counting::{CountingStore, StoreCounts};
pub use faulty::{FaultPlan, FaultyStore};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use retrying::RetryingStore;
pub use s3::{S3Config, S3Credentials, S3Store};
pub use url::{STORE_URL_FORMS, StoreUrl, open_store};

/// Longest object key.
pub const KEY_BYTES_MAX: usize = 1024;
/// Largest page `list` returns.
pub const LIST_PAGE_MAX: usize = 1000;

/// Requests one default `get_many` keeps in flight: enough to hide an
/// S3 round trip behind the others, few enough for any endpoint.
const GETS_IN_FLIGHT: usize = 64;

/// An opaque version tag of an object's content (an ETag).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag(pub String);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object's bytes with its tag.
#[derive(Clone, Debug)]
pub struct Object {
    /// The content.
    pub bytes: Bytes,
    /// Its tag, for a later `put_if_match`.
    pub tag: Tag,
}

/// Size and tag of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// Content tag.
    pub tag: Tag,
}

/// A conditional put's outcome. A failed condition is an answer, not an
/// error: losing a race is normal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written; its new tag.
    Written(Tag),
    /// The condition did not hold; nothing was written.
    ConditionFailed,
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects, sorted by key.
    pub objects: Vec<Listed>,
    /// Pass as `start_after` to get the next page; `None` at the end.
    pub next: Option<String>,
}

/// One page of a listing of keys only (`ObjectStore::list_keys`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys, sorted.
    pub keys: Vec<String>,
    /// Pass as `start_after` to get the next page; `None` at the end.
    pub next: Option<String>,
}

/// The operations Reef performs on a bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// The whole object, or `None` if absent.
    async fn get(&self, key: &str) -> Result<Option<Object>>;

    /// Bytes `range` of an object; the range must lie inside it.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;

    /// Bytes `range` of an object (the range must lie inside it) and the
    /// object's whole size, in one request: a reader that knows the size
    /// an object should have (a segment's, from its manifest) learns from
    /// the same GET whether bytes were appended or cut.
    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)>;

    /// Size and tag, or `None` if absent.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Several objects, in `keys` order: `get` for each, up to
    /// `GETS_IN_FLIGHT` at once, one answer per key (an error for one key
    /// is that key's answer, so a caller reading in order sees exactly
    /// what sequential `get`s would have told it). A backend may serve the
    /// batch in one go: a local directory reads it in blocking calls
    /// instead of a thread hop per object.
    async fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Object>>> {
        use futures_util::StreamExt;
        // Made up front (a future does nothing until polled): mapping
        // inside the stream trips a higher-ranked `Send` bound.
        let gets: Vec<_> = keys.iter().map(|k| self.get(k)).collect();
        futures_util::stream::iter(gets)
            .buffered(GETS_IN_FLIGHT)
            .collect()
            .await
    }

    /// A prefix of what `get_many(keys)` answers: at least one answer (if
    /// any key was asked), and none after the one that brings the bytes
    /// answered to `bytes_max` or past it (an absence or an error counts
    /// none). A backend may end it sooner; the caller asks again for the
    /// rest. A caller reading objects of unknown sizes bounds a batch by
    /// bytes this way: the answers hold at most `bytes_max` bytes and one
    /// object more. Reads in flight at the cut are read and dropped: here
    /// up to `GETS_IN_FLIGHT` objects; a local directory's threads read
    /// at most `bytes_max` and a run of 16 each.
    async fn get_many_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
        let mut answers = Within::new(bytes_max);
        for chunk in keys.chunks(GETS_IN_FLIGHT) {
            let got = self.get_many(chunk).await;
            if got.len() != chunk.len() {
                // A bug in the backend: no answer may be taken for another
                // key's. The first key of the chunk carries it.
                answers.push(Err(Error::Backend {
                    op: "get",
                    key: chunk.first().cloned().unwrap_or_default(),
                    message: format!("get_many answered {} of {} keys", got.len(), chunk.len()),
                    transient: false,
                }));
                break;
            }
            if got.into_iter().any(|answer| answers.push(answer)) {
                break;
            }
        }
        answers.into_answers()
    }

    /// Writes (or replaces) the object durably. (No tag: S3's streaming
    /// upload does not return one; callers that need it use `head`.)
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()>;

    /// Writes the object durably only if the key is free.
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome>;

    /// `put_if_absent(key, bytes)` and then, once it has succeeded,
    /// `get(then)`: for a writer that must read a pointer after its put
    /// has landed (the stale-writer fence reads HEAD after each WAL put).
    /// The get starts only after the put returned, as two calls in turn
    /// would; a local directory makes both in one blocking call, sparing
    /// a commit two thread hops (each a wake-up of an idle core).
    async fn put_if_absent_then_get(
        &self,
        key: &str,
        bytes: Bytes,
        then: &str,
    ) -> Result<(PutOutcome, Option<Object>)> {
        // A bad key for the get must not leave the put done.
        validate_key(then)?;
        let outcome = self.put_if_absent(key, bytes).await?;
        Ok((outcome, self.get(then).await?))
    }

    /// Replaces the object only if its current tag is `expected`.
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome>;

    /// Up to `limit` (≤ `list_page_max()`) objects whose keys start with
    /// `prefix` and sort after `start_after`, in key order.
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize)
    -> Result<ListPage>;

    /// As `list`, for callers that need only the keys (a page of keys, not
    /// of objects with sizes). A local directory then spares a `statx` per
    /// object, which is most of what listing 10,000 WAL objects costs on
    /// opening a namespace; elsewhere it is `list` without the sizes.
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let page = self.list(prefix, start_after, limit).await?;
        Ok(KeyPage {
            keys: page.objects.into_iter().map(|o| o.key).collect(),
            next: page.next,
        })
    }

    /// Whether any object's key starts with `prefix`: `list_keys` of one
    /// key, unless the backend can tell without finding the first one (a
    /// local directory is read whole and sorted to find the first key; any
    /// key ends the search at the first file met).
    async fn any_under(&self, prefix: &str) -> Result<bool> {
        Ok(!self.list_keys(prefix, None, 1).await?.keys.is_empty())
    }

    /// Most objects one `list` call returns: S3's 1,000 (`LIST_PAGE_MAX`)
    /// unless the backend does better. Callers paging through a prefix ask
    /// for this many: a local directory is read whole for every page, so
    /// 1,000-key pages made listing 10,000 WAL objects cost ten reads.
    fn list_page_max(&self) -> usize {
        LIST_PAGE_MAX
    }

    /// Deletes the object; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Deletes the objects in order, as `delete` each would, and stops at
    /// the first failure (the keys before it are deleted, though perhaps
    /// not yet durably); `Ok` means every key is gone, durably. A backend
    /// may do the batch in one go: a local directory removes them in one
    /// blocking call and syncs each directory once, not once per object
    /// (GC deletes thousands of WAL objects at a time, and every sync
    /// flushes the disk's cache under the writers' own puts).
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    /// The distinct names one level below `prefix` (which ends with `/`):
    /// for keys `<prefix><name>/…`, each `name`, sorted. S3 answers it
    /// with a delimiter listing (names only); this default lists every
    /// key, which suits small or in-memory stores.
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = list_all(self, prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                let rest = o.key.strip_prefix(prefix)?;
                let (name, _) = rest.split_once('/')?;
                Some(name.to_owned())
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// A shared, dynamically chosen store.
pub type DynStore = Arc<dyn ObjectStore>;

/// A shared store is a store, so wrappers compose over `DynStore`.
#[async_trait]
impl ObjectStore for DynStore {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        self.as_ref().get(key).await
    }
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.as_ref().get_range(key, range).await
    }
    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        self.as_ref().get_range_sized(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.as_ref().head(key).await
    }
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.as_ref().put(key, bytes).await
    }
    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        self.as_ref().put_if_absent(key, bytes).await
    }
    async fn put_if_absent_then_get(
        &self,
        key: &str,
        bytes: Bytes,
        then: &str,
    ) -> Result<(PutOutcome, Option<Object>)> {
        self.as_ref().put_if_absent_then_get(key, bytes, then).await
    }
    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        self.as_ref().put_if_match(key, bytes, expected).await
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        self.as_ref().list(prefix, start_after, limit).await
    }
    async fn any_under(&self, prefix: &str) -> Result<bool> {
        self.as_ref().any_under(prefix).await
    }
    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        self.as_ref().list_keys(prefix, start_after, limit).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.as_ref().delete(key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.as_ref().delete_many(keys).await
    }
    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.as_ref().list_dirs(prefix).await
    }
    fn list_page_max(&self) -> usize {
        self.as_ref().list_page_max()
    }
    async fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Object>>> {
        self.as_ref().get_many(keys).await
    }
    async fn get_many_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
        self.as_ref().get_many_within(keys, bytes_max).await
    }
}

/// The answers of a `get_many_within` as they are gathered in key order:
/// the one place that says where the byte budget cuts them.
pub(crate) struct Within {
    answers: Vec<Result<Option<Object>>>,
    bytes: u64,
    bytes_max: u64,
}

impl Within {
    pub(crate) fn new(bytes_max: u64) -> Within {
        Within {
            answers: Vec::new(),
            bytes: 0,
            bytes_max,
        }
    }

    /// Adds the next answer; whether the budget is now reached, so that
    /// no answer may follow it.
    pub(crate) fn push(&mut self, answer: Result<Option<Object>>) -> bool {
        self.bytes = self.bytes.saturating_add(answer_bytes(&answer));
        self.answers.push(answer);
        self.full()
    }

    /// Whether the budget is reached.
    pub(crate) fn full(&self) -> bool {
        self.bytes >= self.bytes_max && !self.answers.is_empty()
    }

    /// How many answers there are.
    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }

    pub(crate) fn into_answers(self) -> Vec<Result<Option<Object>>> {
        self.answers
    }
}

/// The bytes an answer of `get_many` holds.
pub(crate) fn answer_bytes(answer: &Result<Option<Object>>) -> u64 {
    match answer {
        Ok(Some(o)) => o.bytes.len() as u64,
        _ => 0,
    }
}

/// Every object under `prefix`, following pages.
pub async fn list_all<S: ObjectStore + ?Sized>(store: &S, prefix: &str) -> Result<Vec<Listed>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list(prefix, after.as_deref(), store.list_page_max())
            .await?;
        out.extend(page.objects);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Checks an object key: 1..=1024 bytes of `[A-Za-z0-9/._-]`, no leading,
/// trailing or doubled `/`, and no segment starting with `.`.
pub fn validate_key(key: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return bad("must be 1..=1024 bytes");
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: format!("character {c:?} is not in [A-Za-z0-9/._-]"),
        });
    }
    if key.split('/').any(|seg| seg.is_empty()) {
        return bad("empty path segment (leading, trailing or doubled '/')");
    }
    if key.split('/').any(|seg| seg.starts_with('.')) {
        return bad("a path segment may not start with '.'");
    }
    Ok(())
}

/// Checks a list prefix: empty, or a key-like string that may end in `/`.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/') {
        Some("") => validate_key(prefix),
        Some(stem) => validate_key(stem),
        None if prefix.is_empty() => Ok(()),
        None => validate_key(prefix),
    }
}

/// Sorts candidate objects by key and applies `start_after` and `limit`
/// (the tail every backend's `list` shares).
pub(crate) fn page_of(
    mut all: Vec<Listed>,
    start_after: Option<&str>,
    limit: usize,
    page_max: usize,
) -> ListPage {
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let limit = limit.clamp(1, page_max);
    let mut objects: Vec<Listed> = all
        .into_iter()
        .filter(|o| start_after.is_none_or(|after| o.key.as_str() > after))
        .take(limit + 1)
        .collect();
    let next = if objects.len() > limit {
        objects.truncate(limit);
        objects.last().map(|o| o.key.clone())
    } else {
        None
    };
    ListPage { objects, next }
}

/// Checks a range request against an object size.
pub(crate) fn check_range(key: &str, range: &Range<u64>, size: u64) -> Result<()> {
    if range.start > range.end || range.end > size {
        return Err(Error::RangeOutOfBounds {
            key: key.to_owned(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_rules() {
        for ok in ["a", "ns/x/wal/00000000000000000001.wal", "A-b_c.d/e"] {
            validate_key(ok).unwrap();
        }
        for bad in [
            "", "/a", "a/", "a//b", "a b", "a+b", "ns/.tmp", "./a", "a/../b", "é",
        ] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        validate_prefix("").unwrap();
        validate_prefix("ns/").unwrap();
        assert!(validate_prefix("/").is_err());
    }

    #[test]
    fn paging_is_exclusive_and_complete() {
        let all: Vec<Listed> = (0..5)
            .map(|i| Listed {
                key: format!("k{i}"),
                size: 1,
            })
            .collect();
        let p1 = page_of(all.clone(), None, 2, LIST_PAGE_MAX);
        assert_eq!(p1.objects.len(), 2);
        let p2 = page_of(all.clone(), p1.next.as_deref(), 2, LIST_PAGE_MAX);
        assert_eq!(p2.objects[0].key, "k2");
        let p3 = page_of(all, p2.next.as_deref(), 2, LIST_PAGE_MAX);
        assert_eq!((p3.objects.len(), p3.next), (1, None));
    }
}
