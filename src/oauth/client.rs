//! Application clients: registration (RFC 7591 field names), ownership, secrets, and client
//! authentication at the token endpoint (RFC 6749 §2.3).
//!
//! Secrets are 256 random bits generated here, shown once, stored as SHA-256 and compared in
//! constant time. Redirect URIs are matched by exact string comparison (RFC 9700 §4.1.3),
//! except that a loopback IP redirect matches on any port (RFC 8252 §7.3; see
//! [`crate::oauth::redirect_uri`]).

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, PoisonError},
};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    config::Config,
    crypto::{ct_eq, random_id, random_token, sha256_b64},
    oauth::error::{ErrorCode, OAuthError},
    oauth::{grant_type::GrantType, scope::Scope, users::User},
    state::AppState,
    store::{Prefetched, StoreError, StoreJson, schema},
    throttle,
    uri::is_loopback_host,
};

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with client id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret, PKCE required.
    None,
}

impl AuthMethod {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::None => "none",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "client_secret_basic" => Some(AuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(AuthMethod::ClientSecretPost),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

/// The scope that asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";
/// Most clients one user may own.
pub const MAX_CLIENTS_PER_USER: usize = 100;
/// Most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    /// Server-generated id.
    pub client_id: String,
    /// SHA-256 of the secret (confidential clients).
    pub secret_hash: Option<String>,
    /// The owning user's id; empty for a client no user owns (the built-in docs client, and
    /// dynamically registered ones, which only their registration access token manages).
    pub owner: String,
    /// Display name shown on the consent page.
    pub client_name: String,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Allowed grant types, sorted by name.
    pub grant_types: Vec<GrantType>,
    /// Token endpoint authentication method.
    pub token_endpoint_auth_method: AuthMethod,
    /// The scopes the client may request.
    pub scope: Scope,
    /// Browser origins allowed at the token, revocation and UserInfo endpoints besides, for
    /// a public client, its redirect URIs' (see [`crate::oauth::cors`]). Empty on records
    /// written before the field existed.
    #[serde(default)]
    pub allowed_cors_origins: Vec<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// SHA-256 of the registration access token (RFC 7592), for a client registered at
    /// `/oauth2/register`; `None` for every other client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<String>,
}

impl Client {
    /// Whether the client registered itself (RFC 7591): no owner, never first-party, shown
    /// as unverified on the consent page.
    pub fn is_dynamic(&self) -> bool {
        self.registration_token_hash.is_some()
    }

    /// Whether the client is identified by a URL whose metadata document describes it
    /// ([`crate::oauth::cimd`]): no owner, never first-party, shown as unverified.
    pub fn is_metadata_document(&self) -> bool {
        crate::oauth::cimd::is_url_id(&self.client_id)
    }

    /// Whether the consent page may present the client as known: neither self-registered
    /// (RFC 7591) nor identified by a metadata document.
    pub fn is_verified(&self) -> bool {
        !self.is_dynamic() && !self.is_metadata_document()
    }

    /// Whether a user owns the client (and so may manage it through `/api/clients`).
    pub fn has_owner(&self) -> bool {
        !self.owner.is_empty()
    }

    /// Whether the client may use `grant_type`.
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// Whether the client is public (no secret).
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AuthMethod::None
    }

    /// The client's allowed scopes.
    pub fn allowed_scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether a request's `redirect_uri` matches one of the registered ones (exactly, or a
    /// loopback IP redirect on any port: [`crate::oauth::redirect_uri::matches`]).
    pub fn accepts_redirect_uri(&self, requested: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|r| crate::oauth::redirect_uri::matches(r, requested))
    }
}

