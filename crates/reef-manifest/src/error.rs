//! The one error type of `reef-manifest`.
//!
//! Every variant names the object key or namespace it is about. Callers
//! decide whether to retry with `Error::is_transient`; a lost commit race
//! is its own variant (`ManifestConflict`) so it is never mistaken for an
//! I/O failure. Errors are `Clone` (I/O sources behind an `Arc`), so one
//! failure can be told to every request it affected without changing kind.

use std::sync::Arc;

use reef_format::FormatError;

/// Errors from the object-store layer and everything built on it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An object key breaks the key rules (`[A-Za-z0-9/._-]`, no empty or
    /// dot segments, at most 1024 bytes).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A store URL could not be understood.
    #[error("invalid store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL (never contains credentials: those come from the
        /// environment).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace, checkpoint or lease name breaks its naming rule.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What kind of name (`namespace`, `checkpoint`, ...).
        what: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A local file-system operation failed.
    #[error("{op} {key}: {source}")]
    Io {
        /// The store operation (`get`, `put_if_absent`, ...).
        op: &'static str,
        /// The object key.
        key: String,
        /// The underlying error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A remote backend (S3) failed.
    #[error("{op} {key}: {message}")]
    Backend {
        /// The store operation.
        op: &'static str,
        /// The object key.
        key: String,
        /// What the backend said (never credentials).
        message: String,
        /// Whether retrying may help (5xx, timeouts, connection errors).
        transient: bool,
    },
    /// A ranged read asked for bytes the object does not have.
    #[error("get_range {key}: range {start}..{end} is outside the object ({size} bytes)")]
    RangeOutOfBounds {
        /// The object key.
        key: String,
        /// Range start.
        start: u64,
        /// Range end (exclusive).
        end: u64,
        /// Object size.
        size: u64,
    },
    /// An object that must exist does not.
    #[error("{key}: object not found")]
    NotFound {
        /// The object key.
        key: String,
    },
    /// A fault injected by `FaultyStore` (tests and simulations only).
    #[error("{op} {key}: injected fault: {fault}")]
    Injected {
        /// The store operation.
        op: &'static str,
        /// The object key.
        key: String,
        /// Which fault.
        fault: &'static str,
        /// Whether the fault is a transient one (retrying may succeed).
        transient: bool,
    },
    /// Stored bytes failed their checks.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Another committer created this manifest version first.
    #[error(
        "namespace {namespace}: manifest version {version} was committed by someone else; reload and retry"
    )]
    ManifestConflict {
        /// The namespace.
        namespace: String,
        /// The contested version.
        version: u64,
    },
    /// The namespace's objects contradict each other (e.g. HEAD points at a
    /// manifest that does not exist). `reef verify` / `repair` territory.
    #[error("namespace {namespace}: {reason}")]
    Inconsistent {
        /// The namespace.
        namespace: String,
        /// What contradicts what.
        reason: String,
    },
    /// A checkpoint with this name already exists.
    #[error("namespace {namespace}: checkpoint {name:?} already exists")]
    CheckpointExists {
        /// The namespace.
        namespace: String,
        /// The checkpoint name.
        name: String,
    },
    /// A lease or checkpoint was asked to pin a manifest version below the
    /// namespace's GC floor: that version may already be collected. Pin a
    /// newer version (the current one) instead.
    #[error(
        "namespace {namespace}: manifest {version} is below the GC floor {floor} and may be collected; pin a newer version"
    )]
    VersionCollected {
        /// The namespace.
        namespace: String,
        /// The version asked for.
        version: u64,
        /// The floor found.
        floor: u64,
    },
    /// A segment this operation put was gone when it checked the put: GC
    /// collected it, which it does only once the floor has passed the
    /// operation's base, so the operation can no longer commit. Retrying
    /// the operation (on a fresh base) succeeds.
    #[error("{key} was collected before its writer could confirm it; the operation is abandoned")]
    OutputCollected {
        /// The segment key.
        key: String,
    },
    /// HEAD could not be confirmed at or past a committed version (HEAD
    /// contention outlasted the retries, or the server refuses the CAS).
    /// GC stops here rather than delete what a lagging HEAD still names.
    #[error(
        "namespace {namespace}: HEAD could not be moved to manifest {version} (it names {head:?}); retry later"
    )]
    HeadBehind {
        /// The namespace.
        namespace: String,
        /// The version HEAD had to reach.
        version: u64,
        /// What HEAD names.
        head: Option<u64>,
    },
    /// The server does not do what Reef needs of it (e.g. it refuses a
    /// conditional write whose condition holds). Not transient: retrying
    /// will not help; the message names what was tried.
    #[error("{op} {key}: the server does not support this: {reason}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The object key.
        key: String,
        /// What the server did, and what was tried.
        reason: String,
    },
    /// No S3 credentials were found.
    #[error("no S3 credentials found; tried {tried}")]
    NoCredentials {
        /// The sources looked at, in order.
        tried: String,
    },
    /// The lease is gone (released, or expired and reclaimed).
    #[error("namespace {namespace}: lease {id} is gone (released or expired)")]
    LeaseGone {
        /// The namespace.
        namespace: String,
        /// The lease id.
        id: String,
    },
}

impl Error {
    /// Whether retrying the same operation may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Backend { transient, .. } | Error::Injected { transient, .. } => *transient,
            Error::HeadBehind { .. } | Error::OutputCollected { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }

    pub(crate) fn io(op: &'static str, key: &str, source: std::io::Error) -> Error {
        Error::Io {
            op,
            key: key.to_owned(),
            source: Arc::new(source),
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
