//! Reading WAL objects when their inodes may be reused (the readers' half
//! of the protocol in `spares/mod.rs`): under a shared `flock`, keeping an
//! answer only if the key still names the inode read; without a lock while
//! this boot has no pool in the key's directory.

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::boot_pool;

/// WAL directories whose pool this process has seen exist this boot
/// (pools are never removed within their boot).
static POOLS_SEEN: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Reads the WAL object at `path` with `read`, for any reader in any
/// store: `None` if the key names nothing. Until this boot has a pool in
/// the key's directory, the read takes no lock and checks the pool
/// afterwards instead: a refill needs a spare in that pool, and the pool
/// is made before its first spare and never removed within the boot, so
/// a pool missing after the read means nothing refilled the inode during
/// it. (An unreadable boot id means always locking.) Opening a namespace
/// reads thousands of WAL objects this way, one path lookup each instead
/// of a lock, an `fstat` and a path lookup.
pub(in crate::store) fn read_wal<T>(
    path: &Path,
    read: impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<T>> {
    read_wal_batch(&[path], read)
        .pop()
        .unwrap_or_else(|| Err(io::Error::other("read_wal_batch lost a read")))
}

/// `read_wal` for several WAL objects, with one pool check per directory
/// after all the unlocked reads (opening a namespace reads thousands).
pub(in crate::store) fn read_wal_batch<T>(
    paths: &[&Path],
    mut read: impl FnMut(&mut File) -> io::Result<T>,
) -> Vec<io::Result<Option<T>>> {
    // Unlocked reads where this boot's pool has not been seen, each with
    // the pool to check.
    let mut unlocked: Vec<Option<(PathBuf, io::Result<Option<T>>)>> = paths
        .iter()
        .map(|path| {
            let pool = path.parent().and_then(boot_pool).filter(|p| !seen(p))?;
            Some((pool, read_unlocked(path, &mut read)))
        })
        .collect();
    // Then each directory's pool, once: present (or unknown), its reads
    // count for nothing and are done again under the lock.
    let mut absent: Vec<(PathBuf, bool)> = Vec::new();
    for slot in unlocked.iter_mut() {
        let Some((pool, _)) = slot else { continue };
        let still_absent = match absent.iter().find(|(p, _)| p == pool) {
            Some(&(_, a)) => a,
            None => {
                let a = pool_absent(pool);
                absent.push((pool.clone(), a));
                a
            }
        };
        if !still_absent {
            *slot = None;
        }
    }
    paths
        .iter()
        .zip(unlocked)
        .map(|(path, slot)| match slot {
            Some((_, answer)) => answer,
            None => read_locked(path, &mut read),
        })
        .collect()
}

/// One read of `read_wal_batch` without a lock.
fn read_unlocked<T>(
    path: &Path,
    read: &mut impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<T>> {
    match File::open(path) {
        Ok(mut f) => match read(&mut f) {
            Ok(answer) => Ok(Some(answer)),
            // A directory where a file is expected: no object.
            Err(e) if e.kind() == io::ErrorKind::IsADirectory => Ok(None),
            Err(e) => Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether this process has seen `pool` exist (it stays, within its boot).
fn seen(pool: &Path) -> bool {
    POOLS_SEEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(pool)
}

/// Whether `pool` is known not to exist; one seen is remembered.
fn pool_absent(pool: &Path) -> bool {
    match fs::symlink_metadata(pool) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        // Unknown: treated as present, so the reads take the lock.
        Err(_) => false,
        Ok(_) => {
            POOLS_SEEN
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pool.to_path_buf());
            false
        }
    }
}

/// Times a read of a WAL key starts over because the key came to name
/// another inode under it, before it gives up.
const REREADS_MAX: usize = 8;

/// Runs `read` on the WAL object at `path` under a shared lock, and keeps
/// its answer (or its error) only if `path` still names the inode read:
/// a refused lock (a refill in progress) or another inode means the key
/// was deleted or replaced during the read, so the read starts over on
/// whatever the key names now. `None` if the key names nothing.
pub(super) fn read_locked<T>(
    path: &Path,
    mut read: impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<T>> {
    for _ in 0..REREADS_MAX {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match read_opened(path, f, &mut read)? {
            Some(Ok(answer)) => return Ok(Some(answer)),
            // A directory where a file is expected: no such object.
            Some(Err(e)) if e.kind() == io::ErrorKind::IsADirectory => return Ok(None),
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the object changed under {REREADS_MAX} reads in a row"),
    ))
}

/// One attempt of `read_locked` on a file already open: `None` if the
/// attempt does not count (read again).
pub(super) fn read_opened<T>(
    path: &Path,
    mut f: File,
    read: &mut impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<io::Result<T>>> {
    match f.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            if !wait_shared(path, &f)? {
                return Ok(None);
            }
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // An error too may come from a spare emptied under the read: it counts
    // only if the key still names the file.
    let answer = read(&mut f);
    Ok(still_named(path, &f)?.then_some(answer))
}

/// Waits for a shared lock on `f` while `path` names it: a refill locks
/// only inodes no key names, so a key that still names this one meets a
/// lock held for some other reason, waited out for up to about 2 s (then
/// a `WouldBlock` error, which callers retry). `false` once the key names
/// another inode or none: the read starts over.
#[allow(clippy::disallowed_methods)] // a blocking thread's backoff; no simulation runs here
fn wait_shared(path: &Path, f: &File) -> io::Result<bool> {
    let mut pause = std::time::Duration::from_micros(100);
    for _ in 0..LOCK_WAITS_MAX {
        if !still_named(path, f)? {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
        match f.try_lock_shared() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        "a lock held on the object outlasted the wait for it",
    ))
}

/// Tries of `wait_shared` (about 2 s of pauses in all).
const LOCK_WAITS_MAX: usize = 30;

/// Whether `path` still names the inode `f` has open.
fn still_named(path: &Path, f: &File) -> io::Result<bool> {
    let open = f.metadata()?;
    match fs::metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
