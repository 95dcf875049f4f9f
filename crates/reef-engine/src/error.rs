//! The engine's error type, and `ErrorKind`: what a caller should do.
//!
//! Every error names the namespace (and where relevant the op index, id or
//! object key). `Error::kind` tells a caller whether to fix its input,
//! re-read and decide again, retry later, or stop.

use reef_format::FormatError;

/// What kind of failure, for deciding what to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or breaks a limit; retrying cannot help.
    Invalid,
    /// A precondition failed or an idempotency key was reused with other
    /// ops: the request was rejected as a whole; re-read and decide.
    Conflict,
    /// Temporary (contention, overload, transient storage errors): retry
    /// with backoff. The request may or may not have been applied unless
    /// the error says otherwise; an idempotency key makes the retry safe.
    Transient,
    /// Stored data is damaged or inconsistent: needs `reef verify`.
    Corrupt,
    /// This engine cannot do that (read-only, closed).
    Unsupported,
    /// Anything else (storage failures that are not transient).
    Internal,
}

/// Errors of the engine. `Clone`, so a batch-wide failure is told to every
/// request of the batch with its kind intact.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input (namespace name, limits, malformed ops).
    #[error("namespace {namespace}: invalid {field}: {reason}")]
    Invalid {
        /// The namespace.
        namespace: String,
        /// What was wrong (e.g. `ops[3].id`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A precondition failed; nothing of the request was applied.
    #[error(
        "namespace {namespace}: precondition failed at ops[{op_index}] (id {id:?}): expected {expected}, found {actual}"
    )]
    PreconditionFailed {
        /// The namespace.
        namespace: String,
        /// Index of the failing op in the request.
        op_index: usize,
        /// Its id.
        id: String,
        /// What the precondition required.
        expected: String,
        /// What was there.
        actual: String,
    },
    /// An idempotency key was reused with different ops.
    #[error(
        "namespace {namespace}: idempotency key {key:?} was already used for a different request"
    )]
    IdempotencyConflict {
        /// The namespace.
        namespace: String,
        /// The key.
        key: String,
    },
    /// Other writers kept taking the next LSN; the request was not applied.
    #[error(
        "namespace {namespace}: lost the race for the next WAL position {attempts} times; retry"
    )]
    Contention {
        /// The namespace.
        namespace: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Unfolded data exceeds the memory budget and did not drain in time.
    #[error(
        "namespace {namespace}: {memtable_bytes} bytes unfolded exceed the budget of {budget_bytes}; writes are waiting for a fold"
    )]
    Overloaded {
        /// The namespace.
        namespace: String,
        /// Bytes in memtables.
        memtable_bytes: usize,
        /// The budget.
        budget_bytes: usize,
    },
    /// After this writer's WAL record for `lsn` landed, HEAD showed `lsn`
    /// already folded, so long ago that the manifest no longer remembers
    /// whose record the fold took (DESIGN §3.2): the write may or may not
    /// have been applied. (A fold known to have taken another writer's
    /// record, or ours, is resolved by the engine itself.) The engine has
    /// adopted the newer manifest: re-read and decide, or retry with an
    /// idempotency key.
    #[error(
        "namespace {namespace}: fenced: lsn {lsn} was already folded (last_applied_lsn {last_applied_lsn}) when this writer checked, too long ago to tell whose record was folded; the outcome is unknown: re-read, or retry with an idempotency key"
    )]
    Fenced {
        /// The namespace.
        namespace: String,
        /// The LSN it wrote.
        lsn: u64,
        /// The folded position it found.
        last_applied_lsn: u64,
    },
    /// A flush ended before folding everything this engine had
    /// acknowledged: its folds kept moving nothing (each lost to another
    /// committer, or found its WAL already taken). Nothing is lost; the
    /// WAL is still there. Retryable.
    #[error(
        "namespace {namespace}: flush stalled at last_applied_lsn {folded} of {target} after {attempts} folds in a row moved nothing; retry"
    )]
    FlushStalled {
        /// The namespace.
        namespace: String,
        /// The folded position reached.
        folded: u64,
        /// The position the flush had to reach.
        target: u64,
        /// Folds in a row that moved nothing.
        attempts: u32,
    },
    /// A fold, compaction or GC failed.
    #[error(transparent)]
    Compactor(#[from] reef_compactor::Error),
    /// A snapshot's lease ran out (its holder paused past the TTL, or its
    /// renewals failed) and GC collected what it read. Take a new snapshot.
    #[error(
        "namespace {namespace}: the snapshot of manifest {version} expired and its data was collected; take a new snapshot"
    )]
    SnapshotExpired {
        /// The namespace.
        namespace: String,
        /// The manifest version the snapshot read.
        version: u64,
    },
    /// The engine was opened read-only.
    #[error("namespace {namespace}: this engine is read-only")]
    ReadOnly {
        /// The namespace.
        namespace: String,
    },
    /// The engine was closed.
    #[error("namespace {namespace}: the engine is closed")]
    Closed {
        /// The namespace.
        namespace: String,
    },
    /// The WAL has a hole or an object contradicts the namespace.
    #[error("namespace {namespace}: {reason}")]
    Inconsistent {
        /// The namespace.
        namespace: String,
        /// What is wrong, naming the object.
        reason: String,
    },
    /// A scan stream's reading task ended without finishing the scan (it
    /// panicked, or its runtime shut down): the stream ends with this
    /// rather than pass a cut scan off as a whole one.
    #[error("namespace {namespace}: the scan's reading task ended before the scan did")]
    ScanTaskFailed {
        /// The namespace.
        namespace: String,
    },
    /// No flush hook is installed (folding is the compactor's job).
    #[error("namespace {namespace}: no flush hook installed")]
    NoFlushHook {
        /// The namespace.
        namespace: String,
    },
    /// The object-store layer failed.
    #[error(transparent)]
    Store(#[from] reef_manifest::Error),
    /// A codec failed (corrupt bytes name their object).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl Error {
    /// What a caller should do about this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::PreconditionFailed { .. } | Error::IdempotencyConflict { .. } => {
                ErrorKind::Conflict
            }
            Error::Contention { .. }
            | Error::FlushStalled { .. }
            | Error::Overloaded { .. }
            | Error::Fenced { .. }
            | Error::SnapshotExpired { .. } => ErrorKind::Transient,
            _ if self.is_collected_segment() => ErrorKind::Transient,
            Error::Compactor(e) if e.is_transient() => ErrorKind::Transient,
            Error::ReadOnly { .. }
            | Error::Closed { .. }
            | Error::NoFlushHook { .. }
            | Error::Store(reef_manifest::Error::Unsupported { .. })
            | Error::Compactor(reef_compactor::Error::Store(reef_manifest::Error::Unsupported {
                ..
            })) => ErrorKind::Unsupported,
            Error::Inconsistent { .. } => ErrorKind::Corrupt,
            Error::Store(e) if e.is_transient() => ErrorKind::Transient,
            Error::Store(reef_manifest::Error::Format(f)) | Error::Format(f)
                if f.is_corruption() =>
            {
                ErrorKind::Corrupt
            }
            Error::Store(reef_manifest::Error::Inconsistent { .. }) => ErrorKind::Corrupt,
            Error::Store(
                reef_manifest::Error::InvalidName { .. }
                | reef_manifest::Error::InvalidKey { .. }
                | reef_manifest::Error::InvalidUrl { .. }
                | reef_manifest::Error::NoCredentials { .. },
            ) => ErrorKind::Invalid,
            Error::Format(FormatError::Invalid { .. }) => ErrorKind::Invalid,
            _ => ErrorKind::Internal,
        }
    }

    /// A segment object was not found: another process compacted it away
    /// and GC collected it after this view was taken. Retryable: a newer
    /// manifest exists.
    pub fn is_collected_segment(&self) -> bool {
        let store = match self {
            Error::Store(e) | Error::Compactor(reef_compactor::Error::Store(e)) => e,
            _ => return false,
        };
        matches!(store, reef_manifest::Error::NotFound { key } if key.contains("/seg/"))
    }

    pub(crate) fn invalid(namespace: &str, e: FormatError) -> Error {
        match e {
            FormatError::Invalid { field, reason } => Error::Invalid {
                namespace: namespace.to_owned(),
                field,
                reason,
            },
            other => Error::Format(other),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
