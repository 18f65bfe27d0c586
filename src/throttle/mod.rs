//! Rate limiting of guessable secrets and of registration, shared by every instance through
//! the store.
//!
//! What is limited ([`Limit`]), each per *subject*:
//! - failed sign-ins (the login form and HTTP Basic on the management API) per account and
//!   client IP, per client IP, and per account alone with a much higher threshold;
//! - failed client authentications per `client_id` (token, introspection, revocation);
//! - user registrations per client IP, and, counted apart, client registrations (RFC 7591)
//!   per client IP, under the same threshold.
//!
//! How: every counted event increments `throttle:<limit>:<subject>:<window>` (an atomic
//! [`Store::incr`](crate::store::Store::incr) on a fixed window of `HALLPASS_RATE_LIMIT_WINDOW`
//! seconds). The first `threshold` events of a window cost no wait; after the n-th event
//! (n ≥ threshold) the subject waits 2^(n − threshold) seconds (1, 2, 4, ...), at most
//! `HALLPASS_RATE_LIMIT_MAX_DELAY`, recorded as a deadline under
//! `throttle_until:<limit>:<subject>`. Nothing is permanent: windows and
//! deadlines expire, and a successful sign-in resets its account-and-IP counter. So failures
//! from an attacker's address throttle that address and that account-from-that-address
//! quickly, while the account's owner, elsewhere, is only slowed once the account-wide
//! threshold is crossed, for a few minutes at most.
//!
//! [`guard`] admits every subject of an [`Attempt`] *before* the guarded work runs (argon2 is
//! the expensive step, and a throttled request never reaches it) and settles its [`Outcome`]
//! afterwards. For sign-ins and registrations (which hash a password), beyond the threshold
//! only one attempt per subject runs at a time, so a burst of parallel requests gets no more
//! tries than a patient sequence; below it, at most [`MAX_IN_FLIGHT`] run at once
//! (`throttle_in_flight:<limit>:<subject>`). Client authentication has deadlines only.
//! Deadlines are compared with the state's clock, so tests move time instead of sleeping.
//! A throttled request is a [`Refusal::Throttled`], answered 429 with `Retry-After` by the
//! HTTP layer, and counted in `/metrics` by its limit.

pub mod client_ip;
pub mod settings;

use std::{future::Future, net::IpAddr, time::Duration};

use crate::{
    crypto::sha256_b64,
    oauth::{
        client::ClientCredentials,
        error::{ErrorCode, OAuthError},
        users::UserCredentials,
    },
    state::AppState,
    store::{Prefetched, schema},
};

/// What is rate limited; also the `limit` label of `hallpass_throttled_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Failed sign-ins of one account from one IP (`HALLPASS_RATE_LIMIT_SIGN_IN`).
    SignInAccountIp,
    /// Failed sign-ins from one IP, any account (`HALLPASS_RATE_LIMIT_SIGN_IN_IP`).
    SignInIp,
    /// Failed sign-ins of one account, any IP (`HALLPASS_RATE_LIMIT_SIGN_IN_ACCOUNT`).
    SignInAccount,
    /// Failed client authentications of one `client_id` (`HALLPASS_RATE_LIMIT_CLIENT_AUTH`).
    ClientAuth,
    /// Registrations from one IP (`HALLPASS_RATE_LIMIT_REGISTRATION`).
    Registration,
}

impl Limit {
    /// Every limit, in the order `/metrics` lists them.
    pub const ALL: [Limit; 5] = [
        Limit::SignInAccountIp,
        Limit::SignInIp,
        Limit::SignInAccount,
        Limit::ClientAuth,
        Limit::Registration,
    ];

    /// The name in store keys and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::SignInAccountIp => "sign_in_account_ip",
            Limit::SignInIp => "sign_in_ip",
            Limit::SignInAccount => "sign_in_account",
            Limit::ClientAuth => "client_auth",
            Limit::Registration => "registration",
        }
    }

    /// Whether attempts run a password hash, so bursts are bounded too (in flight at once,
    /// one at a time beyond the threshold). Client secrets are compared by SHA-256: cheap,
    /// and busy clients call in parallel, so client authentication has deadlines only.
    fn bounds_bursts(self) -> bool {
        self != Limit::ClientAuth
    }

    fn threshold(self, state: &AppState) -> u64 {
        let l = &state.config.rate_limits;
        match self {
            Limit::SignInAccountIp => l.sign_in_account_ip,
            Limit::SignInIp => l.sign_in_ip,
            Limit::SignInAccount => l.sign_in_account,
            Limit::ClientAuth => l.client_auth,
            Limit::Registration => l.registration,
        }
    }
}

