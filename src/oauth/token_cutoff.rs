//! "Not before" times for access tokens: withdrawn consent, deleted clients, sign-out
//! everywhere.
//!
//! Access tokens are never stored, so a token issued before the user withdrew consent
//! (`DELETE /api/consents/{id}`), before its client was deleted (`DELETE /api/clients/{id}`)
//! or before the user signed out everywhere (`POST /api/users/me/sessions/revoke`) would keep
//! working until it expires. Instead the store records a cut-off time:
//! - `tokens_nb:<user id>:<client_id>` when the user withdraws consent from the client;
//! - `tokens_nb:<client_id>` when the client is deleted;
//! - `tokens_nb_user:<user id>` when the user signs out everywhere.
//!
//! Each is also published as a rule of the
//! [revocation feed](crate::oauth::revocation_feed), so resource servers that verify tokens
//! offline refuse the same tokens within their poll interval.
//!
//! [`check`] refuses a token whose `iat` is at or before any of these times (one-second clock steps:
//! a token issued in the same second as the withdrawal is refused too). Each record lives for
//! the access-token lifetime plus the leeway: every older token has expired by then anyway.
//! Authorization codes approved before a withdrawal are refused too ([`check_code_against`]).
//! [`check`] is called once, from `revocation::check_access_token`, which every Hallpass endpoint
//! that accepts tokens goes through (`/userinfo`, the management API's Bearer path,
//! introspection).
//!
//! Signing out of one session sets no cut-off: tokens are not sessions. Signing out
//! everywhere does: it is what a user does who fears someone else holds their account.

use std::time::Duration;

use crate::{
    oauth::error::OAuthError,
    oauth::revocation_feed::{self, Rule},
    state::AppState,
    store::{Store, schema},
    token::{AccessClaims, LEEWAY},
};

fn ttl(state: &AppState) -> Option<Duration> {
    Some(Duration::from_secs(state.config.access_token_ttl + LEEWAY))
}

async fn record(state: &AppState, key: &str, rule: Rule<'_>) -> Result<(), OAuthError> {
    let now = state.now();
    state
        .store
        .put(key, now.to_string().as_bytes(), ttl(state))
        .await?;
    revocation_feed::add_rule(state, rule, now).await
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
    record(
        state,
        &schema::tokens_not_before_pair(sub, client_id),
        Rule::UserAtClient { sub, client_id },
    )
    .await
}

/// Refuses, from now on, every access token issued so far to `client_id`.
pub async fn client_deleted(state: &AppState, client_id: &str) -> Result<(), OAuthError> {
    record(
        state,
        &schema::tokens_not_before_client(client_id),
        Rule::Client(client_id),
    )
    .await
}

/// Refuses, from now on, every access token issued so far to user `sub`, at every client
/// (sign out everywhere).
pub async fn signed_out_everywhere(state: &AppState, sub: &str) -> Result<(), OAuthError> {
    record(state, &schema::tokens_not_before_user(sub), Rule::User(sub)).await
}

/// The consent cut-off of `sub` at `client_id` that a code is checked against
/// ([`check_code_against`]): read ahead of the code's record when the code names its user.
pub async fn code_cutoff(
    state: &AppState,
    sub: &str,
    client_id: &str,
) -> Result<Option<u64>, OAuthError> {
    read(
        state.store.as_ref(),
        &schema::tokens_not_before_pair(sub, client_id),
    )
    .await
}

/// `invalid_grant` when an authorization code issued at `issued_at` predates the withdrawal of
/// the consent it was approved under (`cutoff`, read by [`code_cutoff`]).
pub fn check_code_against(cutoff: Option<u64>, issued_at: u64) -> Result<(), OAuthError> {
    if cutoff.is_some_and(|nb| issued_at <= nb) {
        return Err(OAuthError::invalid_grant(
            "the user withdrew consent after this authorization code was issued",
        ));
    }
    Ok(())
}

/// `invalid_token` when the token was issued at or before a cut-off of its user and client,
/// of its client or of its user. Three store reads, made concurrently.
pub async fn check(state: &AppState, claims: &AccessClaims) -> Result<(), OAuthError> {
    let pair = schema::tokens_not_before_pair(&claims.sub, &claims.client_id);
    let client = schema::tokens_not_before_client(&claims.client_id);
    let user = schema::tokens_not_before_user(&claims.sub);
    let (pair, client, user) = tokio::try_join!(
        read(state.store.as_ref(), &pair),
        read(state.store.as_ref(), &client),
        read(state.store.as_ref(), &user)
    )?;
    if pair.is_some_and(|nb| claims.iat <= nb) {
        return Err(OAuthError::invalid_token(
            "the user withdrew consent from this client after the token was issued",
        ));
    }
    if client.is_some_and(|nb| claims.iat <= nb) {
        return Err(OAuthError::invalid_token("the token's client was deleted"));
    }
    if user.is_some_and(|nb| claims.iat <= nb) {
        return Err(OAuthError::invalid_token(
            "the user signed out everywhere after the token was issued",
        ));
    }
    Ok(())
}
