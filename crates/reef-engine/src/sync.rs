//! The synchronization primitives the engine's concurrent core uses, in
//! one place (in the style of tokio's `src/loom`): the standard library's
//! normally, loom's when the crate's unit tests are built with
//! `--cfg loom` (`cargo xtask loom`), so the models in `group.rs` and
//! `schedule.rs` explore every interleaving of the real code.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};