/// A registration request as the caller sent it; every field optional, checked by [`register`].
#[derive(Debug, Clone, Default)]
pub struct Registration {
    /// Shown on the consent page; required, 1 to 200 characters.
    pub client_name: Option<String>,
    /// Required for the authorization code grant; each checked by [`validate_redirect_uri`].
    pub redirect_uris: Option<Vec<String>>,
    /// [`GrantType`] names; `authorization_code` when absent.
    pub grant_types: Option<Vec<String>>,
    /// An [`AuthMethod`] name; `client_secret_basic` when absent.
    pub token_endpoint_auth_method: Option<String>,
    /// Offered scopes only; by default all but `hallpass:manage` (and `offline_access`
    /// without the refresh grant).
    pub scope: Option<String>,
    /// Exact origins (`https://app.example`) allowed to call the token, revocation and
    /// UserInfo endpoints from a browser; see [`crate::oauth::cors`].
    pub allowed_cors_origins: Option<Vec<String>>,
    /// RFC 7591 `response_types`: only `code` is supported; ignored when absent.
    pub response_types: Option<Vec<String>>,
}

/// Client metadata that passed [`validate`]: what a registration or an update writes.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Display name.
    pub client_name: String,
    /// Redirect URIs, each valid for the client type.
    pub redirect_uris: Vec<String>,
    /// Grant types, sorted.
    pub grant_types: Vec<GrantType>,
    /// Token endpoint authentication method.
    pub token_endpoint_auth_method: AuthMethod,
    /// Allowed scopes, all offered, never `hallpass:manage`.
    pub scope: Scope,
    /// Explicit CORS origins.
    pub allowed_cors_origins: Vec<String>,
}

fn metadata_error(msg: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, msg)
}

/// Checks a redirect URI (RFC 6749 §3.1.2, RFC 8252 §7.1 and §7.3, RFC 9700 §2.1): absolute,
/// in normal form, no fragment, no user info; https, or http only on a loopback host, or,
/// for a public client (`public`), a private-use scheme that is a reverse domain name
/// (`com.example.app:/callback`). The schemes of
/// [`FORBIDDEN_SCHEMES`](crate::oauth::redirect_uri::FORBIDDEN_SCHEMES) are refused for
/// every client.
pub fn validate_redirect_uri(raw: &str, public: bool) -> Result<(), OAuthError> {
    use crate::oauth::redirect_uri::{FORBIDDEN_SCHEMES, check_private_use_scheme};
    let bad = |why: &str| {
        OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("redirect URI {raw:?} {why}"),
        )
    };
    if raw.len() > 2000 {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "a redirect URI is longer than 2000 bytes",
        ));
    }
    let url = Url::parse(raw).map_err(|_| bad("is not an absolute URI"))?;
    if raw.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    let scheme = url.scheme();
    if FORBIDDEN_SCHEMES.contains(&scheme) {
        return Err(bad(&format!(
            "uses the scheme {scheme}:, which is never allowed in a redirect URI"
        )));
    }
    match scheme {
        "https" | "http" if url.host().is_none() => return Err(bad("must have a host")),
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => {
            return Err(bad(
                "must use https (http is allowed only on loopback hosts)",
            ));
        }
        _ => {
            check_private_use_scheme(scheme).map_err(|why| bad(&why))?;
            if !public {
                return Err(bad(
                    "uses a private-use URI scheme, which only public native clients may register (token_endpoint_auth_method none; RFC 8252 §7.1); use https, or http on a loopback host",
                ));
            }
            if url.cannot_be_a_base() {
                return Err(bad(&format!(
                    "must have a path after the scheme, such as {scheme}:/callback"
                )));
            }
        }
    }
    crate::oauth::redirect_uri::check_normal_form(raw).map_err(|why| bad(&why))
}

/// The longest `client_name`, in characters after trimming spaces.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;

