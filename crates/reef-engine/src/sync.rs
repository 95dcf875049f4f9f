//! The synchronization primitives the engine's concurrent core uses, in
//! one place (in the style of tokio's `src/loom`): the standard library's
//! normally, loom's when the crate's unit tests are built with
//! `--cfg loom` (`cargo xtask loom`), so the models in `group.rs`,
//! `schedule.rs` and `memtable.rs` explore every interleaving of the real
//! code.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A read lock. Writers finish every mutation before releasing the lock,
/// so a panic elsewhere cannot leave the value half-updated: poison is
/// benign.
pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

/// A write lock (poison is benign, as for [`read_lock`]).
pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// Whether the planted bug `name` is switched on: only in loom builds,
/// when `REEF_LOOM_PLANTED=<name>` (`cargo xtask loom --planted` sets it
/// for each model in turn, and the model must then fail).
#[cfg(all(test, loom))]
pub(crate) fn planted(name: &str) -> bool {
    std::env::var("REEF_LOOM_PLANTED").is_ok_and(|v| v == name)
}
