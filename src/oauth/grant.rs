//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; RFC 7636 §4.6; RFC 9068).
//!
//! [`token`] dispatches on `grant_type` for a client [`client::authenticated`] vouched for, and issues a signed JWT
//! access token (plus an OpenID Connect ID token when `openid` was granted). An authorization
//! code is consumed by one atomic swap ([`Store::swap_if_prefixed`]) that leaves what it
//! bought in its place, so of any number of concurrent redemptions exactly one consumes it,
//! and a later or concurrent one finds that record and revokes what it names (a refresh
//! token is handed out only after a second look at the record, so a replay that came before
//! its family existed still wins).
//! The swap and the read of the user's consent cut-off leave together, in one store round
//! trip, when the code names its user ([`code_hint`]).
//!
//! [`Store::swap_if_prefixed`]: crate::store::Store::swap_if_prefixed

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    crypto::{b64, random_id},
    oauth::error::{ErrorCode, OAuthError},
    oauth::{
        authorize::CodeGrant,
        client::{self, Client},
        code_hint, first_party,
        grant_type::GrantType,
        pkce, refresh, resource, revocation,
        scope::Scope,
        token_cutoff,
    },
    state::AppState,
    store::{StoreJson, schema},
    token::{ACCESS_TOKEN_TYP, AccessClaims, LEEWAY, sign},
};

/// The token request's parameters, as sent (all optional; checked here). `Debug` shows
/// which were sent, never the code, verifier or refresh token.
#[derive(Default, Clone)]
pub struct TokenRequest {
    /// Parsed here into a [`GrantType`]; anything else is `unsupported_grant_type`.
    pub grant_type: Option<String>,
    /// The authorization code to redeem.
    pub code: Option<String>,
    /// Must repeat the authorization request's, when that request named one.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier of the code's challenge (RFC 7636 §4.5).
    pub code_verifier: Option<String>,
    /// A narrower scope (client credentials, refresh); empty means "as granted".
    pub scope: Option<String>,
    /// The refresh token to rotate.
    pub refresh_token: Option<String>,
    /// The resource servers the token is for (RFC 8707; repeatable): at the code exchange
    /// and on refresh a subset of those granted; empty means all of them, or the default.
    pub resources: Vec<String>,
    /// The browser origin of a cross-origin request, checked against the client before the
    /// grant runs ([`crate::oauth::cors`]).
    pub origin: Option<crate::oauth::cors::RequestOrigin>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sent = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("code", &sent(&self.code))
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &sent(&self.code_verifier))
            .field("scope", &self.scope)
            .field("refresh_token", &sent(&self.refresh_token))
            .field("resources", &self.resources)
            .field("origin", &self.origin.as_ref().map(|o| o.as_str()))
            .finish()
    }
}

/// A successful token response (RFC 6749 §5.1). `Debug` never shows the tokens.
#[derive(Clone, Serialize)]
pub struct Issued {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
    /// The OpenID Connect ID token, when `openid` was granted.
    pub id_token: Option<String>,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The grant a token request asks for: checked before the client authenticates, so a
/// request without one costs no store read.
pub fn grant_type(req: &TokenRequest) -> Result<GrantType, OAuthError> {
    let name = req
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    GrantType::parse(name).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("grant_type must be {}", GrantType::names()),
        )
    })
}

/// Handles one token request of an authenticated client ([`client::authenticated`]).
#[tracing::instrument(skip_all, fields(client_id = %client.client_id, grant_type = %grant_type))]
pub async fn token(
    state: &AppState,
    client: Arc<Client>,
    grant_type: GrantType,
    req: TokenRequest,
) -> Result<Issued, OAuthError> {
    // Before anything is consumed: a refused origin leaves the code and the refresh token
    // as they were.
    crate::oauth::cors::check(req.origin.as_ref(), &client)?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    let issued = match grant_type {
        GrantType::AuthorizationCode => authorization_code(state, &client, req).await,
        GrantType::RefreshToken => refresh_token(state, &client, req).await,
        GrantType::ClientCredentials => client_credentials(state, &client, &req),
    }?;
    state.metrics.token_issued(grant_type);
    Ok(issued)
}

