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
//! - the issuer's revocation feed must not list the token (below);
//! - required scopes are checked last and reported by name.
//!
//! Revocation reaches the verifier through the issuer's revocation feed (Hallpass's
//! `GET /oauth2/revocations`, found through `hallpass_revocation_feed_endpoint` in the
//! metadata): revoked `jti`s and "not before" rules for a user at a client, a client or a
//! user. The verifier polls it in the background every [poll interval] (10 s by default),
//! one poll at a time, and refuses what it lists with [`VerifyError::Revoked`]; a token
//! revoked at the issuer is refused within the interval plus the time of one poll. When the
//! feed cannot be read, verification goes on from the last copy and
//! [`Verifier::revocation_status`] says since when.
//!
//! Failures are a [`VerifyError`] naming the check that failed. For poem-openapi services
//! (feature `verify-poem`), [`BearerAuth`] is a security scheme that does all of this before
//! the handler runs, with a type parameter naming the scopes an operation requires:
//!
//! ```
//! use hallpass::verify::{BearerAuth, RequiredScopes, Verifier};
//! use poem::{EndpointExt, Route};
//! use poem_openapi::{OpenApi, OpenApiService, payload::Json};
//!
//! struct BeersRead;
//! impl RequiredScopes for BeersRead {
//!     const SCOPES: &'static [&'static str] = &["beers:read"];
//! }
//!
//! struct BeerApi;
//!
//! #[OpenApi]
//! impl BeerApi {
//!     /// The caller's beers.
//!     #[oai(path = "/api/beers", method = "get")]
//!     async fn list(&self, auth: BearerAuth<BeersRead>) -> Json<Vec<String>> {
//!         Json(vec![format!("the beers of {}", auth.sub)])
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::new("https://auth.example.com", "https://api.example.com")?;
//! let api_service = OpenApiService::new(BeerApi, "Beers", "1.0");
//! let app = Route::new().nest("/", api_service).data(verifier);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! Without the `verify-poem` feature, [`Verifier::verify`] is all there is: the crate then
//! builds without poem.
//!
//! ## Files
//!
//! - `mod.rs`: [`Verifier`] and its builder.
//! - `jwks.rs`: the JWKS cache and its state machine (documented there, in one place).
//! - `fetch.rs`: which URLs may be fetched, and the capped, no-redirect GET.
//! - `poem.rs`: [`BearerAuth`], [`authenticate`] and the rejection responses (`verify-poem`).
//! - the checks themselves are [`crate::jose`]'s, shared with the server.
//!
//! - `revocations.rs`: the revocation feed, polled, and its state machine.
//!
//! [minimum refresh interval]: VerifierBuilder::min_refresh_interval
//! [poll interval]: VerifierBuilder::revocation_poll_interval

use std::{fmt, sync::Arc, time::Duration};

use url::Url;

pub use crate::jose::{Algorithm, Claims, VerifyError};
use crate::{
    jose::{Expected, LEEWAY, Unverified},
    time::{Clock, SystemClock},
};

mod fetch;
mod jwks;
#[cfg(feature = "verify-poem")]
mod poem;
mod revocations;

use fetch::fetchable_url;
use jwks::{CachePolicy, JwksCache, KeySource};
#[cfg(feature = "verify-poem")]
pub use poem::{
    AnyScope, BearerAuth, BearerRejection, Rejection, RequiredScopes, SECURITY_SCHEME, authenticate,
};
pub use revocations::RevocationStatus;
use revocations::{FeedPolicy, FeedSource, RevocationFeed};

/// Clock skew tolerated on `exp`, `nbf` and `iat` unless [`VerifierBuilder::leeway`] says
/// otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(LEEWAY);

/// Shortest time between two JWKS fetches unless
/// [`VerifierBuilder::min_refresh_interval`] says otherwise.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How often the revocation feed is polled unless
/// [`VerifierBuilder::revocation_poll_interval`] says otherwise.
pub const DEFAULT_REVOCATION_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest revocation poll interval a verifier accepts.
pub const MIN_REVOCATION_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long keys are cached when the JWKS response has no `Cache-Control: max-age`.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// The longest keys are cached, whatever `max-age` says.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(86_400);

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
    /// The revocation feed URL is not a URL the verifier may fetch from.
    #[error(
        "revocation feed URL {0:?} must be an https URL (http only on 127.0.0.1, [::1] or localhost)"
    )]
    RevocationFeed(String),
    /// The audience is empty.
    #[error("the audience must not be empty")]
    Audience,
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Http(String),
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
    feed: FeedChoice,
    poll_interval: Duration,
}

/// Where the revocation feed comes from.
enum FeedChoice {
    Discover,
    Url(String),
    Off,
}

impl VerifierBuilder {
    /// How often the issuer's revocation feed is polled (default 10 s, at least 100 ms): a
    /// token revoked at the issuer is refused within this interval plus the time of a poll.
    pub fn revocation_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Poll this revocation feed instead of the one the issuer's metadata advertises.
    pub fn revocation_feed(mut self, url: impl Into<String>) -> Self {
        self.feed = FeedChoice::Url(url.into());
        self
    }

