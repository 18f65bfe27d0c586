//! The token endpoint's grants (RFC 6749 §4.1.3, §4.4, §6; RFC 7636 §4.6; RFC 9068).
//!
//! [`token`] authenticates the client, dispatches on `grant_type`, and issues a signed JWT
//! access token (plus an OpenID Connect ID token when `openid` was granted). An authorization
//! code is taken from the store atomically, so of any number of concurrent redemptions
//! exactly one succeeds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{
    crypto::{b64, random_id},
    error::{ErrorCode, OAuthError},
    oauth::{
        authorize::{CodeGrant, code_key},
        client::{self, Client, ClientCredentials},
        pkce, refresh, revocation,
        scope::Scope,
    },
    state::AppState,
    store::StoreJson,
    token::{ACCESS_TOKEN_TYP, AccessClaims, LEEWAY, sign},
};

/// The token request's parameters, as sent (all optional; checked here).
#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `code`.
    pub code: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `code_verifier`.
    pub code_verifier: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
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

/// Handles one token request.
#[tracing::instrument(skip_all, fields(client_id, grant_type = req.grant_type.as_deref().unwrap_or("")))]
pub async fn token(
    state: &AppState,
    creds: ClientCredentials,
    req: TokenRequest,
) -> Result<Issued, OAuthError> {
    let grant_type = req
        .grant_type
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant_type = grant_type.as_str();
    if !matches!(
        grant_type,
        "authorization_code" | "client_credentials" | "refresh_token"
    ) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be authorization_code, refresh_token or client_credentials",
        ));
    }
    let client = client::authenticate(state, creds).await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("this client is not registered for the {grant_type} grant"),
        ));
    }
    let issued = match grant_type {
        "authorization_code" => authorization_code(state, &client, req).await,
        "refresh_token" => refresh_token(state, &client, req).await,
        _ => client_credentials(state, &client, req),
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
    if code.len() > 256 {
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid",
        ));
    }
    let key = code_key(code);
    let Some(grant) = state.store.take_json::<CodeGrant>(&key).await? else {
        revoke_if_replayed(state, &key).await?;
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid, expired or already used",
        ));
    };
    // Name what this code is about to buy and record it before anything else, so that a
    // replay arriving even a moment later revokes it (RFC 6749 §4.1.2).
    let jti = random_id();
    let exp = state.now() + state.config.access_token_ttl;
    let wants_refresh = grant.req.scope.split(' ').any(|s| s == "offline_access")
        && client.allows_grant("refresh_token")
        && grant.req.client_id == client.client_id;
    let redeemed = Redeemed {
        jti: jti.clone(),
        exp,
        family: wants_refresh.then(random_id),
    };
    let ttl = Duration::from_secs(state.config.access_token_ttl + LEEWAY);
    state
        .store
        .put_json(&format!("used:{key}"), &redeemed, Some(ttl))
        .await?;
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
        (Some(_), None) => return Err(OAuthError::invalid_request("code_verifier is required")),
        // RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    let scope = Scope::parse(&grant.req.scope)?;
    let mut issued = issue(
        state,
        client,
        &grant.sub,
        &scope,
        Some(grant.auth_time),
        grant.req.nonce.as_deref(),
        &jti,
    )?;
    if let Some(family) = &redeemed.family {
        let rt = refresh::start(
            state,
            client,
            &grant.sub,
            &scope,
            grant.auth_time,
            (&jti, exp),
            family,
        )
        .await?;
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
}

/// RFC 6749 §4.1.2: a code used twice is evidence of theft, so the tokens issued for its
/// first use are revoked.
async fn revoke_if_replayed(state: &AppState, key: &str) -> Result<(), OAuthError> {
    if let Some(r) = state
        .store
        .take_json::<Redeemed>(&format!("used:{key}"))
        .await?
    {
        tracing::warn!("authorization code replayed; revoking the tokens it was exchanged for");
        revocation::deny_jti(state, &r.jti, r.exp, state.now()).await?;
        if let Some(family) = r.family {
            refresh::revoke_family(state, &family).await?;
        }
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
    let rotation = refresh::redeem(state, client, token, scope, (&jti, exp)).await?;
    let fam = &rotation.family;
    let mut issued = issue(
        state,
        client,
        &fam.sub,
        &rotation.scope,
        Some(fam.auth_time),
        None,
        &jti,
    )?;
    // ID tokens come only from the code exchange, where the nonce is.
    issued.id_token = None;
    issued.refresh_token = Some(rotation.refresh_token);
    Ok(issued)
}

fn client_credentials(
    state: &AppState,
    client: &Client,
    req: TokenRequest,
) -> Result<Issued, OAuthError> {
    let allowed = client.allowed_scope();
    // An empty `scope` is the same as none: the client's registered scopes.
    let scope = match req.scope.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(raw) => Scope::parse(raw)?,
        None => allowed.clone(),
    };
    if !scope.is_subset(&allowed) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("this client may request only: {allowed}"),
        ));
    }
    issue(
        state,
        client,
        &client.client_id,
        &scope,
        None,
        None,
        &random_id(),
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

fn issue(
    state: &AppState,
    client: &Client,
    sub: &str,
    scope: &Scope,
    auth_time: Option<u64>,
    nonce: Option<&str>,
    jti: &str,
) -> Result<Issued, OAuthError> {
    let now = state.now();
    let ttl = state.config.access_token_ttl;
    let key = state.signing_key().map_err(|e| OAuthError::internal(&e))?;
    let key = key.as_ref();
    let claims = AccessClaims {
        iss: state.config.issuer.clone(),
        sub: sub.to_string(),
        aud: vec![state.config.audience.clone()],
        client_id: client.client_id.clone(),
        scope: scope.to_string(),
        iat: now,
        exp: now + ttl,
        jti: jti.to_string(),
        auth_time,
    };
    let access_token =
        sign(key, ACCESS_TOKEN_TYP, &claims).map_err(|e| OAuthError::internal(&e))?;
    let id_token = match auth_time {
        Some(auth_time) if scope.contains("openid") => {
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