/// Checks client metadata (RFC 7591 §2) against the server's grant types, scopes and
/// redirect rules: the one validation of every way a client is registered or updated (the
/// management API, and RFC 7591/7592 at `/oauth2/register`). Errors are
/// `invalid_client_metadata` or `invalid_redirect_uri` (RFC 7591 §3.2.2).
pub fn validate(state: &AppState, reg: Registration) -> Result<Metadata, OAuthError> {
    let client_name = reg.client_name.unwrap_or_default().trim().to_string();
    if client_name.is_empty() || client_name.chars().count() > MAX_CLIENT_NAME_CHARS {
        return Err(metadata_error(
            "client_name is required, 1 to 200 characters",
        ));
    }
    if client_name.chars().any(char::is_control) {
        return Err(metadata_error(
            "client_name must not contain control characters",
        ));
    }
    let method = match reg.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(m) => AuthMethod::parse(m).ok_or_else(|| {
            metadata_error("token_endpoint_auth_method must be client_secret_basic, client_secret_post or none")
        })?,
    };
    let mut names = reg
        .grant_types
        .unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().into()]);
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Err(metadata_error(
            "grant_types must name at least one grant type",
        ));
    }
    let mut grant_types = Vec::with_capacity(names.len());
    for g in &names {
        grant_types.push(GrantType::parse(g).ok_or_else(|| {
            metadata_error(format!(
                "grant type {g:?} is not supported; use {}",
                GrantType::names()
            ))
        })?);
    }
    let has = |g: GrantType| grant_types.contains(&g);
    if let Some(types) = &reg.response_types {
        if types.iter().any(|t| t != "code") {
            return Err(metadata_error(
                "response_types may only contain code (the only response type supported)",
            ));
        }
        if !types.is_empty() && !has(GrantType::AuthorizationCode) {
            return Err(metadata_error(
                "response_types code needs the authorization_code grant in grant_types",
            ));
        }
    }
    if method == AuthMethod::None && has(GrantType::ClientCredentials) {
        return Err(metadata_error(
            "a public client (token_endpoint_auth_method none) cannot use client_credentials",
        ));
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(metadata_error("refresh_token requires authorization_code"));
    }
    let redirect_uris = reg.redirect_uris.unwrap_or_default();
    if has(GrantType::AuthorizationCode) && redirect_uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    for uri in &redirect_uris {
        validate_redirect_uri(uri, method == AuthMethod::None)?;
    }
    let allowed_cors_origins =
        crate::oauth::cors::validate(reg.allowed_cors_origins.unwrap_or_default())?;
    let offered = Scope::from_tokens(state.config.scopes.iter().map(|s| s.name.as_str()));
    // By default a client may ask for every offered scope except the management one, which
    // must be registered on purpose, and offline_access, which means nothing without the
    // refresh_token grant.
    let scope = match reg.scope.as_deref() {
        None => Scope::from_tokens(offered.iter().filter(|s| {
            *s != crate::oauth::users::MANAGE_SCOPE
                && (*s != OFFLINE_ACCESS || has(GrantType::RefreshToken))
        })),
        Some(raw) => Scope::parse(raw)
            .map_err(|_| metadata_error("scope contains an invalid scope token"))?,
    };
    crate::oauth::first_party::check_registration(&scope)?;
    if !scope.is_subset(&offered) {
        return Err(metadata_error(format!(
            "scope may only contain offered scopes: {offered}"
        )));
    }
    if scope.contains(OFFLINE_ACCESS) && !has(GrantType::RefreshToken) {
        return Err(metadata_error(
            "offline_access needs the refresh_token grant: add it to grant_types",
        ));
    }
    Ok(Metadata {
        client_name,
        redirect_uris,
        grant_types,
        token_endpoint_auth_method: method,
        scope,
        allowed_cors_origins,
    })
}

/// Validates a registration and creates the client, owned by `owner`. Returns the client
/// and, for a confidential client, its secret (the only time it is ever shown).
#[tracing::instrument(skip_all, fields(owner = %owner.id))]
pub async fn register(
    state: &AppState,
    owner: &User,
    reg: Registration,
) -> Result<(Client, Option<String>), OAuthError> {
    let meta = validate(state, reg)?;
    if state
        .store
        .set_members(&schema::owner_clients(&owner.id))
        .await?
        .len()
        >= MAX_CLIENTS_PER_USER
    {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            format!("a user may own at most {MAX_CLIENTS_PER_USER} clients; delete one first"),
        ));
    }
    let secret = (meta.token_endpoint_auth_method != AuthMethod::None).then(random_token);
    let client = Client::new(
        random_id(),
        owner.id.clone(),
        meta,
        secret.as_deref(),
        state.now(),
    );
    state
        .store
        .put_json(&schema::client(&client.client_id), &client, None)
        .await?;
    state
        .store
        .set_add(&schema::owner_clients(&owner.id), &client.client_id)
        .await?;
    tracing::info!(client_id = %client.client_id, "client registered");
    Ok((client, secret))
}

