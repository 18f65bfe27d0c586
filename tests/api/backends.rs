//! The stores tests run on: memory, and each Redis the environment offers (`.ci/redis-up`
//! starts them all), with the cleanup that leaves no test key without a TTL.

use std::{path::PathBuf, sync::Arc};

use hallpass::store::{
    Store,
    memory::MemoryStore,
    redis::{Journal, RedisOptions, RedisStore, RedisTarget},
};

/// Which store a test app runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The in-memory store.
    Memory,
    /// Redis at this URL, under a prefix unique to the test.
    Redis(String),
    /// Redis over TLS at this `rediss://` URL, trusting this CA file.
    RedisTls(String, PathBuf),
    /// A Redis Cluster, by these seed URLs.
    Cluster(Vec<String>),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Every backend the environment offers: memory always, Redis when `REDIS_URL` is set, Redis
/// over TLS when `REDIS_TLS_URL` and `REDIS_TLS_CA_FILE` are, and the cluster when
/// `REDIS_CLUSTER_URLS` is (`.ci/redis-up` starts all three).
pub fn backends() -> Vec<Backend> {
    let mut out = vec![Backend::Memory];
    if let Some(url) = env("REDIS_URL") {
        out.push(Backend::Redis(url));
    }
    if let (Some(url), Some(ca)) = (env("REDIS_TLS_URL"), env("REDIS_TLS_CA_FILE")) {
        out.push(Backend::RedisTls(url, ca.into()));
    }
    if let Some(urls) = env("REDIS_CLUSTER_URLS") {
        out.push(Backend::Cluster(
            urls.split(',').map(|u| u.trim().to_string()).collect(),
        ));
    }
    out
}

/// The cluster backend, when the environment offers one.
pub fn cluster_backend() -> Option<Backend> {
    backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Cluster(_)))
}

impl Backend {
    /// The Redis settings of this backend under `prefix`; `None` for memory.
    pub fn redis_options(&self, prefix: &str) -> Option<RedisOptions> {
        let mut options = match self {
            Backend::Memory => return None,
            Backend::Redis(url) => RedisOptions::node(url, prefix),
            Backend::RedisTls(url, ca) => {
                let mut o = RedisOptions::node(url, prefix);
                o.ca_file = Some(ca.clone());
                o
            }
            Backend::Cluster(urls) => RedisOptions::new(RedisTarget::Cluster(urls.clone()), prefix),
        };
        options.prefix = prefix.to_string();
        Some(options)
    }

    /// A fresh store on this backend: a unique prefix starting with `name`, and every key it
    /// writes gets a TTL when the returned guard drops.
    pub fn store(&self, name: &str) -> (Arc<dyn Store>, Cleanup) {
        let prefix = format!("{name}:{}:", hallpass::crypto::random_id());
        match self.redis_options(&prefix) {
            None => (Arc::new(MemoryStore::new()), Cleanup(None)),
            Some(options) => {
                let store = RedisStore::open(options.clone()).with_journal();
                let journal = store.journal();
                (Arc::new(store), Cleanup(journal.map(|j| (options, j))))
            }
        }
    }
}

/// Puts a one-minute TTL on every key a test store wrote, when dropped, so tests leave no key
/// without a TTL behind (on a cluster too: each key goes to its own master). Runs on its own
/// thread and runtime, since the test's runtime may be shutting down.
pub struct Cleanup(Option<(RedisOptions, Journal)>);

impl Cleanup {
    /// Nothing to clean up.
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some((options, journal)) = self.0.take() else {
            return;
        };
        let keys: Vec<String> = journal
            .lock()
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default();
        if keys.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let _ = RedisStore::open(options)
                    .expire_keys(&keys, std::time::Duration::from_secs(60))
                    .await;
            });
        })
        .join();
    }
}

/// Deletes every key under `prefix` from this backend (see
/// [`hallpass::testing::delete_keys_with_prefix`]): for stores other processes wrote, where no
/// journal exists. Memory and TLS (never shared with processes here): 0.
pub fn delete_prefix(backend: &Backend, prefix: &str) -> usize {
    let target = match backend {
        Backend::Memory | Backend::RedisTls(..) => return 0,
        Backend::Redis(url) => RedisTarget::Node(url.clone()),
        Backend::Cluster(seeds) => RedisTarget::Cluster(seeds.clone()),
    };
    hallpass::testing::delete_keys_with_prefix(&target, prefix)
}

/// Deletes the keys under a prefix (see [`delete_prefix`]) when dropped, so a test that fails
/// half-way leaves none either.
pub struct PrefixCleanup {
    /// Where the keys are.
    pub backend: Backend,
    /// Their prefix.
    pub prefix: String,
}

impl Drop for PrefixCleanup {
    fn drop(&mut self) {
        delete_prefix(&self.backend, &self.prefix);
    }
}
