//! The revocation feed, polled: the issuer's list of revoked `jti`s and "not before" rules
//! (Hallpass's `GET /oauth2/revocations`, advertised as `hallpass_revocation_feed_endpoint`
//! in its RFC 8414 metadata), kept in memory and checked on every verification.
//!
//! ## The state machine, in one place
//!
//! | cell | written by | read by |
//! |---|---|---|
//! | `list: RwLock<Arc<List>>` | a successful poll (whole swap) | every verification (a read lock and at most three hash lookups) |
//! | `refresh: tokio Mutex<RefreshState>` | held for the whole of a poll: the single flight; holds the discovered URL and the `ETag` | pollers only |
//! | `started: AtomicBool` | the first verification (or [`RevocationFeed::poll_now`]) | starts the background poller once |
//! | `first_poll_done: AtomicBool` | the end of the first poll, successful or not | verifications: until it is set, they wait for that first poll |
//! | `status: Mutex<RevocationStatus>` | the end of every poll | [`crate::verify::Verifier::revocation_status`] |
//!
//! 1. The first verification starts a background task that polls every interval (tokio
//!    timer; the task holds only a weak reference, so it ends with the last clone of the
//!    verifier), and waits for the first poll, so a freshly started resource server does not
//!    accept a token the issuer has already revoked.
//! 2. Each poll takes the refresh lock (single flight: one request at a time, whoever asks),
//!    sends `If-None-Match` with the last `ETag`, and on 200 swaps the whole list; on 304 it
//!    keeps it. The fetch runs in its own task holding the lock, so a dropped request does
//!    not cancel it (as in the JWKS cache).
//! 3. A poll that fails (unreachable, non-2xx, unparsable, too large) keeps the last list:
//!    verification goes on from the last copy, and the status says since when it is stale.
//!    If no copy was ever loaded, nothing is refused on the feed's account (fail open, as a
//!    verifier without the feed would), and the status says so.
//!
//! Lookups allocate nothing: `jti`s are a `HashSet<String>` looked up by `&str`; users and
//! clients are keyed by the 32 bytes of their SHA-256, computed on the stack.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::{StatusCode, header};
use serde::Deserialize;

use super::fetch::{self, FetchError, fetchable_url};
use crate::{
    jose::{Claims, VerifyError},
    time::Clock,
};

/// Where the feed is.
pub(super) enum FeedSource {
    /// The RFC 8414 metadata URL, read for `hallpass_revocation_feed_endpoint`.
    Discover(String),
    /// A configured feed URL.
    Url(String),
}

/// How the feed is polled; fixed when the verifier is built.
pub(super) struct FeedPolicy {
    /// The issuer the metadata and the feed must name.
    pub issuer: String,
    pub source: FeedSource,
    /// Time between two polls.
    pub interval: Duration,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    /// What the JWKS cache's discovery read from the metadata, if it ran.
    pub advertised: super::jwks::AdvertisedFeed,
}

/// What a verifier knows of the issuer's revocation feed, for metrics and health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationStatus {
    /// The feed URL, once known (configured, or discovered from the metadata).
    pub url: Option<String>,
    /// The issuer's metadata advertises no feed: nothing is refused on its account.
    pub not_advertised: bool,
    /// Polls sent so far (successful or not).
    pub polls: u64,
    /// Polls that failed in a row (0 after a success). While above 0, verification goes on
    /// from the last copy (or, when there was none, without the feed).
    pub consecutive_failures: u64,
    /// When (Unix seconds) the feed was last read successfully (200 or 304).
    pub last_success: Option<u64>,
    /// Why the last poll failed, when it did.
    pub last_error: Option<String>,
    /// Revoked `jti`s in the copy in use.
    pub revoked_tokens: usize,
    /// "Not before" rules in the copy in use.
    pub rules: usize,
}

impl RevocationStatus {
    /// Whether the verifier checks tokens against a feed copy that the last poll confirmed.
    pub fn is_current(&self) -> bool {
        self.last_success.is_some() && self.consecutive_failures == 0
    }
}

type Digest = [u8; 32];

