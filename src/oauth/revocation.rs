//! Revocation (RFC 7009), introspection (RFC 7662) and the access-token denylist.
//!
//! Access tokens are never stored. Revoking one writes its `jti` to a denylist entry whose
//! TTL is the token's remaining life, so the list never outgrows the tokens alive, and to
//! the [revocation feed](crate::oauth::revocation_feed), so offline verifiers refuse it too. Revoking a
//! refresh token revokes its whole family. Introspection of an access token is signature +
//! expiry + one denylist read; anything wrong answers exactly `{"active": false}`.

use std::time::Duration;

use crate::{
    oauth::error::{ErrorCode, OAuthError},
    oauth::{client::Client, refresh},
    state::AppState,
    store::schema,
    token::{AccessClaims, LEEWAY},
};

/// Denies the access token `jti` of client `client_id` until it expires, here and in the
/// revocation feed.
pub async fn deny_jti(
    state: &AppState,
    jti: &str,
    exp: u64,
    client_id: &str,
    now: u64,
) -> Result<(), OAuthError> {
    if exp + LEEWAY <= now {
        return Ok(());
    }
    let ttl = Duration::from_secs(exp + LEEWAY - now);
    state
        .store
        .put(&schema::denied(jti), b"1", Some(ttl))
        .await?;
    crate::oauth::revocation_feed::revoke_jti(state, jti, exp, client_id).await
}

/// Whether the access token `jti` was revoked.
pub async fn is_denied(state: &AppState, jti: &str) -> Result<bool, OAuthError> {
    Ok(state.store.get(&schema::denied(jti)).await?.is_some())
}

/// Verifies an access token for Hallpass's own API and checks the denylist and the
/// consent/client cut-offs (`token_cutoff`): `invalid_token` for anything wrong.
pub async fn check_access_token(state: &AppState, token: &str) -> Result<AccessClaims, OAuthError> {
    let claims = state
        .verify_access_token(token)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidToken, e.to_string()))?;
    check_not_revoked(state, claims).await
}

/// Like [`check_access_token`], for a token of any registered resource server (RFC 8707):
/// what introspection answers for.
pub async fn check_issued_access_token(
    state: &AppState,
    token: &str,
) -> Result<AccessClaims, OAuthError> {
    let claims = state
        .verify_issued_access_token(token)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidToken, e.to_string()))?;
    check_not_revoked(state, claims).await
}

async fn check_not_revoked(
    state: &AppState,
    claims: AccessClaims,
) -> Result<AccessClaims, OAuthError> {
    let (denied, ()) = tokio::try_join!(
        is_denied(state, &claims.jti),
        crate::oauth::token_cutoff::check(state, &claims)
    )?;
    if denied {
        return Err(OAuthError::invalid_token("the token has been revoked"));
    }
    Ok(claims)
}

fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// RFC 7009 §2.1: revokes `token` if it belongs to `client`. Unknown tokens, other clients'
/// tokens and garbage all answer the same success, so the endpoint reveals nothing. The hint
/// only orders the lookups; any value is accepted (§2.1: it may be ignored).
#[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
pub async fn revoke(
    state: &AppState,
    client: &Client,
    token: &str,
    _hint: Option<&str>,
) -> Result<(), OAuthError> {
    if token.len() > 8192 {
        return Ok(());
    }
    if looks_like_jwt(token) {
        if let Ok(claims) = state.verify_issued_access_token(token) {
            if claims.client_id == client.client_id {
                deny_jti(
                    state,
                    &claims.jti,
                    claims.exp,
                    &claims.client_id,
                    state.now(),
                )
                .await?;
                tracing::info!("access token revoked");
            }
        }
        return Ok(());
    }
    if let Some((family_id, fam)) = refresh::lookup(state, token).await? {
        if fam.client_id == client.client_id {
            refresh::revoke_family(state, &family_id).await?;
            tracing::info!("refresh token family revoked");
        }
    }
    Ok(())
}

/// The RFC 7662 §2.2 answer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<&'static str>,
    /// Granted scope.
    pub scope: Option<String>,
    /// The client it was issued to.
    pub client_id: Option<String>,
    /// The subject.
    pub sub: Option<String>,
    /// The user's name, for user tokens.
    pub username: Option<String>,
    /// Expiry.
    pub exp: Option<u64>,
    /// Issued at.
    pub iat: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audience.
    pub aud: Option<String>,
    /// Token id.
    pub jti: Option<String>,
}

/// RFC 7662: what `token` is, for an authenticated confidential client. Access tokens are
/// shown to the client they were issued to and to the other clients of its owner (a
/// developer's resource server); refresh tokens only to the client they were issued to.
/// Anyone else learns `{"active": false}`.
#[tracing::instrument(skip_all, fields(client_id = %client.client_id))]
pub async fn introspect(
    state: &AppState,
    client: &Client,
    token: &str,
) -> Result<Introspection, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::invalid_client(
            "introspection is for confidential clients",
        ));
    }
    if token.len() > 8192 {
        return Ok(Introspection::default());
    }
    if looks_like_jwt(token) {
        let Ok(claims) = check_issued_access_token(state, token).await else {
            return Ok(Introspection::default());
        };
        // RFC 7662 §4: only a caller entitled to the token learns about it: the client it was
        // issued to, or another client of the same owner (say, that developer's API).
        if claims.client_id != client.client_id {
            let issued_to = crate::oauth::client::get(state, &claims.client_id).await?;
            if issued_to.is_none_or(|c| c.owner != client.owner) {
                return Ok(Introspection::default());
            }
        }
        let username = crate::oauth::users::by_id(state, &claims.sub)
            .await?
            .map(|u| u.username);
        return Ok(Introspection {
            active: true,
            token_type: Some("access_token"),
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            username,
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: claims.aud.into_iter().next(),
            jti: Some(claims.jti),
        });
    }
    match refresh::lookup(state, token).await? {
        Some((_, fam)) if fam.client_id == client.client_id => {
            let exp = (fam.created_at + state.config.refresh_absolute_ttl)
                .min(fam.issued_at + state.config.refresh_idle_ttl);
            let username = crate::oauth::users::by_id(state, &fam.sub)
                .await?
                .map(|u| u.username);
            Ok(Introspection {
                active: true,
                token_type: Some("refresh_token"),
                scope: Some(fam.scope.to_string()),
                client_id: Some(fam.client_id),
                sub: Some(fam.sub),
                username,
                exp: Some(exp),
                iat: Some(fam.issued_at),
                iss: Some(state.config.issuer.clone()),
                aud: None,
                jti: None,
            })
        }
        _ => Ok(Introspection::default()),
    }
}
