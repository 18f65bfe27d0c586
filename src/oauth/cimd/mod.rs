//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a
//! `client_id` that is an https URL names a JSON document, served there, that describes the
//! client. Hallpass fetches it on first use (an authorization request, or a token request by
//! that client), caches it, and treats the client as a public client no user owns, never
//! first-party and always shown as unverified.
//!
//! - [`applies`]: which ids are URLs to resolve (only when `HALLPASS_CLIENT_ID_METADATA_DOCUMENTS`
//!   is `on`); [`resolve`]: the client, or why its document cannot be used.
//! - The document ([`client_from_document`]): a JSON object whose `client_id` equals the URL
//!   exactly, with `redirect_uris` (checked and matched like a registered public client's,
//!   loopback on any port included), an optional `client_name` (else the URL's host),
//!   `token_endpoint_auth_method` `none` (or absent: nothing needing a shared secret, and no
//!   `client_secret`), grant types `authorization_code` and `refresh_token` only.
//! - The cache ([`Resolver`]) is per instance and in memory: at most [`MAX_ENTRIES`] URLs,
//!   each fresh for its HTTP cache lifetime clamped to the configured bounds; a failure is
//!   cached for [`NEGATIVE_TTL`] seconds, so a flood of bad ids is not a flood of fetches;
//!   concurrent first uses of one URL share one fetch (single-flight).
//! - Fetches are rate limited per host and per instance ([`CimdSettings`]); a refused fetch
//!   is not cached. The fetch and its SSRF defences are in [`fetch`]; the address classifier
//!   in [`ip`].

pub mod fetch;
pub mod ip;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tokio::sync::OnceCell;
use url::Url;

use crate::{
    config::Config,
    oauth::{
        client::{self, AuthMethod, Client, Registration},
        grant_type::GrantType,
    },
    state::AppState,
};

pub use fetch::{AllowHosts, FetchError, Fetcher};

/// Most URLs the cache holds; past it, expired entries go, then arbitrary ones.
pub const MAX_ENTRIES: usize = 10_000;
/// Seconds a failed fetch or an unusable document is remembered.
pub const NEGATIVE_TTL: u64 = 30;
/// Longest client id URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 1024;
/// Cache lifetime of a document whose answer names none, before clamping.
pub const DEFAULT_TTL: u64 = 300;

/// Whether the feature is on.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Toggle {
    /// URL client ids are fetched.
    On,
    /// URL client ids are unknown clients, like any unregistered id.
    #[default]
    Off,
}

/// The raw settings, as clap reads them.
#[derive(clap::Args, Debug, Clone)]
pub struct CimdArgs {
    /// Client ID Metadata Documents: `on` fetches https `client_id` URLs as client metadata;
    /// `off` (the default) treats them as unknown clients.
    #[arg(
        long,
        env = "HALLPASS_CLIENT_ID_METADATA_DOCUMENTS",
        value_enum,
        ignore_case = true,
        default_value = "off"
    )]
    pub client_id_metadata_documents: Toggle,
    /// DEVELOPMENT ONLY: comma-separated `host:port` pairs whose documents may be fetched
    /// over plain http and from non-public addresses (loopback, private). Empty in production.
    #[arg(long, env = "HALLPASS_CIMD_ALLOW_HOSTS", default_value = "")]
    pub cimd_allow_hosts: String,
    /// Shortest time a fetched document is cached, seconds, whatever its headers say.
    #[arg(long, env = "HALLPASS_CIMD_MIN_CACHE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub cimd_min_cache_secs: u64,
    /// Longest time a fetched document is cached, seconds, whatever its headers say.
    #[arg(long, env = "HALLPASS_CIMD_MAX_CACHE_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub cimd_max_cache_secs: u64,
    /// Most document fetches per minute to one host, per instance.
    #[arg(long, env = "HALLPASS_CIMD_FETCHES_PER_HOST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub cimd_fetches_per_host: u32,
    /// Most document fetches per minute in all, per instance.
    #[arg(long, env = "HALLPASS_CIMD_FETCHES_PER_MINUTE", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cimd_fetches_per_minute: u32,
}

