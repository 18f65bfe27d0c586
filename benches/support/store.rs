//! The store a benchmark runs on: the Redis Cluster when `REDIS_CLUSTER_URLS` is set, else
//! Redis when `REDIS_URL` is, else memory.

use std::sync::Arc;

use hallpass::store::{
    Store,
    memory::MemoryStore,
    redis::{RedisOptions, RedisStore, RedisTarget},
};

/// Opens a new connection to the store the environment names, with every key under
/// `prefix`; returns it and the store's name (`redis-cluster`, `redis` or `memory`). Each
/// call opens its own connection (a new memory store when there is no Redis).
pub fn open_store(prefix: &str) -> (Arc<dyn Store>, &'static str) {
    if let Some(urls) = std::env::var("REDIS_CLUSTER_URLS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let seeds = urls.split(',').map(|u| u.trim().to_string()).collect();
        let store = RedisStore::open(RedisOptions::new(RedisTarget::Cluster(seeds), prefix));
        return (Arc::new(store), "redis-cluster");
    }
    if let Some(url) = std::env::var("REDIS_URL").ok().filter(|v| !v.is_empty()) {
        return (Arc::new(RedisStore::new(&url, prefix).unwrap()), "redis");
    }
    (Arc::new(MemoryStore::new()), "memory")
}
