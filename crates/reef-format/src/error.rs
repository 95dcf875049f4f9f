//! The one error type of `reef-format`.
//!
//! Every decode failure says which object (by the caller-supplied name, e.g.
//! its object key) and where in it, so an operator can find the bad bytes.
//! Encoding-side failures are input errors (`Invalid`) naming the field.

use std::fmt;

/// What kind of object a codec was handling, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A WAL record object (`wal/<lsn>.wal`).
    Wal,
    /// A sorted segment object (`seg/<id>.seg`).
    Segment,
    /// A manifest version object (`manifest/<version>.mf`).
    Manifest,
    /// The HEAD pointer object.
    Head,
    /// A lease object.
    Lease,
    /// A checkpoint object.
    Checkpoint,
    /// An encoded document (inside another object).
    Document,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Wal => "wal record",
            ObjectKind::Segment => "segment",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Head => "HEAD pointer",
            ObjectKind::Lease => "lease",
            ObjectKind::Checkpoint => "checkpoint",
            ObjectKind::Document => "document",
        })
    }
}

/// Errors from encoding, decoding and validating Reef objects.
///
/// Decoding never panics: bytes that are not a valid object of the expected
/// kind yield `Corrupt`, `ChecksumMismatch`, `BadMagic` or
/// `UnsupportedVersion`, never wrong data.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum FormatError {
    /// The stored CRC does not match the bytes.
    #[error(
        "{kind} {object}: checksum mismatch at offset {offset}: stored {expected:#010x}, computed {actual:#010x}"
    )]
    ChecksumMismatch {
        /// Kind of object.
        kind: ObjectKind,
        /// Object name (key) as given by the caller.
        object: String,
        /// Offset of the checksummed region within the object.
        offset: u64,
        /// CRC stored in the object.
        expected: u32,
        /// CRC computed over the bytes read.
        actual: u32,
    },
    /// The object does not start (or end) with the magic of its kind.
    #[error("{kind} {object}: bad magic {found:02x?}, expected {expected:02x?}")]
    BadMagic {
        /// Kind of object.
        kind: ObjectKind,
        /// Object name.
        object: String,
        /// Magic expected for this kind.
        expected: [u8; 4],
        /// Bytes found instead.
        found: Vec<u8>,
    },
    /// The object was written by a newer (or unknown) format version.
    #[error(
        "{kind} {object}: format version {found} is not supported (this build reads up to {supported}); upgrade Reef"
    )]
    UnsupportedVersion {
        /// Kind of object.
        kind: ObjectKind,
        /// Object name.
        object: String,
        /// Version found in the object.
        found: u16,
        /// Newest version this build reads.
        supported: u16,
    },
    /// The bytes are checksummed correctly but do not decode: truncated,
    /// lengths out of range, unknown tags, inconsistent fields.
    #[error("{kind} {object}: corrupt at offset {offset}: {reason}")]
    Corrupt {
        /// Kind of object.
        kind: ObjectKind,
        /// Object name.
        object: String,
        /// Byte offset where decoding failed (relative to the object start
        /// where known, else to the decoded region).
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// Input handed to an encoder or validator breaks a rule or a limit.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field or argument at fault (e.g. `id`, `doc`, `ops[3].id`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl FormatError {
    /// Whether the error means stored bytes are damaged or unreadable (as
    /// opposed to bad caller input).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            FormatError::ChecksumMismatch { .. }
                | FormatError::BadMagic { .. }
                | FormatError::Corrupt { .. }
        )
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FormatError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;