fn sha256(s: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The rules of one user.
#[derive(Default)]
struct UserRules {
    /// Cutoff for every token of the user.
    all: Option<u64>,
    /// Cutoffs per client (by digest).
    clients: HashMap<Digest, u64>,
}

/// One copy of the feed, ready for lookups.
#[derive(Default)]
struct List {
    jtis: HashSet<String>,
    clients: HashMap<Digest, u64>,
    users: HashMap<Digest, UserRules>,
    rules: usize,
}

impl List {
    fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        if self.jtis.contains(claims.jti.as_str()) {
            return Err(VerifyError::Revoked);
        }
        if self.clients.is_empty() && self.users.is_empty() {
            return Ok(());
        }
        let client = sha256(&claims.client_id);
        if self.clients.get(&client).is_some_and(|c| claims.iat <= *c) {
            return Err(VerifyError::Revoked);
        }
        if self.users.is_empty() {
            return Ok(());
        }
        if let Some(user) = self.users.get(&sha256(&claims.sub)) {
            if user.all.is_some_and(|c| claims.iat <= c)
                || user.clients.get(&client).is_some_and(|c| claims.iat <= *c)
            {
                return Err(VerifyError::Revoked);
            }
        }
        Ok(())
    }
}

/// The feed document (see Hallpass's `RevocationFeed` schema).
#[derive(Deserialize)]
struct Document {
    issuer: String,
    #[serde(default)]
    revoked: Vec<RevokedEntry>,
    #[serde(default)]
    not_before: Vec<RuleEntry>,
}

#[derive(Deserialize)]
struct RevokedEntry {
    jti: String,
}

#[derive(Deserialize)]
struct RuleEntry {
    sub_sha256: Option<String>,
    client_id_sha256: Option<String>,
    cutoff: u64,
}

fn digest_of(b64: &str) -> Result<Digest, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| format!("{b64:?} is not base64url"))?;
    bytes
        .try_into()
        .map_err(|_| format!("{b64:?} is not a SHA-256 digest"))
}

fn parse(body: &[u8], issuer: &str) -> Result<List, String> {
    let doc: Document = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if doc.issuer != issuer {
        return Err(format!(
            "the feed names issuer {:?}, not {issuer:?}",
            doc.issuer
        ));
    }
    let mut list = List {
        jtis: doc.revoked.into_iter().map(|r| r.jti).collect(),
        ..List::default()
    };
    for rule in doc.not_before {
        let sub = rule.sub_sha256.as_deref().map(digest_of).transpose()?;
        let client = rule
            .client_id_sha256
            .as_deref()
            .map(digest_of)
            .transpose()?;
        let keep = |slot: &mut u64| *slot = (*slot).max(rule.cutoff);
        match (sub, client) {
            (Some(sub), Some(client)) => keep(
                list.users
                    .entry(sub)
                    .or_default()
                    .clients
                    .entry(client)
                    .or_insert(0),
            ),
            (Some(sub), None) => {
                let user = list.users.entry(sub).or_default();
                user.all = Some(user.all.unwrap_or(0).max(rule.cutoff));
            }
            (None, Some(client)) => keep(list.clients.entry(client).or_insert(0)),
            (None, None) => return Err("a rule names neither a user nor a client".into()),
        }
        list.rules += 1;
    }
    Ok(list)
}

/// What the single flight keeps between polls.
#[derive(Default)]
struct RefreshState {
    url: Option<String>,
    etag: Option<String>,
    not_advertised: bool,
}

/// The polled feed. See the module docs for the state machine.
pub(super) struct RevocationFeed {
    policy: FeedPolicy,
    list: RwLock<Arc<List>>,
    refresh: Arc<tokio::sync::Mutex<RefreshState>>,
    started: AtomicBool,
    first_poll_done: AtomicBool,
    polls: AtomicU64,
    status: Mutex<RevocationStatus>,
}

impl RevocationFeed {
    pub(super) fn new(policy: FeedPolicy) -> Self {
        let url = match &policy.source {
            FeedSource::Url(u) => Some(u.clone()),
            FeedSource::Discover(_) => None,
        };
        Self {
            policy,
            list: RwLock::new(Arc::new(List::default())),
            refresh: Arc::new(tokio::sync::Mutex::new(RefreshState {
                url: url.clone(),
                ..RefreshState::default()
            })),
            started: AtomicBool::new(false),
            first_poll_done: AtomicBool::new(false),
            polls: AtomicU64::new(0),
            status: Mutex::new(RevocationStatus {
                url,
                ..RevocationStatus::default()
            }),
        }
    }

