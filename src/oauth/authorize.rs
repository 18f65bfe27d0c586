//! The authorization endpoint's decisions (RFC 6749 §4.1.1–4.1.2, RFC 7636, RFC 9207).
//!
//! [`validate`] checks a request in the order the RFC demands: first the client and the
//! redirect URI, whose errors must never redirect (§4.1.2.1), then everything else, whose
//! errors go back to the client. The validated request travels through login and consent as
//! a value sealed to the session's subject ([`seal_pending`]); [`decide`] opens it, refuses a
//! forged or replayed one, and issues a single-use code stored only as its SHA-256.

use std::{collections::HashMap, time::Duration};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    crypto::random_id,
    oauth::error::{ErrorCode, OAuthError},
    oauth::{
        client::{self, Client},
        consent, first_party,
        grant_type::GrantType,
        pkce, resource,
        scope::Scope,
        session::{self, Session},
    },
    state::AppState,
    store::{Prefetched, StoreJson, schema},
};

/// How long the consent page may stay open before its form expires.
pub const PENDING_TTL: u64 = schema::CONSENT_TTL.as_secs();

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequest {
    /// The client.
    pub client_id: String,
    /// The redirect URI the response goes to: the request's, which matched a registered one
    /// exactly or, for a loopback IP redirect, but for its port (RFC 8252 §7.3).
    pub redirect_uri: String,
    /// Whether the request named `redirect_uri` (then the token request must repeat it).
    pub redirect_uri_explicit: bool,
    /// Granted-if-approved scope, narrowed to what `resources` accept.
    pub scope: Scope,
    /// The resource servers the tokens are for (RFC 8707): requested, or the default.
    /// Empty only in requests sealed before resources were recorded.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// OpenID Connect prompt.
    pub prompt: Option<String>,
    /// OpenID Connect `max_age`: the longest time since sign-in the user accepts, seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
}

impl AuthRequest {
    /// Whether `prompt` names `value`.
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|v| v == value))
    }

    /// Whether a session that signed in at `auth_time` must sign in again at `now`
    /// (`prompt=login`, or older than `max_age`).
    pub fn needs_fresh_login(&self, auth_time: u64, now: u64) -> bool {
        self.prompts("login")
            || self
                .max_age
                .is_some_and(|m| now.saturating_sub(auth_time) > m)
    }
}

/// The authorize query to return to after signing in again: the same request without
/// `prompt=login`, so the fresh sign-in is not asked for twice (`max_age` is met by then).
pub fn query_after_login(query: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "prompt" {
            let rest: Vec<&str> = v
                .split(' ')
                .filter(|p| *p != "login" && !p.is_empty())
                .collect();
            if !rest.is_empty() {
                out.append_pair("prompt", &rest.join(" "));
            }
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// Why a request failed, and where the answer goes.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Unknown client or unregistered redirect URI: show an error page (400), never redirect.
    Page(String),
    /// Anything else: redirect to the client with `error`, `state` and `iss`.
    Redirect(String),
    /// The store failed: the page shows a temporary error.
    Server(OAuthError),
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        AuthorizeError::Server(e)
    }
}

/// Builds the redirect to `redirect_uri` with `params` plus `iss` (RFC 9207), keeping any
/// query the registered URI already has.
pub fn redirect_url(state: &AppState, redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
                q.append_pair("iss", &state.config.issuer);
            }
            url.to_string()
        }
        Err(_) => redirect_uri.to_string(),
    }
}

fn error_redirect(
    state: &AppState,
    redirect_uri: &str,
    client_state: Option<&str>,
    err: &OAuthError,
) -> AuthorizeError {
    let mut params = vec![
        ("error", err.code.as_str()),
        ("error_description", err.description.as_ref()),
    ];
    if let Some(s) = client_state {
        params.push(("state", s));
    }
    AuthorizeError::Redirect(redirect_url(state, redirect_uri, &params))
}

/// Splits a query string into single-valued parameters; names the first repeated one.
pub fn parse_query(raw: &str) -> (HashMap<String, String>, Option<String>) {
    let mut map = HashMap::new();
    let mut repeated = None;
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if map.insert(k.to_string(), v.to_string()).is_some() && repeated.is_none() {
            repeated = Some(k.to_string());
        }
    }
    (map, repeated)
}

