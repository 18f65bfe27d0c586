//! The Redis store, on one node or a Redis Cluster (see [`super::redis_conn`]).
//!
//! One connection ([`Conn`]) is shared by every request. It is made lazily, so the server
//! starts (and answers 503 `temporarily_unavailable`) while Redis is down, and recovers
//! without a restart. After repeated timeouts (a master that hangs without closing its
//! sockets) the connection is rebuilt, at most once a second, so a promoted replica is found;
//! each rebuild is logged (hosts only, never the URL) and counted ([`Store::reconnects`],
//! exported as `hallpass_store_reconnects_total`).
//!
//! Every operation is one command or one Lua script on one key (`get_many` is one `MGET`,
//! each key read on its own; `put_new` and `swap_if_prefixed` also write a marker key in the
//! key's hash slot, [`sibling`]): atomic, and on a cluster it touches one slot (keys are escaped
//! by [`super::schema`], so user text never picks a slot).
//!
//! Writes that may run twice: redis-rs resends a command that timed out, so a command can
//! execute twice. `take` therefore leaves a marker naming the caller's request (a random id
//! sent with the script) for [`TAKEN_MARKER_TTL`], and a resent take with the same id gets the
//! value again; a compare-and-swap that finds the key already at the new value succeeds, and
//! a `put_new` records its request id for the same time under a key of the same hash slot
//! ([`sibling`]), so its resent command reports the creation again; a `swap_if_prefixed`
//! keeps the value it replaced for that time beside the key, so its resent command (which
//! finds its own new value there) returns the same value.
//!
//! Durability: with `wait_replicas` > 0, writes to security-critical keys
//! ([`super::schema::is_security_critical`]) are followed by `WAIT` in the same pipeline (so
//! it reaches the key's master) and fail with `Unavailable` (503) when fewer replicas
//! acknowledge in time.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;
use redis::{AsyncCommands, FromRedisValue, Script, Value};

pub use super::redis_conn::{Problem, RedisOptions, RedisTarget};
use super::{
    Store, StoreError,
    redis_conn::{Conn, describe},
    schema,
};

/// How long a taken key keeps the marker that lets a resent take succeed.
pub const TAKEN_MARKER_TTL: Duration = Duration::from_secs(30);
/// The marker's first bytes (no JSON value starts with a NUL byte).
const MARKER: &[u8] = b"\0hallpass-taken\0";
/// Consecutive timeouts after which the connection is rebuilt.
const TIMEOUTS_BEFORE_REBUILD: u32 = 3;

const TAKE: &str = r"local v = redis.call('GET', KEYS[1])
if not v then return false end
local m = ARGV[1]
if string.sub(v, 1, string.len(m)) == m then
  local rest = string.sub(v, string.len(m) + 1)
  local sep = string.find(rest, '\0', 1, true)
  if sep and string.sub(rest, 1, sep - 1) == ARGV[2] then return string.sub(rest, sep + 1) end
  return false
end
redis.call('SET', KEYS[1], m .. ARGV[2] .. '\0' .. v, 'PX', ARGV[3])
return v";

const CAS: &str = r"local cur = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and cur == ARGV[3] then return 1 end
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) return 1 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1";