impl CimdArgs {
    /// Validates the raw settings.
    pub fn settings(&self) -> Result<CimdSettings, String> {
        if self.cimd_min_cache_secs > self.cimd_max_cache_secs {
            return Err(
                "HALLPASS_CIMD_MIN_CACHE_SECS must not exceed HALLPASS_CIMD_MAX_CACHE_SECS".into(),
            );
        }
        let allow_hosts = AllowHosts::parse(&self.cimd_allow_hosts)?;
        if !allow_hosts.is_empty() {
            tracing::warn!(
                "HALLPASS_CIMD_ALLOW_HOSTS is set: client ID metadata documents on those hosts are fetched over http and from non-public addresses; development only"
            );
        }
        Ok(CimdSettings {
            enabled: self.client_id_metadata_documents == Toggle::On,
            allow_hosts,
            min_cache_secs: self.cimd_min_cache_secs,
            max_cache_secs: self.cimd_max_cache_secs,
            fetches_per_host: self.cimd_fetches_per_host,
            fetches_per_minute: self.cimd_fetches_per_minute,
            extra_roots: Vec::new(),
        })
    }
}

/// The validated settings of Client ID Metadata Documents.
#[derive(Debug, Clone)]
pub struct CimdSettings {
    /// Whether URL client ids are fetched (`HALLPASS_CLIENT_ID_METADATA_DOCUMENTS`).
    pub enabled: bool,
    /// Development-only hosts exempt from https and the address check
    /// (`HALLPASS_CIMD_ALLOW_HOSTS`).
    pub allow_hosts: AllowHosts,
    /// Lower cache bound, seconds (`HALLPASS_CIMD_MIN_CACHE_SECS`).
    pub min_cache_secs: u64,
    /// Upper cache bound, seconds (`HALLPASS_CIMD_MAX_CACHE_SECS`).
    pub max_cache_secs: u64,
    /// Fetches per minute to one host (`HALLPASS_CIMD_FETCHES_PER_HOST`).
    pub fetches_per_host: u32,
    /// Fetches per minute in all (`HALLPASS_CIMD_FETCHES_PER_MINUTE`).
    pub fetches_per_minute: u32,
    /// Certificate authorities trusted besides the web PKI roots: no environment variable;
    /// for tests (a test CA) and applications that build their `Config` themselves.
    pub extra_roots: Vec<reqwest::Certificate>,
}

impl Default for CimdSettings {
    fn default() -> Self {
        CimdSettings {
            enabled: false,
            allow_hosts: AllowHosts::default(),
            min_cache_secs: 60,
            max_cache_secs: 86_400,
            fetches_per_host: 10,
            fetches_per_minute: 120,
            extra_roots: Vec::new(),
        }
    }
}

/// Why a URL client id cannot be used; the text is for the user (error page) or the client
/// (`invalid_client`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CimdError(pub String);

fn unusable(url: &str, why: impl std::fmt::Display) -> CimdError {
    CimdError(format!(
        "The client ID metadata document {url} cannot be used: {why}."
    ))
}

/// Whether `client_id` is to be resolved as a metadata document URL: the feature is on and
/// the id is an http(s) URL (http is then refused unless allowlisted, with a clear error).
/// Registered ids never look like URLs.
pub fn applies(config: &Config, client_id: &str) -> bool {
    config.cimd.enabled && is_url_id(client_id)
}