    /// `Revoked` when the feed lists the token. Before the first poll has ended, waits for it
    /// (and starts the background poller); afterwards a read lock and hash lookups only.
    pub(super) async fn check(this: &Arc<Self>, claims: &Claims) -> Result<(), VerifyError> {
        if !this.first_poll_done.load(Ordering::Acquire) {
            Self::start(this);
            // A failed first poll is in the status; verification goes on without the feed.
            let _ = Self::poll_once(this, true).await;
        }
        let list = this.list.read().unwrap_or_else(PoisonError::into_inner);
        list.check(claims)
    }

    /// Starts the background poller, once.
    pub(super) fn start(this: &Arc<Self>) {
        if this.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(this);
        let interval = this.policy.interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(feed) = weak.upgrade() else {
                    return;
                };
                let _ = Self::poll_once(&feed, false).await;
            }
        });
    }

    /// The status now.
    pub(super) fn status(&self) -> RevocationStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Polls now (after any poll already running) and returns the status.
    pub(super) async fn poll_now(this: &Arc<Self>) -> RevocationStatus {
        Self::start(this);
        let _ = Self::poll_once(this, false).await;
        this.status()
    }

    /// One poll under the single-flight lock, in its own task. `first_only`: skip it when
    /// the first poll has ended meanwhile (the waiters of step 1).
    async fn poll_once(this: &Arc<Self>, first_only: bool) -> Result<(), ()> {
        let guard = Arc::clone(&this.refresh).lock_owned().await;
        if first_only && this.first_poll_done.load(Ordering::Acquire) {
            return Ok(());
        }
        let feed = Arc::clone(this);
        let task = tokio::spawn(async move {
            let mut guard = guard;
            feed.polls.fetch_add(1, Ordering::SeqCst);
            let result = feed.fetch(&mut guard).await;
            feed.record(&guard, &result);
            feed.first_poll_done.store(true, Ordering::Release);
            result
        });
        let result = task
            .await
            .unwrap_or_else(|e| Err(FetchError::Task(e.to_string())));
        result.map_err(|e| {
            tracing::warn!(
                issuer = %this.policy.issuer,
                error = %e,
                "could not read the issuer's revocation feed; verifying from the last copy"
            );
        })
    }

    fn record(&self, state: &RefreshState, result: &Result<(), FetchError>) {
        let list = Arc::clone(&self.list.read().unwrap_or_else(PoisonError::into_inner));
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.url = state.url.clone();
        status.not_advertised = state.not_advertised;
        status.polls = self.polls.load(Ordering::SeqCst);
        status.revoked_tokens = list.jtis.len();
        status.rules = list.rules;
        match result {
            Ok(()) => {
                status.consecutive_failures = 0;
                status.last_error = None;
                status.last_success = Some(self.policy.clock.now());
            }
            Err(e) => {
                status.consecutive_failures += 1;
                status.last_error = Some(e.to_string());
            }
        }
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<(), FetchError> {
        let url = match (&self.policy.source, &state.url) {
            (_, Some(url)) => url.clone(),
            (FeedSource::Discover(metadata), None) => match self.advertised(metadata).await? {
                Some(url) => {
                    state.url = Some(url.clone());
                    state.not_advertised = false;
                    url
                }
                None => {
                    // Nothing to poll: an issuer without a feed revokes nothing offline.
                    state.not_advertised = true;
                    return Ok(());
                }
            },
            (FeedSource::Url(url), None) => url.clone(),
        };
        let mut request = self
            .policy
            .http
            .get(&url)
            .header(header::ACCEPT, "application/json");
        if let Some(etag) = &state.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        let response = fetch::send(request, &url).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && state.etag.is_some() {
            return Ok(());
        }
        if !status.is_success() {
            if matches!(status, StatusCode::NOT_FOUND | StatusCode::GONE)
                && matches!(self.policy.source, FeedSource::Discover(_))
            {
                state.url = None;
            }
            return Err(FetchError::Status { url, status });
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response.body().await?;
        let list = parse(&body, &self.policy.issuer).map_err(|reason| FetchError::Parse {
            url: url.clone(),
            reason,
        })?;
        state.etag = etag;
        *self.list.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(list);
        Ok(())
    }

    /// The feed URL the metadata advertises: as the JWKS cache's discovery read it, or from
    /// a metadata fetch of its own when that has not run (or the feed URL stopped working).
    async fn advertised(&self, metadata_url: &str) -> Result<Option<String>, FetchError> {
        let known = self
            .policy
            .advertised
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match known {
            Some(Some(url)) if fetchable_url(&url).is_some() => Ok(Some(url)),
            Some(Some(url)) => Err(FetchError::InsecureFeedUrl(url)),
            Some(None) => {
                // Remembered until the keys' discovery runs again.
                *self
                    .policy
                    .advertised
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(None);
                Ok(None)
            }
            None => self.discover(metadata_url).await,
        }
    }

    /// The feed URL from the issuer's metadata; `None` when it advertises none.
    async fn discover(&self, metadata_url: &str) -> Result<Option<String>, FetchError> {
        let metadata =
            fetch::issuer_metadata(&self.policy.http, metadata_url, &self.policy.issuer).await?;
        match metadata.hallpass_revocation_feed_endpoint {
            None => Ok(None),
            Some(url) if fetchable_url(&url).is_some() => Ok(Some(url)),
            Some(url) => Err(FetchError::InsecureFeedUrl(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, client_id: &str, jti: &str, iat: u64) -> Claims {
        Claims {
            iss: "https://as.example".into(),
            sub: sub.into(),
            aud: vec!["api".into()],
            client_id: client_id.into(),
            scope: String::new(),
            iat,
            exp: iat + 600,
            nbf: None,
            jti: jti.into(),
            auth_time: None,
            extra: serde_json::Map::new(),
        }
    }

    fn d(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(sha256(s))
    }

    #[test]
    fn listed_jtis_and_tokens_issued_up_to_a_cutoff_are_refused() {
        let body = serde_json::json!({
            "issuer": "https://as.example",
            "revoked": [{"jti": "gone", "exp": 999}],
            "not_before": [
                {"sub_sha256": d("alice"), "client_id_sha256": d("app"), "cutoff": 100, "exp": 999},
                {"client_id_sha256": d("deleted"), "cutoff": 100, "exp": 999},
                {"sub_sha256": d("bob"), "cutoff": 100, "exp": 999},
            ],
        });
        let list = parse(body.to_string().as_bytes(), "https://as.example")
            .unwrap_or_else(|e| panic!("{e}"));
        let refused = |c: &Claims| list.check(c) == Err(VerifyError::Revoked);
        assert!(refused(&claims("x", "y", "gone", 200)));
        assert!(refused(&claims("alice", "app", "a", 100)));
        assert!(!refused(&claims("alice", "app", "a", 101)), "issued later");
        assert!(
            !refused(&claims("alice", "other", "a", 50)),
            "another client"
        );
        assert!(refused(&claims("carol", "deleted", "a", 99)));
        assert!(refused(&claims("bob", "any", "a", 100)));
        assert!(!refused(&claims("bob", "any", "a", 101)));
        assert!(!refused(&claims("dave", "app", "fine", 1)));
    }

    #[test]
    fn a_feed_of_another_issuer_or_with_bad_digests_is_refused() {
        let other = serde_json::json!({"issuer": "https://evil.example", "revoked": []});
        assert!(parse(other.to_string().as_bytes(), "https://as.example").is_err());
        let bad = serde_json::json!({"issuer": "https://as.example",
            "not_before": [{"sub_sha256": "abc", "cutoff": 1, "exp": 2}]});
        assert!(parse(bad.to_string().as_bytes(), "https://as.example").is_err());
        let empty = serde_json::json!({"issuer": "https://as.example",
            "not_before": [{"cutoff": 1, "exp": 2}]});
        assert!(parse(empty.to_string().as_bytes(), "https://as.example").is_err());
    }
}
