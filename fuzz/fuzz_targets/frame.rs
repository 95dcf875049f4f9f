//! Builds a validly framed object around arbitrary bytes (magic, version
//! 1, flags 0, length, CRC), so fuzz targets reach the body decoders that
//! the CRC would otherwise guard. Shared by the targets via `#[path]`.

pub fn frame(magic: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 20);
    out.extend_from_slice(magic);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let crc = reef_format::crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
