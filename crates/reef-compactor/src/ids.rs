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

use reef_manifest::Rng;

/// A new id for a segment written by an operation based on manifest
/// version `base_version`; the low half is drawn from `rng` (a collision
/// would be caught by the segment's put-if-absent).
pub fn new_segment_id(rng: &dyn Rng, base_version: u64) -> u128 {
    (u128::from(base_version) << 64) | u128::from(rng.next_u64())
}

/// Serializes a segment id as its 32 lowercase hex digits (as in its key).
pub(crate) fn serialize_hex<S: serde::Serializer>(
    id: &Option<u128>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => s.serialize_str(&format!("{id:032x}")),
        None => s.serialize_none(),
    }
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
        let rng = reef_manifest::SystemRng::new();
        let a = new_segment_id(&rng, 17);
        let b = new_segment_id(&rng, 17);
        assert_ne!(a, b);
        assert_eq!(base_version(a), 17);
    }
}