async fn authorization_code(
    state: &AppState,
    client: &Client,
    req: TokenRequest,
) -> Result<Issued, OAuthError> {
    let code = req
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    resource::check_values(&req.resources)?;
    if code.len() > MAX_CODE_LEN {
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid",
        ));
    }
    let key = schema::code(code);
    // Name what this code is about to buy and record it in the same step that consumes the
    // code, so that any redemption after this one, even a concurrent one, finds the record
    // and revokes it (RFC 6749 §4.1.2). The family is named whenever the client may refresh;
    // one the code's scope does not start stays a name that nothing holds.
    let jti = random_id();
    let exp = state.now() + state.config.access_token_ttl;
    let redeemed = Redeemed {
        jti: jti.clone(),
        exp,
        family: client.allows_grant(GrantType::RefreshToken).then(random_id),
        client_id: client.client_id.clone(),
    };
    let mut used = USED.to_vec();
    serde_json::to_writer(&mut used, &redeemed).map_err(|e| corrupt("used-code", &e))?;
    let ttl = Duration::from_secs(state.config.access_token_ttl + LEEWAY);
    // The code is consumed if it still holds a grant (exactly one of any number of
    // concurrent redemptions finds it so), and the consent cut-off of the user the code
    // names (`code_hint`) is read in the same round trip; both have answered before anything
    // is issued.
    let hinted = code_hint::user_hint(&state.session_key, code);
    let (found, hinted_cutoff) = tokio::join!(
        state.store.swap_if_prefixed(&key, GRANT, &used, ttl),
        async {
            match &hinted {
                Some(sub) => Some(token_cutoff::code_cutoff(state, sub, &client.client_id).await),
                None => None,
            }
        }
    );
    let Some(current) = found? else {
        revoke_if_replayed(state, code).await?;
        return Err(code_used());
    };
    if !current.starts_with(GRANT) {
        // Redeemed before: this is a replay.
        revoke_replayed(state, code, &key).await?;
        return Err(code_used());
    }
    let grant: CodeGrant = serde_json::from_slice(&current).map_err(|e| corrupt("code", &e))?;
    if grant.exp <= state.now() {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if grant.req.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    let issued_at = grant.exp.saturating_sub(state.config.code_ttl);
    let cutoff = match hinted_cutoff {
        Some(read) if hinted.as_deref() == Some(grant.sub.as_str()) => read?,
        _ => token_cutoff::code_cutoff(state, &grant.sub, &grant.req.client_id).await?,
    };
    token_cutoff::check_code_against(cutoff, issued_at)?;
    match req.redirect_uri.as_deref() {
        Some(uri) if uri == grant.req.redirect_uri => {}
        Some(_) => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri differs from the one in the authorization request",
            ));
        }
        None if grant.req.redirect_uri_explicit => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: the authorization request included it",
            ));
        }
        None => {}
    }
    match (&grant.req.code_challenge, req.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::verify_s256(verifier, challenge) {
                return Err(OAuthError::invalid_grant(
                    "the PKCE code_verifier does not match the code_challenge",
                ));
            }
        }
        // RFC 7636 §4.6: without the verifier the grant cannot be verified: invalid_grant.
        (Some(_), None) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier is required: the authorization request had a code_challenge",
            ));
        }
        // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    // A code issued while the client was first-party buys no management after it stopped being.
    let scope = &first_party::without_manage(&state.config, &client.client_id, &grant.req.scope);
    // RFC 8707 §2.2: this token may be for fewer of the granted resources; the refresh
    // token keeps all of them.
    let target = resource::narrow(&state.config, &grant.req.resources, &req.resources, scope)?;
    let granted_resources = if grant.req.resources.is_empty() {
        &target.resources
    } else {
        &grant.req.resources
    };
    let mut issued = issue(
        state,
        client,
        &grant.sub,
        &target,
        Some(grant.auth_time),
        &jti,
        Some(IdToken {
            nonce: grant.req.nonce.as_deref(),
        }),
    )?;
    let wants_refresh = grant.req.scope.contains(client::OFFLINE_ACCESS);
    if let Some(family) = redeemed.family.as_ref().filter(|_| wants_refresh) {
        let rt = refresh::start(
            state,
            client,
            &grant.sub,
            (scope, granted_resources),
            grant.auth_time,
            (&jti, exp),
            family,
        )
        .await?;
        // A replay that took the record before this family existed found nothing to revoke:
        // look again now that it does (each step is atomic on its key, so either the replay
        // comes after this read and revokes the family, or this read sees it and revokes).
        if state.store.get(&key).await?.as_deref() != Some(used.as_slice()) {
            refresh::revoke_family(state, family).await?;
            return Err(code_used());
        }
        issued.refresh_token = Some(rt);
    }
    Ok(issued)
}