/// Whether an id has the shape of a metadata document URL, whatever the setting.
pub fn is_url_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// Checks the URL itself (draft §3): https with a host and a path, no fragment, no user
/// information, and in normal form (no dot segments, lower-case host, no default port) so
/// the string compared with the document's `client_id` is the one fetched.
fn check_client_id_url(fetcher: &Fetcher, raw: &str) -> Result<Url, CimdError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(CimdError(format!(
            "The client_id URL is longer than {MAX_URL_BYTES} bytes."
        )));
    }
    let url = Url::parse(raw).map_err(|_| unusable(raw, "it is not a valid URL"))?;
    fetcher.check_url(&url).map_err(|e| unusable(raw, e))?;
    if raw.contains('#') {
        return Err(unusable(raw, "it must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(unusable(raw, "it must not contain user information"));
    }
    if url.path() == "/" {
        return Err(unusable(raw, "it must have a path, such as /client.json"));
    }
    if url.as_str() != raw {
        return Err(unusable(
            raw,
            format!(
                "it is not in normal form (no dot segments, lower-case host, no default port): {:?}",
                url.as_str()
            ),
        ));
    }
    Ok(url)
}

/// Builds the client a fetched document describes, or says why it cannot.
pub fn client_from_document(state: &AppState, url: &Url, body: &[u8]) -> Result<Client, CimdError> {
    let id = url.as_str();
    let bad = |why: &str| unusable(id, why);
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("it is not JSON"))?;
    let Some(doc) = doc.as_object() else {
        return Err(bad("it is not a JSON object"));
    };
    match doc.get("client_id") {
        Some(Value::String(s)) if s == id => {}
        Some(Value::String(_)) => {
            return Err(bad(
                "its client_id is not exactly the URL it was fetched from",
            ));
        }
        _ => return Err(bad("it has no client_id string")),
    }
    if doc.contains_key("client_secret") || doc.contains_key("client_secret_expires_at") {
        return Err(bad(
            "it contains a client_secret, which a metadata document must never carry",
        ));
    }
    match doc.get("token_endpoint_auth_method") {
        None => {}
        Some(Value::String(m)) if m == "none" => {}
        Some(Value::String(m))
            if m == "client_secret_basic"
                || m == "client_secret_post"
                || m == "client_secret_jwt" =>
        {
            return Err(bad(
                "its token_endpoint_auth_method needs a shared secret, which a client identified by a URL cannot have; use none (a public client with PKCE)",
            ));
        }
        Some(_) => {
            return Err(bad(
                "its token_endpoint_auth_method is not supported; use none (a public client with PKCE)",
            ));
        }
    }
    let strings = |key: &str| -> Result<Option<Vec<String>>, CimdError> {
        match doc.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| bad(&format!("its {key} is not an array of strings"))),
            Some(_) => Err(bad(&format!("its {key} is not an array of strings"))),
        }
    };
    let redirect_uris = strings("redirect_uris")?.unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(bad("it has no redirect_uris"));
    }
    let grant_types = strings("grant_types")?;
    if let Some(types) = &grant_types {
        let ok = [GrantType::AuthorizationCode, GrantType::RefreshToken].map(GrantType::as_str);
        if let Some(g) = types.iter().find(|g| !ok.contains(&g.as_str())) {
            return Err(unusable(
                id,
                format!(
                    "its grant type {g:?} is not allowed; use authorization_code and refresh_token"
                ),
            ));
        }
    }
    let client_name = match doc.get("client_name") {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() => Some(n.clone()),
        Some(Value::String(_)) => None,
        Some(_) => return Err(bad("its client_name is not a string")),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let scope = match doc.get("scope") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(bad("its scope is not a string")),
    };
    let reg = Registration {
        client_name: Some(client_name.unwrap_or(host)),
        redirect_uris: Some(redirect_uris),
        grant_types,
        token_endpoint_auth_method: Some(AuthMethod::None.as_str().into()),
        scope,
        allowed_cors_origins: None,
        response_types: strings("response_types")?,
    };
    let meta = client::validate(state, reg).map_err(|e| unusable(id, e.description))?;
    Ok(Client::new(
        id.to_string(),
        String::new(),
        meta,
        None,
        state.now(),
    ))
}

/// One cached answer: the client or why not, and until when (Unix seconds).
#[derive(Debug, Clone)]
struct Outcome {
    result: Result<Arc<Client>, CimdError>,
    expires_at: u64,
}

#[derive(Debug, Default)]
struct Window {
    minute: u64,
    total: u32,
    per_host: HashMap<String, u32>,
}

/// The per-instance cache, single-flight and rate limiter of document fetches.
#[derive(Debug)]
pub struct Resolver {
    fetcher: Fetcher,
    entries: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
    window: Mutex<Window>,
}

impl Resolver {
    /// A resolver for `settings`.
    pub fn new(settings: &CimdSettings) -> Self {
        Resolver {
            fetcher: Fetcher::new(settings.allow_hosts.clone(), &settings.extra_roots),
            entries: Mutex::default(),
            window: Mutex::default(),
        }
    }

