//! A store whose every request is one step under a loom mutex, so loom
//! models can run this crate's real async code (`loom::future::block_on`)
//! and explore how concurrent requests interleave. Semantics follow the
//! conformance suite: put-if-absent and put-if-match are atomic, deleting
//! a missing key succeeds, a tag changes with every write.

use std::collections::BTreeMap;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use loom::sync::Mutex;

use crate::error::{Error, Result};
use crate::store::{ListPage, Listed, Object, ObjectMeta, ObjectStore, PutOutcome, Tag};

#[derive(Default)]
struct Bucket {
    objects: BTreeMap<String, (Bytes, Tag)>,
    writes: u64,
}

impl Bucket {
    fn write(&mut self, key: &str, bytes: Bytes) -> Tag {
        self.writes += 1;
        let tag = Tag(self.writes.to_string());
        self.objects.insert(key.to_owned(), (bytes, tag.clone()));
        tag
    }
}

/// The loom-aware in-memory store.
#[derive(Default)]
pub(crate) struct LoomStore(Mutex<Bucket>);

impl std::fmt::Debug for LoomStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoomStore")
    }
}

/// Stack for every model thread, in words (loom hands it to `generator`,
/// which counts `usize`s). Loom's default is 32 KiB, and this crate's
/// async code keeps whole futures on the stack under `block_on`: how much
/// that takes depends on the compiler and build, not on the model, so a
/// model that fits on one machine overflowed ("coroutine has overflowed
/// its stack") on another. 1 MiB leaves room for any build.
const STACK_WORDS: usize = (1 << 20) / std::mem::size_of::<usize>();

/// `loom::model`, with the body run on a thread with [`STACK_WORDS`] of
/// stack (loom's first thread always gets the default).
pub(crate) fn model(body: impl Fn() + Send + Sync + 'static) {
    let body = std::sync::Arc::new(body);
    loom::model(move || {
        let body = body.clone();
        spawn(move || body()).join().unwrap();
    });
}

/// `loom::thread::spawn` with [`STACK_WORDS`] of stack.
pub(crate) fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> loom::thread::JoinHandle<T> {
    loom::thread::Builder::new()
        .stack_size(STACK_WORDS)
        .spawn(f)
        .expect("a loom thread spawns")
}

fn not_found(key: &str) -> Error {
    Error::NotFound {
        key: key.to_owned(),
    }
}

#[async_trait]
impl ObjectStore for LoomStore {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let b = self.0.lock().unwrap();
        Ok(b.objects.get(key).map(|(bytes, tag)| Object {
            bytes: bytes.clone(),
            tag: tag.clone(),
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(self.get_range_sized(key, range).await?.0)
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let b = self.0.lock().unwrap();
        let (bytes, _) = b.objects.get(key).ok_or_else(|| not_found(key))?;
        crate::store::check_range(key, &range, bytes.len() as u64)?;
        let part = bytes.slice(range.start as usize..range.end as usize);
        Ok((part, bytes.len() as u64))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let b = self.0.lock().unwrap();
        Ok(b.objects.get(key).map(|(bytes, tag)| ObjectMeta {
            size: bytes.len() as u64,
            tag: tag.clone(),
        }))
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.0.lock().unwrap().write(key, bytes);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let mut b = self.0.lock().unwrap();
        if b.objects.contains_key(key) {
            return Ok(PutOutcome::ConditionFailed);
        }
        Ok(PutOutcome::Written(b.write(key, bytes)))
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        let mut b = self.0.lock().unwrap();
        if b.objects.get(key).is_none_or(|(_, tag)| tag != expected) {
            return Ok(PutOutcome::ConditionFailed);
        }
        Ok(PutOutcome::Written(b.write(key, bytes)))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let b = self.0.lock().unwrap();
        let objects: Vec<Listed> = b
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && start_after.is_none_or(|s| k.as_str() > s))
            .take(limit)
            .map(|(k, (bytes, _))| Listed {
                key: k.clone(),
                size: bytes.len() as u64,
            })
            .collect();
        let next = (objects.len() == limit)
            .then(|| objects.last().map(|o| o.key.clone()))
            .flatten();
        Ok(ListPage { objects, next })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.0.lock().unwrap().objects.remove(key);
        Ok(())
    }
}