/// What a redeemed code produced.
#[derive(Serialize, Deserialize)]
struct Redeemed {
    jti: String,
    exp: u64,
    family: Option<String>,
    /// The client that redeemed the code (the token's `client_id`: tokens are issued only to
    /// the client the code was issued to); empty in records written before it was kept.
    #[serde(default)]
    client_id: String,
}

/// The longest authorization code looked up (ours are 43 characters, then a `.` and at most
/// 43 of hint: `code_hint`).
const MAX_CODE_LEN: usize = 256;

/// What a code's key holds once the code is redeemed: these bytes, then the [`Redeemed`]
/// JSON. A code record is JSON and starts with [`GRANT`], so the two cannot be confused.
const USED: &[u8] = b"used:";

/// How a code's record starts while it holds a grant (a [`CodeGrant`]'s JSON).
const GRANT: &[u8] = b"{";

fn code_used() -> OAuthError {
    OAuthError::invalid_grant("the authorization code is invalid, expired or already used")
}

/// RFC 6749 §4.1.2: a code used twice is evidence of theft, so the tokens issued for its
/// first use are revoked. The record is taken, so of concurrent replays one revokes. Once a
/// code's grant has been swapped out its key never holds a grant again, so what is taken is
/// a `used:` record, a release's take marker or nothing; without a record here, one that an
/// earlier release wrote under its own key is looked for.
async fn revoke_replayed(state: &AppState, code: &str, key: &str) -> Result<(), OAuthError> {
    let taken = state.store.take(key).await?;
    let Some(json) = taken.as_deref().and_then(|v| v.strip_prefix(USED)) else {
        return revoke_if_replayed(state, code).await;
    };
    let r: Redeemed = serde_json::from_slice(json).map_err(|e| corrupt("used-code", &e))?;
    revoke_redeemed(state, r).await
}

fn corrupt(what: &str, e: &serde_json::Error) -> crate::store::StoreError {
    crate::store::StoreError::Corrupt(format!("{what} record: {e}"))
}

/// [`revoke_replayed`] for a code redeemed by a release that kept the record under its own
/// key (`used:code:…`), for as long as such records live (an access token's lifetime).
async fn revoke_if_replayed(state: &AppState, code: &str) -> Result<(), OAuthError> {
    if let Some(r) = state
        .store
        .take_json::<Redeemed>(&schema::used_code(code))
        .await?
    {
        revoke_redeemed(state, r).await?;
    }
    Ok(())
}

async fn revoke_redeemed(state: &AppState, r: Redeemed) -> Result<(), OAuthError> {
    tracing::warn!("authorization code replayed; revoking the tokens it was exchanged for");
    revocation::deny_jti(state, &r.jti, r.exp, &r.client_id, state.now()).await?;
    if let Some(family) = r.family {
        refresh::revoke_family(state, &family).await?;
    }
    Ok(())
}

async fn refresh_token(
    state: &AppState,
    client: &Client,
    req: TokenRequest,
) -> Result<Issued, OAuthError> {
    let token = req
        .refresh_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let jti = random_id();
    let exp = state.now() + state.config.access_token_ttl;
    let scope = req.scope.as_deref().filter(|s| !s.trim().is_empty());
    resource::check_values(&req.resources)?;
    let rotation =
        refresh::redeem(state, client, token, (scope, &req.resources), (&jti, exp)).await?;
    let fam = &rotation.family;
    // No ID token: those come only from the code exchange, where the nonce is.
    let mut issued = issue(
        state,
        client,
        &fam.sub,
        &rotation.target,
        Some(fam.auth_time),
        &jti,
        None,
    )?;
    issued.refresh_token = Some(rotation.refresh_token);
    Ok(issued)
}

