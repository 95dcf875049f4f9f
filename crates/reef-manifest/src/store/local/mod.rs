//! The local-directory backend (the default store).
//!
//! Object `k` lives at `<root>/k`. The protocol, which closes the two gaps
//! of fusio 0.6's local `put_conditional` (no fsync before publishing; a
//! `.lock` file whose presence wedges every later CAS after a crash):
//!
//! - Every write goes to a fresh temporary file `.tmp-*` in the target's
//!   directory, is fsynced, and only then published; the directory is
//!   fsynced after publishing, and new directories are fsynced into their
//!   parents. So a published object is durable and whole.
//! - `put_if_absent` publishes with `link(2)`, which fails atomically if
//!   the name exists: of any number of processes exactly one wins, with no
//!   lock at all.
//! - `put`, `put_if_match` and `delete` hold an exclusive `flock(2)` on the
//!   directory's `.reef-flock` file (std's `File::lock`). The kernel drops
//!   the lock when its holder dies, so a crashed process can never wedge a
//!   later CAS; the file's mere existence means nothing.
//! - Tags are the XXH3-128 of the content.
//!
//! Why not fusio's `TokioFs` for the rest: it is a thin layer over
//! `tokio::fs` without rename-over, OS locks or error kinds we need, so the
//! backend uses `std::fs` on tokio's blocking pool directly. Leftover
//! `.tmp-*` files from a crash are invisible to `list` and `get`.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_128;

use super::spares;

mod list;
mod read;

use super::{
    KeyPage, ListPage, Object, ObjectMeta, ObjectStore, PutOutcome, Tag, check_range, page_of,
    validate_key, validate_prefix,
};
use crate::error::{Error, Result};
use crate::layout::is_wal_key;
use crate::rng::Rng;
use list::any_file;
pub(super) use read::read_file;
use read::{read_opt, read_range, task_failed};

const LOCK_FILE: &str = ".reef-flock";

/// Most keys one local `list` returns. A directory is read (and sorted)
/// whole for every page, so pages are as large as memory comfortably
/// allows: 100,000 keys is a few MiB.
const LOCAL_LIST_PAGE_MAX: usize = 100_000;
pub(super) static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Directories this process has made durable (fsynced up to the root).
static DURABLE_DIRS: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
/// A per-process random value for temporary names.
pub(super) static NONCE: LazyLock<u64> = LazyLock::new(|| {
    // The process it is drawn in, recorded with it: a child forked later
    // shares the nonce, and must not act on names made with it
    // (`spares/`).
    let _ = *NONCE_PROCESS;
    crate::rng::SystemRng::new().next_u64()
});
/// The process `NONCE` was drawn in.
pub(super) static NONCE_PROCESS: LazyLock<u32> = LazyLock::new(this_process);

/// This process's id: an identity check, not an id or nonce source.
#[allow(clippy::disallowed_methods)]
pub(super) fn this_process() -> u32 {
    std::process::id()
}

/// A bucket in a local directory.
#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
    cas_pause: Option<Duration>,
    /// Whether deleted WAL objects' inodes are reused (`spares/`).
    recycle: bool,
}

fn tag_of(bytes: &[u8]) -> Tag {
    // By hand: `format!("{:032x}")` cost more than the hash of a WAL
    // record (opening a namespace tags thousands).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = xxh3_128(bytes);
    let tag = (0..32)
        .rev()
        .map(|nibble| char::from(HEX[((hash >> (nibble * 4)) & 0xf) as usize]))
        .collect();
    Tag(tag)
}

