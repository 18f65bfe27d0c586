//! The offline verifier resource servers embed: Hallpass access tokens (RFC 9068) checked
//! against the issuer's published JWKS, with no call back to the authorization server per
//! request.
//!
//! A [`Verifier`] is built from the issuer URL and the audience the resource server answers
//! to. On first use it reads `jwks_uri` from the issuer's RFC 8414 metadata, fetches the JWK
//! Set and caches the keys by `kid` for as long as the JWKS `Cache-Control: max-age` allows.
//! A token whose `kid` is not cached triggers one refetch, shared by every request waiting
//! for it (single flight) and at most once per [minimum refresh interval]; a burst of tokens
//! with made-up `kid`s therefore costs the issuer at most one request per interval. When a
//! refresh fails the keys already cached keep verifying.
//!
//! Every check pins what the token could try to choose (RFC 8725):
//! - `typ` must be `at+jwt` (RFC 9068 §4);
//! - the algorithm comes from the JWK, never from the token: the token's `alg` must equal the
//!   key's, so `alg: none` and an HS256 MAC keyed with the public key are refused, and only
//!   asymmetric keys (ES256, EdDSA, RS256) are ever loaded from the JWKS;
//! - `iss` must equal the issuer, `aud` must contain the audience, `exp`, `nbf` and `iat` are
//!   checked with a small leeway, and the RFC 9068 §2.2 claims must be present;
//! - required scopes are checked last and reported by name.
//!
//! Failures are a [`VerifyError`] naming the check that failed. For poem-openapi services,
//! [`BearerAuth`] is a security scheme that does all of this before the handler runs, with a
//! type parameter naming the scopes an operation requires:
//!
//! ```text
//! struct BeersRead;
//! impl RequiredScopes for BeersRead {
//!     const SCOPES: &'static [&'static str] = &["beers:read"];
//! }
//!
//! #[oai(path = "/api/beers", method = "get")]
//! async fn list(&self, auth: BearerAuth<BeersRead>) -> Json<Vec<Beer>> { /* auth.sub */ }
//!
//! let verifier = Verifier::new("https://auth.example.com", "https://api.example.com")?;
//! let app = Route::new().nest("/", api_service).data(verifier);
//! ```
//!
//! [minimum refresh interval]: VerifierBuilder::min_refresh_interval

use std::{
    collections::HashMap,
    fmt,
    marker::PhantomData,
    ops::Deref,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use poem::{
    IntoResponse, Request, RequestBody, Response,
    http::{HeaderMap, HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    payload::Json,
    registry::{MetaSecurityScheme, Registry},
};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::{
    error::{ErrorBody, ErrorCode, SERVER_ERROR_DESCRIPTION},
    time::{Clock, SystemClock},
    uri::is_loopback_host,
};

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless [`VerifierBuilder::leeway`] says
/// otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Shortest time between two JWKS fetches unless
/// [`VerifierBuilder::min_refresh_interval`] says otherwise.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How long keys are cached when the JWKS response has no `Cache-Control: max-age`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// The longest keys are cached, whatever `max-age` says.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(86_400);

/// The name of the [`BearerAuth`] security scheme in an OpenAPI spec.
pub const SECURITY_SCHEME: &str = "bearerAccessToken";

/// Tokens longer than this are refused without parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Metadata and JWKS documents larger than this are refused.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// The signature algorithms a key may have. Symmetric algorithms do not exist here, so a
/// public key can never be used as an HMAC secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of at least 2048 bits.
    RS256,
}

impl Algorithm {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Algorithm::ES256),
            "EdDSA" => Some(Algorithm::EdDSA),
            "RS256" => Some(Algorithm::RS256),
            _ => None,
        }
    }
}

/// Which check a token failed. The text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS, or a part does not decode; the text says which part.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The JOSE header `typ` is not `at+jwt` (RFC 9068 §4).
    #[error("the token is not an access token (typ must be at+jwt)")]
    Type,
    /// The token's `alg` is not one this verifier accepts, or not the algorithm of the key
    /// named by its `kid` (this is where `alg: none` and HS256 end).
    #[error("the token's algorithm is not the algorithm of its signing key")]
    Algorithm,
    /// The JOSE header has no `kid`.
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    /// No key with this `kid` is published by the issuer.
    #[error("the token was signed by a key the issuer does not publish")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    Signature,
    /// A claim RFC 9068 §2.2 requires is absent.
    #[error("the token lacks the required claim {0}")]
    MissingClaim(&'static str),
    /// `iss` is not the configured issuer.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// `aud` does not contain the configured audience.
    #[error("the token is intended for another audience")]
    Audience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The token is valid but lacks scopes the operation requires.
    #[error("the token lacks the scope {}", .missing.join(" "))]
    InsufficientScope {
        /// The required scopes the token does not grant.
        missing: Vec<String>,
    },
    /// The issuer's keys could not be fetched and the `kid` is not cached: the token may be
    /// fine, the verifier cannot tell right now.
    #[error("the issuer's signing keys cannot be fetched right now; retry shortly")]
    KeysUnavailable,
}

