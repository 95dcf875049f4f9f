//! Reusing the inodes of deleted WAL objects in a local directory.
//!
//! Why: ext4 without a journal passes over every inode freed in the last
//! minute when it creates a file, so a store that creates a file per WAL
//! put and deletes folded WAL promptly spends up to half of a put there
//! (docs/benchmarks.md, "Where the harness's time goes"). Here GC renames
//! a deleted WAL object into a spare pool instead of unlinking it, and a
//! put refills a spare instead of creating a file.
//!
//! Crash model: after a power loss, any directory change or truncation not
//! yet fsynced may or may not be on disk, and nothing repairs link counts
//! or extents (ext4 without a journal, no fsck). Within one boot, though,
//! the kernel's view is always consistent, whatever a dead process left.
//! So each boot has its own pool, `wal/.spare-<boot id>/`, made in the
//! WAL directory (itself durable) and only ever used during its own boot:
//! what a power loss leaves in an older boot's pool is never touched
//! (leaked; see docs/storage.md). A forked child (which would share its
//! parent's names and lists) recycles nothing.
//!
//! Names in a pool, `<p>` being the process that made them:
//! - `.live-<p>`: `p` holds a shared `flock` on it for its life. A GC that
//!   gets an exclusive lock knows `p` is dead and adopts its names.
//! - `r-<p>-<n>`: a WAL object GC took, whose key's removal is not yet
//!   durable; `p` offers it once its WAL directory is fsynced.
//! - `s-<p>-<n>`: an offered spare, claimable by `p` only. While
//!   `p` refills it and links it under a key, the same name stays; `p`
//!   removes it after the link.
//!
//! Invariants:
//! - **Offered only once unnamed for good.** A spare is offered only
//!   after its key's directory is fsynced, so no power loss brings the key
//!   back naming a refilled inode.
//! - **Blocks kept, within a budget.** An offered spare keeps its data
//!   blocks while its process's spares in the directory keep at most
//!   `KEPT_BYTES_MAX` in all (past that it is emptied), and a refill
//!   writes over them and cuts the file to the new object's length. Why:
//!   on a file system mounted with `discard`, every freed extent is a
//!   synchronous discard request, which made emptying a spare cost GC
//!   111–134 µs per WAL object; keeping the blocks costs 34–47 µs. (A
//!   refill that cuts a longer spare still frees its tail.)
//! - **Refilled by one process, with no other name and no reader.** Only
//!   the owner refills an `s-` name; it checks the inode has one link (a
//!   key linked to it, or a hard link some tool made, is respected) and
//!   holds an exclusive `flock` taken without waiting. A reader that opened
//!   the object before GC took it holds a shared lock, and the spare waits.
//! - **Readers check the name.** Every reader of a WAL key, whether or not
//!   its own store recycles, reads under a shared `flock` and keeps the
//!   answer only if the key still names the inode it read; otherwise it
//!   reads again what the key names now. So an answer is content the key
//!   had, or "absent", never another object's bytes.
//! - **Bounded.** A pool holds at most `SPARES_PER_DIR_MAX` names, past
//!   which GC unlinks as before, and each process's spares there hold at
//!   most `KEPT_BYTES_MAX` of data. A
//!   dead process's names are adopted by the next GC run there (same
//!   boot) of a process that puts WAL there. Only a
//!   process that has put WAL in a directory recycles there, so a GC-only
//!   process (`reef compactor`) cannot fill a pool nobody draws from.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{LazyLock, Mutex};

use super::local::{NONCE, NONCE_PROCESS, TMP_COUNTER, sync_dir, this_process};

/// The start of a pool's name inside a WAL directory (a dot name: no
/// listing, key or `holds_object` ever sees it).
pub(super) const SPARE_DIR: &str = ".spare-";

/// Most names one pool holds: GC retires up to four folds' WAL objects at
/// once (16,000 at 64 writers), and the pool must hold a run's worth for
/// the puts to come.
pub(super) const SPARES_PER_DIR_MAX: usize = 16_384;

/// Most bytes of data one process's offered spares in one WAL directory
/// keep (what a reboot can leave behind in a pool, per process): four
/// folds' WAL objects at 64 writers are about 50 MB. A spare past the
/// budget is emptied when offered.
pub(super) const KEPT_BYTES_MAX: u64 = 64 << 20;

