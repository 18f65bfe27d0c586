//! The store: the only server-side state of Hallpass.
//!
//! [`Store`] is a small set of key-value primitives with the exact semantics both backends
//! implement identically (and prove with the same conformance tests):
//! - [`memory::MemoryStore`]: one process, nothing survives a restart; for development and tests.
//! - [`redis::RedisStore`]: one Redis node or a Redis Cluster, over TCP or TLS, reconnecting by
//!   itself ([`redis_conn`] connects and names failures for operators).
//!
//! Every operation touches exactly one key (Redis's `put_new` also a request-id marker, and
//! its `swap_if_prefixed` a copy of the value it replaced, in the same hash slot;
//! [`Store::get_many`] reads several, each on its own), so every operation is
//! atomic on its own and safe on a Redis Cluster. Expiry lives in the store (Redis TTLs);
//! values that must expire exactly (authorization codes) also carry their own expiry, checked
//! against the injected clock.
//! The typed records (users, clients, codes) live in `oauth/`, which serialises them to JSON;
//! every key and its lifetime is named in [`schema`].

pub mod memory;
pub mod redis;
pub mod redis_conn;
pub mod schema;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached; the caller gets 503 and should retry.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded (a bug or a foreign writer).
    #[error("corrupt value under a store key: {0}")]
    Corrupt(String),
}

impl From<StoreError> for crate::error::OAuthError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "store unavailable");
                crate::error::OAuthError::unavailable()
            }
            other => crate::error::OAuthError::internal(&other),
        }
    }
}

/// Key-value primitives shared by both backends. Keys are given without the deployment
/// prefix; the backend adds it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The value under `key`, if any and not expired.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The values under `keys`, in order, read in one round trip (each key on its own is
    /// read atomically; together they are not a snapshot). For a hot path that needs
    /// several unrelated keys: the token endpoint reads the client's rate-limit deadline
    /// and its record together.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }
    /// Sets `key`, replacing any value; `ttl` of `None` keeps it until deleted.
    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Sets `key` only when it does not exist; `true` when this call created it.
    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Removes `key` and returns its value, atomically: of any number of concurrent takes of
    /// one key, exactly one gets the value.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Removes `key`; `true` when it existed.
    async fn delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Replaces the value under `key` with `new` (or deletes it when `new` is `None`) only
    /// when it currently equals `expected`; `true` when the swap happened.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Replaces the value under `key` with `new` (living `ttl`) when that value starts with
    /// `prefix`, and returns the value found there (`None`: no such key), atomically: of any
    /// number of concurrent calls for one key, exactly one finds a value with the prefix,
    /// and a command that runs twice returns what its first run found.
    ///
    /// `new` must be unique to the call (a random id in it) and must not start with
    /// `prefix`: a call that finds `new` already in place takes itself for a resend of its
    /// own command.
    ///
    /// The default is [`swap_by_compare`]; the stores answer it in one step.
    async fn swap_if_prefixed(
        &self,
        key: &str,
        prefix: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        swap_by_compare(self, key, prefix, new, ttl).await
    }
    /// Adds `delta` (which may be negative) to the counter under `key` and returns the new
    /// value. A missing (or expired) counter starts from 0 and lives `ttl` from then on; later
    /// increments keep that expiry, so the counter counts the events of one fixed window.
    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError>;
    /// Adds `member` to the set under `key`.
    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// Removes `member` from the set under `key`.
    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError>;
    /// The members of the set under `key`, sorted.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError>;
    /// Adds `member` to the expiring set under `key`, live until `expires_at` (Unix seconds of
    /// the caller's clock; a member added again keeps the later of its two times), and drops
    /// the members whose time is at or before `now`, all in one atomic step. The key itself
    /// lives at least as long as its longest-lived member.
    async fn expiring_add(
        &self,
        key: &str,
        member: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError>;
    /// The members of the expiring set under `key` still live at `now` (time after `now`),
    /// each with its time, sorted by member. One read, O(members).
    async fn expiring_members(&self, key: &str, now: u64)
    -> Result<Vec<(String, u64)>, StoreError>;
    /// Whether the store answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;
    /// How many times the store dropped its connection to rebuild it (Redis, after repeated
    /// timeouts); 0 for a store without a connection. Exported as
    /// `hallpass_store_reconnects_total`.
    fn reconnects(&self) -> u64 {
        0
    }
}

/// Values read ahead in one round trip ([`Store::get_many`]) for work that will need them,
/// each handed out once ([`Prefetched::take_for`]); a key not read ahead is read from the
/// store as usual. A request that knows early which keys it will read (the authorization
/// endpoint: the session's record, its user, the client, the consent) reads them together.
#[derive(Debug, Default)]
pub struct Prefetched(Vec<(String, Option<Vec<u8>>)>);

impl Prefetched {
    /// Reads `keys` in one round trip.
    pub async fn read(store: &dyn Store, keys: Vec<String>) -> Result<Self, StoreError> {
        if keys.is_empty() {
            return Ok(Self::default());
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = store.get_many(&refs).await?;
        Ok(Self(keys.into_iter().zip(values).collect()))
    }

    /// The value read under `key`, once (`Some(None)`: read, and absent); `None` when `key`
    /// was not read ahead.
    pub fn take_for(&mut self, key: &str) -> Option<Option<Vec<u8>>> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(i).1)
    }

    /// The value under `key`: the one read ahead, else read now.
    pub async fn get(
        &mut self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.take_for(key) {
            Some(value) => Ok(value),
            None => store.get(key).await,
        }
    }

    /// [`Self::get`], decoded from JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &mut self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        decode(self.get(store, key).await?)
    }
}

/// JSON helpers over any [`Store`].
#[async_trait]
pub trait StoreJson {
    /// Reads and decodes a JSON value.
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError>;
    /// Encodes and writes a JSON value.
    async fn put_json<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;
    /// Encodes and writes a JSON value only when the key is free.
    async fn put_new_json<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Takes (reads and deletes, atomically) a JSON value.
    async fn take_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError>;
}

/// How many compare-and-swaps [`swap_by_compare`] tries.
const SWAP_ATTEMPTS: usize = 8;

/// [`Store::swap_if_prefixed`] by [`Store::get`] and [`Store::compare_and_swap`]: a swap is
/// tried again only after another writer changed the value, and a resent swap finds the key
/// already at `new` and succeeds.
pub async fn swap_by_compare<S: Store + ?Sized>(
    store: &S,
    key: &str,
    prefix: &[u8],
    new: &[u8],
    ttl: Duration,
) -> Result<Option<Vec<u8>>, StoreError> {
    // Each retry follows another writer's change; a code changes once (to `used:`), so a
    // second attempt ends it. The bound is for keys that others keep rewriting.
    for _ in 0..SWAP_ATTEMPTS {
        let Some(found) = store.get(key).await? else {
            return Ok(None);
        };
        if !found.starts_with(prefix)
            || store
                .compare_and_swap(key, &found, Some(new), Some(ttl))
                .await?
        {
            return Ok(Some(found));
        }
    }
    Err(StoreError::Unavailable(format!(
        "{key}: changed by other writers through {SWAP_ATTEMPTS} swaps"
    )))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn decode<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>, StoreError> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

#[async_trait]
impl<S: Store + ?Sized> StoreJson for S {
    async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        decode(self.get(key).await?)
    }

    async fn put_json<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        self.put(key, &encode(value)?, ttl).await
    }

    async fn put_new_json<T: Serialize + Sync>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.put_new(key, &encode(value)?, ttl).await
    }

    async fn take_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        decode(self.take(key).await?)
    }
}
