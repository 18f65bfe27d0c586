//! The Redis store.
//!
//! One [`ConnectionManager`] is shared by every request; it multiplexes commands over one
//! connection and reconnects by itself after a failure. It is created lazily, so the server
//! starts (and answers 503 `temporarily_unavailable`) while Redis is down, and recovers without
//! a restart when Redis comes back. Every operation is a single command or a single Lua script
//! on one key, so each is atomic, and TTLs live in Redis.

use std::time::Duration;

use async_trait::async_trait;
use redis::{
    AsyncCommands, Client, Script,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::OnceCell;

use super::{Store, StoreError};

/// See the module documentation.
pub struct RedisStore {
    client: Client,
    prefix: String,
    conn: OnceCell<ConnectionManager>,
    cas: Script,
    incr: Script,
}

impl RedisStore {
    /// A store on `url` whose keys all start with `prefix`. Only parses the URL; the first
    /// command connects.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = Client::open(url)
            .map_err(|e| StoreError::Unavailable(format!("REDIS_URL does not parse: {e}")))?;
        Ok(Self {
            client,
            prefix: prefix.to_string(),
            conn: OnceCell::new(),
            cas: Script::new(
                r"local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) return 1 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1",
            ),
            incr: Script::new(
                r"local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n",
            ),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(Duration::from_secs(2)))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(unavailable)
            })
            .await?;
        Ok(conn.clone())
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

#[allow(clippy::needless_pass_by_value)] // a `map_err` callback takes the error by value
fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn().await?;
        c.get(self.key(key)).await.map_err(unavailable)
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        cmd.query_async::<()>(&mut c).await.map_err(unavailable)
    }

    async fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let reply: Option<String> = cmd.query_async(&mut c).await.map_err(unavailable)?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn().await?;
        redis::cmd("GETDEL")
            .arg(self.key(key))
            .query_async(&mut c)
            .await
            .map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let n: u64 = c.del(self.key(key)).await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &[u8],
        new: Option<&[u8]>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let swapped: i64 = self
            .cas
            .key(self.key(key))
            .arg(expected)
            .arg(if new.is_some() { "1" } else { "0" })
            .arg(new.unwrap_or_default())
            .arg(ttl.map(millis).unwrap_or(0))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(swapped == 1)
    }

    async fn incr(&self, key: &str, delta: i64, ttl: Duration) -> Result<i64, StoreError> {
        let mut c = self.conn().await?;
        let n: i64 = self
            .incr
            .key(self.key(key))
            .arg(delta)
            .arg(millis(ttl))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(n)
    }

    async fn set_add(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.sadd::<_, _, ()>(self.key(key), member)
            .await
            .map_err(unavailable)
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        c.srem::<_, _, ()>(self.key(key), member)
            .await
            .map_err(unavailable)
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn().await?;
        let mut members: Vec<String> = c.smembers(self.key(key)).await.map_err(unavailable)?;
        members.sort();
        Ok(members)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
