//! The in-memory store: a map behind a mutex, with lazy expiry. One process only; nothing
//! survives a restart. Expiry uses the monotonic clock, like Redis TTLs.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{Store, StoreError};

enum Value {
    Bytes(Vec<u8>),
    Set(BTreeSet<String>),
    /// An expiring set: member → Unix second until which it is live.
    Expiring(BTreeMap<String, u64>),
}

struct Entry {
    value: Value,
    expires: Option<Instant>,
}

/// See the module documentation.
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Entry>>,
    ops: std::sync::atomic::AtomicU64,
}

/// Every this many operations, expired entries are swept, so keys that are never read again
/// (unredeemed codes, denylist entries) do not accumulate.
const SWEEP_EVERY: u64 = 4096;

impl MemoryStore {
    /// How many entries the map holds, expired ones not yet swept included (diagnostics).
    pub fn entries(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Entry>) -> R) -> Result<R, StoreError> {
        let mut map = self
            .map
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))?;
        let n = self.ops.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            map.retain(|_, e| e.expires.is_none_or(|t| t > now));
        }
        Ok(f(&mut map))
    }
}

fn live<'a>(map: &'a mut HashMap<String, Entry>, key: &str) -> Option<&'a mut Entry> {
    let expired = map
        .get(key)
        .is_some_and(|e| e.expires.is_some_and(|t| t <= Instant::now()));
    if expired {
        map.remove(key);
    }
    map.get_mut(key)
}

fn expiry(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|t| Instant::now() + t)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| match live(m, key) {
            Some(Entry {
                value: Value::Bytes(b),
                ..
            }) => Some(b.clone()),
            _ => None,
        })
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.with(|m| {
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires: expiry(ttl),
                },
            );
        })
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.with(|m| {
            if live(m, key).is_some() {
                return false;
            }
            m.insert(
                key.to_string(),
                Entry {
                    value: Value::Bytes(value.to_vec()),
                    expires: expiry(ttl),
                },
            );
            true
        })
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| {
            live(m, key)?;
            match m.remove(key) {
                Some(Entry {
                    value: Value::Bytes(b),
                    ..
                }) => Some(b),
                Some(other) => {
                    m.insert(key.to_string(), other);
                    None
                }
                None => None,
            }
        })
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.with(|m| live(m, key).is_some() && m.remove(key).is_some())
    }

    async fn swap_if_prefixed(
        &self,
        key: &str,
        prefix: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.with(|m| {
            let Some(Entry {
                value: Value::Bytes(found),
                expires,
            }) = live(m, key)
            else {
                return None;
            };
            if !found.starts_with(prefix) {
                return Some(found.clone());
            }
            *expires = expiry(Some(ttl));
            Some(std::mem::replace(found, new.to_vec()))
        })
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.with(|m| {
            let matches =
                matches!(live(m, key), Some(Entry { value: Value::Bytes(b), .. }) if b == expected);
            if !matches {
                return false;
            }
            match new {
                Some(v) => {
                    m.insert(
                        key.to_string(),
                        Entry {
                            value: Value::Bytes(v.to_vec()),
                            expires: expiry(ttl),
                        },
                    );
                }
                None => {
                    m.remove(key);
                }
            }
            true
        })
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        self.with(|m| {
            let next = match live(m, key) {
                Some(Entry {
                    value: Value::Bytes(b),
                    ..
                }) => std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .map(|n| n.saturating_add(delta))
                    .ok_or_else(|| StoreError::Corrupt(format!("{key} is not a counter")))?,
                Some(_) => return Err(StoreError::Corrupt(format!("{key} is not a counter"))),
                None => delta,
            };
            match m.get_mut(key) {
                Some(entry) => entry.value = Value::Bytes(next.to_string().into_bytes()),
                None => {
                    m.insert(
                        key.to_string(),
                        Entry {
                            value: Value::Bytes(next.to_string().into_bytes()),
                            expires: expiry(Some(ttl)),
                        },
                    );
                }
            }
            Ok(next)
        })?
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|m| {
            if !matches!(
                live(m, key),
                Some(Entry {
                    value: Value::Set(_),
                    ..
                })
            ) {
                m.insert(
                    key.to_string(),
                    Entry {
                        value: Value::Set(BTreeSet::new()),
                        expires: None,
                    },
                );
            }
            if let Some(Entry {
                value: Value::Set(s),
                ..
            }) = m.get_mut(key)
            {
                s.insert(member.to_string());
            }
        })
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        self.with(|m| {
            if let Some(Entry {
                value: Value::Set(s),
                ..
            }) = live(m, key)
            {
                s.remove(member);
                if s.is_empty() {
                    m.remove(key);
                }
            }
        })
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        self.with(|m| match live(m, key) {
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => s.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    async fn expiring_add(
        &self,
        key: &str,
        member: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        self.with(|m| {
            if !matches!(
                live(m, key),
                Some(Entry {
                    value: Value::Expiring(_),
                    ..
                })
            ) {
                m.insert(
                    key.to_string(),
                    Entry {
                        value: Value::Expiring(BTreeMap::new()),
                        expires: None,
                    },
                );
            }
            if let Some(Entry {
                value: Value::Expiring(set),
                ..
            }) = m.get_mut(key)
            {
                set.retain(|_, until| *until > now);
                let until = set.entry(member.to_string()).or_insert(expires_at);
                *until = (*until).max(expires_at);
            }
        })
    }

    async fn expiring_members(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.with(|m| match live(m, key) {
            Some(Entry {
                value: Value::Expiring(set),
                ..
            }) => set
                .iter()
                .filter(|(_, until)| **until > now)
                .map(|(member, until)| (member.clone(), *until))
                .collect(),
            _ => Vec::new(),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