    /// Counts a fetch to `host` now; `false` when a limit is reached.
    fn take_fetch(&self, settings: &CimdSettings, host: &str, now: u64) -> bool {
        let mut w = match self.window.lock() {
            Ok(w) => w,
            Err(p) => p.into_inner(),
        };
        let minute = now / 60;
        if w.minute != minute {
            *w = Window {
                minute,
                ..Window::default()
            };
        }
        let host_count = w.per_host.get(host).copied().unwrap_or(0);
        if w.total >= settings.fetches_per_minute || host_count >= settings.fetches_per_host {
            return false;
        }
        w.total += 1;
        w.per_host.insert(host.to_string(), host_count + 1);
        true
    }

    /// The cache slot of `url`: the current one if fresh or in flight, else a new one.
    fn slot(&self, url: &str, now: u64) -> Arc<OnceCell<Outcome>> {
        let mut map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(cell) = map.get(url)
            && cell.get().is_none_or(|o| o.expires_at > now)
        {
            return cell.clone();
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(url) {
            map.retain(|_, c| c.get().is_none_or(|o| o.expires_at > now));
            if map.len() >= MAX_ENTRIES
                && let Some(victim) = map.keys().next().cloned()
            {
                map.remove(&victim);
            }
        }
        let cell = Arc::new(OnceCell::new());
        map.insert(url.to_string(), cell.clone());
        cell
    }

    async fn fetch_outcome(&self, state: &AppState, url: &Url) -> Outcome {
        let settings = &state.config.cimd;
        let now = state.now();
        let host = url.host_str().unwrap_or_default();
        if !self.take_fetch(settings, host, now) {
            tracing::warn!(client_id = %url, "client ID metadata document fetch rate limited");
            return Outcome {
                result: Err(CimdError(format!(
                    "Too many client ID metadata documents are being fetched from {host}; try again in a minute."
                ))),
                // Not cached: the limit, not the document, refused it.
                expires_at: now,
            };
        }
        tracing::info!(client_id = %url, "fetching client ID metadata document");
        let (result, ttl) = match self.fetcher.fetch(url).await {
            Err(e) => (Err(unusable(url.as_str(), e)), NEGATIVE_TTL),
            Ok(fetched) => match client_from_document(state, url, &fetched.body) {
                Ok(c) => {
                    let ttl = fetched
                        .fresh_for
                        .unwrap_or(DEFAULT_TTL)
                        .clamp(settings.min_cache_secs, settings.max_cache_secs);
                    (Ok(Arc::new(c)), ttl)
                }
                Err(e) => (Err(e), NEGATIVE_TTL),
            },
        };
        if let Err(e) = &result {
            tracing::info!(client_id = %url, reason = %e, "client ID metadata document refused");
        }
        Outcome {
            result,
            expires_at: state.now().saturating_add(ttl),
        }
    }
}

/// The client a URL `client_id` names (call only when [`applies`]): from the cache, or
/// fetched now, once however many requests ask at the same time.
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn resolve(state: &AppState, client_id: &str) -> Result<Client, CimdError> {
    let resolver = &state.cimd;
    let url = check_client_id_url(&resolver.fetcher, client_id)?;
    let cell = resolver.slot(client_id, state.now());
    let outcome = cell
        .get_or_init(|| resolver.fetch_outcome(state, &url))
        .await;
    outcome.result.clone().map(|c| (*c).clone())
}

/// Whether every redirect URI of `client` is a loopback one (the consent page warns: any
/// program on the user's device could be the one listening).
pub fn loopback_only(client: &Client) -> bool {
    client.redirect_uris.iter().all(|r| {
        Url::parse(r).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && crate::uri::is_loopback_host(&u)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_urls_must_be_https_normal_and_have_a_path() {
        let f = Fetcher::new(AllowHosts::default(), &[]);
        let ok = |u: &str| check_client_id_url(&f, u).is_ok();
        assert!(ok("https://app.example/client.json"));
        assert!(ok("https://app.example:8443/oauth/client"));
        assert!(!ok("http://app.example/client.json"));
        assert!(!ok("https://app.example/"));
        assert!(!ok("https://app.example"));
        assert!(!ok("https://app.example/a/../client.json"));
        assert!(!ok("https://App.example/client.json"));
        assert!(!ok("https://app.example:443/client.json"));
        assert!(!ok("https://app.example/client.json#x"));
        assert!(!ok("https://u:p@app.example/client.json"));
        assert!(!ok("https://127.0.0.1/client.json"));
        assert!(!ok(&format!("https://app.example/{}", "a".repeat(1100))));
    }
}
