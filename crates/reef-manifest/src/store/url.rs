//! Store URLs (DESIGN §5): a plain path or `file://` (the local backend),
//! `memory://` (a fresh in-process bucket), `s3://bucket[/prefix]` (S3; the
//! endpoint, region and credentials come from the usual `AWS_*` variables,
//! never from the URL, so a URL can be printed safely).

use std::path::PathBuf;

use super::{DynStore, LocalStore, MemoryStore};
use crate::error::{Error, Result};

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory.
    Local(PathBuf),
    /// A fresh in-memory bucket.
    Memory,
    /// An S3 bucket and key prefix (without trailing `/`).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, possibly empty.
        prefix: String,
    },
}

impl StoreUrl {
    /// Parses a store URL, naming what is wrong on failure.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let bad = |reason: &str| {
            Err(Error::InvalidUrl {
                url: url.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if url.is_empty() {
            return bad("empty");
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return bad("file:// needs a path");
            }
            return Ok(StoreUrl::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("memory://") {
            if !rest.is_empty() {
                return bad("memory:// takes nothing after it");
            }
            return Ok(StoreUrl::Memory);
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid_bucket {
                return bad("bucket must be 3-63 characters of [a-z0-9.-]");
            }
            if bucket.contains('@') || rest.contains('@') {
                return bad("credentials do not belong in the URL; use AWS_* variables");
            }
            let prefix = prefix.trim_end_matches('/').to_owned();
            if !prefix.is_empty() && super::validate_key(&prefix).is_err() {
                return bad("prefix must be [A-Za-z0-9/._-]");
            }
            return Ok(StoreUrl::S3 {
                bucket: bucket.to_owned(),
                prefix,
            });
        }
        if url.contains("://") {
            return bad("unknown scheme; use a path, file://, memory:// or s3://");
        }
        Ok(StoreUrl::Local(PathBuf::from(url)))
    }
}

/// Opens the store a URL names.
pub fn open_store(url: &str) -> Result<DynStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::Local(path) => Ok(std::sync::Arc::new(LocalStore::new(path))),
        StoreUrl::Memory => Ok(std::sync::Arc::new(MemoryStore::new())),
        StoreUrl::S3 { bucket, prefix } => Ok(std::sync::Arc::new(super::S3Store::from_env(
            &bucket, &prefix,
        )?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            StoreUrl::parse("./reef-data").unwrap(),
            StoreUrl::Local("./reef-data".into())
        );
        assert_eq!(
            StoreUrl::parse("file:///tmp/x").unwrap(),
            StoreUrl::Local("/tmp/x".into())
        );
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        assert_eq!(
            StoreUrl::parse("s3://my-bucket/some/prefix/").unwrap(),
            StoreUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "some/prefix".into()
            }
        );
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("", "empty"),
            ("ftp://x", "unknown scheme"),
            ("s3://A", "bucket"),
            ("s3://key:secret@bucket", "bucket"),
            ("s3://bucket/a b", "prefix"),
            ("memory://x", "nothing after"),
            ("file://", "needs a path"),
        ] {
            let err = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