const LIVE_PREFIX: &str = ".live-";
const RETIRING_PREFIX: &str = "r-";
const OFFERED_PREFIX: &str = "s-";

/// Spares a put tries before it creates a file instead.
const CLAIM_TRIES_MAX: usize = 4;

/// WAL directories one process recycles in at most: each holds a `.live`
/// file open for the process's life.
const POOLS_MAX: usize = 64;

/// This boot's id (Linux); without one nothing is recycled, since a pool
/// could not be told from an older boot's.
static BOOT: LazyLock<Option<String>> = LazyLock::new(|| {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let id = id.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .then(|| id.to_owned())
});

/// This process's side of one WAL directory.
#[derive(Default)]
struct Pool {
    /// Whether this process has put a WAL object here (only then does its
    /// GC recycle here).
    wrote: bool,
    /// This process's `.live` file, held for its life once it retires.
    live: Option<File>,
    /// Counted against `POOLS_MAX` (set before `live`, so threads in
    /// other directories cannot overshoot it).
    reserved: bool,
    /// Names retired by a run whose directory sync failed: offered after
    /// the next run's sync there.
    unoffered: Vec<String>,
    /// Offered spares this process may refill.
    offered: Vec<Spare>,
    /// Bytes (length or blocks, whichever is more) the `offered` spares
    /// keep: at most `KEPT_BYTES_MAX`, plus any that puts took and gave
    /// back (a spare whose reader still holds it) while GC offered more.
    kept_bytes: u64,
}

/// An offered spare: its name in the pool and the bytes it keeps.
struct Spare {
    name: String,
    kept: u64,
}

impl Pool {
    /// Takes the next offered spare out of the list and the count.
    fn take(&mut self) -> Option<Spare> {
        let spare = self.offered.pop()?;
        self.release(spare.kept);
        Some(spare)
    }

    /// Puts a spare `take` gave back, last in line, counted again.
    fn give_back(&mut self, spare: Spare) {
        self.kept_bytes += spare.kept;
        self.offered.insert(0, spare);
    }

    /// Whether `len` more bytes fit the budget; counted if so.
    fn reserve(&mut self, len: u64) -> bool {
        let fits = self.kept_bytes + len <= KEPT_BYTES_MAX;
        if fits {
            self.kept_bytes += len;
        }
        fits
    }

    /// Uncounts `len` bytes.
    fn release(&mut self, len: u64) {
        self.kept_bytes = self.kept_bytes.saturating_sub(len);
    }
}

static POOLS: Mutex<BTreeMap<PathBuf, Pool>> = Mutex::new(BTreeMap::new());

fn with_pool<T>(dir: &Path, f: impl FnOnce(&mut Pool) -> T) -> T {
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    // Looked up before inserting: a WAL put comes here, and a key is an
    // allocation.
    if let Some(pool) = pools.get_mut(dir) {
        return f(pool);
    }
    f(pools.entry(dir.to_path_buf()).or_default())
}

/// This boot's pool of the WAL directory `dir`, if there is a boot id
/// and this is not a forked child.
fn pool_of(dir: &Path) -> Option<PathBuf> {
    // A forked child shares its parent's nonce, counters and lists: it
    // must not recycle.
    let _ = *NONCE;
    if *NONCE_PROCESS != this_process() {
        return None;
    }
    boot_pool(dir)
}

/// This boot's pool of `dir`, whoever asks (a reader checks it even in a
/// process that does not recycle).
fn boot_pool(dir: &Path) -> Option<PathBuf> {
    BOOT.as_ref().map(|b| dir.join(format!("{SPARE_DIR}{b}")))
}

fn me() -> String {
    format!("{:016x}", *NONCE)
}

fn fresh_name(prefix: &str) -> String {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}-{n}", me())
}

/// The process a pool name belongs to.
fn owner<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)?.split_once('-').map(|(p, _)| p)
}

/// Notes that this process put a WAL object in `dir` (`refill` does, on
/// every WAL put).
#[cfg(test)]
fn wrote(dir: &Path) {
    with_pool(dir, |p| p.wrote = true);
}