impl Client {
    /// A new client record from validated metadata; `secret` is hashed here.
    pub fn new(
        client_id: String,
        owner: String,
        meta: Metadata,
        secret: Option<&str>,
        now: u64,
    ) -> Client {
        Client {
            client_id,
            secret_hash: secret.map(|s| sha256_b64(s.as_bytes())),
            owner,
            client_name: meta.client_name,
            redirect_uris: meta.redirect_uris,
            grant_types: meta.grant_types,
            token_endpoint_auth_method: meta.token_endpoint_auth_method,
            scope: meta.scope,
            allowed_cors_origins: meta.allowed_cors_origins,
            created_at: now,
            registration_token_hash: None,
        }
    }
}

/// The client with this id: a registered one, the built-in docs client
/// ([`crate::oauth::docs_client`]), or one a metadata document describes
/// ([`crate::oauth::cimd`]; `None` when its document cannot be used).
pub async fn get(state: &AppState, client_id: &str) -> Result<Option<Client>, OAuthError> {
    get_prefetched(state, client_id, &mut Prefetched::default()).await
}

/// The store key of the record [`get`] reads for `client_id`; `None` for an id no stored
/// record can have (a metadata-document URL, the built-in docs client, an empty or
/// over-long id).
pub fn record_key(config: &Config, client_id: &str) -> Option<String> {
    let stored = !crate::oauth::cimd::applies(config, client_id)
        && !client_id.is_empty()
        && client_id.len() <= 128
        && client_id != crate::oauth::docs_client::CLIENT_ID;
    stored.then(|| schema::client(client_id))
}

/// [`get`], taking the record from `prefetched` when it was read ahead.
pub async fn get_prefetched(
    state: &AppState,
    client_id: &str,
    prefetched: &mut Prefetched,
) -> Result<Option<Client>, OAuthError> {
    Ok(lookup(state, client_id, prefetched)
        .await?
        .map(Arc::unwrap_or_clone))
}

/// [`get`], shared, taking the record from `prefetched` when it was read already (in the
/// same round trip as the rate-limit deadline: [`auth_attempt`]).
async fn lookup(
    state: &AppState,
    client_id: &str,
    prefetched: &mut Prefetched,
) -> Result<Option<Arc<Client>>, OAuthError> {
    if crate::oauth::cimd::applies(&state.config, client_id) {
        return Ok(crate::oauth::cimd::resolve(state, client_id)
            .await
            .ok()
            .map(Arc::new));
    }
    let Some(key) = record_key(&state.config, client_id) else {
        return Ok((client_id == crate::oauth::docs_client::CLIENT_ID)
            .then(|| Arc::new(crate::oauth::docs_client::client(&state.config))));
    };
    let bytes = prefetched.get(state.store.as_ref(), &key).await?;
    Ok(bytes
        .map(|b| state.clients.decode(client_id, b))
        .transpose()?)
}

/// How many parsed records [`ClientCache`] keeps (about 1 KiB each); past it, it starts
/// afresh.
pub const CLIENT_CACHE_ENTRIES: usize = 4096;

/// Parsed client records by id, each with the exact bytes it was parsed from, so a record
/// read from the store is parsed again only when its bytes changed.
///
/// This is not a cache of the store: a record read from the store is used as it is now, and
/// only the JSON parsing (and its allocations) is skipped when nothing changed. Skipping the
/// read itself is [`crate::oauth::client_lease`]'s job, under its own rules.
#[derive(Default)]
pub struct ClientCache {
    entries: std::sync::Mutex<HashMap<String, Parsed>>,
}

/// A record's bytes and what they parse to.
type Parsed = (Vec<u8>, Arc<Client>);

