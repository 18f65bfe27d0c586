//! Fetching documents from the issuer: which URLs may be fetched (https, or http on a
//! loopback host), the default HTTP client (short timeouts, no redirects), and a GET whose
//! body is capped so that a hostile or broken server cannot make the verifier buffer without
//! bound.

use std::time::Duration;

use reqwest::{
    StatusCode,
    header::{self, HeaderMap},
};
use url::Url;

use crate::uri::is_loopback_host;

/// Metadata and JWKS documents larger than this are refused.
pub(super) const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Why a fetch failed; logged, never shown to callers.
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url} returned more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: String },
    #[error("{url} returned a document that does not parse: {reason}")]
    Parse { url: String, reason: String },
    #[error("the metadata names issuer {found:?}, not the configured {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the metadata names a jwks_uri that is not https: {0:?}")]
    InsecureJwksUri(String),
    #[error("the metadata names a revocation feed that is not https: {0:?}")]
    InsecureFeedUrl(String),
    #[error("{url} holds no usable signing key")]
    NoUsableKeys { url: String },
    #[error("the fetch task stopped: {0}")]
    Task(String),
}

/// An http(s) URL the verifier may fetch from: https, or http on a loopback host.
pub(super) fn fetchable_url(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    if url.fragment().is_some() || url.cannot_be_a_base() {
        return None;
    }
    match url.scheme() {
        "https" => Some(url),
        "http" if is_loopback_host(&url) => Some(url),
        _ => None,
    }
}

/// The default client: 5 s timeouts, no redirects (a redirect could lead a verifier to keys
/// the issuer never published).
pub(super) fn default_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("hallpass-verify/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A response whose status and headers have arrived; the body is read with [`Self::body`].
pub(super) struct Fetched {
    url: String,
    response: reqwest::Response,
}

impl Fetched {
    /// The status.
    pub(super) fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The headers.
    pub(super) fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// The body, refused when larger than [`MAX_DOCUMENT_BYTES`] (by `Content-Length` at
    /// once, and by counting while reading otherwise).
    pub(super) async fn body(self) -> Result<Vec<u8>, FetchError> {
        let Fetched { url, mut response } = self;
        let too_large = || FetchError::TooLarge { url: url.clone() };
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|source| FetchError::Http {
            url: url.clone(),
            source,
        })? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Sends `request` (a GET to `url`).
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    url: &str,
) -> Result<Fetched, FetchError> {
    let response = request.send().await.map_err(|source| FetchError::Http {
        url: url.into(),
        source,
    })?;
    Ok(Fetched {
        url: url.into(),
        response,
    })
}

/// What the verifier reads in the issuer's RFC 8414 metadata.
#[derive(Debug, serde::Deserialize)]
pub(super) struct IssuerMetadata {
    /// The issuer the metadata names (checked equal to the configured one).
    pub(super) issuer: String,
    /// Where the signing keys are; required by the key cache, not by the feed poller.
    pub(super) jwks_uri: Option<String>,
    /// Hallpass's revocation feed, when the issuer publishes one.
    pub(super) hallpass_revocation_feed_endpoint: Option<String>,
}

/// Fetches the issuer metadata at `url` with `http` and checks that it names exactly
/// `issuer` (RFC 8414 §3.3): the one discovery of the key cache and the feed poller.
pub(super) async fn issuer_metadata(
    http: &reqwest::Client,
    url: &str,
    issuer: &str,
) -> Result<IssuerMetadata, FetchError> {
    let request = http.get(url).header(header::ACCEPT, "application/json");
    let response = send(request, url).await?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.into(),
            status: response.status(),
        });
    }
    let body = response.body().await?;
    let metadata: IssuerMetadata =
        serde_json::from_slice(&body).map_err(|e| FetchError::Parse {
            url: url.into(),
            reason: e.to_string(),
        })?;
    if metadata.issuer != issuer {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}