    /// Never poll a revocation feed: revoked tokens are accepted until they expire.
    pub fn without_revocation_feed(mut self) -> Self {
        self.feed = FeedChoice::Off;
        self
    }

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
        let feed_source = match self.feed {
            FeedChoice::Discover => Some(FeedSource::Discover(metadata_url(&issuer_url))),
            FeedChoice::Url(url) => {
                fetchable_url(&url).ok_or_else(|| BuildError::RevocationFeed(url.clone()))?;
                Some(FeedSource::Url(url))
            }
            FeedChoice::Off => None,
        };
        let source = match self.jwks_uri {
            Some(uri) => {
                fetchable_url(&uri).ok_or_else(|| BuildError::JwksUri(uri.clone()))?;
                KeySource::Jwks(uri)
            }
            None => KeySource::Discover(metadata_url(&issuer_url)),
        };
        let http = match self.http {
            Some(client) => client,
            None => fetch::default_client().map_err(|e| BuildError::Http(e.to_string()))?,
        };
        let min_refresh = self.min_refresh.as_secs().max(1);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let advertised_feed = jwks::AdvertisedFeed::default();
        let keys = JwksCache::new(CachePolicy {
            issuer: self.issuer.clone(),
            source,
            min_refresh,
            default_ttl: self.default_ttl.as_secs(),
            max_ttl: MAX_CACHE_TTL.as_secs().max(min_refresh),
            http: http.clone(),
            clock: Arc::clone(&clock),
            advertised_feed: Arc::clone(&advertised_feed),
        });
        let revocations = feed_source.map(|source| {
            Arc::new(RevocationFeed::new(FeedPolicy {
                issuer: self.issuer.clone(),
                source,
                interval: self.poll_interval.max(MIN_REVOCATION_POLL_INTERVAL),
                http,
                clock: Arc::clone(&clock),
                advertised: advertised_feed,
            }))
        });
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                audience: self.audience,
                leeway: self.leeway.as_secs(),
                resource_metadata: self.resource_metadata,
                clock,
                keys: Arc::new(keys),
                revocations,
            }),
        })
    }
}

/// RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
fn metadata_url(issuer: &Url) -> String {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/').to_string();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.to_string()
}

struct Inner {
    issuer: String,
    audience: String,
    leeway: u64,
    resource_metadata: Option<String>,
    clock: Arc<dyn Clock>,
    keys: Arc<JwksCache>,
    revocations: Option<Arc<RevocationFeed>>,
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
            feed: FeedChoice::Discover,
            poll_interval: DEFAULT_REVOCATION_POLL_INTERVAL,
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
        self.inner.keys.fetches()
    }

    /// Fetches the keys and polls the revocation feed now, for example at startup, so the
    /// first request does not wait. Fails when the keys cannot be fetched; the feed's outcome
    /// is in [`Self::revocation_status`].
    pub async fn prefetch(&self) -> Result<(), VerifyError> {
        // The keys first: their discovery also finds the feed.
        let keys = JwksCache::prefetch(&self.inner.keys).await;
        if let Some(feed) = &self.inner.revocations {
            RevocationFeed::poll_now(feed).await;
        }
        keys
    }

    /// What the verifier knows of the issuer's revocation feed: whether its copy is current,
    /// when it was last read, how many polls failed in a row, how many entries it holds.
    /// `None` when built [without one](VerifierBuilder::without_revocation_feed).
    pub fn revocation_status(&self) -> Option<RevocationStatus> {
        self.inner.revocations.as_ref().map(|f| f.status())
    }

    /// Polls the revocation feed now (after a poll already running, if any) instead of
    /// waiting for the next interval, and returns the status after it. Starts the
    /// background polling too.
    pub async fn poll_revocations(&self) -> Option<RevocationStatus> {
        match &self.inner.revocations {
            Some(feed) => Some(RevocationFeed::poll_now(feed).await),
            None => None,
        }
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        self.verify_with_scopes(token, &[]).await
    }

    /// Verifies `token` and checks that it grants every scope of `scopes`: the header
    /// ([`Unverified::parse`]), the key from the JWKS cache by `kid`, then the signature and
    /// claims ([`Unverified::verify`]), the same path the server checks its own tokens with.
    pub async fn verify_with_scopes(
        &self,
        token: &str,
        scopes: &[&str],
    ) -> Result<Claims, VerifyError> {
        let now = self.inner.clock.now();
        let token = Unverified::parse(token)?;
        let key = JwksCache::key(&self.inner.keys, token.kid()).await?;
        let expected = Expected {
            issuer: &self.inner.issuer,
            audience: &self.inner.audience,
            leeway: self.inner.leeway,
        };
        let claims = token.verify(&key, &expected, now)?;
        if let Some(feed) = &self.inner.revocations {
            RevocationFeed::check(feed, &claims).await?;
        }
        claims.require_scopes(scopes)?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