/// A refused attempt: which limit, and how many seconds until the next one may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The limit that refused it (the one with the longest wait).
    pub limit: Limit,
    /// Seconds to wait (`Retry-After`), at least 1.
    pub retry_after: u64,
}

impl Throttled {
    /// What a person is told: that there were too many attempts, and how long to wait.
    pub fn message(&self) -> String {
        let wait = match self.retry_after {
            s @ 0..=90 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
            s => format!("{} minutes", s.div_ceil(60)),
        };
        format!("Too many failed sign-in attempts. Please wait {wait} and try again.")
    }

    /// The RFC-shaped error for the API body.
    pub fn error(&self) -> OAuthError {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            format!("too many attempts; retry in {} seconds", self.retry_after),
        )
    }
}

/// Why a guarded call did not return its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Over a rate limit; the work did not run.
    Throttled(Throttled),
    /// The work (or the store) failed.
    Error(OAuthError),
}

impl From<OAuthError> for Refusal {
    fn from(err: OAuthError) -> Self {
        Refusal::Error(err)
    }
}

/// How an attempt's result is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A failure (or, for registration, any attempt): counts against every subject.
    Counts,
    /// A success: resets the account-and-IP counter.
    Resets,
    /// Neither (for example a store error).
    Ignored,
}

#[derive(Debug, Clone)]
struct Subject {
    limit: Limit,
    parts: Vec<String>,
}

/// The subjects one request counts against.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    subjects: Vec<Subject>,
    /// A key the guarded work will read, fetched with the first subject's deadline.
    prefetch: Option<String>,
}

/// A caller-chosen key part, bounded: long ones are replaced by their SHA-256.
fn part(s: &str) -> String {
    if s.len() > 128 {
        sha256_b64(s.as_bytes())
    } else {
        s.to_string()
    }
}

impl Attempt {
    /// Limits nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads `key` in the same store round trip as the first subject's deadline, for the
    /// guarded work ([`guard_with`]): the token endpoint reads a client's record with its
    /// client-authentication deadline, one round trip instead of two, and every request
    /// still reads the record as it is now (no cache that a rotated secret could outlive).
    pub fn prefetch(mut self, key: Option<String>) -> Self {
        self.prefetch = key;
        self
    }

    fn with(mut self, limit: Limit, parts: &[&str]) -> Self {
        self.subjects.push(Subject {
            limit,
            parts: parts.iter().map(|p| part(p)).collect(),
        });
        self
    }

    /// A sign-in with a username and password from `ip`.
    pub fn sign_in(username: &str, ip: Option<IpAddr>) -> Self {
        // Counted under the account's key (RFC 8265 case-mapped), so `Alice` and `ALICE`
        // share alice's count; a name the profile refuses is counted as typed.
        let mapped = crate::oauth::username::enforce(username).map(|n| n.key);
        let username = mapped.as_deref().unwrap_or(username);
        let mut a = Self::none();
        if let Some(ip) = ip.map(|i| i.to_string()) {
            a = a
                .with(Limit::SignInAccountIp, &[username, &ip])
                .with(Limit::SignInIp, &[&ip]);
        }
        a.with(Limit::SignInAccount, &[username])
    }

    /// A management-API caller: limited as a sign-in when it sent HTTP Basic.
    pub fn user_credentials(creds: &UserCredentials, ip: Option<IpAddr>) -> Self {
        match creds {
            UserCredentials::Basic { username, .. } => Self::sign_in(username, ip),
            _ => Self::none(),
        }
    }

    /// A client authentication, by the `client_id` it claims (Basic or form).
    pub fn client_auth(creds: &ClientCredentials) -> Self {
        match creds.claimed_id() {
            Some(id) => Self::none().with(Limit::ClientAuth, &[id]),
            None => Self::none(),
        }
    }

