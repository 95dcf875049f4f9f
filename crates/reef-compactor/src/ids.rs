//! Segment ids: the manifest version the writing operation was based on
//! in the high 64 bits, a random value in the low 64. Ids are unique across
//! processes, and GC can tell from the key alone which operation era an
//! unreferenced segment belongs to: one based below the GC floor can never
//! be committed any more (`commit_change` refuses it), so its outputs are
//! safe to delete whatever the clocks say.
//!
//! Segments written before this scheme (format v1 era) carry their creation
//! time in the high bits, a number far above any manifest version, so GC
//! never takes them for abandoned output; `reef repair` deals with them.

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// A new id for a segment written by an operation based on manifest
/// version `base_version`.
pub fn new_segment_id(base_version: u64) -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = xxh3_64(format!("{nanos}/{}/{n}", std::process::id()).as_bytes());
    (u128::from(base_version) << 64) | u128::from(random)
}

/// The manifest version the operation that wrote segment `id` was based on.
pub fn base_version(id: u128) -> u64 {
    (id >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_carry_their_base() {
        let a = new_segment_id(17);
        let b = new_segment_id(17);
        assert_ne!(a, b);
        assert_eq!(base_version(a), 17);
    }
}