/// Like [`parse_query`], but `resource`, which RFC 8707 §2 lets a request repeat, comes
/// apart as a list (and is not in the map).
pub fn parse_query_with_resources(
    raw: &str,
) -> (HashMap<String, String>, Vec<String>, Option<String>) {
    let mut map = HashMap::new();
    let mut resources = Vec::new();
    let mut repeated = None;
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if k == "resource" {
            resources.push(v.into_owned());
        } else if map.insert(k.to_string(), v.to_string()).is_some() && repeated.is_none() {
            repeated = Some(k.to_string());
        }
    }
    (map, resources, repeated)
}

/// Validates an authorization request given as its raw query string.
#[tracing::instrument(skip_all)]
pub async fn validate(
    state: &AppState,
    query: &str,
    pre: &mut Prefetched,
) -> Result<(Client, AuthRequest), AuthorizeError> {
    if query.len() > 8192 {
        return Err(AuthorizeError::Page(
            "The authorization request is too long.".into(),
        ));
    }
    let (p, resources, repeated) = parse_query_with_resources(query);
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if matches!(repeated.as_deref(), Some("client_id" | "redirect_uri")) {
        return Err(AuthorizeError::Page(
            "The request repeats client_id or redirect_uri.".into(),
        ));
    }
    let Some(client_id) = get("client_id") else {
        return Err(AuthorizeError::Page("The request has no client_id.".into()));
    };
    let client = if crate::oauth::cimd::applies(&state.config, client_id) {
        // An unusable document is the error page: its redirect URIs are not trusted.
        crate::oauth::cimd::resolve(state, client_id)
            .await
            .map_err(|e| AuthorizeError::Page(e.0))?
    } else {
        let Some(client) = client::get_prefetched(state, client_id, pre).await? else {
            return Err(AuthorizeError::Page(
                "The application that sent you here is not registered.".into(),
            ));
        };
        client
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if client.accepts_redirect_uri(uri) => uri.to_string(),
        Some(_) => {
            return Err(AuthorizeError::Page(
                "The redirect URI is not registered for this application.".into(),
            ));
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return Err(AuthorizeError::Page(
                "The request must name its redirect_uri: this application registered several."
                    .into(),
            ));
        }
    };
    let client_state = get("state");
    let fail = |err: OAuthError| Err(error_redirect(state, &redirect_uri, client_state, &err));
    if let Some(name) = repeated {
        return fail(OAuthError::invalid_request(format!(
            "parameter {name} is repeated"
        )));
    }
    if client_state.is_some_and(|s| s.len() > 2048) {
        return fail(OAuthError::invalid_request(
            "state is longer than 2048 bytes",
        ));
    }
    match get("response_type") {
        Some("code") => {}
        None => return fail(OAuthError::invalid_request("response_type is required")),
        Some(_) => {
            return fail(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    // OAuth 2.0 Multiple Response Type Encoding Practices §2.1: a mode the server does not
    // support is an error, not a hint to ignore.
    if get("response_mode").is_some_and(|m| m != "query") {
        return fail(OAuthError::invalid_request(
            "response_mode must be query (the only mode supported)",
        ));
    }
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return fail(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client may not use the authorization code grant",
        ));
    }
    let allowed = &first_party::allowed_scope(&state.config, &client.client_id, &client.scope);
    let scope = match get("scope") {
        Some(raw) => match Scope::parse(raw) {
            Ok(s) => s,
            Err(e) => return fail(e),
        },
        None => first_party::without_manage(&state.config, &client.client_id, &client.scope),
    };
    if let Err(e) = first_party::check_requested(&state.config, &client.client_id, &scope) {
        return fail(e);
    }
    if scope.is_empty() {
        return fail(OAuthError::new(
            ErrorCode::InvalidScope,
            "no scope requested",
        ));
    }
    if !scope.is_subset(allowed) {
        return fail(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("this client may request only: {allowed}"),
        ));
    }
    let selection = match resource::check_values(&resources)
        .and_then(|()| resource::select(&state.config, &resources, &scope, allowed))
    {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let code_challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(c), Some("S256")) if pkce::is_valid_s256_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return fail(OAuthError::invalid_request(
                "code_challenge must be 43 base64url characters",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return fail(OAuthError::invalid_request(
                "code_challenge_method must be S256; plain is not supported",
            ));
        }
        (_, Some(m)) if m != "S256" => {
            return fail(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        (None, Some(_)) => {
            return fail(OAuthError::invalid_request(
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) => None,
        (Some(_), Some(_)) => {
            return fail(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
    };
    if client.is_public() && code_challenge.is_none() {
        return fail(OAuthError::invalid_request(
            "public clients must send a PKCE code_challenge with code_challenge_method=S256",
        ));
    }
    let nonce = get("nonce");
    if nonce.is_some_and(|n| n.len() > 512) {
        return fail(OAuthError::invalid_request(
            "nonce is longer than 512 bytes",
        ));
    }
    let prompt = get("prompt");
    if let Some(pr) = prompt {
        if !pr
            .split(' ')
            .all(|v| matches!(v, "none" | "login" | "consent" | "select_account"))
        {
            return fail(OAuthError::invalid_request(
                "prompt must be none, login, consent or select_account",
            ));
        }
        // OpenID Connect Core §3.1.2.1: none with any other value is an error.
        if pr.split(' ').any(|v| v == "none") && pr.split(' ').any(|v| v != "none") {
            return fail(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
    }
    let max_age = match get("max_age") {
        None => None,
        Some(raw) => match raw.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return fail(OAuthError::invalid_request(
                    "max_age must be a number of seconds",
                ));
            }
        },
    };
    let req = AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri_explicit: get("redirect_uri").is_some(),
        redirect_uri,
        scope: selection.scope,
        resources: selection.resources,
        state: client_state.map(str::to_string),
        code_challenge,
        nonce: nonce.map(str::to_string),
        prompt: prompt.map(str::to_string),
        max_age,
    };
    Ok((client, req))
}

/// The redirect that answers `req` with an error.
pub fn redirect_error(state: &AppState, req: &AuthRequest, err: &OAuthError) -> String {
    match error_redirect(state, &req.redirect_uri, req.state.as_deref(), err) {
        AuthorizeError::Redirect(url) => url,
        _ => req.redirect_uri.clone(),
    }
}

/// A request waiting for the user's decision, sealed into the consent form
/// ([`seal_pending`]) and opened from it ([`open_pending`]).
#[derive(Serialize, Deserialize)]
pub struct Pending {
    id: String,
    sub: String,
    req: AuthRequest,
}

impl Pending {
    /// The client it is for.
    pub fn client_id(&self) -> &str {
        &self.req.client_id
    }
}

/// The pending request sealed in a consent form's `txn`, when the seal holds and has not
/// expired (whether it was used already is [`decide`]'s to check).
pub fn open_pending(state: &AppState, sealed: &str) -> Option<Pending> {
    session::open::<Pending>(&state.session_key, "consent", state.now(), sealed)
}

/// Seals a validated request to the signed-in subject for the consent form.
pub fn seal_pending(state: &AppState, session: &Session, req: &AuthRequest) -> String {
    let pending = Pending {
        id: random_id(),
        sub: session.sub.clone(),
        req: req.clone(),
    };
    session::seal(
        &state.session_key,
        "consent",
        state.now() + PENDING_TTL,
        &pending,
    )
}

/// What to do with a validated request for a signed-in user.
#[derive(Debug)]
pub enum Next {
    /// Redirect now with the code (remembered consent).
    Redirect(String),
    /// `prompt=none` without consent: this error response, delivered per
    /// [`redirect_trust`](crate::oauth::redirect_trust).
    Error(String),
    /// Show the consent page.
    AskConsent,
}

/// Decides whether a signed-in user must see the consent page: not when they already granted
/// this client every requested scope, unless `prompt=consent`. With `prompt=none`, the answer
/// is a code or `consent_required`, never a page.
pub async fn after_login(
    state: &AppState,
    pre: &mut Prefetched,
    session: &Session,
    req: &AuthRequest,
) -> Result<Next, OAuthError> {
    let granted = consent::covers(
        state,
        pre,
        &session.sub,
        &req.client_id,
        &req.scope,
        &req.resources,
    )
    .await?;
    if granted && !req.prompts("consent") {
        return Ok(Next::Redirect(issue_code(state, session, req).await?));
    }
    if req.prompts("none") {
        let err = OAuthError::new(
            ErrorCode::ConsentRequired,
            "the user has not approved this application",
        );
        return Ok(Next::Error(redirect_error(state, req, &err)));
    }
    Ok(Next::AskConsent)
}

/// What became of a consent decision.
#[derive(Debug)]
pub enum Decision {
    /// Redirect the browser to this URL (code or `access_denied`).
    Redirect(String),
    /// The form was forged, altered, expired, replayed or for another user.
    Refused,
}

/// A stored authorization code's grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The request it answers.
    pub req: AuthRequest,
    /// The user.
    pub sub: String,
    /// When the user authenticated.
    pub auth_time: u64,
    /// Expiry (Unix seconds), checked against the clock on redemption.
    pub exp: u64,
}

/// Issues a code for an approved request and returns the redirect that carries it.
pub async fn issue_code(
    state: &AppState,
    session: &Session,
    req: &AuthRequest,
) -> Result<String, OAuthError> {
    let code = crate::oauth::code_hint::new_code(&state.session_key, &session.sub);
    let grant = CodeGrant {
        req: req.clone(),
        sub: session.sub.clone(),
        auth_time: session.auth_time,
        exp: state.now() + state.config.code_ttl,
    };
    state
        .store
        .put_json(
            &schema::code(&code),
            &grant,
            Some(Duration::from_secs(state.config.code_ttl)),
        )
        .await?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = req.state.as_deref() {
        params.push(("state", s));
    }
    Ok(redirect_url(state, &req.redirect_uri, &params))
}

/// Claims the single use of a consent form for the user `sub`: `true` for the first claim
/// of a form sealed to `sub`, `false` for a replayed form or one sealed to someone else.
///
/// It may run before the session is checked (the authorization endpoint runs it beside
/// the session's read, to save a round trip): a claimed form whose session turns out to
/// have ended is refused by [`decide`] all the same, and a claim without a decision only
/// spends a form that no one else can use (it is sealed to `sub`).
pub async fn claim(state: &AppState, pending: &Pending, sub: &str) -> Result<bool, OAuthError> {
    if pending.sub != sub {
        return Ok(false);
    }
    Ok(state
        .store
        .put_new(
            &schema::consent_used(&pending.id),
            b"1",
            Some(schema::CONSENT_TTL),
        )
        .await?)
}

/// Applies the user's decision on a sealed pending request, whose single use `claimed`
/// says whether [`claim`] won for this session's user.
#[tracing::instrument(skip_all)]
pub async fn decide(
    state: &AppState,
    pre: &mut Prefetched,
    session: &Session,
    pending: Option<Pending>,
    claimed: bool,
    allow: bool,
) -> Result<Decision, OAuthError> {
    let Some(pending) = pending else {
        return Ok(Decision::Refused);
    };
    // Single use: the first decision wins; a replayed form is refused.
    if pending.sub != session.sub || !claimed {
        return Ok(Decision::Refused);
    }
    // The client may have been deleted, or its redirect URI removed, meanwhile.
    let still_valid = client::get_prefetched(state, &pending.req.client_id, pre)
        .await?
        .is_some_and(|c| c.accepts_redirect_uri(&pending.req.redirect_uri));
    if !still_valid {
        return Ok(Decision::Refused);
    }
    if !allow {
        let err = OAuthError::new(ErrorCode::AccessDenied, "the user denied the request");
        return Ok(Decision::Redirect(redirect_error(
            state,
            &pending.req,
            &err,
        )));
    }
    tracing::info!(client_id = %pending.req.client_id, "consent granted");
    // Both writes at once: a code issued while the consent write fails is never handed out
    // (the answer is the error) and expires unused.
    let remember = consent::remember(
        state,
        pre,
        &session.sub,
        &pending.req.client_id,
        &pending.req.scope,
        &pending.req.resources,
    );
    let ((), url) = tokio::try_join!(remember, issue_code(state, session, &pending.req))?;
    Ok(Decision::Redirect(url))
}
