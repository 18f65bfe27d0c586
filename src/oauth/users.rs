//! Users: the tutorial's accounts, with argon2id passwords.
//!
//! Records are JSON under `user:<key>` (see [`crate::store::schema`]), with an index
//! `userid:<id>` → key, where the key is the username's PRECIS case-mapped form
//! ([`crate::oauth::username`]), so names that look alike are one account. The key is created
//! with a set-if-absent, so two concurrent registrations of one name cannot both succeed. New
//! passwords follow [`crate::oauth::passwords`]. [`authenticate_caller`] resolves the caller of the management API; how its failures are
//! answered over HTTP is decided in `api::extractors`.

use serde::{Deserialize, Serialize};

use crate::{
    crypto::random_id,
    oauth::{
        error::{ErrorCode, OAuthError},
        passwords, username,
    },
    state::AppState,
    store::{Prefetched, StoreJson, schema},
};

/// The scope a Bearer token needs to manage the user's clients and consents.
pub const MANAGE_SCOPE: &str = "hallpass:manage";

pub use crate::oauth::{
    passwords::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS},
    username::MAX_USERNAME_CHARS,
};

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Stable random id: the `sub` of the user's tokens.
    pub id: String,
    /// Login name (PRECIS case-preserved form), unique under case mapping.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: u64,
}

/// Registers a user. `conflict` (409) when the username is taken.
#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<User, OAuthError> {
    let name = username::enforce(username)?;
    passwords::check(password, &name.key)?;
    let password_hash = state.passwords.hash(password.to_string()).await?;
    let user = User {
        id: random_id(),
        username: name.display,
        password_hash,
        created_at: state.now(),
    };
    if !state
        .store
        .put_new_json(&schema::user(&name.key), &user, None)
        .await?
    {
        return Err(OAuthError::new(
            ErrorCode::Conflict,
            "that username is taken",
        ));
    }
    state
        .store
        .put_json(&schema::user_id(&user.id), &name.key, None)
        .await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

