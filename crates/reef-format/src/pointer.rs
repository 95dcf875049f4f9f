//! The small control objects: the HEAD pointer, leases and checkpoints.
//! Each is framed like a WAL record (magic, version, length, CRC) around a
//! postcard body (format 2: the field order of the types below); version 1
//! bodies were hand-encoded and are still read (`legacy`).
//!
//! Invariant: names and holders are bounded (`NAME_BYTES_MAX`) and UTF-8;
//! decoders refuse anything else.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::{FrameSpec, HEADER_BYTES};
use crate::{legacy, wire};

/// Current format version of HEAD, leases and checkpoints (2: postcard).
pub const CONTROL_FORMAT_VERSION: u16 = 2;

/// Longest lease holder or checkpoint name.
pub const NAME_BYTES_MAX: usize = 256;

const fn spec(kind: ObjectKind, magic: [u8; 4]) -> FrameSpec {
    FrameSpec {
        kind,
        magic,
        version: CONTROL_FORMAT_VERSION,
        body_bytes_max: 4096,
    }
}
const HEAD_FRAME: FrameSpec = spec(ObjectKind::Head, *b"RFHD");
const LEASE_FRAME: FrameSpec = spec(ObjectKind::Lease, *b"RFLS");
const CHECKPOINT_FRAME: FrameSpec = spec(ObjectKind::Checkpoint, *b"RFCK");

/// HEAD: the newest committed manifest version (advanced by CAS).
///
/// Field order is wire order (format 2): reorder nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Manifest version HEAD points at.
    pub manifest_version: u64,
}

/// A lease pinning a manifest version until it expires.
///
/// Field order is wire order (format 2): reorder nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (free text for operators, e.g. host and pid).
    pub holder: String,
    /// The pinned manifest version.
    pub manifest_version: u64,
    /// When it was taken or last renewed (ms since the Unix epoch).
    pub renewed_at_ms: u64,
    /// When it lapses unless renewed (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// A named, durable pin of a manifest version.
///
/// Field order is wire order (format 2): reorder nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Name, also in the object key.
    pub name: String,
    /// The pinned manifest version.
    pub manifest_version: u64,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
}

fn check_name(s: &str, field: &str, err: impl Fn(String) -> FormatError) -> Result<()> {
    if s.len() > NAME_BYTES_MAX {
        return Err(err(format!(
            "{field} of {} bytes exceeds {NAME_BYTES_MAX}",
            s.len()
        )));
    }
    Ok(())
}

/// Opens a control object's frame and decodes its body: version 1 by the
/// frozen hand-written decoder, version 2 as postcard.
fn decode<T: Serialize + DeserializeOwned>(
    spec: &FrameSpec,
    bytes: &[u8],
    object: &str,
    v1: fn(&[u8], &str) -> Result<T>,
) -> Result<T> {
    match spec.open_versioned(bytes, object)? {
        (1, body) => v1(body, object),
        (_, body) => wire::decode(body, spec.kind, object),
    }
}

fn corrupt(kind: ObjectKind, object: &str) -> impl Fn(String) -> FormatError {
    move |reason| FormatError::Corrupt {
        kind,
        object: object.to_owned(),
        offset: HEADER_BYTES as u64,
        reason,
    }
}

impl Head {
    /// Encodes and frames HEAD.
    pub fn encode(&self) -> Result<Vec<u8>> {
        HEAD_FRAME.seal(&wire::encode(self, "HEAD")?)
    }

    /// Checks and decodes HEAD.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Head> {
        decode(&HEAD_FRAME, bytes, object, legacy::head)
    }
}

impl Lease {
    /// Encodes and frames a lease.
    pub fn encode(&self) -> Result<Vec<u8>> {
        check_name(&self.holder, "lease.holder", |reason| {
            FormatError::invalid("lease.holder", reason)
        })?;
        LEASE_FRAME.seal(&wire::encode(self, "lease")?)
    }

    /// Checks and decodes a lease.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Lease> {
        let lease = decode(&LEASE_FRAME, bytes, object, legacy::lease)?;
        check_name(&lease.holder, "holder", corrupt(ObjectKind::Lease, object))?;
        Ok(lease)
    }
}

impl Checkpoint {
    /// Encodes and frames a checkpoint.
    pub fn encode(&self) -> Result<Vec<u8>> {
        check_name(&self.name, "checkpoint.name", |reason| {
            FormatError::invalid("checkpoint.name", reason)
        })?;
        CHECKPOINT_FRAME.seal(&wire::encode(self, "checkpoint")?)
    }

    /// Checks and decodes a checkpoint.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Checkpoint> {
        let ckpt = decode(&CHECKPOINT_FRAME, bytes, object, legacy::checkpoint)?;
        check_name(&ckpt.name, "name", corrupt(ObjectKind::Checkpoint, object))?;
        Ok(ckpt)
    }
}
