//! The S3 backend, over fusio's `AmazonS3` (conditional PUTs with
//! `If-None-Match: *` and `If-Match`).
//!
//! Configured from `s3://bucket/prefix` plus `AWS_ENDPOINT_URL` (optional;
//! a custom endpoint means path-style addressing), `AWS_REGION` (or
//! `AWS_DEFAULT_REGION`, default `us-east-1`), `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN`. Credentials
//! never appear in errors or `Debug` output.
//!
//! fusio 0.6.1 quirks this module works around (each has a test in
//! `tests/conformance.rs` or `tests/s3_quirks.rs`):
//! - `exists` answers the opposite; we never call it (`head` instead).
//! - `list` takes a bare prefix (and strips a trailing `/`), so `wal` also
//!   matches `walX/`; we filter on our exact prefix.
//! - keys are percent-encoded differently on the `&str` and `Path` code
//!   paths; `validate_key` restricts keys to `[A-Za-z0-9/._-]` without dot
//!   segments, which both paths carry unchanged.
//! - a zero-length ranged read panics inside fusio; we answer it from
//!   `head` instead.
//! - the streaming writer appends unless opened with `truncate(true)`, and
//!   switches to multipart above 5 MiB (conditional puts are single PUTs at
//!   any size).
//! - errors arrive as nested boxes; `classify` digs out the HTTP status
//!   (from the text, for the streaming writer's errors).
//!
//! Conditional writes: tags are kept bare (no quotes), and `If-Match` is
//! sent bare, which Ceph RGW and DigitalOcean Spaces require; a server
//! that refuses a bare tag that is still current gets it quoted from then
//! on, and one that refuses both is `Unsupported`, never retried in
//! silence. A 5xx on a conditional PUT (RGW answers some losers of an
//! `If-Match` race 500) is settled by reading the object back: our bytes
//! there mean written, so conditional writes must carry unique bytes (all
//! of Reef's do: nonces, versions), then retried with backoff.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use fusio::fs::{Fs, OpenOptions};
use fusio::path::Path;
use fusio::remotes::aws::fs::{AmazonS3, AmazonS3Builder};
use fusio::remotes::aws::head::ETag;
use fusio::remotes::aws::{AwsCredential, S3Error};
use fusio::remotes::http::HttpError;
use fusio::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    ListPage, Listed, Object, ObjectMeta, ObjectStore, PutOutcome, Tag, check_range, page_of,
    validate_key, validate_prefix,
};
use crate::error::{Error, Result};

/// Attempts a conditional PUT makes when the server answers 5xx (RGW
/// answers some losers of an `If-Match` race with 500): each is settled by
/// reading the object back before the next.
const CONDITIONAL_5XX_ATTEMPTS_MAX: u32 = 4;

/// The tag as Reef keeps it: the ETag without its quotes (and without a
/// weak `W/` marker), so tags compare equal whichever form a server sends.
fn bare(etag: &str) -> String {
    let t = etag.strip_prefix("W/").unwrap_or(etag);
    t.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(t)
        .to_owned()
}

/// A bucket (and key prefix) on an S3-compatible server.
pub struct S3Store {
    s3: AmazonS3,
    bucket: String,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    endpoint: Option<String>,
    /// Send `If-Match` tags quoted (set once the server has refused a bare
    /// current tag and taken the quoted one).
    quote_if_match: AtomicBool,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// What went wrong with a fusio S3 call.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    PreconditionFailed,
    NotFound,
    RangeNotSatisfiable,
    ShortRead,
    Status(u16),
    Transport,
    Other,
}

fn classify(e: &fusio::Error) -> Kind {
    match e {
        fusio::Error::PreconditionFailed => Kind::PreconditionFailed,
        fusio::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => Kind::ShortRead,
        fusio::Error::Remote(b) | fusio::Error::Other(b) | fusio::Error::Path(b) => {
            inner_kind(b.as_ref())
                .or_else(|| status_in_message(&b.to_string()))
                .unwrap_or(Kind::Other)
        }
        _ => Kind::Other,
    }
}

/// fusio's streaming writer reports a refused PUT only as text ("failed to
/// write to S3, HTTP status: 403 Forbidden content: ..."): the status is
/// read back out of it.
fn status_in_message(message: &str) -> Option<Kind> {
    let rest = message.split("HTTP status: ").nth(1)?;
    let code: u16 = rest.get(..3)?.parse().ok()?;
    Some(match code {
        404 => Kind::NotFound,
        412 => Kind::PreconditionFailed,
        416 => Kind::RangeNotSatisfiable,
        code => Kind::Status(code),
    })
}