/// Whether this process recycles in `dir`: it put WAL there, and `dir` is
/// one of the first `POOLS_MAX` such directories it retired in.
fn may_recycle(dir: &Path) -> bool {
    let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
    let open = pools.values().filter(|p| p.reserved).count();
    let pool = pools.entry(dir.to_path_buf()).or_default();
    if pool.wrote && !pool.reserved && open < POOLS_MAX {
        pool.reserved = true;
    }
    pool.wrote && pool.reserved
}

/// The WAL objects one delete run retires in one directory, whose lock
/// the caller holds from `begin` to `offer`.
pub(super) struct Retiring {
    dir: PathBuf,
    pool: Option<PathBuf>,
    room: usize,
    names: Vec<String>,
}

impl Retiring {
    /// Starts a run in `dir`: makes this process known in the pool, adopts
    /// dead processes' names, and counts the room. A process that never
    /// put WAL here, or a pool that cannot be used, retires nothing (GC
    /// unlinks as before).
    pub(super) fn begin(dir: &Path) -> Retiring {
        let pool = pool_of(dir).filter(|_| may_recycle(dir));
        let room = pool
            .as_deref()
            .map_or(0, |pool| prepare(dir, pool).unwrap_or(0));
        Retiring {
            dir: dir.to_path_buf(),
            pool,
            room,
            names: Vec::new(),
        }
    }

    /// Takes the object at `path` out of its key: renamed into the pool,
    /// or unlinked when the pool is full or cannot take it, or another
    /// name shares the object.
    pub(super) fn retire(&mut self, path: &Path) -> io::Result<()> {
        if let Some(pool) = self.pool.as_deref().filter(|_| self.room > 0)
            && fs::metadata(path)?.nlink() == 1
        {
            let name = fresh_name(RETIRING_PREFIX);
            // Any failure (a pool removed under us, a full disk): unlink
            // as before, which also answers whether the key was there.
            if fs::rename(path, pool.join(&name)).is_ok() {
                self.room -= 1;
                self.names.push(name);
                return Ok(());
            }
        }
        fs::remove_file(path)
    }

    /// Offers the run's spares; called once the directory is fsynced, so
    /// no power loss can bring their keys back. A spare that fails here
    /// stays an `r-` name, offered when this process's names are adopted;
    /// the deletes themselves are durable already, so this never fails
    /// them.
    pub(super) fn offer(self) {
        let Some(pool) = self.pool else { return };
        let mut names = with_pool(&self.dir, |p| std::mem::take(&mut p.unoffered));
        names.extend(self.names);
        for name in &names {
            offer_one(&self.dir, &pool, name);
        }
    }

    /// Keeps the run's names for the next run's `offer` here: its
    /// directory sync failed, so their keys' removals may not be durable.
    pub(super) fn abandon(self) {
        if !self.names.is_empty() {
            with_pool(&self.dir, |p| p.unoffered.extend(self.names));
        }
    }
}

