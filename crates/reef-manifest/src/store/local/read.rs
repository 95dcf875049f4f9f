//! The local store's reads: whole objects into a reused scratch buffer,
//! ranges, and batches (`get_many_within`: two blocking threads taking
//! runs of keys in turn, counting the bytes they read against the
//! caller's budget; WAL keys through `spares::read_wal_batch`).
//!
//! Invariant: a batch answers a prefix of its keys, in key order, each
//! answer the one `get` would give for that key.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;

use super::super::{Object, Within, spares, validate_key};
use super::{LocalStore, tag_of};
use crate::error::{Error, Result};
use crate::layout::is_wal_key;

impl LocalStore {
    /// `get_many_within`: two blocking threads take runs of keys in turn,
    /// each reading its runs in order, until the bytes read reach the
    /// budget (the work is the kernel's, opens and page-cache copies, and
    /// it runs on two cores where one thread used one); the answers are
    /// put back in key order and cut.
    pub(super) async fn get_within(
        &self,
        keys: &[String],
        bytes_max: u64,
    ) -> Vec<Result<Option<Object>>> {
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
        let mut answers = Within::new(bytes_max);
        for (expected, (i, part)) in runs.into_iter().enumerate() {
            // A run a failed task took ends the prefix before it.
            if i != expected || part.into_iter().any(|answer| answers.push(answer)) {
                break;
            }
        }
        // Cut short by a failed task: the first key it left unread says so.
        if !answers.full()
            && let (Some(message), Some(key)) = (failed, keys.get(answers.len()))
        {
            answers.push(Err(task_failed(key, &message)));
        }
        answers.into_answers()
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
}

/// Blocking calls one `get_many` spreads its keys over.
const GET_MANY_THREADS: usize = 2;

/// Keys a `get_many` thread takes and reads at a time (one check of a WAL
/// directory's spares pool each, `spares::read_wal_batch`): small, since
/// each thread may read one run past a byte budget's cut.
const READS_PER_RUN: usize = 16;

/// The answer for a key of a `get_many` whose blocking task failed.
pub(super) fn task_failed(key: &str, message: &str) -> Error {
    Error::Backend {
        op: "get",
        key: key.to_owned(),
        message: format!("blocking task failed: {message}"),
        transient: false,
    }
}

/// `range` of the open file `f` and the file's size, or `Err(size)` if
/// the range does not fit the file.
pub(super) fn read_range(
    f: &mut File,
    r: &Range<u64>,
) -> io::Result<std::result::Result<(Bytes, u64), u64>> {
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
pub(in crate::store) fn read_file(f: &mut File) -> io::Result<Vec<u8>> {
    read_file_with(f, &mut Scratch::new())
}

/// `read_file`'s buffer, reused across the files of a batch: zeroing
/// 16 KiB per WAL object was a tenth of the user time of an open.
struct Scratch(Box<[u8]>);

impl Scratch {
    fn new() -> Scratch {
        Scratch(vec![0; READ_GUESS_BYTES].into_boxed_slice())
    }
}

/// `read_file` with a scratch buffer the caller reuses.
fn read_file_with(f: &mut File, scratch: &mut Scratch) -> io::Result<Vec<u8>> {
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

pub(super) fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
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