/// Walks the boxed chain fusio builds down to an HTTP status or a
/// transport failure.
fn inner_kind(e: &(dyn std::error::Error + 'static)) -> Option<Kind> {
    if let Some(h) = e.downcast_ref::<HttpError>() {
        return Some(match h {
            HttpError::HttpNotSuccess { status, .. } => match status.as_u16() {
                404 => Kind::NotFound,
                412 => Kind::PreconditionFailed,
                416 => Kind::RangeNotSatisfiable,
                code => Kind::Status(code),
            },
            HttpError::Reqwest(_) => Kind::Transport,
            _ => Kind::Other,
        });
    }
    if let Some(S3Error::HttpError(h)) = e.downcast_ref::<S3Error>() {
        return inner_kind(h);
    }
    if let Some(inner) = e.downcast_ref::<fusio::Error>() {
        return Some(classify(inner));
    }
    None
}

fn backend(op: &'static str, key: &str, e: &fusio::Error) -> Error {
    let kind = classify(e);
    let transient = match kind {
        Kind::Transport => true,
        // 408 request timeout, 409 ConditionalRequestConflict (a
        // concurrent conditional write in progress), 429 slow down, 5xx.
        Kind::Status(code) => code >= 500 || matches!(code, 408 | 409 | 429),
        _ => false,
    };
    let message = match kind {
        Kind::Status(403) => format!(
            "the server refused the credentials (HTTP 403; check the access key and secret, \
             and that the user may use the bucket): {e}"
        ),
        _ => format!("{e} ({kind:?})"),
    };
    Error::Backend {
        op,
        key: key.to_owned(),
        message,
        transient,
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where and how to connect. `Debug` never shows the secret.
#[derive(Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (no trailing `/`), possibly empty.
    pub prefix: String,
    /// Custom endpoint (path-style addressing), e.g. a local server.
    pub endpoint: Option<String>,
    /// Region used for signing.
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Optional session token.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// The configuration for `bucket`/`prefix` from the `AWS_*` variables.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3Config> {
        S3Config::from_vars(bucket, prefix, env)
    }

    /// Same, reading variables through `var` (tests pass a map).
    pub fn from_vars(
        bucket: &str,
        prefix: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Config> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(Error::InvalidUrl {
                url: format!("s3://{bucket}/{prefix}"),
                reason: "S3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                    .to_owned(),
            });
        };
        Ok(S3Config {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: var("AWS_ENDPOINT_URL"),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }
}

impl S3Store {
    /// Connects to `bucket`, storing every key under `prefix`, with the
    /// endpoint, region and credentials from the environment.
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3Store> {
        Ok(S3Store::new(S3Config::from_env(bucket, prefix)?))
    }

    /// Connects with an explicit configuration.
    pub fn new(config: S3Config) -> S3Store {
        let mut builder = AmazonS3Builder::new(config.bucket.clone())
            .region(config.region.clone())
            .credential(AwsCredential {
                key_id: config.access_key_id,
                secret_key: config.secret_access_key,
                token: config.session_token,
            })
            .sign_payload(true);
        if let Some(ep) = &config.endpoint {
            builder = builder.endpoint(ep.trim_end_matches('/').to_owned());
        }
        S3Store {
            s3: builder.build(),
            bucket: config.bucket,
            prefix: if config.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", config.prefix)
            },
            endpoint: config.endpoint,
            quote_if_match: AtomicBool::new(false),
        }
    }

    /// fusio's client, for tests that pin its quirks.
    pub fn client(&self) -> &AmazonS3 {
        &self.s3
    }

    fn full(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn path(&self, op: &'static str, key: &str, full: &str) -> Result<Path> {
        Path::parse(full).map_err(|e| Error::Backend {
            op,
            key: key.to_owned(),
            message: format!("fusio refused the key: {e}"),
            transient: false,
        })
    }

    /// One conditional PUT, as the server answers it.
    async fn put_once(
        &self,
        full: &str,
        bytes: Bytes,
        expected: Option<&Tag>,
        quoted: bool,
    ) -> std::result::Result<ETag, fusio::Error> {
        match expected {
            None => self.s3.put_if_none_match(full, bytes, None, None).await,
            Some(tag) => {
                // Bare by default (what Ceph RGW and DigitalOcean Spaces
                // want); quoted for servers that want RFC 7232's form.
                let sent = if quoted {
                    format!("\"{}\"", tag.0)
                } else {
                    tag.0.clone()
                };
                self.s3
                    .put_if_match(full, bytes, &ETag(sent), None, None)
                    .await
            }
        }
    }

    /// A conditional PUT. A 412 with a bare tag that is still current
    /// means the server wants it quoted: retried once so, and remembered.
    /// A 412 with both forms while the tag is current is `Unsupported`. A
    /// 5xx is settled by reading the object back (the write may have
    /// happened), then retried with backoff.
    async fn conditional(
        &self,
        op: &'static str,
        key: &str,
        bytes: Bytes,
        expected: Option<&Tag>,
    ) -> Result<PutOutcome> {
        let full = self.full(key)?;
        let mut attempt = 0;
        loop {
            let quoted = self.quote_if_match.load(Ordering::Relaxed);
            let result = self.put_once(&full, bytes.clone(), expected, quoted).await;
            let e = match result {
                Ok(etag) => return Ok(PutOutcome::Written(Tag(bare(&etag.0)))),
                Err(e) => e,
            };
            match classify(&e) {
                // 404 on If-Match: the object is gone, a lost race too (AWS
                // and moto agree).
                Kind::NotFound if expected.is_some() => return Ok(PutOutcome::ConditionFailed),
                Kind::PreconditionFailed => {
                    let Some(tag) = expected else {
                        return Ok(PutOutcome::ConditionFailed);
                    };
                    let current = self.head(key).await?;
                    if current.as_ref().is_none_or(|m| &m.tag != tag) {
                        return Ok(PutOutcome::ConditionFailed);
                    }
                    // Refused although the tag is current.
                    if quoted {
                        return Err(Error::Unsupported {
                            op,
                            key: key.to_owned(),
                            reason: format!(
                                "it answered 412 to If-Match with the object's current ETag {}, \
                                 sent bare and quoted: compare-and-swap cannot work",
                                tag.0
                            ),
                        });
                    }
                    self.quote_if_match.store(true, Ordering::Relaxed);
                }
                Kind::Status(code) if code >= 500 && attempt + 1 < CONDITIONAL_5XX_ATTEMPTS_MAX => {
                    attempt += 1;
                    if let Some(settled) = self.settle(key, &bytes, expected).await? {
                        return Ok(settled);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                _ => return Err(backend(op, key, &e)),
            }
        }
    }

    /// After a 5xx on a conditional PUT: what the object says happened.
    /// Our bytes there: it was written. Gone (If-Match) or another writer's
    /// bytes: the race is lost. Still as before: unknown, try again.
    async fn settle(
        &self,
        key: &str,
        bytes: &Bytes,
        expected: Option<&Tag>,
    ) -> Result<Option<PutOutcome>> {
        let now = self.get(key).await?;
        Ok(match (now, expected) {
            (Some(o), _) if o.bytes == bytes => Some(PutOutcome::Written(o.tag)),
            (None, None) => None,
            (Some(o), Some(tag)) if &o.tag == tag => None,
            _ => Some(PutOutcome::ConditionFailed),
        })
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let full = self.full(key)?;
        let got = self
            .s3
            .get_with_etag(&full)
            .await
            .map_err(|e| backend("get", key, &e))?;
        Ok(got.map(|(bytes, etag)| Object {
            bytes,
            tag: Tag(bare(&etag.0)),
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let full = self.full(key)?;
        if range.start >= range.end {
            // fusio panics on a zero-length read; an empty (or inverted)
            // range is answered from the object's size.
            let meta = self.head(key).await?.ok_or_else(|| Error::NotFound {
                key: key.to_owned(),
            })?;
            check_range(key, &range, meta.size)?;
            return Ok(Bytes::new());
        }
        let path = self.path("get_range", key, &full)?;
        let mut file = self
            .s3
            .open(&path)
            .await
            .map_err(|e| backend("get_range", key, &e))?;
        let len = (range.end - range.start) as usize;
        let (result, buf) = file.read_exact_at(vec![0u8; len], range.start).await;
        match result {
            Ok(()) => Ok(Bytes::from(buf)),
            Err(e) => match classify(&e) {
                Kind::NotFound => Err(Error::NotFound {
                    key: key.to_owned(),
                }),
                Kind::RangeNotSatisfiable | Kind::ShortRead => {
                    let size = self.head(key).await?.map_or(0, |m| m.size);
                    check_range(key, &range, size)?;
                    Err(backend("get_range", key, &e))
                }
                _ => Err(backend("get_range", key, &e)),
            },
        }
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let full = self.full(key)?;
        let path = self.path("get_range_sized", key, &full)?;
        let mut file = self
            .s3
            .open(&path)
            .await
            .map_err(|e| backend("get_range_sized", key, &e))?;
        // `Range: bytes=<start>-`: the server sends everything to the end,
        // which gives the size. (fusio drops the Content-Range header that
        // would tell it without the rest.)
        let (result, buf) = file.read_to_end_at(Vec::new(), range.start).await;
        match result {
            Ok(()) => {
                let size = range.start + buf.len() as u64;
                check_range(key, &range, size)?;
                let mut bytes = Bytes::from(buf);
                bytes.truncate((range.end - range.start) as usize);
                Ok((bytes, size))
            }
            Err(e) => match classify(&e) {
                Kind::NotFound => Err(Error::NotFound {
                    key: key.to_owned(),
                }),
                Kind::RangeNotSatisfiable => {
                    // A start at or past the end (S3 answers 416 for a
                    // start at the very end too).
                    let size = self
                        .head(key)
                        .await?
                        .ok_or_else(|| Error::NotFound {
                            key: key.to_owned(),
                        })?
                        .size;
                    check_range(key, &range, size)?;
                    Ok((Bytes::new(), size))
                }
                _ => Err(backend("get_range_sized", key, &e)),
            },
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full(key)?;
        let path = self.path("head", key, &full)?;
        let head = self
            .s3
            .head_object(&path)
            .await
            .map_err(|e| backend("head", key, &e))?;
        match head {
            None => Ok(None),
            Some(h) => match h.etag {
                Some(etag) => Ok(Some(ObjectMeta {
                    size: h.size,
                    tag: Tag(bare(&etag)),
                })),
                // A tag-less answer would make every later CAS fail
                // mysteriously; say so now.
                None => Err(Error::Backend {
                    op: "head",
                    key: key.to_owned(),
                    message: "the server returned no ETag".to_owned(),
                    transient: false,
                }),
            },
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let full = self.full(key)?;
        let path = self.path("put", key, &full)?;
        // truncate(true): without it fusio appends to the existing object.
        let mut file = self
            .s3
            .open_options(&path, OpenOptions::default().create(true).truncate(true))
            .await
            .map_err(|e| backend("put", key, &e))?;
        let (result, _) = file.write_all(bytes).await;
        result.map_err(|e| backend("put", key, &e))?;
        file.close().await.map_err(|e| backend("put", key, &e))
    }

    async fn put_if_absent(&self, key: &str, bytes: Bytes) -> Result<PutOutcome> {
        self.conditional("put_if_absent", key, bytes, None).await
    }

    async fn put_if_match(&self, key: &str, bytes: Bytes, expected: &Tag) -> Result<PutOutcome> {
        self.conditional("put_if_match", key, bytes, Some(expected))
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        use futures_util::StreamExt;
        validate_prefix(prefix)?;
        let full_prefix = format!("{}{prefix}", self.prefix);
        // fusio lists by bare prefix and strips a trailing '/': list the
        // stem and keep only exact prefix matches.
        let stem = full_prefix.trim_end_matches('/');
        let path = self.path("list", prefix, stem)?;
        let stream = self
            .s3
            .list(&path)
            .await
            .map_err(|e| backend("list", prefix, &e))?;
        let mut stream = std::pin::pin!(stream);
        let mut all = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| backend("list", prefix, &e))?;
            let full: String = meta.path.into();
            if let Some(key) = full.strip_prefix(&self.prefix)
                && key.starts_with(prefix)
            {
                all.push(Listed {
                    key: key.to_owned(),
                    size: meta.size,
                });
            }
        }
        Ok(page_of(all, start_after, limit))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full(key)?;
        let path = self.path("delete", key, &full)?;
        self.s3
            .remove(&path)
            .await
            .map_err(|e| backend("delete", key, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_credentials() {
        let config = S3Config {
            bucket: "b".into(),
            prefix: "p".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLEKEYID".into(),
            secret_access_key: "wJalrXUtnFEMIsecretEXAMPLEKEY".into(),
            session_token: Some("SESSIONTOKENEXAMPLE".into()),
        };
        let store = S3Store::new(config.clone());
        for text in [format!("{config:?}"), format!("{store:?}")] {
            for secret in [
                "AKIDEXAMPLEKEYID",
                "wJalrXUtnFEMIsecretEXAMPLEKEY",
                "SESSIONTOKENEXAMPLE",
            ] {
                assert!(!text.contains(secret), "{text}");
            }
            assert!(text.contains("\"b\""), "{text}");
        }
    }

    #[test]
    fn config_comes_from_the_aws_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let err = S3Config::from_vars("bucket", "", vars(&[("AWS_ACCESS_KEY_ID", "k")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        let c = S3Config::from_vars(
            "bucket",
            "p",
            vars(&[
                ("AWS_ACCESS_KEY_ID", "k"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (c.region.as_str(), c.endpoint.as_deref()),
            ("eu-west-1", Some("http://127.0.0.1:9"))
        );
        let c = S3Config::from_vars(
            "bucket",
            "",
            vars(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]),
        )
        .unwrap();
        assert_eq!((c.region.as_str(), c.endpoint), ("us-east-1", None));
    }
}
