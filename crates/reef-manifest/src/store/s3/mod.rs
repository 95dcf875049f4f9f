//! The S3 backend: Reef's own S3 requests (`http.rs`: SigV4 by reqsign,
//! carried by fusio's HTTP client), so every request is exactly the one
//! S3 documents: conditional PUTs with `If-None-Match: *` and `If-Match`,
//! ranged GETs that report the object's size (`Content-Range`), and
//! ListObjectsV2 with prefix, delimiter, start-after and max-keys, so a
//! page costs O(page) and namespaces are listed by name.
//!
//! Configured from `s3://bucket/prefix` plus the `AWS_*` settings and
//! credential chain of `auth.rs`. Credentials never appear in errors or
//! `Debug` output.
//!
//! Conditional writes: tags are kept bare (no quotes), and `If-Match` is
//! sent bare, which Ceph RGW and DigitalOcean Spaces require; a server that
//! refuses a bare tag that is still current gets it quoted (and from the
//! first success on, always), and one that refuses both is
//! `Unsupported`, never retried in silence. A 5xx on a conditional PUT
//! (RGW answers some losers of an `If-Match` race 500) leaves the outcome
//! unknown: if HEAD shows the object still as the condition expects, the
//! PUT is tried again after a backoff; otherwise it answers
//! `ConditionFailed`, and the caller reads the object back to see whose
//! write it is, as after any lost response (equal bytes from two writers
//! are possible, so the store does not guess).
//!
//! Status meanings: 404 absent; 412 condition failed; 403 refused
//! credentials (a clear, permanent error); 408, 409 (a concurrent
//! conditional write), 429 and 5xx transient, as is a failure to get an
//! answer at all.

mod auth;
mod http;
mod list;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use ::http::Method;
use ::http::header::{CONTENT_RANGE, ETAG, IF_MATCH, IF_NONE_MATCH, RANGE};
use async_trait::async_trait;
use bytes::Bytes;

pub use auth::{S3Config, S3Credentials};

use self::auth::Auth;
use self::http::{Call, Http, Reply};
use self::list::ListResult;
use super::{
    LIST_PAGE_MAX, ListPage, Listed, Object, ObjectMeta, ObjectStore, PutOutcome, Tag, check_range,
    validate_key, validate_prefix,
};
use crate::error::{Error, Result};

