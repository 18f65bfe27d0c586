//! Shared application state: configuration, store, keys, clock. Cheap to clone; no globals.

use std::sync::{Arc, RwLock};

use crate::{
    config::Config,
    crypto::Passwords,
    keys::{KeyError, KeySet, SigningKey},
    store::Store,
    time::{Clock, SystemClock},
};

/// The state every handler sees.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The store (memory or Redis).
    pub store: Arc<dyn Store>,
    /// The signing keys; replaced as a whole when the keys directory is reloaded.
    keys: Arc<RwLock<Arc<KeySet>>>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Password hashing: the argon2id slots, and the dummy hash unknown users are verified
    /// against.
    pub passwords: Passwords,
    /// HMAC key of session cookies and pending authorization requests.
    pub session_key: Arc<ring::hmac::Key>,
    /// Prometheus counters.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The cache and fetcher of Client ID Metadata Documents (per instance).
    pub cimd: Arc<crate::oauth::cimd::Resolver>,
    /// The revocation feed's short-lived copy (per instance).
    pub feed_cache: Arc<crate::oauth::revocation_feed::FeedCache>,
    /// Parsed client records, reused while their stored bytes are unchanged (per instance).
    pub clients: Arc<crate::oauth::client::ClientCache>,
    /// Leases on client records that authenticated moments ago (per instance).
    pub client_leases: Arc<crate::oauth::client_lease::ClientLeases>,
}

/// What an [`AppState`] is made of, by name. [`crate::Application::builder`] assembles it
/// for the server; only tools that never serve (the spec dump, `users create`) build one
/// themselves.
pub struct StateParts {
    /// The validated configuration.
    pub config: Config,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The signing keys.
    pub keys: KeySet,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Password hashing: the argon2id slots, and the dummy hash unknown users are verified
    /// against.
    pub passwords: Passwords,
    /// HMAC key of session cookies; must be the same on every instance.
    pub session_secret: Vec<u8>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Unit tests: a state on `store` with the default configuration, a fresh signing key, a
    /// mock clock at its start and a fixed session secret.
    #[cfg(test)]
    pub(crate) async fn for_tests(store: Arc<dyn Store>) -> Self {
        let config = Config::default();
        let (key, _) = SigningKey::generate(config.signing_alg, 0, 0).expect("a test signing key");
        Self::from_parts(StateParts {
            config,
            store,
            keys: KeySet::from_keys(vec![key]),
            clock: Arc::new(crate::time::MockClock::new()),
            passwords: Passwords::new().expect("the test password slots"),
            session_secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        })
    }

    /// Assembles the state from its parts.
    pub fn from_parts(parts: StateParts) -> Self {
        let StateParts {
            config,
            store,
            keys,
            clock,
            passwords,
            session_secret,
        } = parts;
        let cimd = Arc::new(crate::oauth::cimd::Resolver::new(&config.cimd));
        Self {
            cimd,
            feed_cache: Arc::default(),
            clients: Arc::default(),
            client_leases: Arc::new(crate::oauth::client_lease::ClientLeases::new(
                config.client_lease,
                config.client_lease_ceiling,
            )),
            config: Arc::new(config),
            store,
            keys: Arc::new(RwLock::new(Arc::new(keys))),
            clock,
            passwords,
            metrics: Arc::default(),
            session_key: Arc::new(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                &session_secret,
            )),
        }
    }

    /// Unix seconds, from the clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the key set.
    pub fn set_keys(&self, keys: KeySet) {
        let mut guard = match self.keys.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(keys);
    }

    /// Reloads the keys directory (every instance does this periodically, so a key added by
    /// `hallpass keys rotate` is published everywhere without a restart). On error the old
    /// set stays.
    pub fn reload_keys(&self) -> Result<(), KeyError> {
        let keys = KeySet::load(&self.config.keys_dir)?;
        self.set_keys(keys);
        Ok(())
    }

    /// The key that signs now.
    pub fn signing_key(&self) -> Result<Arc<SigningKey>, KeyError> {
        self.keys().active(self.now()).cloned()
    }

    /// Verifies an access token for Hallpass's own API now (signature, `typ`, `iss`, `aud`
    /// = `HALLPASS_AUDIENCE`, expiry): tokens for other resource servers are refused.
    pub fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<crate::token::AccessClaims, crate::token::TokenError> {
        crate::token::verify_access_token(
            &self.keys(),
            token,
            &self.config.issuer,
            &self.config.audience,
            self.now(),
            self.config.access_token_ttl,
        )
    }

    /// Verifies an access token Hallpass issued for any registered resource server (for
    /// introspection and revocation, which answer for every token, whatever its `aud`).
    pub fn verify_issued_access_token(
        &self,
        token: &str,
    ) -> Result<crate::token::AccessClaims, crate::token::TokenError> {
        let keys = self.keys();
        let mut last = crate::token::TokenError::Audience;
        for audience in crate::oauth::resource::identifiers(&self.config) {
            match crate::token::verify_access_token(
                &keys,
                token,
                &self.config.issuer,
                &audience,
                self.now(),
                self.config.access_token_ttl,
            ) {
                Err(crate::token::TokenError::Audience) => {}
                Err(e) => {
                    last = e;
                    break;
                }
                ok => return ok,
            }
        }
        Err(last)
    }
}

/// A state that touches neither disk nor network (memory store, a key made in memory), for
/// generating the OpenAPI spec, which depends only on the configuration.
pub async fn spec_state(config: Config) -> Result<AppState, Box<dyn std::error::Error>> {
    let now = SystemClock.now();
    let (key, _) = SigningKey::generate(config.signing_alg, now, now)?;
    Ok(AppState::from_parts(StateParts {
        config,
        store: Arc::new(crate::store::memory::MemoryStore::new()),
        keys: KeySet::from_keys(vec![key]),
        clock: Arc::new(SystemClock),
        passwords: Passwords::new()?,
        session_secret: crate::crypto::random_bytes::<32>().to_vec(),
    }))
}
