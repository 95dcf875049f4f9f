//! ListObjectsV2 answers (`<ListBucketResult>`), as much of them as Reef
//! reads: keys with sizes, common prefixes, whether more follow.

use serde::Deserialize;

use crate::error::{Error, Result};

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListResult {
    #[serde(default)]
    pub contents: Vec<Entry>,
    #[serde(default)]
    pub common_prefixes: Vec<CommonPrefix>,
    #[serde(default)]
    pub is_truncated: bool,
    #[serde(default)]
    pub next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Entry {
    pub key: String,
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CommonPrefix {
    pub prefix: String,
}

impl ListResult {
    /// Parses an answer body; `prefix` names the listing in errors.
    pub fn parse(body: &[u8], prefix: &str) -> Result<ListResult> {
        let text = std::str::from_utf8(body).map_err(|e| bad(prefix, e.to_string()))?;
        quick_xml::de::from_str(text).map_err(|e| bad(prefix, e.to_string()))
    }
}

fn bad(prefix: &str, why: String) -> Error {
    Error::Backend {
        op: "list",
        key: prefix.to_owned(),
        message: format!("the server's listing could not be read: {why}"),
        transient: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_prefixes_and_truncation() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>p/a</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>
    <ETag>&quot;x&quot;</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>p/b&amp;c</Key><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>
  <NextContinuationToken>tok</NextContinuationToken>
</ListBucketResult>"#;
        let r = ListResult::parse(body, "p/").unwrap();
        let keys: Vec<(&str, u64)> = r
            .contents
            .iter()
            .map(|e| (e.key.as_str(), e.size))
            .collect();
        assert_eq!(keys, [("p/a", 3), ("p/b&c", 0)]);
        assert_eq!(r.common_prefixes[0].prefix, "p/d/");
        assert!(r.is_truncated);
        assert_eq!(r.next_continuation_token.as_deref(), Some("tok"));
        let empty = ListResult::parse(
            b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
            "p/",
        )
        .unwrap();
        assert!(empty.contents.is_empty() && !empty.is_truncated);
        assert!(ListResult::parse(b"not xml <", "p/").is_err());
    }
}
