//! Segment ids: the creation time in the high 64 bits and a random value
//! in the low 64, so ids are unique across processes and GC can tell an
//! orphan's age from its key alone (an in-flight fold's fresh segment is
//! never collected).

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// A new segment id created at `now_ms`.
pub fn new_segment_id(now_ms: u64) -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = xxh3_64(format!("{nanos}/{}/{n}", std::process::id()).as_bytes());
    (u128::from(now_ms) << 64) | u128::from(random)
}

/// When a segment id was created (ms since the Unix epoch).
pub fn created_at_ms(id: u128) -> u64 {
    (id >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_carry_their_time() {
        let a = new_segment_id(1_700_000_000_000);
        let b = new_segment_id(1_700_000_000_000);
        assert_ne!(a, b);
        assert_eq!(created_at_ms(a), 1_700_000_000_000);
    }
}
