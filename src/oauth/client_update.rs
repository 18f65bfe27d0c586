//! Changing a client record by compare-and-swap, so that every answer is true under races.
//!
//! A rotation reads the record, replaces the secret hash and writes it back only if the record
//! is still byte for byte what it read ([`Store::compare_and_swap`]). So:
//! - of parallel rotations, each `200` secret was the valid one when it was answered: the
//!   ones that raced a winner get `409 conflict` (nothing changed; retry), and the secret that
//!   works at the end is the one of the last `200`;
//! - a rotation racing a delete either ran before it (the delete then removes the rotated
//!   record) or finds the record changed or gone (`409` or `404`): a deleted client never
//!   comes back with a new secret.
//!
//! Every write here waits, before it answers, until no instance can still hold a lease on the
//! record it replaced ([`crate::oauth::client_lease`]): once a rotation, update or delete has
//! answered, no instance accepts what it replaced.
//!
//! A delete retries its swap a few times (it does not care what changed), records the
//! client's token cut-off first (`token_cutoff::client_deleted`) so tokens already issued stop
//! working, and again after the wait (an instance holding a lease may have issued tokens
//! meanwhile), and then drops the client from its owner's list (if it has an owner). What
//! follows the swap runs in a task of its own, so a caller that hangs up does not cut it
//! short.
//!
//! Who may change a client is an [`Access`]: its owner (the management API), or the bearer
//! of its registration access token (RFC 7592, for a client that registered itself), whose
//! hash is compared in constant time. An RFC 7591/7592 update replaces the metadata with the
//! same compare-and-swap ([`replace`]).
//!
//! [`Store::compare_and_swap`]: crate::store::Store::compare_and_swap

use tracing::Instrument;

use crate::{
    crypto::{ct_eq, random_token, sha256_b64},
    oauth::{
        client::Client,
        error::{ErrorCode, OAuthError},
        token_cutoff,
        users::User,
    },
    state::AppState,
    store::schema,
};

/// Swap attempts of a delete before answering 409.
const MAX_ATTEMPTS: usize = 16;

/// Who is changing a client.
#[derive(Clone, Copy)]
pub enum Access<'a> {
    /// The owning user (the management API): anyone else's client is `not_found`.
    Owner(&'a User),
    /// The bearer of this registration access token (RFC 7592): a wrong token, an unknown
    /// client or one that did not register itself are all `invalid_token` (401, RFC 7592 §2).
    RegistrationToken(&'a str),
}

impl std::fmt::Debug for Access<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Owner(u) => f.debug_tuple("Owner").field(&u.id).finish(),
            Access::RegistrationToken(_) => f.write_str("RegistrationToken([redacted])"),
        }
    }
}

impl Access<'_> {
    fn refusal(self) -> OAuthError {
        match self {
            Access::Owner(_) => OAuthError::not_found("no such client"),
            Access::RegistrationToken(_) => OAuthError::invalid_token(
                "the registration access token is not valid for this client",
            ),
        }
    }

    /// Whether this caller may change `client` (`None`: no such client). Both branches do
    /// the same work whether or not the client exists.
    fn allows(self, client: Option<&Client>) -> bool {
        match self {
            Access::Owner(owner) => client.is_some_and(|c| c.has_owner() && c.owner == owner.id),
            Access::RegistrationToken(token) => {
                let presented = sha256_b64(token.as_bytes());
                let stored = client
                    .and_then(|c| c.registration_token_hash.clone())
                    .unwrap_or_else(|| sha256_b64(b"no registration token"));
                let token_ok = ct_eq(presented.as_bytes(), stored.as_bytes());
                token_ok && client.is_some_and(Client::is_dynamic)
            }
        }
    }
}

/// The client `access` may change, and its raw stored bytes; its refusal otherwise.
pub async fn read(
    state: &AppState,
    access: Access<'_>,
    client_id: &str,
) -> Result<(Client, Vec<u8>), OAuthError> {
    if client_id.is_empty() || client_id.len() > 128 {
        return Err(access.refusal());
    }
    let raw = state.store.get(&schema::client(client_id)).await?;
    let client = match &raw {
        Some(raw) => {
            Some(serde_json::from_slice::<Client>(raw).map_err(|e| OAuthError::internal(&e))?)
        }
        None => None,
    };
    if !access.allows(client.as_ref()) {
        return Err(access.refusal());
    }
    match (client, raw) {
        (Some(client), Some(raw)) => Ok((client, raw)),
        _ => Err(access.refusal()),
    }
}

/// [`read`], for a change: a refusal (the client is gone, or not this caller's) answers only
/// once every lease taken before it has ended, so a retry of a change whose caller hung up
/// cannot answer before that change's own wait is over ([`crate::oauth::client_lease`]).
/// Every refusal waits alike, so the wait tells nothing about whether the client exists.
pub async fn read_for_change(
    state: &AppState,
    access: Access<'_>,
    client_id: &str,
) -> Result<(Client, Vec<u8>), OAuthError> {
    let read = read(state, access, client_id).await;
    if read.is_err() {
        state.client_leases.outlived().await;
    }
    read
}

