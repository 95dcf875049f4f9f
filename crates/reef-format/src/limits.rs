//! Size limits. Every size Reef accepts has one (DESIGN §7).
//!
//! Two layers: `Limits` holds the configurable, user-facing limits enforced
//! when input is validated (defaults from the design brief); the `*_HARD_MAX`
//! constants are what the codecs can represent at all and what decoders
//! accept, so a corrupt length can never make a decoder allocate without
//! bound. `Limits::check` keeps the first inside the second.

use crate::error::{FormatError, Result};

/// Longest document id the codecs can represent (u16 length prefix).
pub const ID_BYTES_HARD_MAX: usize = u16::MAX as usize;
/// Largest encoded document the codecs accept.
pub const DOC_BYTES_HARD_MAX: usize = 64 << 20;
/// Largest number of ops in one request the codecs accept.
pub const OPS_PER_REQUEST_HARD_MAX: usize = 1_000_000;
/// Longest idempotency key the codecs accept.
pub const IDEMPOTENCY_KEY_BYTES_HARD_MAX: usize = 4096;
/// Deepest nesting of arrays and objects inside a document. Fixed (not
/// configurable) because decoders recurse and must bound their stack.
pub const VALUE_DEPTH_MAX: usize = 64;
/// Longest attribute name.
pub const ATTR_NAME_BYTES_MAX: usize = 1024;

/// Configurable limits on user input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest document id, in bytes (default 1 KiB).
    pub id_bytes_max: usize,
    /// Largest encoded document, in bytes (default 2 MiB).
    pub doc_bytes_max: usize,
    /// Largest request, counted as the sum of its encoded ids and documents
    /// (default 64 MiB).
    pub request_bytes_max: usize,
    /// Most ops in one request (default 100,000).
    pub ops_per_request_max: usize,
    /// Longest idempotency key, in bytes (default 256).
    pub idempotency_key_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            id_bytes_max: 1024,
            doc_bytes_max: 2 << 20,
            request_bytes_max: 64 << 20,
            ops_per_request_max: 100_000,
            idempotency_key_bytes_max: 256,
        }
    }
}

impl Limits {
    /// Checks that every limit is positive and representable by the codecs.
    pub fn check(&self) -> Result<()> {
        let pairs = [
            ("limits.id_bytes_max", self.id_bytes_max, ID_BYTES_HARD_MAX),
            (
                "limits.doc_bytes_max",
                self.doc_bytes_max,
                DOC_BYTES_HARD_MAX,
            ),
            (
                "limits.ops_per_request_max",
                self.ops_per_request_max,
                OPS_PER_REQUEST_HARD_MAX,
            ),
            (
                "limits.idempotency_key_bytes_max",
                self.idempotency_key_bytes_max,
                IDEMPOTENCY_KEY_BYTES_HARD_MAX,
            ),
            ("limits.request_bytes_max", self.request_bytes_max, 1 << 30),
        ];
        for (field, value, hard) in pairs {
            if value == 0 || value > hard {
                return Err(FormatError::invalid(
                    field,
                    format!("{value} is outside 1..={hard}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_design_limits_and_valid() {
        let l = Limits::default();
        assert_eq!(l.id_bytes_max, 1024);
        assert_eq!(l.doc_bytes_max, 2 * 1024 * 1024);
        assert_eq!(l.request_bytes_max, 64 * 1024 * 1024);
        assert_eq!(l.ops_per_request_max, 100_000);
        assert_eq!(l.idempotency_key_bytes_max, 256);
        l.check().unwrap();
    }

    #[test]
    fn out_of_range_limit_is_named() {
        let l = Limits {
            id_bytes_max: 70_000,
            ..Limits::default()
        };
        let err = l.check().unwrap_err().to_string();
        assert!(err.contains("limits.id_bytes_max"), "{err}");
    }
}
