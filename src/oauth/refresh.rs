//! Refresh tokens (RFC 6749 §6) with rotation, reuse detection and a grace window
//! (RFC 9700 §4.14.2).
//!
//! A refresh token is `<family_id>.<secret>`. One family — every token descended from one
//! sign-in — is one store key holding only hashes, so every operation on it is a single
//! compare-and-swap on one key: atomic, and safe on a Redis Cluster.
//!
//! Each use rotates the token. The successor's secret is an HMAC, under the deployment's
//! session key, of the presented secret and the new generation: nothing but hashes is stored,
//! yet a token presented again within the grace window (a retry, a second tab) is answered
//! with the **same** successor it got the first time. Presented after the window, a rotated
//! token means someone kept a copy: the whole family is revoked, and so are the access tokens
//! it issued recently.

use std::time::Duration;

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::{
    crypto::{b64, ct_eq, random_token, sha256_b64},
    oauth::error::{ErrorCode, OAuthError},
    oauth::{client::Client, first_party, resource, revocation, scope::Scope},
    state::AppState,
    store::{StoreJson, schema},
};

/// Most recent access tokens remembered per family, to revoke them with it.
const MAX_REMEMBERED_ACCESS: usize = 32;
/// Hashes of older rotated tokens remembered per family, to recognise their reuse.
const MAX_RETIRED: usize = 32;
/// Attempts at a compare-and-swap before giving up (only under extreme contention).
const MAX_ATTEMPTS: usize = 16;

/// One refresh-token family.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Family {
    /// The client it was issued to.
    pub client_id: String,
    /// The user.
    pub sub: String,
    /// The scope granted at sign-in; refreshes may narrow it, never widen it.
    pub scope: Scope,
    /// The resource servers granted at sign-in (RFC 8707); refreshes may narrow them, never
    /// widen them. Empty in families started before resources were recorded (they get the
    /// default).
    #[serde(default)]
    pub resources: Vec<String>,
    /// When the user authenticated.
    pub auth_time: u64,
    /// When the family began (absolute lifetime).
    pub created_at: u64,
    /// Rotation count.
    pub generation: u64,
    /// SHA-256 of the current token's secret.
    pub current: String,
    /// When the current token was issued (idle lifetime).
    pub issued_at: u64,
    /// SHA-256 of the token the current one replaced.
    pub previous: Option<String>,
    /// When `previous` was rotated.
    pub rotated_at: u64,
    /// SHA-256 of older rotated tokens (most recent last), so their reuse is recognised.
    #[serde(default)]
    pub retired: Vec<String>,
    /// Recent access tokens issued from this family: (`jti`, `exp`).
    #[serde(default)]
    pub access: Vec<(String, u64)>,
}

fn successor(state: &AppState, family_id: &str, generation: u64, secret: &str) -> String {
    let msg = format!("hallpass refresh successor\0{family_id}\0{generation}\0{secret}");
    b64(hmac::sign(&state.session_key, msg.as_bytes()).as_ref())
}

/// Splits a presented token into family id and secret.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (family, secret) = token.split_once('.')?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (ok(family) && ok(secret)).then_some((family, secret))
}

fn store_ttl(state: &AppState, fam: &Family, now: u64) -> Duration {
    let absolute_end = fam.created_at + state.config.refresh_absolute_ttl;
    let idle_end = now + state.config.refresh_idle_ttl;
    Duration::from_secs(absolute_end.min(idle_end).saturating_sub(now).max(1))
}

fn remember_access(fam: &mut Family, jti: &str, exp: u64, now: u64) {
    fam.access.retain(|(_, e)| *e > now);
    fam.access.push((jti.to_string(), exp));
    if fam.access.len() > MAX_REMEMBERED_ACCESS {
        let drop = fam.access.len() - MAX_REMEMBERED_ACCESS;
        fam.access.drain(..drop);
    }
}

