//! The small control objects: the HEAD pointer, leases and checkpoints.
//! Each is framed like a WAL record (magic, version, length, CRC).
//!
//! Invariant: names and holders are bounded (`NAME_BYTES_MAX`) and UTF-8;
//! decoders refuse anything else.

use crate::codec::{Reader, Writer};
use crate::error::{FormatError, ObjectKind, Result};
use crate::frame::{FrameSpec, HEADER_BYTES};

/// Longest lease holder or checkpoint name.
pub const NAME_BYTES_MAX: usize = 256;

const fn spec(kind: ObjectKind, magic: [u8; 4]) -> FrameSpec {
    FrameSpec {
        kind,
        magic,
        version: 1,
        body_bytes_max: 4096,
    }
}
const HEAD_FRAME: FrameSpec = spec(ObjectKind::Head, *b"RFHD");
const LEASE_FRAME: FrameSpec = spec(ObjectKind::Lease, *b"RFLS");
const CHECKPOINT_FRAME: FrameSpec = spec(ObjectKind::Checkpoint, *b"RFCK");

/// HEAD: the newest committed manifest version (advanced by CAS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Manifest version HEAD points at.
    pub manifest_version: u64,
}

/// A lease pinning a manifest version until it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Name, also in the object key.
    pub name: String,
    /// The pinned manifest version.
    pub manifest_version: u64,
    /// When it was created (ms since the Unix epoch).
    pub created_at_ms: u64,
}

fn name(w: &mut Writer, field: &str, s: &str) -> Result<()> {
    if s.len() > NAME_BYTES_MAX {
        return Err(FormatError::invalid(
            field,
            format!("{} bytes exceed {NAME_BYTES_MAX}", s.len()),
        ));
    }
    w.bytes16(field, s.as_bytes())
}

fn read_name(r: &mut Reader<'_>, what: &str) -> Result<String> {
    let s = r.str16(what)?;
    if s.len() > NAME_BYTES_MAX {
        return Err(r.corrupt(format!("{what} of {} bytes", s.len())));
    }
    Ok(s.to_owned())
}

impl Head {
    /// Encodes and frames HEAD.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        w.u64(self.manifest_version);
        HEAD_FRAME.seal(w.as_slice())
    }

    /// Checks and decodes HEAD.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Head> {
        let body = HEAD_FRAME.open(bytes, object)?;
        let mut r = Reader::new(body, ObjectKind::Head, object, HEADER_BYTES as u64);
        let head = Head {
            manifest_version: r.u64("manifest_version")?,
        };
        r.finish("HEAD")?;
        Ok(head)
    }
}

impl Lease {
    /// Encodes and frames a lease.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        name(&mut w, "lease.holder", &self.holder)?;
        w.u64(self.manifest_version);
        w.u64(self.renewed_at_ms);
        w.u64(self.expires_at_ms);
        LEASE_FRAME.seal(w.as_slice())
    }

    /// Checks and decodes a lease.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Lease> {
        let body = LEASE_FRAME.open(bytes, object)?;
        let mut r = Reader::new(body, ObjectKind::Lease, object, HEADER_BYTES as u64);
        let lease = Lease {
            holder: read_name(&mut r, "holder")?,
            manifest_version: r.u64("manifest_version")?,
            renewed_at_ms: r.u64("renewed_at_ms")?,
            expires_at_ms: r.u64("expires_at_ms")?,
        };
        r.finish("lease")?;
        Ok(lease)
    }
}

impl Checkpoint {
    /// Encodes and frames a checkpoint.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::default();
        name(&mut w, "checkpoint.name", &self.name)?;
        w.u64(self.manifest_version);
        w.u64(self.created_at_ms);
        CHECKPOINT_FRAME.seal(w.as_slice())
    }

    /// Checks and decodes a checkpoint.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Checkpoint> {
        let body = CHECKPOINT_FRAME.open(bytes, object)?;
        let mut r = Reader::new(body, ObjectKind::Checkpoint, object, HEADER_BYTES as u64);
        let ckpt = Checkpoint {
            name: read_name(&mut r, "name")?,
            manifest_version: r.u64("manifest_version")?,
            created_at_ms: r.u64("created_at_ms")?,
        };
        r.finish("checkpoint")?;
        Ok(ckpt)
    }
}