/// Attempts a conditional PUT makes when the server answers 5xx while the
/// object stays as the condition expects.
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
    http: Http,
    bucket: String,
    /// `""` or `"<prefix>/"`.
    prefix: String,
    /// Send `If-Match` tags quoted (set once the server has refused a bare
    /// current tag and then taken the quoted one).
    quote_if_match: AtomicBool,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("base", &self.http.base())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// `bucket`, every key under `prefix`, with the endpoint, region and
    /// credential chain of the environment.
    pub fn from_env(bucket: &str, prefix: &str) -> S3Store {
        S3Store::new(S3Config::from_env(bucket, prefix))
    }

    /// Connects with an explicit configuration.
    pub fn new(config: S3Config) -> S3Store {
        let auth = Auth::new(config.credentials);
        S3Store {
            http: Http::new(
                config.endpoint.as_deref(),
                &config.bucket,
                &config.region,
                auth,
            ),
            bucket: config.bucket,
            prefix: if config.prefix.is_empty() {
                String::new()
            } else {
                format!("{}/", config.prefix)
            },
            quote_if_match: AtomicBool::new(false),
        }
    }

    fn full(&self, key: &str) -> Result<String> {
        validate_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// The error for an answer `op` did not expect.
    fn refused(&self, op: &'static str, key: &str, reply: &Reply) -> Error {
        let code = reply.code().unwrap_or_default();
        if reply.status == 501 {
            // A server without the feature (often conditional headers).
            return Error::Unsupported {
                op,
                key: key.to_owned(),
                reason: format!("HTTP 501 {code} from {}", self.http.base()),
            };
        }
        let transient = reply.status >= 500
            || matches!(reply.status, 408 | 409 | 429)
            || code == "RequestTimeout";
        let message = match (reply.status, code.as_str()) {
            (403, "RequestTimeTooSkewed") => format!(
                "the server refused the request's time (HTTP 403 {code}): this machine's clock \
                 is too far from the server's for SigV4 signatures"
            ),
            (403, _) => format!(
                "the server refused the credentials (HTTP 403 {code}; check the access key and \
                 secret, and that the user may use bucket {})",
                self.bucket
            ),
            (404, "NoSuchBucket") => format!("bucket {} does not exist", self.bucket),
            (status, code) => format!("HTTP {status} {code} from {}", self.http.base()),
        };
        Error::Backend {
            op,
            key: key.to_owned(),
            message,
            transient,
        }
    }

    fn tag_of(&self, op: &'static str, key: &str, reply: &Reply) -> Result<Tag> {
        // A tag-less answer would make every later CAS fail mysteriously;
        // say so now.
        reply
            .header(ETAG.as_str())
            .map(|t| Tag(bare(t)))
            .ok_or_else(|| Error::Backend {
                op,
                key: key.to_owned(),
                message: "the server returned no ETag".to_owned(),
                transient: false,
            })
    }

    /// A ranged GET: the bytes and, from `Content-Range`, the object's size.
    async fn ranged(&self, op: &'static str, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        let full = self.full(key)?;
        if range.start >= range.end {
            // S3 has no empty range; the size answers it.
            let size = self.head(key).await?.ok_or_else(|| not_found(key))?.size;
            check_range(key, &range, size)?;
            return Ok((Bytes::new(), size));
        }
        let mut call = Call::new(op, key, Method::GET, &full);
        call.headers
            .push((RANGE, format!("bytes={}-{}", range.start, range.end - 1)));
        let reply = self.http.send(call).await?;
        let len = (range.end - range.start) as usize;
        match reply.status {
            206 => {
                let size = reply
                    .header(CONTENT_RANGE.as_str())
                    .and_then(|v| v.rsplit('/').next())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| Error::Backend {
                        op,
                        key: key.to_owned(),
                        message: "a ranged GET came back without the object's size".to_owned(),
                        transient: false,
                    })?;
                check_range(key, &range, size)?;
                if reply.body.len() != len {
                    return Err(Error::Backend {
                        op,
                        key: key.to_owned(),
                        message: format!("asked for {len} bytes, got {}", reply.body.len()),
                        transient: true,
                    });
                }
                Ok((reply.body, size))
            }
            // The whole object (a server that ignores Range).
            200 => {
                let size = reply.body.len() as u64;
                check_range(key, &range, size)?;
                // A copy, not a slice: the block cache would otherwise
                // keep the whole object alive per cached block.
                Ok((
                    Bytes::copy_from_slice(
                        reply
                            .body
                            .get(range.start as usize..range.end as usize)
                            .unwrap_or_default(),
                    ),
                    size,
                ))
            }
            404 if reply.code().as_deref() != Some("NoSuchBucket") => Err(not_found(key)),
            416 => {
                let size = self.head(key).await?.ok_or_else(|| not_found(key))?.size;
                check_range(key, &range, size)?;
                Err(self.refused(op, key, &reply))
            }
            _ => Err(self.refused(op, key, &reply)),
        }
    }

    /// One conditional PUT as the server answers it.
    async fn put_once(
        &self,
        op: &'static str,
        key: &str,
        full: &str,
        bytes: &Bytes,
        expected: Option<&Tag>,
        quoted: bool,
    ) -> Result<Reply> {
        let mut call = Call::new(op, key, Method::PUT, full);
        call.body = bytes.clone();
        call.headers.push(match expected {
            None => (IF_NONE_MATCH, "*".to_owned()),
            // Bare by default (what Ceph RGW and DigitalOcean Spaces want);
            // quoted for servers that want RFC 7232's form.
            Some(tag) if quoted => (IF_MATCH, format!("\"{}\"", tag.0)),
            Some(tag) => (IF_MATCH, tag.0.clone()),
        });
        self.http.send(call).await
    }

    /// A conditional PUT (see the module doc for 412 and 5xx handling).
    async fn conditional(
        &self,
        op: &'static str,
        key: &str,
        bytes: Bytes,
        expected: Option<&Tag>,
    ) -> Result<PutOutcome> {
        let full = self.full(key)?;
        let mut attempt = 0;
        // Quoted for this call: the store's setting, or this call trying
        // the quoted form once. The setting changes only after the server
        // took a quoted tag, never on a 412 alone (a race can look like a
        // refused current tag).
        let mut quoted = self.quote_if_match.load(Ordering::Relaxed);
        loop {
            let reply = self
                .put_once(op, key, &full, &bytes, expected, quoted)
                .await?;
            match reply.status {
                200..=299 => {
                    if quoted && expected.is_some() {
                        self.quote_if_match.store(true, Ordering::Relaxed);
                    }
                    return Ok(PutOutcome::Written(self.tag_of(op, key, &reply)?));
                }
                // If-Match on a missing object: gone, a lost race too.
                404 if expected.is_some() && reply.code().as_deref() != Some("NoSuchBucket") => {
                    return Ok(PutOutcome::ConditionFailed);
                }
                412 => {
                    let Some(tag) = expected else {
                        return Ok(PutOutcome::ConditionFailed);
                    };
                    let current = self.head(key).await?;
                    if current.as_ref().is_none_or(|m| &m.tag != tag) {
                        return Ok(PutOutcome::ConditionFailed);
                    }
                    // Refused although the tag is (still, or again) current.
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
                    quoted = true;
                }
                status if status >= 500 && attempt + 1 < CONDITIONAL_5XX_ATTEMPTS_MAX => {
                    attempt += 1;
                    if self.unchanged(key, expected).await? {
                        tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                        continue;
                    }
                    // Someone's write landed, maybe ours: the caller reads
                    // the object back (the contract of every conditional
                    // put after a lost response).
                    return Ok(PutOutcome::ConditionFailed);
                }
                _ => return Err(self.refused(op, key, &reply)),
            }
        }
    }

    /// After a 5xx on a conditional PUT: whether the object is still as
    /// the condition expects (absent, or at `expected`), so trying again
    /// is safe. Bytes are not compared: two writers can put equal bytes
    /// (a checkpoint, HEAD), so "ours" is the caller's call.
    async fn unchanged(&self, key: &str, expected: Option<&Tag>) -> Result<bool> {
        let now = self.head(key).await?;
        Ok(match (now, expected) {
            (None, None) => true,
            (Some(m), Some(tag)) => &m.tag == tag,
            _ => false,
        })
    }

    /// One ListObjectsV2 request.
    async fn list_once(
        &self,
        prefix: &str,
        full_prefix: &str,
        query: Vec<(&'static str, String)>,
    ) -> Result<ListResult> {
        let mut call = Call::new("list", prefix, Method::GET, "");
        call.query = query;
        call.query.push(("list-type", "2".to_owned()));
        call.query.push(("prefix", full_prefix.to_owned()));
        let reply = self.http.send(call).await?;
        if reply.status != 200 {
            return Err(self.refused("list", prefix, &reply));
        }
        ListResult::parse(&reply.body, prefix)
    }
}