impl ClientCache {
    /// The client these bytes (the record just read under `client_id`) describe.
    pub fn decode(&self, client_id: &str, bytes: Vec<u8>) -> Result<Arc<Client>, StoreError> {
        let lock = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, client)) = lock().get(client_id) {
            if *cached == bytes {
                return Ok(client.clone());
            }
        }
        let client: Arc<Client> = Arc::new(
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        );
        let mut entries = lock();
        if entries.len() >= CLIENT_CACHE_ENTRIES && !entries.contains_key(client_id) {
            entries.clear();
        }
        entries.insert(client_id.to_string(), (bytes, client.clone()));
        Ok(client)
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rate-limit attempt of a client authentication (by the `client_id` it claims), which
/// also reads that client's record in the same store round trip as its deadline; pass what
/// it prefetched to [`authenticate`] ([`throttle::guard_with`]).
pub fn auth_attempt(config: &Config, creds: &ClientCredentials) -> throttle::Attempt {
    let key = creds.claimed_id().and_then(|id| record_key(config, id));
    throttle::Attempt::client_auth(creds).prefetch(key)
}

/// The owner's client with this id; `not_found` for anyone else's, so ids are not confirmed.
pub async fn get_owned(
    state: &AppState,
    owner: &User,
    client_id: &str,
) -> Result<Client, OAuthError> {
    get(state, client_id)
        .await?
        .filter(|c| c.has_owner() && c.owner == owner.id)
        .ok_or_else(|| OAuthError::not_found("no such client"))
}

/// The owner's clients.
pub async fn list(state: &AppState, owner: &User) -> Result<Vec<Client>, OAuthError> {
    let mut out = Vec::new();
    for id in state
        .store
        .set_members(&schema::owner_clients(&owner.id))
        .await?
    {
        if let Some(c) = get(state, &id)
            .await?
            .filter(|c| c.has_owner() && c.owner == owner.id)
        {
            out.push(c);
        }
    }
    out.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(a.client_id.cmp(&b.client_id))
    });
    Ok(out)
}

/// Deletes the owner's client (compare-and-swap; see [`client_update`](crate::oauth::client_update)).
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn delete(state: &AppState, owner: &User, client_id: &str) -> Result<(), OAuthError> {
    use crate::oauth::client_update::{self, Access};
    client_update::delete(state, Access::Owner(owner), client_id).await
}

/// Replaces a confidential client's secret and returns the new one (shown once); 409 when
/// a concurrent change won (see [`client_update`](crate::oauth::client_update)).
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn rotate_secret(
    state: &AppState,
    owner: &User,
    client_id: &str,
) -> Result<(Client, String), OAuthError> {
    crate::oauth::client_update::rotate_secret(state, owner, client_id).await
}

/// The credentials a token-endpoint request carried (RFC 6749 §2.3.1). `Debug` never shows
/// a secret.
#[derive(Default)]
pub struct ClientCredentials {
    /// From the `Authorization: Basic` header, already form-decoded.
    pub basic: Option<(String, String)>,
    /// An `Authorization` header was present but was not valid Basic.
    pub malformed_header: bool,
    /// `client_id` form parameter.
    pub form_id: Option<String>,
    /// `client_secret` form parameter.
    pub form_secret: Option<String>,
}

