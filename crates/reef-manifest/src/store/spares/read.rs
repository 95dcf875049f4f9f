//! Reading WAL objects when their inodes may be reused (the readers' half
//! of the protocol in `spares/mod.rs`): under a shared `flock`, keeping an
//! answer only if the key still names the inode read; without a lock while
//! this boot has no pool in the key's directory.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs::{self, File, TryLockError};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Mode, OFlags};

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
    // A batch is usually one directory: its pool is looked up, and the
    // directory opened, once. `at[i]` is the index in `dirs` of path i's.
    let mut dirs: Vec<BatchDir<'_>> = Vec::new();
    let at: Vec<Option<usize>> = paths
        .iter()
        .map(|path| {
            let dir = path.parent()?;
            match dirs.iter().rposition(|d| d.path == dir) {
                Some(i) => Some(i),
                None => {
                    dirs.push(BatchDir::new(dir, paths.len() > 1));
                    Some(dirs.len() - 1)
                }
            }
        })
        .collect();
    let name = |i: usize| match at[i] {
        Some(d) => dirs[d].name(paths[i]),
        None => Name::path(paths[i]),
    };
    // Unlocked reads where this boot's pool has not been seen.
    let mut unlocked: Vec<Option<io::Result<Option<T>>>> = (0..paths.len())
        .map(|i| {
            let dir = &dirs[at[i]?];
            dir.pool.as_ref()?;
            Some(read_unlocked(name(i), &mut read))
        })
        .collect();
    // Then each directory's pool, once: present (or unknown), its reads
    // count for nothing and are done again under the lock.
    let absent: Vec<bool> = dirs.iter().map(BatchDir::pool_absent).collect();
    for (slot, dir) in unlocked.iter_mut().zip(&at) {
        if !dir.is_some_and(|d| absent[d]) {
            *slot = None;
        }
    }
    unlocked
        .into_iter()
        .enumerate()
        .map(|(i, slot)| match slot {
            Some(answer) => answer,
            None => read_locked(name(i), &mut read),
        })
        .collect()
}

/// A directory of a `read_wal_batch`: its pool, if reads there go
/// unlocked, and, for a batch, the directory, open (one read alone opens
/// its path, not the directory and then the file).
struct BatchDir<'a> {
    path: &'a Path,
    pool: Option<PathBuf>,
    /// `None` when not a batch or the directory could not be opened: each
    /// read then opens its full path and meets (and reports) any problem
    /// itself.
    fd: Option<OwnedFd>,
}

impl<'a> BatchDir<'a> {
    fn new(path: &'a Path, open: bool) -> BatchDir<'a> {
        let pool = boot_pool(path).filter(|p| !seen(p));
        let fd = open
            .then(|| {
                retry_eintr(|| {
                    rustix::fs::open(
                        path,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                })
                .ok()
            })
            .flatten();
        BatchDir { path, pool, fd }
    }

    /// Whether reads here went unlocked and the pool is still absent,
    /// looked up in the directory the reads opened their files in.
    fn pool_absent(&self) -> bool {
        let Some(pool) = &self.pool else {
            return false;
        };
        let looked = match (&self.fd, pool.file_name()) {
            (Some(fd), Some(name)) => {
                retry_eintr(|| rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW))
                    .map(drop)
                    .map_err(io::Error::from)
            }
            _ => fs::symlink_metadata(pool).map(drop),
        };
        pool_absent(pool, looked)
    }

    /// The name of `path`, a file in this directory.
    fn name<'b>(&'b self, path: &'b Path) -> Name<'b> {
        match (&self.fd, path.file_name()) {
            (Some(fd), Some(file)) => Name {
                path,
                at: Some((fd, file)),
            },
            _ => Name::path(path),
        }
    }
}

/// A WAL object's file, by its path, or by its name in its directory
/// already open (a batch opens and looks up each file without walking
/// the whole path again: 4.4 µs where `File::open` took 7 µs per object).
/// A WAL directory is never replaced, so both name the same file.
#[derive(Clone, Copy)]
pub(super) struct Name<'a> {
    path: &'a Path,
    at: Option<(&'a OwnedFd, &'a OsStr)>,
}

impl<'a> Name<'a> {
    pub(super) fn path(path: &'a Path) -> Name<'a> {
        Name { path, at: None }
    }

    /// `path` by its name in `dir`, its directory, already open.
    #[cfg(test)]
    pub(super) fn in_dir(path: &'a Path, dir: &'a OwnedFd) -> Name<'a> {
        Name {
            path,
            at: path.file_name().map(|file| (dir, file)),
        }
    }

    fn open(self) -> io::Result<File> {
        match self.at {
            Some((dir, file)) => retry_eintr(|| {
                rustix::fs::openat(dir, file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            })
            .map(File::from)
            .map_err(io::Error::from),
            None => File::open(self.path),
        }
    }

    /// Device and inode of the file the name names now.
    fn inode(self) -> io::Result<(u64, u64)> {
        match self.at {
            Some((dir, file)) => {
                let st = retry_eintr(|| rustix::fs::statat(dir, file, AtFlags::empty()))?;
                Ok((st.st_dev, st.st_ino))
            }
            None => fs::metadata(self.path).map(|m| (m.dev(), m.ino())),
        }
    }
}

/// `call` again while a signal interrupts it, as std's `File::open` does
/// (rustix leaves it to the caller).
fn retry_eintr<T>(mut call: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    loop {
        match call() {
            Err(rustix::io::Errno::INTR) => {}
            done => return done,
        }
    }
}

/// One read of `read_wal_batch` without a lock.
fn read_unlocked<T>(
    name: Name<'_>,
    read: &mut impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<T>> {
    match name.open() {
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

/// Whether `pool` is known not to exist (`looked` is what looking it up
/// gave); one seen is remembered.
fn pool_absent(pool: &Path, looked: io::Result<()>) -> bool {
    match looked {
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
    name: Name<'_>,
    mut read: impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<T>> {
    for _ in 0..REREADS_MAX {
        let f = match name.open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match read_opened(name, f, &mut read)? {
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
    name: Name<'_>,
    mut f: File,
    read: &mut impl FnMut(&mut File) -> io::Result<T>,
) -> io::Result<Option<io::Result<T>>> {
    match f.try_lock_shared() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            if !wait_shared(name, &f)? {
                return Ok(None);
            }
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // An error too may come from a spare emptied under the read: it counts
    // only if the key still names the file.
    let answer = read(&mut f);
    Ok(still_named(name, &f)?.then_some(answer))
}

/// Waits for a shared lock on `f` while `path` names it: a refill locks
/// only inodes no key names, so a key that still names this one meets a
/// lock held for some other reason, waited out for up to about 2 s (then
/// a `WouldBlock` error, which callers retry). `false` once the key names
/// another inode or none: the read starts over.
#[allow(clippy::disallowed_methods)] // a blocking thread's backoff; no simulation runs here
fn wait_shared(name: Name<'_>, f: &File) -> io::Result<bool> {
    let mut pause = std::time::Duration::from_micros(100);
    for _ in 0..LOCK_WAITS_MAX {
        if !still_named(name, f)? {
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
fn still_named(name: Name<'_>, f: &File) -> io::Result<bool> {
    let open = f.metadata()?;
    match name.inode() {
        Ok(named) => Ok(named == (open.dev(), open.ino())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