    /// A user registration from `ip`.
    pub fn registration(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(ip) => Self::none().with(Limit::Registration, &[&ip.to_string()]),
            None => Self::none(),
        }
    }

    /// A dynamic client registration (RFC 7591) from `ip`: the registration limit, with a
    /// count of its own (so registering clients does not use up the users' allowance).
    pub fn client_registration(ip: Option<IpAddr>) -> Self {
        match ip {
            Some(ip) => Self::none().with(Limit::Registration, &["client", &ip.to_string()]),
            None => Self::none(),
        }
    }

    /// Admits the attempt or refuses it, before any work runs.
    ///
    /// A subject refuses while its deadline has not passed. Once it has reached its
    /// threshold of failures in the window, only one attempt runs at a time: it claims the
    /// deadline key (compare-and-swap) for as long as the ceiling, and [`Attempt::settle`]
    /// replaces the claim with the next deadline; so a burst of parallel guesses gets no more
    /// checks than a patient sequence. Below the threshold, at most [`MAX_IN_FLIGHT`]
    /// attempts of a subject run at once (the first burst of a window is bounded too, while
    /// a script's parallel calls with the right password pass). A refused attempt costs the
    /// subject nothing; it is counted in `/metrics`.
    pub async fn admit(&self, state: &AppState) -> Result<Pass, Refusal> {
        let mut pass = Pass::default();
        let mut worst: Option<Throttled> = None;
        for (idx, s) in self.subjects.iter().enumerate() {
            let prefetch = if idx == 0 {
                self.prefetch.as_deref()
            } else {
                None
            };
            match admit_one(state, idx, s, prefetch, &mut pass).await {
                Ok(None) => {}
                Ok(Some(retry_after)) => {
                    if worst.is_none_or(|w| retry_after > w.retry_after) {
                        worst = Some(Throttled {
                            limit: s.limit,
                            retry_after,
                        });
                    }
                }
                Err(err) => {
                    self.settle(state, pass, Outcome::Ignored).await;
                    return Err(Refusal::Error(err.into()));
                }
            }
        }
        if let Some(t) = worst {
            self.settle(state, pass, Outcome::Ignored).await;
            state.metrics.throttled(t.limit);
            tracing::info!(
                limit = t.limit.as_str(),
                retry_after = t.retry_after,
                "throttled"
            );
            return Err(Refusal::Throttled(t));
        }
        Ok(pass)
    }

    /// Settles an admitted attempt. [`Outcome::Counts`] counts a failure and sets the
    /// subject's next deadline; [`Outcome::Resets`] clears the account-and-IP counter;
    /// claims not replaced by a deadline are released. A store error is logged, never turned
    /// into the answer: the attempt already has one.
    pub async fn settle(&self, state: &AppState, pass: Pass, outcome: Outcome) {
        let limits = &state.config.rate_limits;
        let now = state.now();
        let store = state.store.as_ref();
        for h in pass.held {
            let Some(s) = self.subjects.get(h.idx) else {
                continue;
            };
            let window = Duration::from_secs(limits.window);
            let result = async {
                if let Some(key) = &h.in_flight_key {
                    store.incr(key, -1, IN_FLIGHT_TTL).await?;
                }
                match outcome {
                    Outcome::Counts => {
                        let n = store.incr(&h.count_key(s), 1, window).await?;
                        let wait = u64::try_from(n)
                            .ok()
                            .and_then(|n| delay(n, s.limit.threshold(state), limits.max_delay));
                        match wait {
                            Some(wait) => {
                                let until = (now + wait).to_string();
                                let ttl = Some(Duration::from_secs(wait));
                                store.put(&h.until_key, until.as_bytes(), ttl).await
                            }
                            None => release(store, &h.until_key, h.claim.as_deref()).await,
                        }
                    }
                    Outcome::Resets if s.limit == Limit::SignInAccountIp => {
                        store.delete(&h.count_key(s)).await?;
                        store.delete(&h.until_key).await.map(|_| ())
                    }
                    Outcome::Resets | Outcome::Ignored => {
                        release(store, &h.until_key, h.claim.as_deref()).await
                    }
                }
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, limit = s.limit.as_str(), "rate-limit counter not updated");
            }
        }
    }
}

/// How many attempts of one subject may run at once below its threshold.
pub const MAX_IN_FLIGHT: i64 = 16;

/// How long an in-flight counter lives (it is given back within seconds; this only bounds
/// what a crashed instance leaves behind).
const IN_FLIGHT_TTL: Duration = Duration::from_secs(60);