impl ClientCredentials {
    /// The client id the request claims: HTTP Basic's, else the form's.
    pub fn claimed_id(&self) -> Option<&str> {
        self.basic
            .as_ref()
            .map(|(id, _)| id.as_str())
            .or(self.form_id.as_deref())
    }
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("basic_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("malformed_header", &self.malformed_header)
            .field("form_id", &self.form_id)
            .field(
                "form_secret",
                &self.form_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The description of every failed client authentication, whatever failed.
pub const CLIENT_AUTH_FAILED: &str = "client authentication failed";

/// The method, client id and secret a request authenticates with: exactly one method.
fn presented(creds: &ClientCredentials) -> Result<(AuthMethod, &str, Option<&str>), OAuthError> {
    if creds.malformed_header {
        return Err(OAuthError::invalid_client(
            "the Authorization header is not valid HTTP Basic",
        ));
    }
    match (&creds.basic, &creds.form_id, &creds.form_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        )),
        (Some((id, _)), Some(form_id), None) if form_id != id => Err(OAuthError::invalid_request(
            "client_id in the body differs from the HTTP Basic client id",
        )),
        (Some((id, secret)), _, None) => Ok((AuthMethod::ClientSecretBasic, id, Some(secret))),
        (None, Some(id), Some(secret)) => Ok((AuthMethod::ClientSecretPost, id, Some(secret))),
        (None, Some(id), None) => Ok((AuthMethod::None, id, None)),
        (None, None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret without client_id",
        )),
        (None, None, None) => Err(OAuthError::invalid_client(
            "client authentication is required",
        )),
    }
}

/// Whether `client` (`None`: no such client) accepts `method` with a secret whose SHA-256 is
/// `presented`. The same comparison runs whether or not the client exists, in constant time.
fn accepts(client: Option<&Client>, method: AuthMethod, presented: &str) -> bool {
    let stored = client
        .and_then(|c| c.secret_hash.as_deref())
        .map(str::to_owned)
        .unwrap_or_else(|| sha256_b64(b"no secret"));
    let secret_ok = ct_eq(presented.as_bytes(), stored.as_bytes());
    let method_ok = client.is_some_and(|c| c.token_endpoint_auth_method == method);
    method_ok && (method == AuthMethod::None || secret_ok)
}

/// Authenticates the client of a token-endpoint request: exactly one method, the one the
/// client registered; secrets compared in constant time. `prefetched` may hold the client's
/// record, read with its rate-limit deadline ([`auth_attempt`]).
pub async fn authenticate(
    state: &AppState,
    creds: ClientCredentials,
    mut prefetched: Prefetched,
) -> Result<Arc<Client>, OAuthError> {
    let (method, id, secret) = presented(&creds)?;
    if crate::oauth::cimd::applies(&state.config, id) {
        // A URL client id is public and its document is public: nothing to hide, so the
        // error says what is wrong.
        if method != AuthMethod::None {
            return Err(OAuthError::invalid_client(
                "a client identified by a metadata document URL is public: send client_id without a secret (token_endpoint_auth_method none)",
            ));
        }
        return crate::oauth::cimd::resolve(state, id)
            .await
            .map(Arc::new)
            .map_err(|e| OAuthError::invalid_client(e.0));
    }
    let client = lookup(state, id, &mut prefetched).await?;
    let presented = sha256_b64(secret.unwrap_or_default().as_bytes());
    // One answer for every failure (unknown client, wrong method, wrong secret), decided
    // after the same lookup and comparison, so it never tells whether the client exists.
    let ok = accepts(client.as_deref(), method, &presented);
    match client {
        Some(client) if ok => Ok(client),
        _ => Err(OAuthError::invalid_client(CLIENT_AUTH_FAILED)),
    }
}

/// The client `creds` authenticate, when this instance holds a live lease on its record
/// ([`crate::oauth::client_lease`]) and the lease accepts them. A secret the lease does not
/// accept ends it; `None` sends the request to the store.
fn leased(state: &AppState, creds: &ClientCredentials) -> Option<Arc<Client>> {
    let (method, id, secret) = presented(creds).ok()?;
    record_key(&state.config, id)?;
    let presented = sha256_b64(secret.unwrap_or_default().as_bytes());
    state
        .client_leases
        .authenticate(id, |c| accepts(Some(c), method, &presented))
}

