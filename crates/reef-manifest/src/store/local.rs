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
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_128;

use super::spares;
use super::{
    KeyPage, ListPage, Listed, Object, ObjectMeta, ObjectStore, PutOutcome, Tag, answer_bytes,
    check_range, page_of, validate_key, validate_prefix,
};
use crate::error::{Error, Result};
use crate::layout::is_wal_key;
use crate::rng::Rng;

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

    /// One blocking thread's share of a `get_many_within`: the runs of
    /// `keys` (`READS_PER_RUN` each, numbered from 0) that `next` hands
    /// out, until none is left or `read` (the bytes every thread of the
    /// call has read so far, counted as each object is read) reaches
    /// `bytes_max` (at least 1, so one run is read). A run taken is read
    /// whole, so the runs read by all threads together are `0..k` for some
    /// `k`, and they read at most `bytes_max` and one run each.
    fn read_runs(
        &self,
        keys: &[String],
        next: &AtomicUsize,
        read: &AtomicU64,
        bytes_max: u64,
    ) -> Vec<(usize, Vec<Result<Option<Object>>>)> {
        let mut runs = Vec::new();
        let mut scratch = Scratch::new();
        while read.load(Ordering::Relaxed) < bytes_max.max(1) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(run) = keys.chunks(READS_PER_RUN).nth(i) else {
                break;
            };
            runs.push((i, self.read_run(run, &mut scratch, read)));
        }
        runs
    }

    /// `get` of each of `keys`, in order, on this thread: WAL keys
    /// together (`spares::read_wal_batch`: one pool check for the run).
    /// Each object's bytes are added to `counted` as it is read (a read done
    /// again under the lock counts twice: the threads stop sooner).
    fn read_run(
        &self,
        keys: &[String],
        scratch: &mut Scratch,
        counted: &AtomicU64,
    ) -> Vec<Result<Option<Object>>> {
        let count = |b: io::Result<Vec<u8>>| {
            if let Ok(b) = &b {
                counted.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            b
        };
        // Each key checked once: its answer if it is bad, else whether it
        // is a WAL key.
        let kinds: Vec<Result<bool>> = keys
            .iter()
            .map(|k| validate_key(k).map(|()| is_wal_key(k)))
            .collect();
        let wal: Vec<PathBuf> = keys
            .iter()
            .zip(&kinds)
            .filter(|(_, kind)| matches!(kind, Ok(true)))
            .map(|(k, _)| self.root.join(k))
            .collect();
        let paths: Vec<&Path> = wal.iter().map(PathBuf::as_path).collect();
        let mut wal_reads =
            spares::read_wal_batch(&paths, |f| count(read_file_with(f, scratch))).into_iter();
        keys.iter()
            .zip(kinds)
            .map(|(key, kind)| {
                let read = if kind? {
                    // One answer per WAL key, in order: running out is a bug.
                    wal_reads
                        .next()
                        .unwrap_or_else(|| Err(io::Error::other("get_many lost a WAL read")))
                } else {
                    let got = read_opt(&self.root.join(key));
                    if let Ok(Some(b)) = &got {
                        counted.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    got
                };
                let read = read.map_err(|e| Error::io("get", key, e))?;
                Ok(read.map(|b| Object {
                    tag: tag_of(&b),
                    bytes: Bytes::from(b),
                }))
            })
            .collect()
    }

    /// The directory a prefix's last `/` ends, and its keys' prefix.
    fn dir_of(&self, prefix: &str) -> (PathBuf, String) {
        match prefix.rfind('/') {
            Some(i) => (self.root.join(&prefix[..i]), prefix[..=i].to_owned()),
            None => (self.root.clone(), String::new()),
        }
    }

    /// The objects under `prefix` after `start_after`, one more than a
    /// page (whether another page follows), with sizes if `sized`.
    async fn walk_prefix(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        sized: bool,
    ) -> Result<Vec<Listed>> {
        validate_prefix(prefix)?;
        let owned = prefix.to_owned();
        let (start_dir, dir_key) = self.dir_of(prefix);
        let after = start_after.map(str::to_owned);
        let want = limit.clamp(1, LOCAL_LIST_PAGE_MAX) + 1;
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            walk(
                &start_dir,
                &dir_key,
                &owned,
                after.as_deref(),
                want,
                sized,
                &mut out,
            )
            .map(|()| out)
        })
        .await
        .map_err(|e| join_failed("list", prefix, e))?
        .map_err(|e| Error::io("list", prefix, e))
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

/// Blocking calls one `get_many` spreads its keys over.
const GET_MANY_THREADS: usize = 2;

/// Keys a `get_many` thread takes and reads at a time (one check of a WAL
/// directory's spares pool each, `spares::read_wal_batch`): small, since
/// each thread may read one run past a byte budget's cut.
const READS_PER_RUN: usize = 16;

/// The answer for a key of a `get_many` whose blocking task failed.
fn task_failed(key: &str, message: &str) -> Error {
    Error::Backend {
        op: "get",
        key: key.to_owned(),
        message: format!("blocking task failed: {message}"),
        transient: false,
    }
}

/// `range` of the open file `f` and the file's size, or `Err(size)` if
/// the range does not fit the file.
fn read_range(f: &mut File, r: &Range<u64>) -> io::Result<std::result::Result<(Bytes, u64), u64>> {
    let size = f.metadata()?.len();
    if r.start > r.end || r.end > size {
        return Ok(Err(size));
    }
    f.seek(SeekFrom::Start(r.start))?;
    // Read into spare capacity: zeroing a buffer the read then overwrites
    // cost 3% of a cold scan (a ranged read is up to 1 MiB of read-ahead).
    let want = r.end - r.start;
    let mut buf = Vec::with_capacity(want as usize);
    f.take(want).read_to_end(&mut buf)?;
    if buf.len() as u64 != want {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {} of {want} bytes", buf.len()),
        ));
    }
    Ok(Ok((Bytes::from(buf), size)))
}

