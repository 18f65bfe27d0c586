//! Remembered consent: a user who already granted a client some scopes is not asked again
//! for those (OpenID Connect Core §3.1.2.4). One key per (user, client), plus a per-user index.

use serde::{Deserialize, Serialize};

use crate::{
    oauth::error::OAuthError,
    oauth::{client, refresh, scope::Scope, users::User},
    state::AppState,
    store::{Prefetched, StoreJson, schema},
};

/// A stored grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The client.
    pub client_id: String,
    /// Every scope the user has granted it.
    pub scope: Scope,
    /// When it was last granted (Unix seconds).
    pub granted_at: u64,
    /// Every resource server (RFC 8707) the user has let it reach; `None` in grants stored
    /// before resources were recorded, which cover any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
}

/// Whether `sub` already granted `client_id` every scope in `scope`, for every resource
/// server in `resources`.
pub async fn covers(
    state: &AppState,
    pre: &mut Prefetched,
    sub: &str,
    client_id: &str,
    scope: &Scope,
    resources: &[String],
) -> Result<bool, OAuthError> {
    let Some(grant) = pre
        .get_json::<Grant>(state.store.as_ref(), &schema::consent(sub, client_id))
        .await?
    else {
        return Ok(false);
    };
    let reaches = grant
        .resources
        .as_ref()
        .is_none_or(|granted| resources.iter().all(|r| granted.contains(r)));
    Ok(scope.is_subset(&grant.scope) && reaches)
}

/// Records that `sub` granted `client_id` the scopes in `scope` for the resource servers
/// in `resources` (added to earlier grants).
pub async fn remember(
    state: &AppState,
    pre: &mut Prefetched,
    sub: &str,
    client_id: &str,
    scope: &Scope,
    resources: &[String],
) -> Result<(), OAuthError> {
    let previous = pre
        .get_json::<Grant>(state.store.as_ref(), &schema::consent(sub, client_id))
        .await?;
    let mut all_resources = previous
        .as_ref()
        .and_then(|p| p.resources.clone())
        .unwrap_or_default();
    for r in resources {
        if !all_resources.contains(r) {
            all_resources.push(r.clone());
        }
    }
    let merged = match previous {
        Some(p) => scope.union(&p.scope),
        None => scope.clone(),
    };
    let grant = Grant {
        client_id: client_id.to_string(),
        scope: merged,
        granted_at: state.now(),
        resources: Some(all_resources),
    };
    // The grant and its index entry at once (listing skips an id whose grant is missing).
    let key = schema::consent(sub, client_id);
    let index = schema::consents(sub);
    tokio::try_join!(
        state.store.put_json(&key, &grant, None),
        state.store.set_add(&index, client_id)
    )?;
    Ok(())
}

/// The user's grants, with the client's name, for clients that still exist.
pub async fn list(state: &AppState, user: &User) -> Result<Vec<(Grant, String)>, OAuthError> {
    let mut out = Vec::new();
    for client_id in state.store.set_members(&schema::consents(&user.id)).await? {
        let Some(grant) = state
            .store
            .get_json::<Grant>(&schema::consent(&user.id, &client_id))
            .await?
        else {
            continue;
        };
        if let Some(c) = client::get(state, &client_id).await? {
            out.push((grant, c.client_name));
        }
    }
    Ok(out)
}

/// Withdraws the user's consent for `client_id`, revokes its refresh-token families and
/// refuses the access tokens already issued.
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn withdraw(state: &AppState, user: &User, client_id: &str) -> Result<(), OAuthError> {
    if !state
        .store
        .delete(&schema::consent(&user.id, client_id))
        .await?
    {
        return Err(OAuthError::not_found("no consent for this client"));
    }
    state
        .store
        .set_remove(&schema::consents(&user.id), client_id)
        .await?;
    refresh::revoke_all(state, &user.id, client_id).await?;
    crate::oauth::token_cutoff::consent_withdrawn(state, &user.id, client_id).await?;
    tracing::info!("consent withdrawn");
    Ok(())
}
