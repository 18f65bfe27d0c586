//! The JWKS cache: the issuer's keys by `kid`, refreshed when they expire or when a token
//! names a `kid` not in the cache, with one fetch at a time and at most one per interval.
//!
//! ## The state machine, in one place
//!
//! State lives in three kinds of cells, each with one job:
//!
//! | cell | written by | read by |
//! |---|---|---|
//! | `cache: RwLock<Arc<Keys>>` | a successful fetch (whole swap) | every lookup (never waits on a fetch) |
//! | `refresh: tokio Mutex<RefreshState>` | held for the whole of a fetch: the single flight; holds the discovered `jwks_uri` and the `ETag` | fetchers only |
//! | `attempts: AtomicU64` | +1 when a fetch starts | waiters: changed means "a fetch ran while I waited" |
//! | `next_fetch_allowed: AtomicU64` | set to now + min interval when a fetch starts | the rate limit |
//! | `fetching: AtomicBool` | true while a fetch runs (reset by a drop guard) | lookups that are rate limited: wait for the running fetch instead of failing |
//! | `last_fetch_failed: AtomicBool` | the outcome of the last fetch, stored before the lock is released | [`JwksCache::cached_or`]: `KeysUnavailable` vs `UnknownKey` |
//! | `fetches: AtomicU64` | +1 per JWKS request sent | [`crate::verify::Verifier::jwks_fetches`] (tests, metrics) |
//!
//! A lookup of `kid` goes one of three ways:
//! 1. **Cached and fresh** (or refreshing is rate limited): the key, no waiting.
//! 2. **Cached but past `max-age`**: whoever takes the refresh lock without waiting refreshes
//!    (then answers from the new cache); everyone else is answered from the old cache.
//!    A failed refresh keeps the old keys.
//! 3. **Not cached**: unless rate limited with no fetch running, wait for the refresh lock.
//!    If `attempts` moved while waiting, another request's fetch already ran: answer from
//!    the cache it left. Otherwise fetch. The answer is the key, `UnknownKey` (the last fetch
//!    succeeded and the issuer does not publish it) or `KeysUnavailable` (it failed).
//!
//! The fetch itself runs in its own task holding the lock, so a request that is dropped (a
//! client disconnecting) does not cancel it for the requests queued behind it.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use reqwest::{StatusCode, header, header::HeaderMap};
use serde::Deserialize;

use super::fetch::{self, FetchError, fetchable_url};
use crate::{
    jose::{Jwk, VerifyError, VerifyingKey},
    time::Clock,
};

/// Where the keys come from.
pub(super) enum KeySource {
    /// The RFC 8414 metadata URL, read once for `jwks_uri`.
    Discover(String),
    /// A configured JWKS URI.
    Jwks(String),
}

/// How the cache behaves; fixed when the verifier is built.
pub(super) struct CachePolicy {
    /// The issuer the metadata must name.
    pub issuer: String,
    pub source: KeySource,
    /// Seconds between two fetches, at least.
    pub min_refresh: u64,
    /// Seconds to cache a JWKS without `max-age`.
    pub default_ttl: u64,
    /// Seconds to cache a JWKS at most.
    pub max_ttl: u64,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    /// Where a discovery records the revocation feed the metadata advertises, so the feed
    /// poller need not fetch the metadata again.
    pub advertised_feed: AdvertisedFeed,
}

/// The revocation feed named by the last metadata read: `None` until one was read, then the
/// `hallpass_revocation_feed_endpoint` it held, if any.
pub(super) type AdvertisedFeed = Arc<std::sync::Mutex<Option<Option<String>>>>;

/// The issuer's keys, cached. See the module docs for the state machine.
pub(super) struct JwksCache {
    policy: CachePolicy,
    cache: RwLock<Arc<Keys>>,
    refresh: Arc<tokio::sync::Mutex<RefreshState>>,
    attempts: AtomicU64,
    next_fetch_allowed: AtomicU64,
    fetching: AtomicBool,
    last_fetch_failed: AtomicBool,
    fetches: AtomicU64,
}

/// One JWKS, as fetched.
#[derive(Default)]
struct Keys {
    keys: HashMap<String, Arc<VerifyingKey>>,
    /// Whether a JWKS was ever loaded.
    loaded: bool,
    /// Unix seconds until which the keys need no refresh.
    fresh_until: u64,
}

