//! One signed S3 request, carried by fusio's HTTP client: the URL (path
//! style on a custom endpoint, virtual-hosted on AWS), the payload hash,
//! the SigV4 signature (reqsign), and the answer with its status and
//! headers. What a status means for an operation is `mod.rs`'s business;
//! here a transport failure becomes a transient error that names the
//! endpoint.

use bytes::Bytes;
use fusio::remotes::http::HttpClient;
use fusio::remotes::http::tokio::TokioClient;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqsign_aws_v4::RequestSigner;
use reqsign_core::SignRequest;
use sha2::{Digest, Sha256};

use super::auth::Auth;
use crate::error::{Error, Result};

/// SigV4's unreserved characters stay; everything else is %XX.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// In a path, `/` separates segments and stays too.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// The longest one request may take, answer included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// An answer: status, headers, whole body.
pub(super) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The S3 error code of an error answer (`<Code>…</Code>`), if any.
    pub fn code(&self) -> Option<String> {
        let text = std::str::from_utf8(&self.body).ok()?;
        let start = text.find("<Code>")? + "<Code>".len();
        let end = start + text[start..].find("</Code>")?;
        Some(text[start..end].to_owned())
    }
}

/// A request to send.
pub(super) struct Call<'a> {
    pub op: &'static str,
    /// The key the caller asked about, for errors (not the full path).
    pub key: &'a str,
    pub method: Method,
    /// The object's full key in the bucket; empty for the bucket itself.
    pub path: &'a str,
    pub query: Vec<(&'static str, String)>,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Bytes,
}

impl<'a> Call<'a> {
    pub fn new(op: &'static str, key: &'a str, method: Method, path: &'a str) -> Call<'a> {
        Call {
            op,
            key,
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// Where the bucket is and how to sign for it.
pub(super) struct Http {
    client: TokioClient,
    /// The bucket's base URL, without a trailing `/`.
    base: String,
    signer: RequestSigner,
    auth: Auth,
}

impl Http {
    /// `endpoint` set: path style (`<endpoint>/<bucket>`), as S3-compatible
    /// servers want; else AWS's virtual-hosted style for `region`.
    pub fn new(endpoint: Option<&str>, bucket: &str, region: &str, auth: Auth) -> Http {
        let base = match endpoint {
            Some(ep) => format!("{}/{bucket}", ep.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Http {
            client: TokioClient::new(),
            base,
            signer: RequestSigner::new("s3", region),
            auth,
        }
    }

    /// The bucket's base URL (for messages; it holds no secret).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Signs and sends `call`; any HTTP status is an answer, a failure to
    /// get one is a transient `Backend` error.
    pub async fn send(&self, call: Call<'_>) -> Result<Reply> {
        let Call {
            op,
            key,
            method,
            path,
            mut query,
            headers,
            body,
        } = call;
        let fail = |message: String, transient: bool| Error::Backend {
            op,
            key: key.to_owned(),
            message,
            transient,
        };
        let mut url = format!("{}/{}", self.base, utf8_percent_encode(path, PATH));
        if !query.is_empty() {
            query.sort();
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
                .collect();
            url = format!("{url}?{}", q.join("&"));
        }
        let uploads = method == Method::PUT || method == Method::POST;
        let mut builder = Request::builder().method(method).uri(&url);
        let hash: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        builder = builder.header("x-amz-content-sha256", hash);
        // Stated for every upload, even an empty one: the HTTP client
        // leaves it out for an empty body, and S3 answers a PUT without it
        // with 411 MissingContentLength.
        if uploads {
            builder = builder.header("content-length", body.len());
        }
        for (name, value) in headers {
            let value = HeaderValue::from_str(&value)
                .map_err(|e| fail(format!("header {name}: {e}"), false))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| fail(format!("building the request: {e}"), false))?;
        let (mut parts, body) = request.into_parts();
        let credential = self.auth.credential().await?;
        self.signer
            .sign_request(self.auth.context(), &mut parts, Some(&credential), None)
            .await
            .map_err(|e| fail(format!("signing the request: {e}"), false))?;
        let request = Request::from_parts(parts, body);
        // A bound on the whole exchange: a half-open connection must not
        // hold a namespace's commit lock forever. Timing out costs only a
        // retry; an outcome left unknown is settled as any lost response.
        let exchange = async {
            let response = self.client.send_request(request).await.map_err(|e| {
                fail(
                    format!("could not reach the S3 endpoint {}: {e}", self.base),
                    true,
                )
            })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(format!("reading the answer from {}: {e}", self.base), true))?
                .to_bytes();
            Ok::<_, Error>((status, headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                fail(
                    format!("no answer from {} within {REQUEST_TIMEOUT:?}", self.base),
                    true,
                )
            })??;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