fn not_found(key: &str) -> Error {
    Error::NotFound {
        key: key.to_owned(),
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>> {
        let full = self.full(key)?;
        let reply = self
            .http
            .send(Call::new("get", key, Method::GET, &full))
            .await?;
        match reply.status {
            200 => Ok(Some(Object {
                tag: self.tag_of("get", key, &reply)?,
                bytes: reply.body,
            })),
            404 if reply.code().as_deref() != Some("NoSuchBucket") => Ok(None),
            _ => Err(self.refused("get", key, &reply)),
        }
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(self.ranged("get_range", key, range).await?.0)
    }

    async fn get_range_sized(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64)> {
        self.ranged("get_range_sized", key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full(key)?;
        let reply = self
            .http
            .send(Call::new("head", key, Method::HEAD, &full))
            .await?;
        match reply.status {
            200 => {
                let size = reply
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::Backend {
                        op: "head",
                        key: key.to_owned(),
                        message: "the server returned no Content-Length".to_owned(),
                        transient: false,
                    })?;
                Ok(Some(ObjectMeta {
                    size,
                    tag: self.tag_of("head", key, &reply)?,
                }))
            }
            // A HEAD answer has no body to name the bucket; a missing
            // bucket shows on the first write or list.
            404 => Ok(None),
            _ => Err(self.refused("head", key, &reply)),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        let full = self.full(key)?;
        let mut call = Call::new("put", key, Method::PUT, &full);
        call.body = bytes;
        let reply = self.http.send(call).await?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(self.refused("put", key, &reply)),
        }
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
        validate_prefix(prefix)?;
        let limit = limit.clamp(1, LIST_PAGE_MAX);
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut query = vec![("max-keys", limit.to_string())];
        if let Some(after) = start_after {
            query.push(("start-after", format!("{}{after}", self.prefix)));
        }
        let page = self.list_once(prefix, &full_prefix, query).await?;
        let objects: Vec<Listed> = page
            .contents
            .into_iter()
            .filter_map(|e| {
                let key = e.key.strip_prefix(&self.prefix)?.to_owned();
                key.starts_with(prefix)
                    .then_some(Listed { key, size: e.size })
            })
            .collect();
        let next = match (page.is_truncated, objects.last()) {
            (false, _) => None,
            (true, Some(last)) => Some(last.key.clone()),
            // More follows, but nothing to continue after: ending here
            // would hide the rest (GC must see every lease).
            (true, None) => {
                return Err(Error::Backend {
                    op: "list",
                    key: prefix.to_owned(),
                    message: "the server marked an empty page truncated".to_owned(),
                    transient: true,
                });
            }
        };
        Ok(ListPage { objects, next })
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("delimiter", "/".to_owned())];
            if let Some(t) = token.take() {
                query.push(("continuation-token", t));
            }
            let page = self.list_once(prefix, &full_prefix, query).await?;
            names.extend(page.common_prefixes.into_iter().filter_map(|p| {
                let name = p.prefix.strip_prefix(&full_prefix)?.strip_suffix('/')?;
                (!name.is_empty()).then(|| name.to_owned())
            }));
            match (page.is_truncated, page.next_continuation_token) {
                (false, _) => break,
                (true, Some(t)) => token = Some(t),
                (true, None) => {
                    return Err(Error::Backend {
                        op: "list_dirs",
                        key: prefix.to_owned(),
                        message:
                            "the server marked a listing truncated without a continuation token"
                                .to_owned(),
                        transient: true,
                    });
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full(key)?;
        let reply = self
            .http
            .send(Call::new("delete", key, Method::DELETE, &full))
            .await?;
        match reply.status {
            200..=299 => Ok(()),
            404 if reply.code().as_deref() != Some("NoSuchBucket") => Ok(()),
            _ => Err(self.refused("delete", key, &reply)),
        }
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
            credentials: Some(S3Credentials {
                access_key_id: "AKIDEXAMPLEKEYID".into(),
                secret_access_key: "wJalrXUtnFEMIsecretEXAMPLEKEY".into(),
                session_token: Some("SESSIONTOKENEXAMPLE".into()),
            }),
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
    fn tags_are_kept_bare() {
        assert_eq!(bare("\"abc\""), "abc");
        assert_eq!(bare("abc"), "abc");
        assert_eq!(bare("W/\"abc\""), "abc");
        assert_eq!(bare("\"abc-2\""), "abc-2");
    }
}