fn client_credentials(
    state: &AppState,
    client: &Client,
    req: &TokenRequest,
) -> Result<Issued, OAuthError> {
    let allowed = &first_party::allowed_scope(&state.config, &client.client_id, &client.scope);
    // An empty `scope` is the same as none: the client's registered scopes.
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(raw) => Scope::parse(raw)?,
        None => first_party::without_manage(&state.config, &client.client_id, &client.scope),
    };
    first_party::check_requested(&state.config, &client.client_id, &scope)?;
    if !scope.is_subset(allowed) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("this client may request only: {allowed}"),
        ));
    }
    resource::check_values(&req.resources)?;
    let target = resource::select(&state.config, &req.resources, &scope, allowed)?;
    issue(
        state,
        client,
        &client.client_id,
        &target,
        None,
        &random_id(),
        None,
    )
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
}

/// Asks [`issue`] for an OpenID Connect ID token too (when `openid` is in the scope).
struct IdToken<'a> {
    nonce: Option<&'a str>,
}

/// Signs the access token for `target` (its `aud` and scope), and the ID token only when
/// `id_token` asks for one.
fn issue(
    state: &AppState,
    client: &Client,
    sub: &str,
    target: &resource::Selection,
    auth_time: Option<u64>,
    jti: &str,
    id_token: Option<IdToken<'_>>,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let scope = &target.scope;
    let ttl = state.config.access_token_ttl;
    let key = state.signing_key().map_err(|e| OAuthError::internal(&e))?;
    let key = key.as_ref();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: sub.to_string(),
        aud: target.resources.clone(),
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        iat: now,
        exp: now + ttl,
        jti: jti.to_string(),
        auth_time,
    };
    let access_token =
        sign(key, ACCESS_TOKEN_TYP, &claims).map_err(|e| OAuthError::internal(&e))?;
    let id_token = match (auth_time, id_token) {
        (Some(auth_time), Some(IdToken { nonce })) if scope.contains("openid") => {
            // OpenID Connect Core §3.1.3.6: the left half of the hash of the access token,
            // with the hash of the signing algorithm (SHA-512 for Ed25519).
            let digest = match key.meta.alg {
                crate::config::SigningAlg::EdDSA => {
                    ring::digest::digest(&ring::digest::SHA512, access_token.as_bytes())
                }
                _ => ring::digest::digest(&ring::digest::SHA256, access_token.as_bytes()),
            };
            let half = &digest.as_ref()[..digest.as_ref().len() / 2];
            let id = IdClaims {
                iss: &state.config.issuer,
                sub,
                aud: &client.client_id,
                iat: now,
                exp: now + ttl,
                auth_time,
                nonce,
                at_hash: b64(half),
            };
            Some(sign(key, "JWT", &id).map_err(|e| OAuthError::internal(&e))?)
        }
        _ => None,
    };
    Ok(Issued {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope: scope.to_string(),
        id_token,
        refresh_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::client::ClientCredentials;

    #[test]
    fn debug_output_never_shows_tokens_codes_or_secrets() {
        let issued = Issued {
            access_token: "at-secret".into(),
            token_type: "Bearer",
            expires_in: 60,
            scope: "openid".into(),
            id_token: Some("id-secret".into()),
            refresh_token: Some("rt-secret".into()),
        };
        let req = TokenRequest {
            grant_type: Some("authorization_code".into()),
            code: Some("code-secret".into()),
            code_verifier: Some("verifier-secret".into()),
            refresh_token: Some("rt-secret".into()),
            ..TokenRequest::default()
        };
        let creds = ClientCredentials {
            basic: Some(("app".into(), "basic-secret".into())),
            form_secret: Some("form-secret".into()),
            ..ClientCredentials::default()
        };
        let shown = format!("{issued:?} {req:?} {creds:?}");
        assert!(!shown.contains("secret\""), "{shown}");
        assert!(!shown.contains("-secret"), "{shown}");
        assert!(
            shown.contains("authorization_code") && shown.contains("app"),
            "{shown}"
        );
    }
}