impl LocalStore {
    /// A store rooted at `root` (created on first write).
    /// A relative `root` is resolved against the working directory now,
    /// so the store means one directory for its whole life.
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        let root = root.into();
        LocalStore {
            root: std::path::absolute(&root).unwrap_or(root),
            cas_pause: None,
            recycle: true,
        }
    }

    /// Whether GC's deletes of WAL objects lend their inodes to later WAL
    /// puts (`spares/`; on by default). Off, a store still reads WAL
    /// keys the safe way, since another process may recycle.
    pub fn with_recycling(mut self, on: bool) -> LocalStore {
        self.recycle = on;
        self
    }

    fn recycles(&self, key: &str) -> bool {
        self.recycle && is_wal_key(key)
    }

    /// Reads the object at `path` (key `key`) whole, if present.
    fn read_key(&self, key: &str, path: &Path) -> io::Result<Option<Vec<u8>>> {
        if is_wal_key(key) {
            spares::read_wal(path, read_file)
        } else {
            read_opt(path)
        }
    }

    /// For crash tests only: sleep this long inside `put_if_match` while
    /// holding the lock, after writing the new content but before
    /// publishing it, so a test can kill the process mid-CAS.
    pub fn with_cas_pause(mut self, pause: Duration) -> LocalStore {
        self.cas_pause = Some(pause);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        f: impl FnOnce(&LocalStore, &Path) -> io::Result<T> + Send + 'static,
    ) -> Result<T> {
        validate_key(key)?;
        let this = self.clone();
        let path = self.root.join(key);
        let owned_key = key.to_owned();
        tokio::task::spawn_blocking(move || f(&this, &path))
            .await
            .map_err(|e| join_failed(op, &owned_key, e))?
            .map_err(|e| Error::io(op, &owned_key, e))
    }

    /// `put_if_absent`'s work: a fsynced temporary file published with
    /// `link(2)` (which fails if the name exists), then the directory
    /// fsynced, by the loser too: it may act on the winner's object
    /// (e.g. roll forward to it), which must then be durable.
    fn link_new(&self, key: &str, path: &Path, bytes: &[u8]) -> io::Result<PutOutcome> {
        // A refilled spare if there is one (any failure to reuse one falls
        // back to a new file), else a temporary file; its name goes once
        // linked or not (a leftover is invisible, never a wrong answer).
        let spare = if self.recycles(key) {
            spares::refill(parent_of(path)?, bytes).ok().flatten()
        } else {
            None
        };
        let linked = match spare.map(|spare| link_then_drop(&spare, path)) {
            // A spare's name gone missing (which no Reef process does to a
            // live process's spare): a new file, as without recycling.
            Some(Err(e)) if e.kind() == io::ErrorKind::NotFound => None,
            linked => linked,
        };
        let linked = match linked {
            Some(linked) => linked,
            None => link_then_drop(&self.write_temp(path, bytes)?, path),
        };
        let outcome = match linked {
            Ok(()) => PutOutcome::Written(tag_of(bytes)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => PutOutcome::ConditionFailed,
            Err(e) => return Err(e),
        };
        sync_dir(parent_of(path)?)?;
        Ok(outcome)
    }

    /// Makes `dir` exist and be durable: created if missing, and the whole
    /// chain from it up to the root fsynced once per process. Another
    /// process (or a crashed one) may have created a directory without
    /// fsyncing it into its parent; an object published inside it would
    /// not survive power loss, so existence alone is not trusted.
    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        let durable = DURABLE_DIRS.get_or_init(Default::default);
        let known = |d: &Path| {
            durable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(d)
        };
        if known(dir) {
            return Ok(());
        }
        fs::create_dir_all(dir)?;
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if known(d) || d == self.root.parent().unwrap_or(&self.root) {
                break;
            }
            sync_dir(d)?;
            if let Some(parent) = d.parent() {
                sync_dir(parent)?;
            }
            durable
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.to_path_buf());
            if d == self.root {
                break;
            }
            cur = d.parent();
        }
        Ok(())
    }

    /// Writes `bytes` to a new, fsynced temporary file next to `path`. The
    /// name carries a per-process random nonce and a counter, so a
    /// restarted process never collides with a crashed one's leftovers.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
        let dir = parent_of(path)?;
        self.ensure_dir(dir)?;
        loop {
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".tmp-{:016x}-{n}", *NONCE));
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(mut f) => {
                    // A failed write (a full disk) must not leave the
                    // temporary file behind: nothing else would remove it.
                    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                    return Ok(tmp);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the directory's CAS lock (released on drop, or by the kernel
    /// if the process dies).
    fn lock_dir(&self, path: &Path) -> io::Result<File> {
        let dir = parent_of(path)?;
        self.ensure_dir(dir)?;
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))?;
        lock.lock()?;
        Ok(lock)
    }

    /// `delete_many`'s work, key by key in order: each key checked and
    /// removed under its directory's CAS lock, taken once per run of keys
    /// in one directory, and that directory synced once before the lock is
    /// let go, even when every key of the run was already gone (an earlier
    /// attempt, or another GC that has not synced yet, may have removed
    /// them: waiting for its lock and syncing makes its removals durable
    /// before this call says they are done).
    pub(super) fn remove_all(&self, keys: &[String]) -> Result<()> {
        // The directory whose lock is held, and the last key handled (what
        // a failed sync is reported as).
        let mut held: Option<Held> = None;
        let mut last = "";
        for key in keys {
            if let Err(e) = self.remove_one(key, &mut held, last) {
                // What went before is made durable; the first failure is
                // the answer either way.
                let _ = sync_held(held.take(), last);
                return Err(e);
            }
            last = key;
        }
        sync_held(held.take(), last)
    }

    /// One key of `remove_all`: moves `held` to the key's directory
    /// (syncing and releasing the one before), then removes the key.
    fn remove_one(&self, key: &str, held: &mut Option<Held>, last: &str) -> Result<()> {
        validate_key(key)?;
        let path = self.root.join(key);
        let dir = parent_of(&path).map_err(|e| Error::io("delete", key, e))?;
        if held.as_ref().is_none_or(|h| h.dir != dir) {
            sync_held(held.take(), last)?;
            // A directory that does not exist holds nothing to delete (and
            // taking its lock would create it).
            if !dir.exists() {
                return Ok(());
            }
            let lock = self
                .lock_dir(&path)
                .map_err(|e| Error::io("delete", key, e))?;
            *held = Some(Held {
                dir: dir.to_path_buf(),
                _lock: lock,
                retiring: None,
            });
        }
        let removed = if self.recycles(key)
            && let Some(h) = held.as_mut()
        {
            h.retiring
                .get_or_insert_with(|| spares::Retiring::begin(dir))
                .retire(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("delete", key, e)),
            _ => Ok(()),
        }
    }

    /// Publishes `tmp` as `path`, replacing it; caller holds the lock. A
    /// failed rename removes the temporary file.
    fn replace(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        if let Err(e) = fs::rename(tmp, path) {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        sync_dir(parent_of(path)?)
    }
}