/// What the single flight keeps between fetches.
#[derive(Default)]
struct RefreshState {
    jwks_uri: Option<String>,
    etag: Option<String>,
}

/// Resets `fetching` even when the fetch future is dropped.
struct FetchingGuard<'a>(&'a AtomicBool);

impl Drop for FetchingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl JwksCache {
    /// An empty cache; nothing is fetched until the first lookup.
    pub(super) fn new(policy: CachePolicy) -> Self {
        Self {
            policy,
            cache: RwLock::new(Arc::new(Keys::default())),
            refresh: Arc::new(tokio::sync::Mutex::new(RefreshState::default())),
            attempts: AtomicU64::new(0),
            next_fetch_allowed: AtomicU64::new(0),
            fetching: AtomicBool::new(false),
            last_fetch_failed: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
        }
    }

    /// JWKS requests sent so far.
    pub(super) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Fetches now (waiting for a running fetch first).
    pub(super) async fn prefetch(this: &Arc<Self>) -> Result<(), VerifyError> {
        let guard = Arc::clone(&this.refresh).lock_owned().await;
        let now = this.policy.clock.now();
        Self::fetch_single_flight(this, guard, now)
            .await
            .map_err(|()| VerifyError::KeysUnavailable)
    }

    /// The key named `kid`: from the cache, or after one shared, rate-limited refetch.
    pub(super) async fn key(this: &Arc<Self>, kid: &str) -> Result<Arc<VerifyingKey>, VerifyError> {
        let now = this.policy.clock.now();
        let (found, fresh) = this.lookup(kid, now);
        if let Some(key) = found {
            if fresh || this.rate_limited(now) {
                return Ok(key);
            }
            // Way 2: past max-age. Refresh unless another request already does, in which
            // case the cached key serves meanwhile.
            let Ok(guard) = Arc::clone(&this.refresh).try_lock_owned() else {
                return Ok(key);
            };
            let (_, fresh) = this.lookup(kid, now);
            if !fresh && !this.rate_limited(now) {
                // A failed refresh keeps the cached keys: the error is logged in the fetch.
                let _ = Self::fetch_single_flight(this, guard, now).await;
            }
            return this.lookup(kid, now).0.ok_or(VerifyError::UnknownKey);
        }

        // Way 3: not cached.
        let seen = this.attempts.load(Ordering::SeqCst);
        if this.rate_limited(now) && !this.fetching.load(Ordering::SeqCst) {
            return this.cached_or(kid);
        }
        let guard = Arc::clone(&this.refresh).lock_owned().await;
        let now = this.policy.clock.now();
        if this.attempts.load(Ordering::SeqCst) != seen || this.rate_limited(now) {
            drop(guard);
            return this.cached_or(kid);
        }
        // The outcome is recorded in `last_fetch_failed`, which `cached_or` reads.
        let _ = Self::fetch_single_flight(this, guard, now).await;
        this.cached_or(kid)
    }

