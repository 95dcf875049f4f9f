//! Injected randomness. Every id, nonce and jitter Reef draws (segment
//! ids, WAL record ids, lease ids, backoff spread) comes from an `Rng`, so
//! a simulation seeded once replays exactly. `SystemRng` is the one place
//! in the workspace that touches real entropy; `clippy.toml` bans the
//! sources it uses everywhere else.
//!
//! Uniqueness is all the callers need (ids are settled by put-if-absent or
//! checked against the manifest), not unpredictability.

use std::fmt::Debug;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of random 64-bit values, shared by the tasks of one process.
pub trait Rng: Send + Sync + Debug {
    /// The next value.
    fn next_u64(&self) -> u64;
}

/// SplitMix64's output function: a bijection that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Real entropy: a per-process random key (the standard library draws it
/// from the operating system) mixed with the time and a counter.
#[derive(Debug)]
pub struct SystemRng {
    key: u64,
    counter: AtomicU64,
}

impl SystemRng {
    /// A generator keyed from the operating system's entropy.
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "the one place real entropy enters"
    )]
    pub fn new() -> SystemRng {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        h.write_u128(nanos);
        SystemRng {
            key: h.finish(),
            counter: AtomicU64::new(0),
        }
    }
}

impl Default for SystemRng {
    fn default() -> SystemRng {
        SystemRng::new()
    }
}

impl Rng for SystemRng {
    fn next_u64(&self) -> u64 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        mix(self.key.wrapping_add(n.wrapping_mul(GAMMA)))
    }
}

/// A deterministic generator (SplitMix64): the same seed gives the same
/// sequence of values, in the order they are drawn.
#[derive(Debug)]
pub struct SeededRng(AtomicU64);

impl SeededRng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> SeededRng {
        SeededRng(AtomicU64::new(seed))
    }
}

impl Rng for SeededRng {
    fn next_u64(&self) -> u64 {
        mix(self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_replays_and_system_differs() {
        let (a, b) = (SeededRng::new(7), SeededRng::new(7));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_ne!(SeededRng::new(8).next_u64(), xs[0]);
        let (s, t) = (SystemRng::new(), SystemRng::new());
        assert_ne!(s.next_u64(), t.next_u64());
    }
}
