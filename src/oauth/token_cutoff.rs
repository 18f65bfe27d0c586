//! "Not before" times for access tokens: withdrawn consent and deleted clients.
//!
//! Access tokens are never stored, so a token issued before the user withdrew consent
//! (`DELETE /api/consents/{id}`) or before its client was deleted (`DELETE /api/clients/{id}`)
//! would keep working until it expires. Instead the store records a cut-off time:
//! - `tokens_nb:<user id>:<client_id>` when the user withdraws consent from the client;
//! - `tokens_nb:<client_id>` when the client is deleted.
//!
//! [`check`] refuses a token whose `iat` is at or before either time (one-second clock steps:
//! a token issued in the same second as the withdrawal is refused too). Each record lives for
//! the access-token lifetime plus the leeway: every older token has expired by then anyway.
//! Authorization codes approved before a withdrawal are refused too ([`check_code`]).
//! [`check`] is called once, from `revocation::check_access_token`, which every Hallpass endpoint
//! that accepts tokens goes through (`/userinfo`, the management API's Bearer path,
//! introspection). Resource servers that verify tokens offline do not see these records.
//!
//! Signing out (even everywhere) sets no cut-off here: tokens are not sessions.

use std::time::Duration;

use crate::{
    oauth::error::OAuthError,
    state::AppState,
    store::{Store, schema},
    token::{AccessClaims, LEEWAY},
};

fn ttl(state: &AppState) -> Option<Duration> {
    Some(Duration::from_secs(state.config.access_token_ttl + LEEWAY))
}

async fn record(state: &AppState, key: &str) -> Result<(), OAuthError> {
    state
        .store
        .put(key, state.now().to_string().as_bytes(), ttl(state))
        .await?;
    Ok(())
}

async fn read(store: &dyn Store, key: &str) -> Result<Option<u64>, OAuthError> {
    Ok(store
        .get(key)
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
}

/// Refuses, from now on, every access token issued so far to `client_id` for user `sub`.
pub async fn consent_withdrawn(
    state: &AppState,
    sub: &str,
    client_id: &str,
) -> Result<(), OAuthError> {
    record(state, &schema::tokens_not_before_pair(sub, client_id)).await
}

/// Refuses, from now on, every access token issued so far to `client_id`.
pub async fn client_deleted(state: &AppState, client_id: &str) -> Result<(), OAuthError> {
    record(state, &schema::tokens_not_before_client(client_id)).await
}

/// `invalid_grant` when an authorization code issued at `issued_at` for user `sub` at
/// `client_id` predates a withdrawal of the user's consent (one store read): the code was
/// approved under the consent now withdrawn.
pub async fn check_code(
    state: &AppState,
    sub: &str,
    client_id: &str,
    issued_at: u64,
) -> Result<(), OAuthError> {
    let key = schema::tokens_not_before_pair(sub, client_id);
    if read(state.store.as_ref(), &key)
        .await?
        .is_some_and(|nb| issued_at <= nb)
    {
        return Err(OAuthError::invalid_grant(
            "the user withdrew consent after this authorization code was issued",
        ));
    }
    Ok(())
}

/// `invalid_token` when the token was issued at or before a cut-off of its user and client,
/// or of its client. Two store reads, made concurrently.
pub async fn check(state: &AppState, claims: &AccessClaims) -> Result<(), OAuthError> {
    let pair = schema::tokens_not_before_pair(&claims.sub, &claims.client_id);
    let client = schema::tokens_not_before_client(&claims.client_id);
    let (pair, client) = tokio::try_join!(
        read(state.store.as_ref(), &pair),
        read(state.store.as_ref(), &client)
    )?;
    if pair.is_some_and(|nb| claims.iat <= nb) {
        return Err(OAuthError::invalid_token(
            "the user withdrew consent from this client after the token was issued",
        ));
    }
    if client.is_some_and(|nb| claims.iat <= nb) {
        return Err(OAuthError::invalid_token("the token's client was deleted"));
    }
    Ok(())
}