/// Writes `updated` over the record read as `raw`; `409` when it changed in between.
pub async fn replace(state: &AppState, raw: &[u8], updated: &Client) -> Result<(), OAuthError> {
    let bytes = serde_json::to_vec(updated).map_err(|e| OAuthError::internal(&e))?;
    let swapped = state
        .store
        .compare_and_swap(&schema::client(&updated.client_id), raw, Some(&bytes), None)
        .await;
    outlive_leases(state, &updated.client_id, &swapped).await;
    if !swapped? {
        return Err(changed());
    }
    Ok(())
}

/// Before a write to `client_id`'s record answers: unless it certainly changed nothing, waits
/// until no instance still holds a lease on the record it replaced
/// ([`crate::oauth::client_lease`]). A store error may hide a write that took place, so it
/// waits too.
async fn outlive_leases(
    state: &AppState,
    client_id: &str,
    swapped: &Result<bool, crate::store::StoreError>,
) {
    if !matches!(swapped, Ok(false)) {
        state.client_leases.changed(client_id).await;
    }
}

fn changed() -> OAuthError {
    OAuthError::new(
        ErrorCode::Conflict,
        "the client changed during this request (a concurrent rotation or deletion); retry",
    )
}

/// Replaces a confidential client's secret and returns the new one (shown once). `409` when
/// the record changed between read and write.
pub async fn rotate_secret(
    state: &AppState,
    owner: &User,
    client_id: &str,
) -> Result<(Client, String), OAuthError> {
    let (mut client, raw) = read_for_change(state, Access::Owner(owner), client_id).await?;
    if client.is_public() {
        return Err(OAuthError::invalid_request(
            "a public client has no secret to rotate",
        ));
    }
    let secret = random_token();
    client.secret_hash = Some(sha256_b64(secret.as_bytes()));
    replace(state, &raw, &client).await?;
    tracing::info!("client secret rotated");
    Ok((client, secret))
}

/// Deletes the client `access` may change: its refusal when it is not (or no longer) there,
/// `409` only when it kept changing through every attempt. Tokens already issued to it are
/// refused from now on (`token_cutoff::client_deleted`).
pub async fn delete(
    state: &AppState,
    access: Access<'_>,
    client_id: &str,
) -> Result<(), OAuthError> {
    let (client, mut raw) = read_for_change(state, access, client_id).await?;
    token_cutoff::client_deleted(state, &client.client_id).await?;
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            raw = read_for_change(state, access, client_id).await?.1;
        }
        // From the swap on, the deletion runs in a task of its own: once the record may be
        // gone, a caller that hangs up (even before the swap answers) does not cut short the
        // wait, the second cut-off or the owner's list.
        let finish = {
            let (state, client, raw) = (state.clone(), client.clone(), raw.clone());
            async move {
                let swapped = state
                    .store
                    .compare_and_swap(&schema::client(&client.client_id), &raw, None, None)
                    .await;
                if matches!(swapped, Ok(false)) {
                    return Ok(false);
                }
                outlive_leases(&state, &client.client_id, &swapped).await;
                swapped?;
                // Again, now that every lease has ended: an instance holding one may have
                // issued tokens to the client while this waited.
                token_cutoff::client_deleted(&state, &client.client_id).await?;
                if client.has_owner() {
                    state
                        .store
                        .set_remove(&schema::owner_clients(&client.owner), &client.client_id)
                        .await?;
                }
                tracing::info!("client deleted");
                Ok(true)
            }
        };
        let deleted = tokio::spawn(finish.instrument(tracing::Span::current()))
            .await
            .unwrap_or_else(|e| Err(OAuthError::internal(&e)))?;
        if deleted {
            return Ok(());
        }
    }
    Err(changed())
}

#[cfg(test)]
mod tests {
    //! The interleavings the HTTP tests can only hope for, forced: a store that applies a
    //! "concurrent" write to the key just before the swap under test.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use tokio::sync::Notify;

    use super::*;
    use crate::{
        oauth::{client::AuthMethod, scope::Scope},
        store::{Store, StoreError, memory::MemoryStore},
    };

    /// A memory store that, once armed, writes `(key, value)` (or deletes the key for `None`)
    /// right before the next compare-and-swap.
    #[derive(Default)]
    struct Racing {
        inner: MemoryStore,
        armed: Mutex<Option<(String, Option<Vec<u8>>)>>,
        /// Once set: the next compare-and-swap, after it has been applied, signals the first
        /// and holds its answer until the second is notified.
        held: Mutex<Option<(Arc<Notify>, Arc<Notify>)>>,
    }