fn parse_u64(v: Option<&[u8]>) -> u64 {
    v.and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Admits one subject: `Some(seconds)` when it refuses. What it took is pushed to `pass`
/// first, so an error or a refusal gives it back. `prefetch` is read with the deadline, into
/// `pass.prefetched`.
async fn admit_one(
    state: &AppState,
    idx: usize,
    s: &Subject,
    prefetch: Option<&str>,
    pass: &mut Pass,
) -> Result<Option<u64>, crate::store::StoreError> {
    let limits = &state.config.rate_limits;
    let now = state.now();
    let parts = refs(&s.parts);
    let name = s.limit.as_str();
    // Keys are built only when used: a client authentication that succeeds needs only its
    // deadline's.
    let in_flight_key = s
        .limit
        .bounds_bursts()
        .then(|| schema::throttle_in_flight(name, &parts));
    let in_flight = match &in_flight_key {
        Some(key) => state.store.incr(key, 1, IN_FLIGHT_TTL).await?,
        None => 0,
    };
    pass.held.push(Held {
        idx,
        in_flight_key,
        window: now / limits.window.max(1),
        until_key: schema::throttle_until(name, &parts),
        claim: None,
    });
    let Some(held) = pass.held.last_mut() else {
        return Ok(None);
    };
    let current = match prefetch {
        Some(key) => {
            let keys = vec![held.until_key.clone(), key.to_string()];
            let mut read = Prefetched::read(state.store.as_ref(), keys).await?;
            let current = read.take_for(&held.until_key).flatten();
            pass.prefetched = read;
            current
        }
        None => state.store.get(&held.until_key).await?,
    };
    let until = parse_u64(current.as_deref());
    if until > now {
        return Ok(Some(until - now));
    }
    if !s.limit.bounds_bursts() {
        return Ok(None);
    }
    let failures = parse_u64(state.store.get(&held.count_key(s)).await?.as_deref());
    if failures < s.limit.threshold(state) {
        return Ok((in_flight > MAX_IN_FLIGHT).then_some(1));
    }
    let claim = (now + limits.max_delay).to_string().into_bytes();
    let ttl = Some(Duration::from_secs(limits.max_delay));
    let claimed = match &current {
        Some(v) => {
            state
                .store
                .compare_and_swap(&held.until_key, v, Some(&claim), ttl)
                .await?
        }
        None => state.store.put_new(&held.until_key, &claim, ttl).await?,
    };
    if claimed {
        held.claim = Some(claim);
        Ok(None)
    } else {
        // Another attempt of this subject is running: wait for its outcome.
        Ok(Some(1))
    }
}

/// Releases a claim on a deadline key, unless something else replaced it since.
async fn release(
    store: &dyn crate::store::Store,
    until_key: &str,
    claim: Option<&[u8]>,
) -> Result<(), crate::store::StoreError> {
    match claim {
        Some(c) => store
            .compare_and_swap(until_key, c, None, None)
            .await
            .map(|_| ()),
        None => Ok(()),
    }
}

/// One subject's in-flight increment (and claim) held by an admitted attempt.
#[derive(Debug)]
struct Held {
    idx: usize,
    in_flight_key: Option<String>,
    /// The counting window it was admitted in (its counter's key names it).
    window: u64,
    until_key: String,
    claim: Option<Vec<u8>>,
}

impl Held {
    /// The key of the failure counter of subject `s` in this attempt's window.
    fn count_key(&self, s: &Subject) -> String {
        schema::throttle_count(s.limit.as_str(), &refs(&s.parts), self.window)
    }
}

/// An admitted attempt: what [`Attempt::settle`] must count or give back, and what was read
/// for the work ([`Attempt::prefetch`]).
#[derive(Debug, Default)]
#[must_use = "settle the attempt, or it stays in flight"]
pub struct Pass {
    held: Vec<Held>,
    prefetched: Prefetched,
}

fn refs(parts: &[String]) -> Vec<&str> {
    parts.iter().map(String::as_str).collect()
}

/// The wait after the `n`-th counted event of a window: none up to `threshold - 1`, then 1 s
/// after the `threshold`-th, doubling with each further one, at most `max` seconds.
pub fn delay(n: u64, threshold: u64, max: u64) -> Option<u64> {
    let over = n.checked_sub(threshold)?;
    let wait = if over >= 32 { u64::MAX } else { 1u64 << over };
    Some(wait.min(max).max(1))
}

/// Runs `work` unless `attempt` is throttled, then counts its result as `judge` says.
/// `work` is not polled before the check, so a throttled request costs no password hash.
pub async fn guard<T, F>(
    state: &AppState,
    attempt: &Attempt,
    work: F,
    judge: impl FnOnce(&Result<T, OAuthError>) -> Outcome,
) -> Result<T, Refusal>
where
    F: Future<Output = Result<T, OAuthError>>,
{
    guard_with(state, attempt, |_| work, judge).await
}

/// [`guard`], with the work made from what the attempt prefetched ([`Attempt::prefetch`]).
pub async fn guard_with<T, F>(
    state: &AppState,
    attempt: &Attempt,
    work: impl FnOnce(Prefetched) -> F,
    judge: impl FnOnce(&Result<T, OAuthError>) -> Outcome,
) -> Result<T, Refusal>
where
    F: Future<Output = Result<T, OAuthError>>,
{
    guard_alongside(
        state,
        attempt,
        std::future::ready(()),
        |p, ()| work(p),
        judge,
    )
    .await
}

/// [`guard_with`], with `side` (a read the work will need) run at the same time as the
/// admission, so neither waits for the other (on one Redis node their commands leave in one
/// write). `side` runs even when the attempt is refused: it must only read, and cost no more
/// than one bounded read.
pub async fn guard_alongside<S, T, F>(
    state: &AppState,
    attempt: &Attempt,
    side: impl Future<Output = S>,
    work: impl FnOnce(Prefetched, S) -> F,
    judge: impl FnOnce(&Result<T, OAuthError>) -> Outcome,
) -> Result<T, Refusal>
where
    F: Future<Output = Result<T, OAuthError>>,
{
    let (admitted, side) = tokio::join!(attempt.admit(state), side);
    let mut pass = admitted?;
    let prefetched = std::mem::take(&mut pass.prefetched);
    let result = work(prefetched, side).await;
    attempt.settle(state, pass, judge(&result)).await;
    result.map_err(Refusal::Error)
}

/// `users::authenticate`: `None` is a failure, a user a success.
pub fn sign_in_outcome<T>(r: &Result<Option<T>, OAuthError>) -> Outcome {
    match r {
        Ok(Some(_)) => Outcome::Resets,
        Ok(None) => Outcome::Counts,
        Err(_) => Outcome::Ignored,
    }
}

/// `users::authenticate_caller`: `invalid_grant` (wrong username or password) is a failure.
pub fn caller_outcome<T>(r: &Result<T, OAuthError>) -> Outcome {
    match r {
        Ok(_) => Outcome::Resets,
        Err(e) if e.code == ErrorCode::InvalidGrant => Outcome::Counts,
        Err(_) => Outcome::Ignored,
    }
}

/// Client authentication: `invalid_client` is a failure.
pub fn client_outcome<T>(r: &Result<T, OAuthError>) -> Outcome {
    match r {
        Err(e) if e.code == ErrorCode::InvalidClient => Outcome::Counts,
        _ => Outcome::Ignored,
    }
}

/// Registration: every attempt that ran counts (each may cost a password hash).
pub fn every_attempt<T>(r: &Result<T, OAuthError>) -> Outcome {
    match r {
        Err(e)
            if e.code == ErrorCode::TemporarilyUnavailable || e.code == ErrorCode::ServerError =>
        {
            Outcome::Ignored
        }
        _ => Outcome::Counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_is_free_then_doubles_up_to_the_ceiling() {
        assert_eq!(delay(4, 5, 300), None);
        assert_eq!(delay(5, 5, 300), Some(1));
        assert_eq!(delay(6, 5, 300), Some(2));
        assert_eq!(delay(9, 5, 300), Some(16));
        assert_eq!(delay(14, 5, 300), Some(300));
        assert_eq!(delay(u64::MAX, 1, 300), Some(300));
    }

    #[test]
    fn a_sign_in_counts_against_account_and_ip_ip_and_account() {
        let ip: IpAddr = [203, 0, 113, 9].into();
        let a = Attempt::sign_in("alice", Some(ip));
        let limits: Vec<Limit> = a.subjects.iter().map(|s| s.limit).collect();
        assert_eq!(
            limits,
            [
                Limit::SignInAccountIp,
                Limit::SignInIp,
                Limit::SignInAccount
            ]
        );
        assert_eq!(Attempt::sign_in("alice", None).subjects.len(), 1);
        let long = "x".repeat(1000);
        assert!(Attempt::sign_in(&long, None).subjects[0].parts[0].len() < 64);
        let bearer = UserCredentials::Bearer("t".into());
        assert!(
            Attempt::user_credentials(&bearer, Some(ip))
                .subjects
                .is_empty()
        );
    }

    #[test]
    fn a_client_is_limited_by_the_id_it_claims() {
        let creds = ClientCredentials {
            form_id: Some("c1".into()),
            ..ClientCredentials::default()
        };
        let a = Attempt::client_auth(&creds);
        assert_eq!(a.subjects[0].parts, ["c1"]);
        assert!(
            Attempt::client_auth(&ClientCredentials::default())
                .subjects
                .is_empty()
        );
    }
}