/// Renames the spare `name` of `dir`'s pool to an offered name of this
/// process and lists it, with the bytes it keeps (counted): its data if
/// `KEPT_BYTES_MAX` has room, else none (emptied). `false` if it has
/// another name or cannot be offered, and then its pool name is dropped
/// (which frees nothing another name holds, and keeps no data in the
/// pool).
fn offer_one(dir: &Path, pool: &Path, name: &str) -> bool {
    let from = pool.join(name);
    let to = fresh_name(OFFERED_PREFIX);
    let mut reserved = 0;
    let offered = OpenOptions::new()
        .write(true)
        .open(&from)
        .and_then(|f| {
            let meta = f.metadata()?;
            if meta.nlink() != 1 {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            // Its length or its blocks, whichever is more (a name of a few
            // bytes still holds a block).
            let kept = meta.len().max(meta.blocks() * 512);
            if with_pool(dir, |p| p.reserve(kept)) {
                reserved = kept;
                return Ok(());
            }
            f.set_len(0)
        })
        .and_then(|()| fs::rename(&from, pool.join(&to)));
    with_pool(dir, |p| match offered {
        Ok(()) => p.offered.push(Spare {
            name: to,
            kept: reserved,
        }),
        Err(_) => p.release(reserved),
    });
    if offered.is_err() {
        let _ = fs::remove_file(&from);
    }
    offered.is_ok()
}

/// `Retiring::begin`'s work in this boot's `pool` of `dir` (whose lock the
/// caller holds): this process's `.live` file held, dead processes' names
/// adopted; the room left.
fn prepare(dir: &Path, pool: &Path) -> io::Result<usize> {
    if with_pool(dir, |p| p.live.is_none()) {
        match fs::create_dir(pool) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let live = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(pool.join(format!("{LIVE_PREFIX}{}", me())))?;
        live.lock_shared()?;
        with_pool(dir, |p| p.live = Some(live));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(pool)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    let mut held = names.len();
    let mine = me();
    let mut synced = false;
    for live in names.iter().filter_map(|n| n.strip_prefix(LIVE_PREFIX)) {
        if live == mine {
            continue;
        }
        let path = pool.join(format!("{LIVE_PREFIX}{live}"));
        let Ok(lock) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        // Refused: `live` is alive. (GC runs in one directory hold its
        // lock, so no other GC adopts at the same time.)
        if lock.try_lock().is_err() {
            continue;
        }
        let theirs = |prefix| names.iter().filter(move |n| owner(n, prefix) == Some(live));
        // Their retired objects' keys may be in removals not yet durable.
        if !synced && theirs(RETIRING_PREFIX).next().is_some() {
            sync_dir(dir)?;
            synced = true;
        }
        for name in theirs(RETIRING_PREFIX).chain(theirs(OFFERED_PREFIX)) {
            // Dropped: linked under a key after a refill, or failed.
            if !offer_one(dir, pool, name) {
                held = held.saturating_sub(1);
            }
        }
        // Every name of theirs is now this process's or gone.
        if fs::remove_file(&path).is_ok() {
            held = held.saturating_sub(1);
        }
    }
    Ok(SPARES_PER_DIR_MAX.saturating_sub(held))
}

/// A spare of `dir`'s pool refilled with `bytes` and fsynced, its lock
/// released: ready to be linked under its key, then unlinked. `None` when
/// no spare could be used (the caller creates a file instead).
pub(super) fn refill(dir: &Path, bytes: &[u8]) -> io::Result<Option<PathBuf>> {
    let Some(pool) = pool_of(dir) else {
        return Ok(None);
    };
    for _ in 0..CLAIM_TRIES_MAX {
        // A WAL put: from now on this process's GC recycles here.
        let next = with_pool(dir, |p| {
            p.wrote = true;
            p.take()
        });
        let Some(spare) = next else {
            return Ok(None);
        };
        if let Some(ready) = refill_one(dir, &pool.join(&spare.name), spare, bytes)? {
            return Ok(Some(ready));
        }
    }
    Ok(None)
}

/// Refills the offered spare at `path` (its name and kept bytes taken out
/// of the pool's count); `None` if it cannot be refilled now. A spare not
/// refilled either waits for a later put (offered and counted again: its
/// reader still holds it, or an error left it as it was) or is dropped.
fn refill_one(dir: &Path, path: &Path, spare: Spare, bytes: &[u8]) -> io::Result<Option<PathBuf>> {
    let put_back = |spare| with_pool(dir, |p| p.give_back(spare));
    let opened = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.metadata().map(|m| (f, m.nlink())));
    let mut f = match opened {
        Ok((f, 1)) => f,
        // Another name (a hard link some tool made) is respected: the
        // pool's name goes, the object stays.
        Ok(_) => {
            fs::remove_file(path)?;
            return Ok(None);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            put_back(spare);
            return Err(e);
        }
    };
    match f.try_lock() {
        Ok(()) => {}
        // A reader that opened the object before GC took it still reads
        // it: the spare waits for a later put.
        Err(TryLockError::WouldBlock) => {
            put_back(spare);
            return Ok(None);
        }
        Err(TryLockError::Error(e)) => {
            put_back(spare);
            return Err(e);
        }
    }
    // Over the blocks it kept (from offset 0), then cut to the object's
    // length: freeing and allocating them again would cost a discard
    // request each on a file system mounted with `discard`.
    let filled = f
        .write_all(bytes)
        .and_then(|()| f.set_len(bytes.len() as u64))
        .and_then(|()| f.sync_all());
    if let Err(e) = filled {
        // Half refilled: never offered again.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    // Released before the link: once linked, readers of the key must be
    // able to lock it.
    if let Err(e) = f.unlock() {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(Some(path.to_path_buf()))
}

mod read;
#[cfg(test)]
mod tests;

pub(super) use read::{read_wal, read_wal_batch};
