//! Store URLs (DESIGN §5), one grammar for the library and the CLI:
//!
//! | form | store |
//! |---|---|
//! | `/abs/path`, `rel/path`, `./rel` | local directory; a relative path is resolved against the working directory when parsed |
//! | `file:///abs/path` | local directory (absolute paths only) |
//! | `s3://bucket[/prefix]` | S3; endpoint, region and credentials from the usual `AWS_*` sources, never from the URL, so a URL can be printed safely |
//! | `memory://` | a fresh in-process bucket (gone when the process exits) |
//!
//! Anything else that starts with a scheme (`file:rel`, `file://host/…`,
//! `s3:/…`, `ftp://…`) is refused with the accepted forms listed, never
//! taken for a directory name.

use std::path::PathBuf;

use super::{DynStore, LocalStore, MemoryStore};
use crate::error::{Error, Result};

/// The accepted forms, for error messages.
pub const STORE_URL_FORMS: &str = "a path (absolute, or relative to the working directory), \
file:///absolute/path, s3://bucket/prefix, or memory:// (in-process only)";

/// A parsed store URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local directory (absolute).
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

/// `Some((scheme, rest))` if `url` starts with `scheme:` (RFC 3986:
/// a letter, then letters, digits, `+`, `-`, `.`).
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

impl StoreUrl {
    /// Parses a store URL, naming what is wrong on failure.
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let bad = |reason: &str| {
            Err(Error::InvalidUrl {
                url: url.to_owned(),
                reason: format!("{reason}; accepted: {STORE_URL_FORMS}"),
            })
        };
        if url.is_empty() {
            return bad("empty");
        }
        let Some((scheme, rest)) = split_scheme(url) else {
            return local(url);
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => match rest.strip_prefix("//") {
                Some(path) if path.starts_with('/') => local(path),
                Some("") => bad("file:// needs a path"),
                Some(_) => bad("file URLs name no host: write file:///absolute/path"),
                None => {
                    bad("file URLs are file:///absolute/path (a relative path needs no scheme)")
                }
            },
            "memory" if rest == "//" => Ok(StoreUrl::Memory),
            "memory" => bad("memory:// takes nothing after it"),
            "s3" => match rest.strip_prefix("//") {
                Some(rest) => s3(rest, url),
                None => bad("S3 URLs are s3://bucket/prefix"),
            },
            _ => bad("unknown scheme"),
        }
    }
}

/// A local directory, made absolute (a relative path against the working
/// directory), so every later use means the same directory.
fn local(path: &str) -> Result<StoreUrl> {
    std::path::absolute(path)
        .map(StoreUrl::Local)
        .map_err(|e| Error::InvalidUrl {
            url: path.to_owned(),
            reason: format!("cannot resolve the path against the working directory: {e}"),
        })
}

fn s3(rest: &str, url: &str) -> Result<StoreUrl> {
    let bad = |reason: &str| {
        Err(Error::InvalidUrl {
            url: url.to_owned(),
            reason: format!("{reason}; accepted: {STORE_URL_FORMS}"),
        })
    };
    if rest.contains('@') {
        return bad("credentials do not belong in the URL; use AWS_* variables");
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        return bad("bucket must be 3-63 characters of [a-z0-9.-]");
    }
    let prefix = prefix.trim_end_matches('/').to_owned();
    if !prefix.is_empty() && super::validate_key(&prefix).is_err() {
        return bad("prefix must be [A-Za-z0-9/._-]");
    }
    Ok(StoreUrl::S3 {
        bucket: bucket.to_owned(),
        prefix,
    })
}

/// Opens the store a URL names: a directory path, `file:///absolute/path`,
/// `s3://bucket/prefix` (endpoint, region and credentials from the `AWS_*`
/// variables), or `memory://` (tests).
///
/// ```
/// use reef_manifest::store::open_store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("reef-doc-open-store-{}", std::process::id()));
/// let store = open_store(dir.to_str().ok_or("path")?)?;
/// store.put("greeting", bytes::Bytes::from_static(b"hello")).await?;
/// assert!(open_store("ftp://elsewhere").is_err());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn open_store(url: &str) -> Result<DynStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::Local(path) => Ok(std::sync::Arc::new(LocalStore::new(path))),
        StoreUrl::Memory => Ok(std::sync::Arc::new(MemoryStore::new())),
        StoreUrl::S3 { bucket, prefix } => Ok(std::sync::Arc::new(super::S3Store::from_env(
            &bucket, &prefix,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cwd() -> PathBuf {
        std::env::current_dir().unwrap()
    }

    #[test]
    fn parses_every_accepted_form() {
        for (url, expected) in [
            ("./reef-data", StoreUrl::Local(cwd().join("reef-data"))),
            ("rs", StoreUrl::Local(cwd().join("rs"))),
            ("a/b/", StoreUrl::Local(cwd().join("a/b"))),
            ("/tmp/x", StoreUrl::Local("/tmp/x".into())),
            ("file:///tmp/x", StoreUrl::Local("/tmp/x".into())),
            ("FILE:///tmp/x", StoreUrl::Local("/tmp/x".into())),
            ("memory://", StoreUrl::Memory),
            (
                "s3://my-bucket/some/prefix/",
                StoreUrl::S3 {
                    bucket: "my-bucket".into(),
                    prefix: "some/prefix".into(),
                },
            ),
            (
                "s3://my-bucket",
                StoreUrl::S3 {
                    bucket: "my-bucket".into(),
                    prefix: String::new(),
                },
            ),
            // Not a scheme: a path that happens to hold "://".
            ("./a://b", StoreUrl::Local(cwd().join("a:/b"))),
        ] {
            assert_eq!(StoreUrl::parse(url).unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn bad_urls_say_why_and_list_the_accepted_forms() {
        for (url, why) in [
            ("", "empty"),
            ("ftp://x", "unknown scheme"),
            ("file:rel", "file:///absolute/path"),
            ("file:/tmp/x", "file:///absolute/path"),
            ("file://rs", "name no host"),
            ("file://localhost/tmp/x", "name no host"),
            ("file://", "needs a path"),
            ("s3:/bucket", "s3://bucket/prefix"),
            ("s3:bucket", "s3://bucket/prefix"),
            ("s3://A", "bucket"),
            ("s3://key:secret@bucket", "credentials"),
            ("s3://bucket/a b", "prefix"),
            ("memory://x", "nothing after"),
            ("memory:", "nothing after"),
            ("c:foo", "unknown scheme"),
        ] {
            let err = StoreUrl::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(err.contains("accepted: a path"), "{url}: {err}");
        }
    }
}