/// `swap_if_prefixed`: replaces a value that starts with ARGV[1] with ARGV[2] (PX ARGV[3])
/// and keeps the value found under KEYS[2] (PX ARGV[4]); returns the value found. A resent
/// command finds its own ARGV[2] (unique to the caller) and returns the kept value again.
const SWAP_IF_PREFIXED: &str = r"local cur = redis.call('GET', KEYS[1])
if cur and cur == ARGV[2] then return redis.call('GET', KEYS[2]) or cur end
if cur and string.sub(cur, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('SET', KEYS[2], cur, 'PX', ARGV[4])
end
return cur";

/// `incr`: adds ARGV[1] and sets the TTL ARGV[2] (ms) when the key has none. A resent command
/// counts twice; for rate-limit counters that errs on the strict side.
const INCR: &str = r"local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n";

/// `expiring_add`: drops the members whose score (Unix second) is at or before ARGV[3], adds
/// ARGV[1] with score ARGV[2] (or raises its score to it), and makes the key live at least
/// ARGV[4] ms, so it outlives its longest-lived member. A resent command adds the same member
/// with the same score: harmless.
const EXPIRING_ADD: &str = r"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1";

/// The keys a store wrote (see [`RedisStore::with_journal`]).
pub type Journal = Arc<Mutex<HashSet<String>>>;

/// `put_new`: creates KEYS[1] and records the request id under KEYS[2] (same slot), so a
/// resent command with the same id reports the creation again.
const PUT_NEW: &str = r"local ok
if tonumber(ARGV[2]) > 0 then
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
  ok = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if ok then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[3] then return 1 end
return 0";

/// A key in the same hash slot as `key`: `key` with a suffix when it already carries a hash
/// tag (the tag still decides), else `{key}` with a suffix (the whole key is the tag, so the
/// slot is the key's own). `None` for a key with braces but no valid tag (only a prefix can
/// hold braces): its `put_new` is then a plain `SET NX`, its `swap_if_prefixed` the store's
/// compare-and-swap loop (`swap_by_compare`).
fn sibling(key: &str, suffix: &str) -> Option<String> {
    let tagged = key
        .find('{')
        .is_some_and(|open| key[open + 1..].find('}').is_some_and(|close| close > 0));
    if tagged {
        Some(format!("{key}:{suffix}"))
    } else if !key.contains(['{', '}']) {
        Some(format!("{{{key}}}:{suffix}"))
    } else {
        None
    }
}

/// See the module documentation.
pub struct RedisStore {
    options: RedisOptions,
    conn: RwLock<Option<Conn>>,
    connecting: tokio::sync::Mutex<()>,
    timeouts: AtomicU32,
    last_rebuild: Mutex<Option<Instant>>,
    /// Rebuilds so far (connections dropped after repeated timeouts).
    reconnects: AtomicU64,
    /// Whether the next connection made replaces one dropped for a rebuild (to log it).
    rebuilding: AtomicBool,
    journal: Option<Journal>,
    take: Script,
    cas: Script,
    incr: Script,
    put_new: Script,
    swap_if_prefixed: Script,
}

impl RedisStore {
    /// A store on one node at `url` whose keys all start with `prefix`, with default timeouts.
    /// Only parses the URL; the first command connects.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| StoreError::Unavailable(format!("REDIS_URL does not parse: {e}")))?;
        Ok(Self::open(RedisOptions::node(url, prefix)))
    }

    /// A store with these options. Connects on the first command.
    pub fn open(options: RedisOptions) -> Self {
        Self {
            options,
            conn: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            timeouts: AtomicU32::new(0),
            last_rebuild: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
            journal: None,
            take: Script::new(TAKE),
            cas: Script::new(CAS),
            incr: Script::new(INCR),
            put_new: Script::new(PUT_NEW),
            swap_if_prefixed: Script::new(SWAP_IF_PREFIXED),
        }
    }

    /// Records every key this store writes, so [`Self::expire_journal`] can put a TTL on
    /// them (tests: no key is left without a TTL, on a cluster too, without scanning).
    pub fn with_journal(mut self) -> Self {
        self.journal = Some(Arc::default());
        self
    }

    /// The options this store was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// The journal of written keys, when this store keeps one.
    pub fn journal(&self) -> Option<Journal> {
        self.journal.clone()
    }

    /// Gives each of `keys` (full keys, prefix included) a TTL of `ttl`; keys that are gone
    /// are skipped. Each key is one command, so on a cluster each goes to its own master.
    pub async fn expire_keys(&self, keys: &[String], ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let ms = i64::try_from(millis(ttl)).unwrap_or(i64::MAX);
        for key in keys {
            let _: bool = self.ok(c.pexpire(key, ms).await)?;
        }
        Ok(())
    }

    /// Connects (if not yet) and pings, naming what is wrong for an operator.
    pub async fn check(&self) -> Result<(), Problem> {
        let mut c = match self.conn_problem().await {
            Ok(c) => c,
            Err(p) => return Err(p),
        };
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }

    async fn conn_problem(&self) -> Result<Conn, Problem> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _guard = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let c = self.options.connect().await?;
        if let Ok(mut slot) = self.conn.write() {
            *slot = Some(c.clone());
        }
        if self.rebuilding.swap(false, Ordering::Relaxed) {
            tracing::info!(
                store = %self.options.location(),
                reconnects = self.reconnects.load(Ordering::Relaxed),
                "store: Redis connection rebuilt (slot map read afresh)"
            );
        }
        Ok(c)
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        self.conn_problem()
            .await
            .map_err(|p| StoreError::Unavailable(p.message().to_string()))
    }

    fn current(&self) -> Option<Conn> {
        self.conn.read().ok().and_then(|c| c.clone())
    }

    /// Counts timeouts; after [`TIMEOUTS_BEFORE_REBUILD`] in a row drops the connection (at
    /// most once a second) so the next command reconnects and reads the slot map afresh.
    fn failed(&self, e: &redis::RedisError) -> StoreError {
        if e.is_timeout() || e.is_io_error() {
            let n = self.timeouts.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= TIMEOUTS_BEFORE_REBUILD {
                let now = Instant::now();
                let due = self.last_rebuild.lock().is_ok_and(|mut last| {
                    let due = last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
                    if due {
                        *last = Some(now);
                    }
                    due
                });
                if due {
                    self.timeouts.store(0, Ordering::Relaxed);
                    let n = self.reconnects.fetch_add(1, Ordering::Relaxed) + 1;
                    self.rebuilding.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = self.conn.write() {
                        *slot = None;
                    }
                    tracing::warn!(
                        store = %self.options.location(),
                        reconnects = n,
                        "store: repeated Redis timeouts; rebuilding the connection (the next request reconnects)"
                    );
                }
            }
        } else {
            self.timeouts.store(0, Ordering::Relaxed);
        }
        StoreError::Unavailable(describe(e).message().to_string())
    }

    fn ok<T>(&self, r: Result<T, redis::RedisError>) -> Result<T, StoreError> {
        match r {
            Ok(v) => {
                self.timeouts.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => Err(self.failed(&e)),
        }
    }

    fn key(&self, key: &str) -> String {
        let full = format!("{}{}", self.options.prefix, key);
        if let Some(j) = &self.journal {
            if let Ok(mut j) = j.lock() {
                j.insert(full.clone());
            }
        }
        full
    }

    fn durable(&self, key: &str) -> bool {
        self.options.wait_replicas > 0 && schema::is_security_critical(key)
    }

    /// Runs `cmd`; for a security-critical key with a durability setting, pipelined with
    /// `WAIT` on the same connection (so the same node), and fails unless enough replicas
    /// acknowledged.
    async fn run<T: FromRedisValue>(&self, key: &str, cmd: redis::Cmd) -> Result<T, StoreError> {
        let mut c = self.conn().await?;
        if !self.durable(key) {
            return self.ok(cmd.query_async(&mut c).await);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(cmd)
            .cmd("WAIT")
            .arg(self.options.wait_replicas)
            .arg(u64::try_from(self.options.wait_timeout.as_millis()).unwrap_or(u64::MAX));
        let (value, acked): (Value, u32) = self.ok(pipe.query_async(&mut c).await)?;
        if acked < self.options.wait_replicas {
            tracing::warn!(
                acked,
                wanted = self.options.wait_replicas,
                "store: a security-critical write was not acknowledged by enough replicas"
            );
            return Err(StoreError::Unavailable(format!(
                "write acknowledged by {acked} of {} replicas",
                self.options.wait_replicas
            )));
        }
        T::from_redis_value(value).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `EVAL` with the script's source, for a pipeline (which cannot fall back from `EVALSHA`).
fn eval(source: &str, keys: &[&str], args: &[&[u8]]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(source).arg(keys.len()).arg(keys);
    for a in args {
        cmd.arg(*a);
    }
    cmd
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn().await?;
        let v: Option<Vec<u8>> = self.ok(c.get(self.key(key)).await)?;
        Ok(v.filter(|v| !v.starts_with(MARKER)))
    }

    /// One `MGET`; on a cluster redis-rs splits it by slot and sends the parts in parallel.
    async fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.ok(cmd.query_async(&mut c).await)?;
        if values.len() != keys.len() {
            return Err(StoreError::Corrupt(format!(
                "MGET of {} keys answered {} values",
                keys.len(),
                values.len()
            )));
        }
        Ok(values
            .into_iter()
            .map(|v| v.filter(|v| !v.starts_with(MARKER)))
            .collect())
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        self.run::<()>(key, cmd).await
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let request = crate::crypto::random_id();
        let ttl = ttl.map(millis).unwrap_or(0).to_string();
        let marker_ttl = millis(TAKEN_MARKER_TTL).to_string();
        let full = self.key(key);
        let Some(sibling) = sibling(&full, "put-id") else {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&full).arg(value).arg("NX");
            if let Some(ttl) = ttl.parse::<u64>().ok().filter(|t| *t > 0) {
                cmd.arg("PX").arg(ttl);
            }
            let reply: Option<String> = self.run(key, cmd).await?;
            return Ok(reply.is_some());
        };
        let args: [&[u8]; 4] = [
            value,
            ttl.as_bytes(),
            request.as_bytes(),
            marker_ttl.as_bytes(),
        ];
        let created: i64 = if self.durable(key) {
            self.run(key, eval(PUT_NEW, &[&full, &sibling], &args))
                .await?
        } else {
            // `EVALSHA`, falling back to loading the script once per node.
            let mut c = self.conn().await?;
            let mut inv = self.put_new.key(&full);
            inv.key(&sibling).arg(&args[..]);
            self.ok(inv.invoke_async(&mut c).await)?
        };
        Ok(created == 1)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let request = crate::crypto::random_id();
        let ttl = millis(TAKEN_MARKER_TTL).to_string();
        let full = self.key(key);
        let args: [&[u8]; 3] = [MARKER, request.as_bytes(), ttl.as_bytes()];
        if self.durable(key) {
            return self.run(key, eval(TAKE, &[&full], &args)).await;
        }
        let mut c = self.conn().await?;
        let mut inv = self.take.key(full);
        for a in args {
            inv.arg(a);
        }
        self.ok(inv.invoke_async(&mut c).await)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        let n: u64 = self.run(key, cmd).await?;
        Ok(n > 0)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let flag: &[u8] = if new.is_some() { b"1" } else { b"0" };
        let ttl = ttl.map(millis).unwrap_or(0).to_string();
        let full = self.key(key);
        let args: [&[u8]; 4] = [expected, flag, new.unwrap_or_default(), ttl.as_bytes()];
        let swapped: i64 = if self.durable(key) {
            self.run(key, eval(CAS, &[&full], &args)).await?
        } else {
            let mut c = self.conn().await?;
            let mut inv = self.cas.key(full);
            for a in args {
                inv.arg(a);
            }
            self.ok(inv.invoke_async(&mut c).await)?
        };
        Ok(swapped == 1)
    }

    async fn swap_if_prefixed(
        &self,
        key: &str,
        prefix: &[u8],
        new: &[u8],
        ttl: Duration,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let full = self.key(key);
        let Some(kept) = sibling(&full, "swapped") else {
            return super::swap_by_compare(self, key, prefix, new, ttl).await;
        };
        let ttl = millis(ttl).to_string();
        let kept_ttl = millis(TAKEN_MARKER_TTL).to_string();
        let args: [&[u8]; 4] = [prefix, new, ttl.as_bytes(), kept_ttl.as_bytes()];
        let found: Option<Vec<u8>> = if self.durable(key) {
            self.run(key, eval(SWAP_IF_PREFIXED, &[&full, &kept], &args))
                .await?
        } else {
            let mut c = self.conn().await?;
            let mut inv = self.swap_if_prefixed.key(&full);
            inv.key(&kept).arg(&args[..]);
            self.ok(inv.invoke_async(&mut c).await)?
        };
        // A take's marker is no value (as for `get`).
        Ok(found.filter(|v| !v.starts_with(MARKER)))
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let mut c = self.conn().await?;
        let n: Result<i64, _> = self
            .incr
            .key(self.key(key))
            .arg(delta)
            .arg(millis(ttl))
            .invoke_async(&mut c)
            .await;
        self.ok(n)
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.key(key)).arg(member);
        self.run::<()>(key, cmd).await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(self.key(key)).arg(member);
        self.run::<()>(key, cmd).await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn().await?;
        let mut members: Vec<String> = self.ok(c.smembers(self.key(key)).await)?;
        members.sort();
        Ok(members)
    }

    async fn expiring_add(
        &self,
        key: &str,
        member: &str,
        expires_at: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let ttl = millis(Duration::from_secs(expires_at.saturating_sub(now).max(1))).to_string();
        let (score, now) = (expires_at.to_string(), now.to_string());
        let full = self.key(key);
        let args: [&[u8]; 4] = [
            member.as_bytes(),
            score.as_bytes(),
            now.as_bytes(),
            ttl.as_bytes(),
        ];
        let _: i64 = self.run(key, eval(EXPIRING_ADD, &[&full], &args)).await?;
        Ok(())
    }

    async fn expiring_members(
        &self,
        key: &str,
        now: u64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.key(key))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("WITHSCORES");
        let raw: Vec<(String, f64)> = self.ok(cmd.query_async(&mut c).await)?;
        let mut members: Vec<(String, u64)> = raw
            .into_iter()
            // Scores are whole Unix seconds, written by `expiring_add`.
            .map(|(m, score)| (m, score.max(0.0) as u64))
            .collect();
        members.sort();
        Ok(members)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        self.ok(redis::cmd("PING").query_async::<String>(&mut c).await)
            .map(|_| ())
    }

    fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::sibling;

    /// The sibling key hashes to the same Redis Cluster slot as the key.
    #[test]
    fn a_sibling_key_keeps_the_hash_tag_that_decides_the_slot() {
        assert_eq!(
            sibling("hallpass:code:abc", "put-id").as_deref(),
            Some("{hallpass:code:abc}:put-id")
        );
        assert_eq!(
            sibling("{hp}:code:abc", "put-id").as_deref(),
            Some("{hp}:code:abc:put-id")
        );
        assert_eq!(sibling("a{}b", "put-id"), None);
        assert_eq!(sibling("a}b", "put-id"), None);
    }
}