    #[async_trait]
    impl Store for Racing {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, k: &str, v: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
            self.inner.put(k, v, ttl).await
        }
        async fn put_new(
            &self,
            k: &str,
            v: &[u8],
            ttl: Option<Duration>,
        ) -> Result<bool, StoreError> {
            self.inner.put_new(k, v, ttl).await
        }
        async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.take(key).await
        }
        async fn delete(&self, key: &str) -> Result<bool, StoreError> {
            self.inner.delete(key).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &[u8],
            new: Option<&[u8]>,
            ttl: Option<Duration>,
        ) -> Result<bool, StoreError> {
            let armed = self.armed.lock().map(|mut a| a.take()).unwrap_or(None);
            match armed {
                Some((k, Some(v))) => self.inner.put(&k, &v, None).await?,
                Some((k, None)) => {
                    self.inner.delete(&k).await?;
                }
                None => {}
            }
            let swapped = self.inner.compare_and_swap(key, expected, new, ttl).await;
            let held = self.held.lock().map(|mut h| h.take()).unwrap_or(None);
            if let Some((applied, answer)) = held {
                applied.notify_one();
                answer.notified().await;
            }
            swapped
        }
        async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
            self.inner.set_add(key, member).await
        }
        async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
            self.inner.set_remove(key, member).await
        }
        async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
            self.inner.set_members(key).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
            self.inner.incr(key, delta, ttl).await
        }
        async fn expiring_add(
            &self,
            key: &str,
            member: &str,
            expires_at: u64,
            now: u64,
        ) -> Result<(), StoreError> {
            self.inner.expiring_add(key, member, expires_at, now).await
        }
        async fn expiring_members(
            &self,
            key: &str,
            now: u64,
        ) -> Result<Vec<(String, u64)>, StoreError> {
            self.inner.expiring_members(key, now).await
        }
    }

    async fn setup() -> (AppState, Arc<Racing>, User, Client) {
        let store = Arc::new(Racing::default());
        let state = AppState::for_tests(store.clone()).await;
        let owner = User {
            id: "owner".into(),
            username: "owner".into(),
            password_hash: String::new(),
            created_at: 0,
        };
        let client = Client {
            client_id: "c1".into(),
            secret_hash: Some(sha256_b64(b"first")),
            owner: owner.id.clone(),
            client_name: "App".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: Vec::new(),
            token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
            scope: Scope::default(),
            allowed_cors_origins: Vec::new(),
            created_at: 0,
            registration_token_hash: None,
        };
        let bytes = serde_json::to_vec(&client).unwrap();
        store
            .put(&schema::client("c1"), &bytes, None)
            .await
            .unwrap();
        (state, store, owner, client)
    }

    fn stored_hash(raw: Option<Vec<u8>>) -> Option<String> {
        raw.and_then(|r| serde_json::from_slice::<Client>(&r).ok()?.secret_hash)
    }

    fn arm(store: &Racing, value: Option<Vec<u8>>) {
        *store.armed.lock().unwrap() = Some((schema::client("c1"), value));
    }

    #[tokio::test]
    async fn a_rotation_that_loses_the_race_answers_409_and_changes_nothing() {
        let (state, store, owner, mut client) = setup().await;
        client.secret_hash = Some(sha256_b64(b"winner"));
        arm(&store, Some(serde_json::to_vec(&client).unwrap()));

        let err = rotate_secret(&state, &owner, "c1").await.unwrap_err();

        assert_eq!(err.code, ErrorCode::Conflict);
        let raw = store.get(&schema::client("c1")).await.unwrap();
        assert_eq!(stored_hash(raw), Some(sha256_b64(b"winner")));
    }

    #[tokio::test]
    async fn a_rotation_racing_a_delete_does_not_bring_the_client_back() {
        let (state, store, owner, _) = setup().await;
        arm(&store, None);

        let err = rotate_secret(&state, &owner, "c1").await.unwrap_err();

        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(store.get(&schema::client("c1")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_delete_racing_a_rotation_retries_and_deletes() {
        let (state, store, owner, mut client) = setup().await;
        client.secret_hash = Some(sha256_b64(b"rotated meanwhile"));
        arm(&store, Some(serde_json::to_vec(&client).unwrap()));

        delete(&state, Access::Owner(&owner), "c1").await.unwrap();

        assert_eq!(store.get(&schema::client("c1")).await.unwrap(), None);
        assert_eq!(
            delete(&state, Access::Owner(&owner), "c1")
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    }

    #[tokio::test]
    async fn a_delete_whose_caller_hangs_up_before_the_swap_answers_still_finishes() {
        let (state, store, owner, _) = setup().await;
        let owned = schema::owner_clients(&owner.id);
        store.set_add(&owned, "c1").await.unwrap();
        let (applied, answer) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        *store.held.lock().unwrap() = Some((applied.clone(), answer.clone()));

        {
            let deleting = delete(&state, Access::Owner(&owner), "c1");
            tokio::pin!(deleting);
            tokio::select! {
                _ = &mut deleting => panic!("the swap's answer is held"),
                _ = applied.notified() => {}
            }
            // The caller hangs up: its future is dropped with the swap applied, unanswered.
        }
        assert_eq!(store.get(&schema::client("c1")).await.unwrap(), None);
        answer.notify_one();

        let finished = tokio::time::timeout(Duration::from_secs(30), async {
            while !store.set_members(&owned).await.unwrap().is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            finished.is_ok(),
            "the deletion's rest (leases outlived, owner's list) ran without its caller"
        );
    }
}
