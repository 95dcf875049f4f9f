//! Builds a validly framed object around arbitrary bytes (magic, version,
//! flags 0, length, CRC), so fuzz targets reach the body decoders that the
//! CRC would otherwise guard. Shared by the targets via `#[path]`.

#[allow(dead_code)] // each target uses one of the two
pub fn frame(magic: &[u8; 4], body: &[u8]) -> Vec<u8> {
    frame_v(magic, 1, body)
}

/// As `frame`, with a chosen format version (older versions stay
/// readable, so their decoders are fuzzed too).
#[allow(dead_code)]
pub fn frame_v(magic: &[u8; 4], version: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = reef_format::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