/// Starts family `family_id` for a fresh sign-in with the granted scope and resources;
/// returns the first refresh token.
pub async fn start(
    state: &AppState,
    client: &Client,
    sub: &str,
    (scope, resources): (&Scope, &[String]),
    auth_time: u64,
    first_access: (&str, u64),
    family_id: &str,
) -> Result<String, OAuthError> {
    let now = state.now();
    let secret = random_token();
    let mut fam = Family {
        client_id: client.client_id.clone(),
        sub: sub.to_string(),
        scope: scope.clone(),
        resources: resources.to_vec(),
        auth_time,
        created_at: now,
        generation: 0,
        current: sha256_b64(secret.as_bytes()),
        issued_at: now,
        previous: None,
        retired: Vec::new(),
        rotated_at: 0,
        access: Vec::new(),
    };
    remember_access(&mut fam, first_access.0, first_access.1, now);
    let ttl = store_ttl(state, &fam, now);
    state
        .store
        .put_json(&schema::refresh_family(family_id), &fam, Some(ttl))
        .await?;
    state
        .store
        .set_add(&schema::refresh_families(sub, &client.client_id), family_id)
        .await?;
    Ok(format!("{family_id}.{secret}"))
}

/// What a refresh decided, before the access token is signed.
pub struct Rotation {
    /// The refresh token to return.
    pub refresh_token: String,
    /// The family after the rotation.
    pub family: Family,
    /// The `aud` and scope of the new access token.
    pub target: resource::Selection,
}

/// Redeems a refresh token for `client`: rotates it, or answers a retry within the grace
/// window with the same successor, or revokes the family on reuse. The requested scope and
/// resources may narrow the family's, never widen them, and are checked before anything
/// rotates. (`jti`, `exp`) name the access token about to be issued, so the family can
/// revoke it later.
pub async fn redeem(
    state: &AppState,
    client: &Client,
    token: &str,
    (requested_scope, requested_resources): (Option<&str>, &[String]),
    access: (&str, u64),
) -> Result<Rotation, OAuthError> {
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let (family_id, secret) = parse(token).ok_or_else(invalid)?;
    let key = schema::refresh_family(family_id);
    let presented = sha256_b64(secret.as_bytes());
    for _ in 0..MAX_ATTEMPTS {
        let Some(raw) = state.store.get(&key).await? else {
            return Err(invalid());
        };
        let fam: Family = serde_json::from_slice(&raw).map_err(|e| OAuthError::internal(&e))?;
        // The secret first: a caller who knows only the family id learns nothing and can
        // revoke nothing.
        let is_current = ct_eq(presented.as_bytes(), fam.current.as_bytes());
        let is_previous = fam
            .previous
            .as_ref()
            .is_some_and(|p| ct_eq(presented.as_bytes(), p.as_bytes()));
        let is_older = fam
            .retired
            .iter()
            .any(|r| ct_eq(presented.as_bytes(), r.as_bytes()));
        if !(is_current || is_previous || is_older) {
            return Err(invalid());
        }
        if fam.client_id != client.client_id {
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        let now = state.now();
        if now >= fam.created_at + state.config.refresh_absolute_ttl
            || now >= fam.issued_at + state.config.refresh_idle_ttl
        {
            revoke_family(state, family_id).await?;
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        let granted = first_party::without_manage(&state.config, &client.client_id, &fam.scope);
        let scope = match requested_scope {
            Some(raw) => {
                let s = Scope::parse(raw)?;
                first_party::check_requested(&state.config, &client.client_id, &s)?;
                if !s.is_subset(&granted) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("a refresh may only narrow the granted scope: {granted}"),
                    ));
                }
                s
            }
            None => granted,
        };
        let target = resource::narrow(&state.config, &fam.resources, requested_resources, &scope)?;
        if is_current {
            let next_secret = successor(state, family_id, fam.generation + 1, secret);
            let mut next = fam.clone();
            next.generation += 1;
            if let Some(p) = next.previous.take() {
                next.retired.push(p);
                if next.retired.len() > MAX_RETIRED {
                    next.retired.remove(0);
                }
            }
            next.previous = Some(fam.current.clone());
            next.current = sha256_b64(next_secret.as_bytes());
            next.rotated_at = now;
            next.issued_at = now;
            remember_access(&mut next, access.0, access.1, now);
            let bytes = serde_json::to_vec(&next).map_err(|e| OAuthError::internal(&e))?;
            let ttl = store_ttl(state, &next, now);
            if state
                .store
                .compare_and_swap(&key, &raw, Some(&bytes), Some(ttl))
                .await?
            {
                return Ok(Rotation {
                    refresh_token: format!("{family_id}.{next_secret}"),
                    family: next,
                    target,
                });
            }
            continue; // Someone rotated it meanwhile: look again (it is now `previous`).
        }
        if is_previous && now <= fam.rotated_at + state.config.refresh_grace {
            let again = successor(state, family_id, fam.generation, secret);
            if ct_eq(
                sha256_b64(again.as_bytes()).as_bytes(),
                fam.current.as_bytes(),
            ) {
                remember_access_token(state, family_id, access.0, access.1).await?;
                return Ok(Rotation {
                    refresh_token: format!("{family_id}.{again}"),
                    family: fam,
                    target,
                });
            }
        }
        tracing::warn!(family = %family_id, client_id = %client.client_id, "refresh token reuse detected; revoking the family");
        state.metrics.refresh_reuse();
        revoke_family(state, family_id).await?;
        return Err(OAuthError::invalid_grant(
            "the refresh token was already used; the session has been revoked",
        ));
    }
    Err(OAuthError::unavailable())
}