/// What `read_whole` reads before it asks the file's size.
const READ_GUESS_BYTES: usize = 16 << 10;

/// Reads a file whole. Most objects read whole are small (WAL records,
/// manifests, HEAD): they are read into a scratch buffer of
/// `READ_GUESS_BYTES` and copied out at their size, without asking their
/// size first, which spares a `statx` per object (`fs::read` sizes its
/// buffer with one; opening a namespace reads thousands of WAL objects).
/// A file that fills the scratch is sized then, and read on.
fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    read_file(&mut File::open(path)?)
}

/// `read_whole` on a file already open.
pub(super) fn read_file(f: &mut File) -> io::Result<Vec<u8>> {
    read_file_with(f, &mut Scratch::new())
}

/// `read_file`'s buffer, reused across the files of a batch: zeroing
/// 16 KiB per WAL object was a tenth of the user time of an open.
pub(super) struct Scratch(Box<[u8]>);

impl Scratch {
    pub(super) fn new() -> Scratch {
        Scratch(vec![0; READ_GUESS_BYTES].into_boxed_slice())
    }
}

/// `read_file` with a scratch buffer the caller reuses.
pub(super) fn read_file_with(f: &mut File, scratch: &mut Scratch) -> io::Result<Vec<u8>> {
    let scratch = &mut scratch.0;
    let mut filled = 0;
    while filled < READ_GUESS_BYTES {
        match f.read(scratch.get_mut(filled..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = scratch.get(..filled).unwrap_or_default();
    if filled < READ_GUESS_BYTES {
        return Ok(head.to_vec());
    }
    let size = usize::try_from(f.metadata()?.len()).unwrap_or(0);
    let mut buf = Vec::with_capacity(size.max(filled));
    buf.extend_from_slice(head);
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match read_whole(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // A directory where a file is expected: no such object.
        Err(e) if path.is_dir() => {
            let _ = e;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Collects files under `dir` (whose keys start with `dir_key`) that start
/// with `prefix`, skipping dot-files and directories that cannot match.
/// Appends to `out`, in key order, the objects below `dir` whose keys
/// start with `prefix` and sort after `after`, stopping once `out` holds
/// `want`. Entries are visited sorted by key (a directory `d` as `d/`,
/// which orders it exactly as the keys inside it), and a directory whose
/// keys all sort at or before `after` is skipped unread: a page costs the
/// directories it touches, not the whole prefix.
///
/// Without `sized`, every size is 0 and no file is `statx`ed: the entry's
/// type comes from the directory itself (`d_type`).
fn walk(
    dir: &Path,
    dir_key: &str,
    prefix: &str,
    after: Option<&str>,
    want: usize,
    sized: bool,
    out: &mut Vec<Listed>,
) -> io::Result<()> {
    let Some(entries) = entries(dir)? else {
        return Ok(());
    };
    // Only entries that can contribute are kept (and allocated for): a
    // WAL directory of 10,000 objects listed after its newest-but-one
    // key keeps one. Each is `(order, is_dir, entry)`, `order` being the
    // key, or `key/` for a directory.
    let mut sorted = Vec::new();
    for entry in entries {
        let (name, file_type, entry) = entry?;
        let is_dir = file_type.is_dir();
        if !is_dir && !file_type.is_file() && !sized {
            continue;
        }
        let mut order = String::with_capacity(dir_key.len() + name.len() + 1);
        order.push_str(dir_key);
        order.push_str(&name);
        let keep = if is_dir {
            // `order` is `key/`: every key inside extends it.
            order.push('/');
            let relevant = order.starts_with(prefix) || prefix.starts_with(&order);
            let all_before = after.is_some_and(|a| a > order.as_str() && !a.starts_with(&order));
            relevant && !all_before
        } else {
            order.starts_with(prefix) && after.is_none_or(|a| order.as_str() > a)
        };
        if keep {
            sorted.push((order, is_dir, entry));
        }
    }
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (order, is_dir, entry) in sorted {
        if out.len() >= want {
            break;
        }
        if is_dir {
            walk(&entry.path(), &order, prefix, after, want, sized, out)?;
        } else if !sized {
            out.push(Listed {
                key: order,
                size: 0,
            });
        } else {
            // A file deleted between read_dir and metadata is just gone.
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push(Listed {
                    key: order,
                    size: m.len(),
                }),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// An entry of a listed directory: its name, type and entry.
type Entry = (String, fs::FileType, fs::DirEntry);

/// The entries of `dir` that can be objects or hold them (`None` if `dir`
/// does not exist): UTF-8 names not starting with `.`, each with its type,
/// from the directory itself (`d_type`) or, where the file system does
/// not say, an `lstat`; an entry deleted since the directory was read is
/// just gone.
fn entries(dir: &Path) -> io::Result<Option<impl Iterator<Item = io::Result<Entry>>>> {
    let read = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(read.filter_map(|entry| {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Some(Err(e)),
        };
        let name = entry.file_name().into_string().ok()?;
        if name.starts_with('.') {
            return None;
        }
        match entry.file_type() {
            Ok(t) => Some(Ok((name, t, entry))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(e)),
        }
    })))
}

/// Whether any object below `dir` (whose keys start with `dir_key`)
/// starts with `prefix`: `walk`'s test on each entry, in directory order,
/// ending at the first file that passes (a directory's own files first,
/// then its subdirectories).
fn any_file(dir: &Path, dir_key: &str, prefix: &str) -> io::Result<bool> {
    let Some(entries) = entries(dir)? else {
        return Ok(false);
    };
    let mut subdirs = Vec::new();
    for entry in entries {
        let (name, file_type, entry) = entry?;
        let key = format!("{dir_key}{name}");
        if file_type.is_file() && key.starts_with(prefix) {
            return Ok(true);
        }
        if file_type.is_dir() {
            let order = key + "/";
            if order.starts_with(prefix) || prefix.starts_with(&order) {
                subdirs.push((entry.path(), order));
            }
        }
    }
    for (path, order) in subdirs {
        if any_file(&path, &order, prefix)? {
            return Ok(true);
        }
    }
    Ok(false)
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
        // Two blocking threads take runs of keys in turn, each reading its
        // runs in order: the work is the kernel's (opens and page-cache
        // copies), and it runs on two cores where one thread used one.
        // They stop taking runs once the bytes read reach the budget.
        let shared: Arc<[String]> = keys.into();
        let next = Arc::new(AtomicUsize::new(0));
        let read = Arc::new(AtomicU64::new(0));
        let threads = keys.len().div_ceil(READS_PER_RUN).min(GET_MANY_THREADS);
        let tasks = (0..threads).map(|_| {
            let (this, keys) = (self.clone(), Arc::clone(&shared));
            let (next, read) = (Arc::clone(&next), Arc::clone(&read));
            tokio::task::spawn_blocking(move || this.read_runs(&keys, &next, &read, bytes_max))
        });
        let mut runs = Vec::new();
        let mut failed = None;
        for task in futures_util::future::join_all(tasks).await {
            match task {
                Ok(part) => runs.extend(part),
                Err(e) => failed = Some(e.to_string()),
            }
        }
        runs.sort_unstable_by_key(|&(i, _)| i);
        let mut answers = Vec::with_capacity(keys.len());
        let mut bytes = 0u64;
        for (expected, (i, part)) in runs.into_iter().enumerate() {
            // A run a failed task took ends the prefix before it.
            if i != expected {
                break;
            }
            for answer in part {
                bytes = bytes.saturating_add(answer_bytes(&answer));
                answers.push(answer);
                if bytes >= bytes_max {
                    return answers;
                }
            }
        }
        // Cut short by a failed task: the first key it left unread says so.
        if let (Some(message), Some(key)) = (failed, keys.get(answers.len())) {
            answers.push(Err(task_failed(key, &message)));
        }
        answers
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