/// A blocking task that panicked or was cancelled: not a storage answer,
/// and not worth retrying.
fn join_failed(op: &'static str, key: &str, e: tokio::task::JoinError) -> Error {
    Error::Backend {
        op,
        key: key.to_owned(),
        message: format!("blocking task failed: {e}"),
        transient: false,
    }
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "object path has no parent"))
}

/// Links `from` at `to`, then removes the name `from` either way.
fn link_then_drop(from: &Path, to: &Path) -> io::Result<()> {
    let linked = fs::hard_link(from, to);
    let _ = fs::remove_file(from);
    linked
}

pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory `remove_all` works in: its lock, and the WAL objects it
/// retired into the spare pool there, if any.
struct Held {
    dir: PathBuf,
    _lock: File,
    retiring: Option<spares::Retiring>,
}

/// Syncs the directory `remove_all` holds, if any, then offers the spares
/// it retired (only now can no crash bring their keys back), then lets
/// its lock go.
fn sync_held(held: Option<Held>, key: &str) -> Result<()> {
    let Some(h) = held else { return Ok(()) };
    if let Err(e) = sync_dir(&h.dir) {
        if let Some(retiring) = h.retiring {
            retiring.abandon();
        }
        return Err(Error::io("delete", key, e));
    }
    if let Some(retiring) = h.retiring {
        retiring.offer();
    }
    Ok(())
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let owned = key.to_owned();
        self.blocking("get", key, move |this, path| {
            Ok(this.read_key(&owned, path)?.map(|b| Object {
                tag: tag_of(&b),
                bytes: Bytes::from(b),
            }))
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(self.get_range_sized(key, range).await?.0)
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        // A key `<prefix><name>/…` lives in directory `<prefix><name>`:
        // one directory read, not a walk of everything below.
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let names = tokio::task::spawn_blocking(move || -> io::Result<Vec<String>> {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                // Absent, or a file where a directory would be: no names.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // A directory with no object in it (left by a failed or
                // deleted write) holds no key.
                if entry.file_type()?.is_dir()
                    && !name.starts_with('.')
                    && holds_object(&entry.path())?
                {
                    names.push(name);
                }
            }
            Ok(names)
        })
        .await
        .map_err(|e| join_failed("list_dirs", prefix, e))?
        .map_err(|e| Error::io("list_dirs", prefix, e))?;
        let mut names = names;
        names.sort();
        Ok(names)
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let r = range.clone();
        let owned = key.to_owned();
        let read = self
            .blocking("get_range_sized", key, move |_, path| {
                if is_wal_key(&owned) {
                    return spares::read_wal(path, |f| read_range(f, &r));
                }
                let mut f = match File::open(path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                read_range(&mut f, &r).map(Some)
            })
            .await?;
        match read {
            None => Err(Error::NotFound {
                key: key.to_owned(),
            }),
            Some(Ok(sized)) => Ok(sized),
            Some(Err(size)) => {
                check_range(key, &range, size)?;
                Err(Error::NotFound {
                    key: key.to_owned(),
                })
            }
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        // Tags are content hashes, so head reads the object; it is used on
        // small control objects, never on the read path of segments.
        let owned = key.to_owned();
        self.blocking("head", key, move |this, path| {
            Ok(this.read_key(&owned, path)?.map(|b| ObjectMeta {
                size: b.len() as u64,
                tag: tag_of(&b),
            }))
        })
        .await
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.blocking("put", key, move |this, path| {
            let _lock = this.lock_dir(path)?;
            let tmp = this.write_temp(path, &bytes)?;
            this.replace(&tmp, path)
        })
        .await
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        let owned = key.to_owned();
        self.blocking("put_if_absent", key, move |this, path| {
            this.link_new(&owned, path, &bytes)
        })
        .await
    }

    async fn put_if_absent_then_get(
        &self,
        key: &str,
        bytes: Bytes,
        then: &str,
    ) -> Result<(PutOutcome, Option<Object>)> {
        validate_key(then)?;
        let then_path = self.root.join(then);
        let then_key = then.to_owned();
        let (owned, then_owned) = (key.to_owned(), then_key.clone());
        let (outcome, read) = self
            .blocking("put_if_absent", key, move |this, path| {
                let outcome = this.link_new(&owned, path, &bytes)?;
                // Only after the put is durable, as a second call would.
                Ok((outcome, this.read_key(&then_owned, &then_path)))
            })
            .await?;
        let read = read.map_err(|e| Error::io("get", &then_key, e))?;
        Ok((
            outcome,
            read.map(|b| Object {
                tag: tag_of(&b),
                bytes: Bytes::from(b),
            }),
        ))
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        let expected = expected.clone();
        let owned = key.to_owned();
        self.blocking("put_if_match", key, move |this, path| {
            let _lock = this.lock_dir(path)?;
            match this.read_key(&owned, path)? {
                Some(current) if tag_of(&current) == expected => {}
                _ => return Ok(PutOutcome::ConditionFailed),
            }
            let tmp = this.write_temp(path, &bytes)?;
            if let Some(pause) = this.cas_pause {
                #[allow(
                    clippy::disallowed_methods,
                    reason = "a test pause inside a blocking task, holding the directory lock"
                )]
                std::thread::sleep(pause);
            }
            this.replace(&tmp, path)?;
            Ok(PutOutcome::Written(tag_of(&bytes)))
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let all = self.walk_prefix(prefix, start_after, limit, true).await?;
        Ok(page_of(all, start_after, limit, LOCAL_LIST_PAGE_MAX))
    }

    async fn list_keys(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage> {
        let all = self.walk_prefix(prefix, start_after, limit, false).await?;
        let page = page_of(all, start_after, limit, LOCAL_LIST_PAGE_MAX);
        Ok(KeyPage {
            keys: page.objects.into_iter().map(|o| o.key).collect(),
            next: page.next,
        })
    }

    async fn any_under(&self, prefix: &str) -> Result<bool> {
        validate_prefix(prefix)?;
        let (dir, dir_key) = self.dir_of(prefix);
        let owned = prefix.to_owned();
        tokio::task::spawn_blocking(move || any_file(&dir, &dir_key, &owned))
            .await
            .map_err(|e| join_failed("list", prefix, e))?
            .map_err(|e| Error::io("list", prefix, e))
    }

    fn list_page_max(&self) -> usize {
        LOCAL_LIST_PAGE_MAX
    }

    async fn get_many(&self, keys: &[String]) -> Vec<Result<Option<Object>>> {
        let mut answers = self.get_many_within(keys, u64::MAX).await;
        // Short only after a blocking task failed (its error answers the
        // first key left): the others are unanswered for the same reason.
        let rest = keys.get(answers.len()..).unwrap_or_default();
        answers.extend(
            rest.iter()
                .map(|key| Err(task_failed(key, "another task of the batch failed"))),
        );
        answers
    }

    async fn get_many_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
        self.get_within(keys, bytes_max).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.blocking("delete", key, |this, path| {
            if !path.exists() {
                return Ok(());
            }
            let _lock = this.lock_dir(path)?;
            match fs::remove_file(path) {
                Ok(()) => sync_dir(parent_of(path)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let Some(first) = keys.first() else {
            return Ok(());
        };
        let (this, owned) = (self.clone(), keys.to_vec());
        tokio::task::spawn_blocking(move || this.remove_all(&owned))
            .await
            .map_err(|e| join_failed("delete", first, e))?
    }
}

/// Whether any object (not a temporary or lock file) lies below `dir`;
/// stops at the first.
fn holds_object(dir: &Path) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_file() || (kind.is_dir() && holds_object(&entry.path())?) {
            return Ok(true);
        }
    }
    Ok(false)
}