impl VerifyError {
    /// The RFC 6750 §3.1 error code: `invalid_token`, `insufficient_scope`, or
    /// `temporarily_unavailable` when the keys cannot be fetched.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            VerifyError::InsufficientScope { .. } => ErrorCode::InsufficientScope,
            VerifyError::KeysUnavailable => ErrorCode::TemporarilyUnavailable,
            _ => ErrorCode::InvalidToken,
        }
    }

    /// The HTTP status: 401, 403 for missing scopes, 503 when the keys cannot be fetched.
    pub fn status(&self) -> StatusCode {
        match self {
            VerifyError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            VerifyError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Why a [`Verifier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The issuer is not a URL the verifier may fetch metadata from.
    #[error(
        "issuer {0:?} must be an https URL without query or fragment (http only on 127.0.0.1, [::1] or localhost)"
    )]
    Issuer(String),
    /// The JWKS URI is not a URL the verifier may fetch keys from.
    #[error("JWKS URI {0:?} must be an https URL (http only on 127.0.0.1, [::1] or localhost)")]
    JwksUri(String),
    /// The audience is empty.
    #[error("the audience must not be empty")]
    Audience,
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Http(String),
}

/// The claims of a verified access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claims {
    /// Issuer: always the configured issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for `client_credentials` tokens.
    pub sub: String,
    /// Audiences; one of them is the configured audience.
    pub aud: Vec<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes (empty when the token has none).
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Not before (Unix seconds), when present.
    pub nbf: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// When the user authenticated (user flows only).
    pub auth_time: Option<u64>,
    /// Every other claim, as sent.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Checks that every scope of `required` is granted; the error names those missing.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        let missing: Vec<String> = required
            .iter()
            .filter(|r| !self.has_scope(r))
            .map(|r| r.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope { missing })
        }
    }
}

/// Verifies Hallpass access tokens offline. Cheap to clone: clones share one key cache.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

/// Options of a [`Verifier`]; start with [`Verifier::builder`].
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    leeway: Duration,
    min_refresh: Duration,
    default_ttl: Duration,
    jwks_uri: Option<String>,
    clock: Option<Arc<dyn Clock>>,
    http: Option<reqwest::Client>,
    resource_metadata: Option<String>,
}

impl VerifierBuilder {
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Shortest time between two JWKS fetches (default 10 s, at least 1 s): how long a token
    /// from a key the issuer has just started publishing can be refused, and how often a
    /// flood of unknown `kid`s can make the verifier call the issuer.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh = interval;
        self
    }

    /// How long keys are cached when the JWKS response carries no `max-age` (default 300 s).
    pub fn default_cache_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Fetch keys from this JWKS URI instead of discovering it from the issuer metadata.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Where "now" comes from (default: the system clock). Tests move a mock clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The HTTP client to fetch metadata and keys with (default: one with 5 s timeouts that
    /// follows no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The URL of this resource server's RFC 9728 metadata; [`BearerAuth`] puts it in the
    /// `resource_metadata` parameter of every `WWW-Authenticate` challenge.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// Checks the URLs and builds the verifier. Nothing is fetched until the first token.
    pub fn build(self) -> Result<Verifier, BuildError> {
        let issuer_url = fetchable_url(&self.issuer)
            .filter(|u| u.query().is_none())
            .ok_or_else(|| BuildError::Issuer(self.issuer.clone()))?;
        if self.audience.trim().is_empty() {
            return Err(BuildError::Audience);
        }
        let source = match self.jwks_uri {
            Some(uri) => {
                fetchable_url(&uri).ok_or_else(|| BuildError::JwksUri(uri.clone()))?;
                KeySource::Jwks(uri)
            }
            None => KeySource::Discover(metadata_url(&issuer_url)),
        };
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("hallpass-verify/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| BuildError::Http(e.to_string()))?,
        };
        let min_refresh = self.min_refresh.as_secs().max(1);
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                leeway: self.leeway.as_secs(),
                min_refresh,
                default_ttl: self.default_ttl.as_secs(),
                max_ttl: MAX_CACHE_TTL.as_secs().max(min_refresh),
                source,
                resource_metadata: self.resource_metadata,
                http,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                cache: RwLock::new(Arc::new(KeyCache::default())),
                refresh: Arc::new(tokio::sync::Mutex::new(RefreshState::default())),
                attempts: AtomicU64::new(0),
                next_fetch_allowed: AtomicU64::new(0),
                fetching: AtomicBool::new(false),
                last_fetch_failed: AtomicBool::new(false),
                fetches: AtomicU64::new(0),
            }),
        })
    }
}

/// An http(s) URL the verifier may fetch from: https, or http on a loopback host.
fn fetchable_url(raw: &str) -> Option<Url> {
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

/// RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
fn metadata_url(issuer: &Url) -> String {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/').to_string();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.to_string()
}

enum KeySource {
    /// The RFC 8414 metadata URL, read once for `jwks_uri`.
    Discover(String),
    /// A configured JWKS URI.
    Jwks(String),
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: u64,
    min_refresh: u64,
    default_ttl: u64,
    max_ttl: u64,
    source: KeySource,
    resource_metadata: Option<String>,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    /// The keys, swapped whole after each successful fetch; read without waiting.
    cache: RwLock<Arc<KeyCache>>,
    /// Held for the duration of a fetch: the single flight.
    refresh: Arc<tokio::sync::Mutex<RefreshState>>,
    /// Fetch attempts started so far; a waiter that sees it change knows a fetch happened.
    attempts: AtomicU64,
    /// Unix seconds before which no new fetch starts.
    next_fetch_allowed: AtomicU64,
    /// Whether a fetch is running now.
    fetching: AtomicBool,
    /// Whether the last fetch failed.
    last_fetch_failed: AtomicBool,
    /// JWKS requests sent so far.
    fetches: AtomicU64,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Arc<VerifyingKey>>,
    /// Whether a JWKS was ever loaded.
    loaded: bool,
    /// Unix seconds until which the keys need no refresh.
    fresh_until: u64,
}

#[derive(Default)]
struct RefreshState {
    jwks_uri: Option<String>,
    etag: Option<String>,
}

/// Why a fetch failed; logged, never shown to callers.
#[derive(Debug, thiserror::Error)]
enum FetchError {
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
    #[error("{url} holds no usable signing key")]
    NoUsableKeys { url: String },
    #[error("the fetch task stopped: {0}")]
    Task(String),
}

/// Resets `fetching` even when the fetch future is dropped.
struct FetchingGuard<'a>(&'a AtomicBool);

impl Drop for FetchingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Verifier {
    /// A verifier for tokens from `issuer` (the exact `iss`, whose RFC 8414 metadata names
    /// the JWKS) for `audience` (a value that must appear in `aud`), with default options.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Result<Self, BuildError> {
        Self::builder(issuer, audience).build()
    }

    /// Options beyond the defaults.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: DEFAULT_LEEWAY,
            min_refresh: DEFAULT_MIN_REFRESH_INTERVAL,
            default_ttl: DEFAULT_CACHE_TTL,
            jwks_uri: None,
            clock: None,
            http: None,
            resource_metadata: None,
        }
    }

    /// The issuer tokens must come from.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience tokens must be for.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The RFC 9728 metadata URL put in challenges, if configured.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.inner.resource_metadata.as_deref()
    }

    /// How many JWKS requests this verifier (and its clones) has sent.
    pub fn jwks_fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::SeqCst)
    }

    /// Fetches the keys now, for example at startup, so the first request does not wait.
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        let guard = Arc::clone(&self.inner.refresh).lock_owned().await;
        let now = self.inner.clock.now();
        Inner::fetch_single_flight(&self.inner, guard, now)
            .await
            .map_err(|_| VerifyError::KeysUnavailable)
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_with_scopes(token, &[]).await
    }

    /// Verifies `token` and checks that it grants every scope of `scopes`.
    pub async fn verify_with_scopes(
        &self,
        token: &str,
        scopes: &[&str],
    ) -> Result<Claims, VerifyError> {
        let now = self.inner.clock.now();
        let jws = Jws::split(token)?;
        let header: JoseHeader =
            decode_part(jws.header).ok_or(VerifyError::Malformed("the header does not decode"))?;
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(VerifyError::Type);
        }
        if header.crit.is_some() {
            return Err(VerifyError::Malformed(
                "critical header parameters are not supported",
            ));
        }
        let alg = Algorithm::from_name(&header.alg).ok_or(VerifyError::Algorithm)?;
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        let key = self.key(&kid).await?;
        if key.alg != alg {
            return Err(VerifyError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(jws.signature)
            .map_err(|_| VerifyError::Malformed("the signature does not decode"))?;
        if !key.verify(jws.signing_input.as_bytes(), &signature) {
            return Err(VerifyError::Signature);
        }
        let raw: RawClaims =
            decode_part(jws.payload).ok_or(VerifyError::Malformed("the claims do not decode"))?;
        let claims = self.inner.check_claims(raw, now)?;
        claims.require_scopes(scopes)?;
        Ok(claims)
    }

    /// The key named `kid`: from the cache, or after one shared, rate-limited refetch.
    async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, VerifyError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let (found, fresh) = inner.lookup(kid, now);
        if let Some(key) = found {
            if fresh || inner.rate_limited(now) {
                return Ok(key);
            }
            // The cache is past its max-age: this request refreshes it unless another one
            // already does, in which case the cached key serves meanwhile.
            let Ok(guard) = Arc::clone(&inner.refresh).try_lock_owned() else {
                return Ok(key);
            };
            let (_, fresh) = inner.lookup(kid, now);
            if !fresh && !inner.rate_limited(now) {
                // A failed refresh keeps the cached keys: the error is logged in the fetch.
                let _ = Inner::fetch_single_flight(inner, guard, now).await;
            }
            return inner.lookup(kid, now).0.ok_or(VerifyError::UnknownKey);
        }

        let seen = inner.attempts.load(Ordering::SeqCst);
        if inner.rate_limited(now) && !inner.fetching.load(Ordering::SeqCst) {
            return inner.cached_or(kid);
        }
        let guard = Arc::clone(&inner.refresh).lock_owned().await;
        let now = inner.clock.now();
        if inner.attempts.load(Ordering::SeqCst) != seen || inner.rate_limited(now) {
            drop(guard);
            return inner.cached_or(kid);
        }
        // The outcome is recorded in `last_fetch_failed`, which `cached_or` reads.
        let _ = Inner::fetch_single_flight(inner, guard, now).await;
        inner.cached_or(kid)
    }
}

impl Inner {
    fn cache(&self) -> Arc<KeyCache> {
        Arc::clone(&self.cache.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn lookup(&self, kid: &str, now: u64) -> (Option<Arc<VerifyingKey>>, bool) {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        (
            cache.keys.get(kid).cloned(),
            cache.loaded && now < cache.fresh_until,
        )
    }

    /// The cached key, or why there is none: `UnknownKey` when the last fetch succeeded and
    /// the issuer does not publish it, `KeysUnavailable` when the verifier cannot tell.
    fn cached_or(&self, kid: &str) -> Result<Arc<VerifyingKey>, VerifyError> {
        let fetch_failed = self.last_fetch_failed.load(Ordering::SeqCst);
        let cache = self.cache();
        match cache.keys.get(kid) {
            Some(key) => Ok(Arc::clone(key)),
            None if fetch_failed || !cache.loaded => Err(VerifyError::KeysUnavailable),
            None => Err(VerifyError::UnknownKey),
        }
    }

    fn rate_limited(&self, now: u64) -> bool {
        now < self.next_fetch_allowed.load(Ordering::SeqCst)
    }

    /// Runs one fetch while holding the refresh lock. The fetch runs in its own task, so a
    /// caller that goes away (a client disconnecting) does not cancel it for the requests
    /// waiting on the lock.
    async fn fetch_single_flight(
        this: &Arc<Inner>,
        guard: tokio::sync::OwnedMutexGuard<RefreshState>,
        now: u64,
    ) -> Result<(), ()> {
        this.attempts.fetch_add(1, Ordering::SeqCst);
        this.next_fetch_allowed
            .store(now.saturating_add(this.min_refresh), Ordering::SeqCst);
        this.fetching.store(true, Ordering::SeqCst);
        let inner = Arc::clone(this);
        let task = tokio::spawn(async move {
            let mut guard = guard;
            let _fetching = FetchingGuard(&inner.fetching);
            let result = inner.fetch(&mut guard).await;
            // Recorded while the lock is still held, so every waiter sees this fetch's outcome.
            inner
                .last_fetch_failed
                .store(result.is_err(), Ordering::SeqCst);
            result
        });
        let result = task
            .await
            .unwrap_or_else(|e| Err(FetchError::Task(e.to_string())));
        result.map_err(|e| {
            let cached_keys = this.cache().keys.len();
            tracing::warn!(
                issuer = %this.issuer,
                error = %e,
                cached_keys,
                "could not fetch the issuer's JWKS; the keys already cached (if any) keep verifying"
            );
        })
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<(), FetchError> {
        let jwks_uri = match (&self.source, &state.jwks_uri) {
            (KeySource::Jwks(uri), _) => uri.clone(),
            (KeySource::Discover(_), Some(uri)) => uri.clone(),
            (KeySource::Discover(metadata), None) => {
                let uri = self.discover(metadata).await?;
                state.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let loaded = self.cache().loaded;
        let mut request = self
            .http
            .get(&jwks_uri)
            .header(header::ACCEPT, "application/jwk-set+json, application/json");
        if let (true, Some(etag)) = (loaded, &state.etag) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let response = request.send().await.map_err(|source| FetchError::Http {
            url: jwks_uri.clone(),
            source,
        })?;
        let ttl = self.ttl(response.headers());
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && loaded {
            let keys = self.cache().keys.clone();
            self.store_keys(keys, ttl);
            return Ok(());
        }
        if !status.is_success() {
            if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE) {
                // The issuer may have moved its JWKS: discover it again next time.
                state.jwks_uri = None;
            }
            return Err(FetchError::Status {
                url: jwks_uri,
                status,
            });
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_capped(response, &jwks_uri).await?;
        let keys = parse_jwks(&body).map_err(|reason| FetchError::Parse {
            url: jwks_uri.clone(),
            reason,
        })?;
        if keys.is_empty() {
            return Err(FetchError::NoUsableKeys { url: jwks_uri });
        }
        state.etag = etag;
        self.store_keys(keys, ttl);
        Ok(())
    }

    fn store_keys(&self, keys: HashMap<String, Arc<VerifyingKey>>, ttl: u64) {
        let fresh_until = self.clock.now().saturating_add(ttl);
        let cache = Arc::new(KeyCache {
            keys,
            loaded: true,
            fresh_until,
        });
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = cache;
    }

    async fn discover(&self, metadata_url: &str) -> Result<String, FetchError> {
        let response = self
            .http
            .get(metadata_url)
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| FetchError::Http {
                url: metadata_url.into(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: metadata_url.into(),
                status: response.status(),
            });
        }
        let body = read_capped(response, metadata_url).await?;
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let metadata: Metadata = serde_json::from_slice(&body).map_err(|e| FetchError::Parse {
            url: metadata_url.into(),
            reason: e.to_string(),
        })?;
        // RFC 8414 §3.3: the metadata must name exactly the issuer it was fetched for.
        if metadata.issuer != self.issuer {
            return Err(FetchError::IssuerMismatch {
                expected: self.issuer.clone(),
                found: metadata.issuer,
            });
        }
        if fetchable_url(&metadata.jwks_uri).is_none() {
            return Err(FetchError::InsecureJwksUri(metadata.jwks_uri));
        }
        Ok(metadata.jwks_uri)
    }

    /// Seconds to cache a JWKS response: its `max-age` (`no-cache`/`no-store` count as 0),
    /// or the default, kept between the minimum refresh interval and [`MAX_CACHE_TTL`].
    fn ttl(&self, headers: &HeaderMap) -> u64 {
        let mut max_age: Option<u64> = None;
        for value in headers.get_all(header::CACHE_CONTROL) {
            for directive in value.to_str().unwrap_or_default().split(',') {
                let directive = directive.trim();
                let age = if directive.eq_ignore_ascii_case("no-cache")
                    || directive.eq_ignore_ascii_case("no-store")
                {
                    Some(0)
                } else {
                    directive
                        .split_once('=')
                        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("max-age"))
                        .and_then(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok())
                };
                if let Some(age) = age {
                    max_age = Some(max_age.map_or(age, |m| m.min(age)));
                }
            }
        }
        max_age
            .unwrap_or(self.default_ttl)
            .max(self.min_refresh)
            .min(self.max_ttl)
    }

    fn check_claims(&self, raw: RawClaims, now: u64) -> Result<Claims, VerifyError> {
        let iss = raw.iss.ok_or(VerifyError::MissingClaim("iss"))?;
        if iss != self.issuer {
            return Err(VerifyError::Issuer);
        }
        let aud = match raw.aud.ok_or(VerifyError::MissingClaim("aud"))? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(a) => a,
        };
        if !aud.contains(&self.audience) {
            return Err(VerifyError::Audience);
        }
        let exp = raw.exp.ok_or(VerifyError::MissingClaim("exp"))?.secs();
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired);
        }
        let latest = now.saturating_add(self.leeway);
        let nbf = raw.nbf.map(NumericDate::secs);
        let iat = raw.iat.ok_or(VerifyError::MissingClaim("iat"))?.secs();
        if nbf.is_some_and(|nbf| nbf > latest) || iat > latest {
            return Err(VerifyError::NotYetValid);
        }
        Ok(Claims {
            iss,
            sub: raw.sub.ok_or(VerifyError::MissingClaim("sub"))?,
            aud,
            client_id: raw
                .client_id
                .ok_or(VerifyError::MissingClaim("client_id"))?,
            scope: raw.scope.unwrap_or_default(),
            iat,
            exp,
            nbf,
            jti: raw.jti.ok_or(VerifyError::MissingClaim("jti"))?,
            auth_time: raw.auth_time.map(NumericDate::secs),
            extra: raw.extra,
        })
    }
}

async fn read_capped(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge { url: url.into() };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| FetchError::Http {
        url: url.into(),
        source,
    })? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The three parts of a compact JWS.
struct Jws<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

impl<'a> Jws<'a> {
    fn split(token: &'a str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed("the token is too long"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed(
                "a JWT has three dot-separated parts",
            ));
        };
        let signing_input =
            token
                .get(..header.len() + 1 + payload.len())
                .ok_or(VerifyError::Malformed(
                    "a JWT has three dot-separated parts",
                ))?;
        Ok(Self {
            header,
            payload,
            signature,
            signing_input,
        })
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// RFC 7519 NumericDate: seconds, possibly with a fraction.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum NumericDate {
    Int(u64),
    Float(f64),
}

impl NumericDate {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn secs(self) -> u64 {
        match self {
            NumericDate::Int(s) => s,
            // `as` saturates: negative becomes 0, too large becomes u64::MAX.
            NumericDate::Float(s) => s.floor() as u64,
        }
    }
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<OneOrMany>,
    client_id: Option<String>,
    scope: Option<String>,
    iat: Option<NumericDate>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    jti: Option<String>,
    auth_time: Option<NumericDate>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// A public key from the JWKS, with the one algorithm it verifies.
struct VerifyingKey {
    alg: Algorithm,
    key: PublicKey,
}

enum PublicKey {
    /// Uncompressed P-256 point.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl VerifyingKey {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        }
    }
}

#[derive(Deserialize)]
struct JwkDoc {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

/// Parses a JWK Set into verification keys by `kid`. Keys this verifier cannot use (other
/// key types, encryption keys, symmetric keys, keys without `kid`) are skipped; the set as
/// a whole fails only when it is not a JWK Set.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<Value>,
    }
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut keys = HashMap::new();
    for jwk in set.keys {
        let parsed = serde_json::from_value::<JwkDoc>(jwk)
            .map_err(|e| e.to_string())
            .and_then(|doc| parse_jwk(&doc).map_err(str::to_string));
        match parsed {
            Ok((kid, key)) => {
                if keys.contains_key(&kid) {
                    tracing::warn!(%kid, "the JWKS publishes this kid twice; using the first key");
                    continue;
                }
                keys.insert(kid, Arc::new(key));
            }
            Err(reason) => tracing::debug!(%reason, "skipping a JWK"),
        }
    }
    Ok(keys)
}

fn parse_jwk(doc: &JwkDoc) -> Result<(String, VerifyingKey), &'static str> {
    let kid = doc.kid.clone().filter(|k| !k.is_empty()).ok_or("no kid")?;
    if doc.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key");
    }
    if doc
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops does not allow verify");
    }
    let b64 = |v: &Option<String>| v.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    let (alg, key) = match (doc.kty.as_str(), doc.crv.as_deref()) {
        ("EC", Some("P-256")) => {
            let (x, y) = (b64(&doc.x).ok_or("bad x")?, b64(&doc.y).ok_or("bad y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("bad P-256 coordinates");
            }
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (Algorithm::ES256, PublicKey::P256(point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&doc.x).ok_or("bad x")?;
            if x.len() != 32 {
                return Err("bad Ed25519 key");
            }
            (Algorithm::EdDSA, PublicKey::Ed25519(x))
        }
        ("RSA", _) => {
            let n = b64(&doc.n).ok_or("bad n")?;
            let e = b64(&doc.e).ok_or("bad e")?;
            let strip = |v: Vec<u8>| {
                let zeros = v.iter().take_while(|b| **b == 0).count();
                v[zeros..].to_vec()
            };
            (
                Algorithm::RS256,
                PublicKey::Rsa {
                    n: strip(n),
                    e: strip(e),
                },
            )
        }
        _ => return Err("unsupported key type"),
    };
    // A JWK's `alg` must agree with its key type; without one, the key type decides.
    if doc.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return Err("alg does not match the key type or is not supported");
    }
    Ok((kid, VerifyingKey { alg, key }))
}

// ---------------------------------------------------------------------------------------
// poem integration
// ---------------------------------------------------------------------------------------

/// The scopes an operation protected by [`BearerAuth`] requires.
pub trait RequiredScopes: Send + Sync + 'static {
    /// Every scope in this list must be granted.
    const SCOPES: &'static [&'static str];
}

/// No scope required: any valid token.
#[derive(Debug, Clone, Copy)]
pub struct AnyScope;

impl RequiredScopes for AnyScope {
    const SCOPES: &'static [&'static str] = &[];
}

/// A poem-openapi security scheme (HTTP bearer, JWT) whose value is the claims of a token
/// that passed every check of the [`Verifier`] found in the request data
/// (`.data(verifier)`) and grants every scope of `S`.
///
/// Failures never reach the handler: a missing token is 401 with a bare `Bearer` challenge,
/// a bad one 401 `invalid_token`, missing scopes 403 `insufficient_scope` (with the `scope`
/// attribute), unreachable keys 503. Every challenge carries `resource_metadata` when the
/// verifier was built with [`VerifierBuilder::resource_metadata`]. Bodies are RFC 6749 §5.2
/// JSON and responses are built with [`poem::Error::from_response`], so the
/// [`crate::error::rfc_errors`] middleware passes them through untouched.
pub struct BearerAuth<S: RequiredScopes = AnyScope> {
    claims: Claims,
    scopes: PhantomData<fn() -> S>,
}

impl<S: RequiredScopes> BearerAuth<S> {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The verified claims, owned.
    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

impl<S: RequiredScopes> Deref for BearerAuth<S> {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl<S: RequiredScopes> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("sub", &self.claims.sub)
            .field("scope", &self.claims.scope)
            .finish_non_exhaustive()
    }
}

impl<'a, S: RequiredScopes> ApiExtractor<'a> for BearerAuth<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SECURITY_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An RFC 9068 JWT access token from the authorization server, verified offline against its JWKS.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SECURITY_SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match authenticate(req, S::SCOPES).await {
            Ok(claims) => Ok(Self {
                claims,
                scopes: PhantomData,
            }),
            Err(rejection) => Err(rejection.into_poem_error()),
        }
    }
}

/// Verifies the bearer token of `req` with the [`Verifier`] in its data and checks
/// `scopes`. For plain poem handlers; poem-openapi operations take a [`BearerAuth`].
pub async fn authenticate(req: &Request, scopes: &[&str]) -> Result<Claims, BearerRejection> {
    let Some(verifier) = req.data::<Verifier>() else {
        tracing::error!("no Verifier in the request data: add .data(verifier) to the route");
        return Err(BearerRejection {
            reason: Rejection::NotConfigured,
            resource_metadata: None,
        });
    };
    let reject = |reason| BearerRejection {
        reason,
        resource_metadata: verifier.inner.resource_metadata.clone(),
    };
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (value, repeated) = (values.next(), values.next().is_some());
    if repeated {
        return Err(reject(Rejection::InvalidRequest(
            "send one Authorization header",
        )));
    }
    let Some(value) = value else {
        return Err(reject(Rejection::MissingToken));
    };
    let value = value.to_str().unwrap_or_default().trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        // Another scheme (Basic, ...) carries no bearer token.
        _ => return Err(reject(Rejection::MissingToken)),
    };
    if token.is_empty() {
        return Err(reject(Rejection::Token(VerifyError::Malformed(
            "the bearer token is empty",
        ))));
    }
    verifier
        .verify_with_scopes(token, scopes)
        .await
        .map_err(|e| reject(Rejection::Token(e)))
}

/// Why [`authenticate`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// The request is malformed (for example two `Authorization` headers).
    InvalidRequest(&'static str),
    /// The token failed a check.
    Token(VerifyError),
    /// The route has no [`Verifier`] in its data (a wiring bug; logged, answered 500).
    NotConfigured,
}

/// A refused bearer request, rendered as an RFC 6749 §5.2 JSON body with the RFC 6750 §3
/// `WWW-Authenticate` challenge (plus RFC 9728 `resource_metadata`).
#[derive(Debug, Clone)]
pub struct BearerRejection {
    reason: Rejection,
    resource_metadata: Option<String>,
}

impl BearerRejection {
    /// What went wrong.
    pub fn reason(&self) -> &Rejection {
        &self.reason
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        match &self.reason {
            Rejection::MissingToken => StatusCode::UNAUTHORIZED,
            Rejection::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::Token(e) => e.status(),
            Rejection::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code_and_description(&self) -> (ErrorCode, String) {
        match &self.reason {
            Rejection::MissingToken => (
                ErrorCode::InvalidToken,
                "this endpoint requires a bearer access token".to_string(),
            ),
            Rejection::InvalidRequest(d) => (ErrorCode::InvalidRequest, (*d).to_string()),
            Rejection::Token(e) => (e.error_code(), e.to_string()),
            Rejection::NotConfigured => {
                (ErrorCode::ServerError, SERVER_ERROR_DESCRIPTION.to_string())
            }
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9728 §5.1), for 400, 401 and 403.
    pub fn www_authenticate(&self) -> Option<String> {
        let quote = |s: &str| s.replace(['"', '\\'], "'");
        let mut params = Vec::new();
        match &self.reason {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            Rejection::MissingToken => {}
            Rejection::InvalidRequest(_) | Rejection::Token(_) => {
                if matches!(self.reason, Rejection::Token(VerifyError::KeysUnavailable)) {
                    return None;
                }
                let (code, description) = self.code_and_description();
                params.push(format!("error=\"{}\"", code.as_str()));
                params.push(format!("error_description=\"{}\"", quote(&description)));
                if let Rejection::Token(VerifyError::InsufficientScope { missing }) = &self.reason {
                    params.push(format!("scope=\"{}\"", quote(&missing.join(" "))));
                }
            }
            Rejection::NotConfigured => return None,
        }
        if let Some(url) = &self.resource_metadata {
            params.push(format!("resource_metadata=\"{}\"", quote(url)));
        }
        Some(if params.is_empty() {
            "Bearer".to_string()
        } else {
            format!("Bearer {}", params.join(", "))
        })
    }

    /// The response as a [`poem::Error`] that middleware leaves as it is.
    pub fn into_poem_error(self) -> poem::Error {
        poem::Error::from_response(self.to_response())
    }

    /// The JSON response with its headers.
    pub fn to_response(&self) -> Response {
        let (code, description) = self.code_and_description();
        let mut response = Json(ErrorBody {
            error: code,
            error_description: Some(description),
        })
        .into_response();
        response.set_status(self.status());
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self
            .www_authenticate()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl fmt::Display for BearerRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, description) = self.code_and_description();
        write!(f, "{}: {description}", code.as_str())
    }
}

impl std::error::Error for BearerRejection {}

impl poem::error::ResponseError for BearerRejection {
    fn status(&self) -> StatusCode {
        BearerRejection::status(self)
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(v: Value) -> Result<(String, VerifyingKey), &'static str> {
        let doc: JwkDoc = serde_json::from_value(v).map_err(|_| "does not parse")?;
        parse_jwk(&doc)
    }

    #[test]
    fn metadata_url_inserts_the_well_known_segment_before_the_issuer_path() {
        let u = |s: &str| Url::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            metadata_url(&u("https://as.example")),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url(&u("https://as.example/tenant/a")),
            "https://as.example/.well-known/oauth-authorization-server/tenant/a"
        );
    }

    #[test]
    fn only_https_or_loopback_http_issuers_build() {
        assert!(Verifier::new("https://as.example", "api").is_ok());
        assert!(Verifier::new("http://127.0.0.1:3000", "api").is_ok());
        assert!(Verifier::new("http://localhost:3000", "api").is_ok());
        assert_eq!(
            Verifier::new("http://as.example", "api").err(),
            Some(BuildError::Issuer("http://as.example".into()))
        );
        assert!(Verifier::new("https://as.example/?x=1", "api").is_err());
        assert_eq!(
            Verifier::new("https://as.example", " ").err(),
            Some(BuildError::Audience)
        );
        assert!(
            Verifier::builder("https://as.example", "api")
                .jwks_uri("http://evil.example/jwks")
                .build()
                .is_err()
        );
    }

    #[test]
    fn symmetric_encryption_and_mismatched_jwks_are_skipped() {
        assert_eq!(
            jwk(serde_json::json!({"kty":"oct","kid":"k","k":"c2VjcmV0"})).err(),
            Some("unsupported key type")
        );
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x})).is_ok());
        assert!(
            jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"use":"enc"}))
                .is_err()
        );
        assert!(
            jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"alg":"HS256"}))
                .is_err()
        );
        assert!(jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","x":x})).is_err());
        assert!(
            jwk(
                serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"key_ops":["sign"]})
            )
            .is_err()
        );
    }

    #[test]
    fn cache_lifetime_follows_max_age_within_bounds() {
        let verifier = Verifier::builder("https://as.example", "api")
            .min_refresh_interval(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let ttl = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
            verifier.inner.ttl(&h)
        };
        assert_eq!(ttl("public, max-age=300"), 300);
        assert_eq!(
            ttl("max-age=2"),
            10,
            "never below the minimum refresh interval"
        );
        assert_eq!(ttl("no-store"), 10);
        assert_eq!(ttl("max-age=99999999"), MAX_CACHE_TTL.as_secs());
        assert_eq!(
            verifier.inner.ttl(&HeaderMap::new()),
            DEFAULT_CACHE_TTL.as_secs()
        );
    }

    #[test]
    fn challenges_follow_rfc_6750_and_rfc_9728() {
        let rm = Some("https://rs.example/.well-known/oauth-protected-resource".to_string());
        let missing = BearerRejection {
            reason: Rejection::MissingToken,
            resource_metadata: rm.clone(),
        };
        assert_eq!(
            missing.www_authenticate().as_deref(),
            Some(
                "Bearer resource_metadata=\"https://rs.example/.well-known/oauth-protected-resource\""
            )
        );
        let scope = BearerRejection {
            reason: Rejection::Token(VerifyError::InsufficientScope {
                missing: vec!["beers:write".into()],
            }),
            resource_metadata: rm,
        };
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        let challenge = scope.www_authenticate().unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"beers:write\""), "{challenge}");
        let bare = BearerRejection {
            reason: Rejection::MissingToken,
            resource_metadata: None,
        };
        assert_eq!(bare.www_authenticate().as_deref(), Some("Bearer"));
    }
}