/// The user with this username and password, or `None`. Unknown users cost the same time.
#[tracing::instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<Option<User>, OAuthError> {
    let user = match username::enforce(username) {
        Ok(name) => {
            state
                .store
                .get_json::<User>(&schema::user(&name.key))
                .await?
        }
        Err(_) => None,
    };
    if password.len() > MAX_PASSWORD_BYTES {
        return Ok(None);
    }
    let ok = state
        .passwords
        .verify(
            password.to_string(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    Ok(user.filter(|_| ok))
}

/// The user with this id.
pub async fn by_id(state: &AppState, id: &str) -> Result<Option<User>, OAuthError> {
    by_id_prefetched(state, id, &mut Prefetched::default()).await
}

/// [`by_id`], with the id's record taken from `pre` when it was read ahead.
pub async fn by_id_prefetched(
    state: &AppState,
    id: &str,
    pre: &mut Prefetched,
) -> Result<Option<User>, OAuthError> {
    let Some(username) = pre
        .get_json::<String>(state.store.as_ref(), &schema::user_id(id))
        .await?
    else {
        return Ok(None);
    };
    Ok(state
        .store
        .get_json::<User>(&schema::user(&username))
        .await?
        .filter(|u| u.id == id))
}

/// The record key (`user:<key>`) of the account `username` names, as sign-in looks it up;
/// `None` for a name no account can have.
pub fn record_key(username: &str) -> Option<String> {
    username::enforce(username).ok().map(|name| name.key)
}

/// The user with id `id`, read through the record key `key_hint` when it is given (a
/// session's [`Session::user`](crate::oauth::session::Session::user)) and that record is
/// still this user's: one read instead of two, and read ahead with the rest when `pre` holds
/// it. A record under the hint that is missing or carries another id (the name was taken by
/// someone else) is not trusted: the user is then found by id, as [`by_id_prefetched`].
pub async fn for_session(
    state: &AppState,
    id: &str,
    key_hint: &str,
    pre: &mut Prefetched,
) -> Result<Option<User>, OAuthError> {
    if !key_hint.is_empty() {
        let user = pre
            .get_json::<User>(state.store.as_ref(), &schema::user(key_hint))
            .await?;
        if let Some(user) = user.filter(|u| u.id == id) {
            return Ok(Some(user));
        }
    }
    by_id_prefetched(state, id, pre).await
}

/// How a caller of the management API proves who they are.
pub enum UserCredentials {
    /// HTTP Basic with username and password.
    Basic {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
    /// A Hallpass access token whose subject is a user.
    Bearer(String),
    /// Nothing usable was sent.
    Missing,
}

/// Resolves the caller of the management API.
///
/// A wrong username or password is `invalid_grant` (RFC 6749 §5.2: "the provided
/// authorization grant (e.g., ... resource owner credentials) ... is invalid"); a bad token
/// is `invalid_token`. A Bearer token must have been issued for a user (not by client
/// credentials) and, when `required_scope` is given, grant it: an application the user
/// allowed to read their beers must not be able to manage their clients
/// (`insufficient_scope`).
///
/// Returns the user and, for a Bearer token, the token's scope (`None`: HTTP Basic).
pub async fn authenticate_caller(
    state: &AppState,
    creds: UserCredentials,
    required_scope: Option<&str>,
) -> Result<(User, Option<crate::oauth::scope::Scope>), OAuthError> {
    let fail = |why: &'static str| OAuthError::invalid_token(why);
    match creds {
        UserCredentials::Basic { username, password } => authenticate(state, &username, &password)
            .await?
            .map(|user| (user, None))
            .ok_or_else(|| OAuthError::invalid_grant("wrong username or password")),
        UserCredentials::Bearer(token) => {
            let claims = crate::oauth::revocation::check_access_token(state, &token).await?;
            let grants =
                |s: &str| crate::oauth::first_party::token_grants(&state.config, &claims, s);
            if let Some(scope) = required_scope.filter(|s| !grants(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InsufficientScope,
                    format!("this operation needs a token with scope {scope}, or HTTP Basic"),
                ));
            }
            let scope = crate::oauth::scope::Scope::parse(&claims.scope).unwrap_or_default();
            by_id(state, &claims.sub)
                .await?
                .map(|user| (user, Some(scope)))
                .ok_or_else(|| fail("the token's subject is not a user"))
        }
        UserCredentials::Missing => Err(fail(
            "authentication required: HTTP Basic or a Bearer token",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{Store, memory::MemoryStore};

    fn user(id: &str, username: &str) -> User {
        User {
            id: id.into(),
            username: username.into(),
            password_hash: String::new(),
            created_at: 0,
        }
    }

    async fn put<T: Serialize + Sync>(store: &dyn Store, key: &str, value: &T) {
        store.put_json(key, value, None).await.unwrap();
    }

    #[tokio::test]
    async fn a_session_finds_its_user_through_the_hint_only_while_the_record_is_theirs() {
        let store = Arc::new(MemoryStore::new());
        let state = AppState::for_tests(store.clone()).await;
        let found = |id: &'static str, hint: &'static str| {
            let state = &state;
            async move {
                for_session(state, id, hint, &mut Prefetched::default())
                    .await
                    .unwrap()
                    .map(|u| u.username)
            }
        };
        // The hint alone finds the record: no id record is read.
        put(store.as_ref(), &schema::user("alice"), &user("a", "Alice")).await;
        assert_eq!(found("a", "alice").await.as_deref(), Some("Alice"));
        // The name now belongs to another account: the hint is not trusted, and without an
        // id record there is no user.
        put(store.as_ref(), &schema::user("alice"), &user("b", "Alice")).await;
        assert_eq!(found("a", "alice").await, None);
        // The user is found by id when the hint points elsewhere, or is empty (a cookie
        // sealed before hints).
        put(store.as_ref(), &schema::user_id("a"), &"alice2").await;
        put(
            store.as_ref(),
            &schema::user("alice2"),
            &user("a", "Alice2"),
        )
        .await;
        assert_eq!(found("a", "alice").await.as_deref(), Some("Alice2"));
        assert_eq!(found("a", "").await.as_deref(), Some("Alice2"));
        // A record read ahead under the hint is used, and only if it is the user's.
        let mut pre = Prefetched::read(store.as_ref(), vec![schema::user("alice2")])
            .await
            .unwrap();
        store.delete(&schema::user("alice2")).await.unwrap();
        let ahead = for_session(&state, "a", "alice2", &mut pre).await.unwrap();
        assert_eq!(ahead.map(|u| u.username).as_deref(), Some("Alice2"));
    }
}