/// Authenticates the client of `creds` and runs `work` for it, with `side` (a read the work
/// needs, run alongside the authentication's store round trip).
///
/// A live lease on the client's record that accepts the credentials answers without the
/// store. Otherwise the client-authentication rate limit admits the attempt, the record is
/// read with its deadline ([`auth_attempt`]), a failure is counted
/// ([`throttle::client_outcome`]), and a success takes a lease from that read.
pub async fn authenticated<S, T, F>(
    state: &AppState,
    creds: ClientCredentials,
    side: impl Future<Output = S>,
    work: impl FnOnce(Arc<Client>, S) -> F,
) -> Result<T, throttle::Refusal>
where
    F: Future<Output = Result<T, OAuthError>>,
{
    if let Some(client) = leased(state, &creds) {
        let side = side.await;
        return work(client, side).await.map_err(throttle::Refusal::Error);
    }
    // Before the read is sent: a lease never outlives its read by more than its length.
    let read_at = tokio::time::Instant::now();
    let attempt = auth_attempt(&state.config, &creds);
    let authenticate_then_work = |prefetched, side| async move {
        let client = authenticate(state, creds, prefetched).await?;
        if record_key(&state.config, &client.client_id).is_some() {
            state.client_leases.grant(client.clone(), read_at);
        }
        work(client, side).await
    };
    throttle::guard_alongside(
        state,
        &attempt,
        side,
        authenticate_then_work,
        throttle::client_outcome,
    )
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stored client record (JSON) with `id` and `secret_hash`; shared with the lease
    /// table's tests.
    pub(crate) fn record(id: &str, secret_hash: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "client_id": id,
            "secret_hash": secret_hash,
            "owner": "u",
            "client_name": "N",
            "redirect_uris": [],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "beers:read",
            "created_at": 1,
        }))
        .unwrap()
    }

    #[test]
    fn the_client_cache_reuses_a_parse_only_for_the_same_bytes_and_stays_bounded() {
        let cache = ClientCache::default();
        let first = cache.decode("c", record("c", "h1")).unwrap();
        let again = cache.decode("c", record("c", "h1")).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "same bytes: the parsed copy");
        // A rotated secret is a new record: parsed afresh, never the old copy.
        let rotated = cache.decode("c", record("c", "h2")).unwrap();
        assert_eq!(rotated.secret_hash.as_deref(), Some("h2"));
        assert_eq!(
            cache.decode("c", record("c", "h2")).unwrap().secret_hash,
            rotated.secret_hash
        );
        assert!(cache.decode("c", b"{not json".to_vec()).is_err());
        for i in 0..CLIENT_CACHE_ENTRIES + 10 {
            let id = format!("c{i}");
            cache.decode(&id, record(&id, "h")).unwrap();
            assert!(cache.len() <= CLIENT_CACHE_ENTRIES);
        }
    }

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        for public in [false, true] {
            assert!(validate_redirect_uri("https://app.example/cb", public).is_ok());
            assert!(validate_redirect_uri("http://127.0.0.1:8080/cb", public).is_ok());
            assert!(validate_redirect_uri("http://[::1]/cb", public).is_ok());
            assert!(validate_redirect_uri("http://localhost/cb", public).is_ok());
            assert!(validate_redirect_uri("http://app.example/cb", public).is_err());
            assert!(validate_redirect_uri("https://app.example/cb#x", public).is_err());
            assert!(validate_redirect_uri("/cb", public).is_err());
            assert!(validate_redirect_uri("https://user:pw@app.example/cb", public).is_err());
        }
    }

    #[test]
    fn private_use_schemes_are_for_public_clients_and_dangerous_schemes_for_nobody() {
        assert!(validate_redirect_uri("com.example.app:/callback", true).is_ok());
        assert!(validate_redirect_uri("com.example.app://callback", true).is_ok());
        let confidential = validate_redirect_uri("com.example.app:/callback", false);
        assert_eq!(
            confidential.map_err(|e| e.code),
            Err(ErrorCode::InvalidRedirectUri)
        );
        for bad in [
            "myapp:/callback",
            "com.example.app:callback",
            "com.example.app:/cb#x",
            "com.Example.app:/cb",
            "javascript:alert(1)",
            "javascript://x/%0aalert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:x",
            "about:blank",
            "blob:https://app.example/1",
        ] {
            assert!(validate_redirect_uri(bad, true).is_err(), "{bad}");
            assert!(validate_redirect_uri(bad, false).is_err(), "{bad}");
        }
    }
}