    fn cache(&self) -> Arc<Keys> {
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

    /// Runs one fetch while holding the refresh lock, in its own task.
    async fn fetch_single_flight(
        this: &Arc<Self>,
        guard: tokio::sync::OwnedMutexGuard<RefreshState>,
        now: u64,
    ) -> Result<(), ()> {
        this.attempts.fetch_add(1, Ordering::SeqCst);
        this.next_fetch_allowed.store(
            now.saturating_add(this.policy.min_refresh),
            Ordering::SeqCst,
        );
        this.fetching.store(true, Ordering::SeqCst);
        let cache = Arc::clone(this);
        let task = tokio::spawn(async move {
            let mut guard = guard;
            let _fetching = FetchingGuard(&cache.fetching);
            let result = cache.fetch(&mut guard).await;
            // Recorded while the lock is still held, so every waiter sees this fetch's outcome.
            cache
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
                issuer = %this.policy.issuer,
                error = %e,
                cached_keys,
                "could not fetch the issuer's JWKS; the keys already cached (if any) keep verifying"
            );
        })
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<(), FetchError> {
        let jwks_uri = match (&self.policy.source, &state.jwks_uri) {
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
            .policy
            .http
            .get(&jwks_uri)
            .header(header::ACCEPT, "application/jwk-set+json, application/json");
        if let (true, Some(etag)) = (loaded, &state.etag) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let response = fetch::send(request, &jwks_uri).await?;
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
        let body = response.body().await?;
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
        let fresh_until = self.policy.clock.now().saturating_add(ttl);
        let cache = Arc::new(Keys {
            keys,
            loaded: true,
            fresh_until,
        });
        *self.cache.write().unwrap_or_else(PoisonError::into_inner) = cache;
    }

    async fn discover(&self, metadata_url: &str) -> Result<String, FetchError> {
        let metadata =
            fetch::issuer_metadata(&self.policy.http, metadata_url, &self.policy.issuer).await?;
        let Some(jwks_uri) = metadata.jwks_uri else {
            return Err(FetchError::Parse {
                url: metadata_url.into(),
                reason: "missing field `jwks_uri`".into(),
            });
        };
        *self
            .policy
            .advertised_feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(metadata.hallpass_revocation_feed_endpoint);
        if fetchable_url(&jwks_uri).is_none() {
            return Err(FetchError::InsecureJwksUri(jwks_uri));
        }
        Ok(jwks_uri)
    }

    /// Seconds to cache a JWKS response: its `max-age` (`no-cache`/`no-store` count as 0),
    /// or the default, kept between the minimum refresh interval and the maximum.
    pub(super) fn ttl(&self, headers: &HeaderMap) -> u64 {
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
            .unwrap_or(self.policy.default_ttl)
            .max(self.policy.min_refresh)
            .min(self.policy.max_ttl)
    }
}

/// Parses a JWK Set into verification keys by `kid`. Keys this verifier cannot use (other
/// key types, encryption keys, symmetric keys, keys without `kid`) are skipped; the set as
/// a whole fails only when it is not a JWK Set.
fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, String> {
    #[derive(Deserialize)]
    struct JwkSet {
        keys: Vec<serde_json::Value>,
    }
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut keys = HashMap::new();
    for jwk in set.keys {
        let parsed = serde_json::from_value::<Jwk>(jwk)
            .map_err(|e| e.to_string())
            .and_then(|jwk| {
                if jwk.kid.is_empty() {
                    return Err("no kid".to_string());
                }
                let key = jwk.verifying_key().map_err(str::to_string)?;
                Ok((jwk.kid, key))
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SystemClock;

    #[test]
    fn cache_lifetime_follows_max_age_within_bounds() {
        let cache = JwksCache::new(CachePolicy {
            issuer: "https://as.example".into(),
            source: KeySource::Jwks("https://as.example/jwks".into()),
            min_refresh: 10,
            default_ttl: super::super::DEFAULT_CACHE_TTL.as_secs(),
            max_ttl: super::super::MAX_CACHE_TTL.as_secs(),
            http: reqwest::Client::new(),
            clock: Arc::new(SystemClock),
            advertised_feed: AdvertisedFeed::default(),
        });
        let ttl = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_str(v).unwrap_or_else(|e| panic!("{e}")),
            );
            cache.ttl(&h)
        };
        assert_eq!(ttl("public, max-age=300"), 300);
        assert_eq!(
            ttl("max-age=2"),
            10,
            "never below the minimum refresh interval"
        );
        assert_eq!(ttl("no-store"), 10);
        assert_eq!(
            ttl("max-age=99999999"),
            super::super::MAX_CACHE_TTL.as_secs()
        );
        assert_eq!(
            cache.ttl(&HeaderMap::new()),
            super::super::DEFAULT_CACHE_TTL.as_secs()
        );
    }

    #[test]
    fn keys_without_kid_or_unusable_are_skipped_and_the_first_of_a_kid_wins() {
        use base64::Engine;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 32]);
        let y = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([2u8; 32]);
        let body = serde_json::json!({"keys": [
            {"kty":"OKP","crv":"Ed25519","x":x},
            {"kty":"oct","kid":"s","k":"c2VjcmV0"},
            {"kty":"OKP","crv":"Ed25519","kid":"k","x":x},
            {"kty":"OKP","crv":"Ed25519","kid":"k","x":y},
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap_or_default();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            keys.get("k").map(|k| k.key.clone()),
            Some(crate::jose::PublicKey::Ed25519(vec![1u8; 32])),
            "the first key of a kid wins"
        );
        assert!(parse_jwks(b"[]").is_err());
    }
}
