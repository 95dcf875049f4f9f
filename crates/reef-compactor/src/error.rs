//! The compactor's error type.

/// Errors of fold, compaction and GC.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object-store layer failed (or found damage).
    #[error(transparent)]
    Store(#[from] reef_manifest::Error),
    /// A codec failed.
    #[error(transparent)]
    Format(#[from] reef_format::FormatError),
    /// The namespace's objects contradict each other.
    #[error("namespace {namespace}: {reason}")]
    Inconsistent {
        /// The namespace.
        namespace: String,
        /// What is wrong, naming the object.
        reason: String,
    },
}

impl Error {
    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_transient())
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