/// Records an access token issued from `family_id` (best effort: a lost race only means that
/// token is not revoked with the family; it still expires on its own).
pub async fn remember_access_token(
    state: &AppState,
    family_id: &str,
    jti: &str,
    exp: u64,
) -> Result<(), OAuthError> {
    let key = schema::refresh_family(family_id);
    for _ in 0..4 {
        let Some(raw) = state.store.get(&key).await? else {
            return Ok(());
        };
        let mut fam: Family = serde_json::from_slice(&raw).map_err(|e| OAuthError::internal(&e))?;
        let now = state.now();
        remember_access(&mut fam, jti, exp, now);
        let bytes = serde_json::to_vec(&fam).map_err(|e| OAuthError::internal(&e))?;
        if state
            .store
            .compare_and_swap(&key, &raw, Some(&bytes), Some(store_ttl(state, &fam, now)))
            .await?
        {
            return Ok(());
        }
    }
    Ok(())
}

/// The family of a token, if the token is its current or grace-window predecessor.
pub async fn lookup(state: &AppState, token: &str) -> Result<Option<(String, Family)>, OAuthError> {
    let Some((family_id, secret)) = parse(token) else {
        return Ok(None);
    };
    let Some(fam) = state
        .store
        .get_json::<Family>(&schema::refresh_family(family_id))
        .await?
    else {
        return Ok(None);
    };
    let now = state.now();
    if now >= fam.created_at + state.config.refresh_absolute_ttl
        || now >= fam.issued_at + state.config.refresh_idle_ttl
    {
        return Ok(None);
    }
    let presented = sha256_b64(secret.as_bytes());
    let current = ct_eq(presented.as_bytes(), fam.current.as_bytes());
    let in_grace = fam
        .previous
        .as_ref()
        .is_some_and(|p| ct_eq(presented.as_bytes(), p.as_bytes()))
        && now <= fam.rotated_at + state.config.refresh_grace;
    Ok((current || in_grace).then(|| (family_id.to_string(), fam)))
}

/// Revokes a family: deletes it and denies the access tokens it issued recently.
pub async fn revoke_family(state: &AppState, family_id: &str) -> Result<(), OAuthError> {
    let key = schema::refresh_family(family_id);
    if let Some(fam) = state.store.take_json::<Family>(&key).await? {
        let now = state.now();
        for (jti, exp) in &fam.access {
            revocation::deny_jti(state, jti, *exp, &fam.client_id, now).await?;
        }
        state
            .store
            .set_remove(
                &schema::refresh_families(&fam.sub, &fam.client_id),
                family_id,
            )
            .await?;
    }
    Ok(())
}

/// Revokes every family of `sub` at `client_id` (consent withdrawn).
pub async fn revoke_all(state: &AppState, sub: &str, client_id: &str) -> Result<(), OAuthError> {
    for family_id in state
        .store
        .set_members(&schema::refresh_families(sub, client_id))
        .await?
    {
        revoke_family(state, &family_id).await?;
    }
    state
        .store
        .delete(&schema::refresh_families(sub, client_id))
        .await?;
    Ok(())
}
