//! The test server, shared by the integration tests (`tests/api/helpers.rs`) and the
//! benchmarks (`benches/`): a real [`Application`] built through [`Application::builder`],
//! exactly like `main` builds it (keys loaded from a directory, the session key, the key
//! reloader), but on port 0, with a [`MockClock`], the given store and a fresh keys directory
//! that is removed when the server is dropped; and [`delete_keys_with_prefix`], the cleanup of
//! tests and benchmarks that run `hallpass` as separate processes. Not part of the supported
//! API.

use std::{path::PathBuf, sync::Arc};

use tokio::sync::oneshot;

use crate::{
    Application,
    config::Config,
    keys::{KeySet, SigningKey},
    startup::StartupError,
    state::AppState,
    store::Store,
    time::{Clock, MockClock},
};

/// A running server on a loopback port. Dropping it stops the server and removes the keys
/// directory it created.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, also the issuer unless the test chose another.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// The server's state (store, keys, config).
    pub state: AppState,
    /// The server's clock; tests move it forward instead of sleeping.
    pub clock: Arc<MockClock>,
    /// Where `/metrics` listens when `HALLPASS_METRICS_BIND` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    _shutdown: oneshot::Sender<()>,
    _keys_dir: Option<TempDir>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server on `store`, with `tweak` applied to the test configuration: bind
    /// `127.0.0.1:0`, a fresh keys directory, the issuer and audience at the bound port
    /// (unless `tweak` sets another issuer), everything else [`Config::default`].
    pub async fn spawn(
        store: Arc<dyn Store>,
        tweak: impl FnOnce(&mut Config),
    ) -> Result<Self, StartupError> {
        let keys_dir = TempDir::path_for("hallpass-test-keys");
        let mut config = Config {
            bind: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            keys_dir: keys_dir.clone(),
            ..Config::default()
        };
        let default_issuer = config.issuer.clone();
        tweak(&mut config);
        let owned_dir = (config.keys_dir == keys_dir).then_some(TempDir(keys_dir));
        let listener = crate::startup::bind(config.bind, "the test bind address").await?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Io(e.to_string()))?
            .port();
        let address = format!("http://127.0.0.1:{port}");
        if config.issuer == default_issuer {
            config.issuer.clone_from(&address);
            config.audience.clone_from(&address);
        }
        let clock = Arc::new(MockClock::new());
        seed_keys_dir(&config, clock.now())?;
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let app = Application::builder(config)
            .listener(listener)
            .clock(clock_dyn)
            .store(store)
            .build()
            .await?;
        let state = app.state().clone();
        let metrics_addr = app.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(app.run(async {
            let _ = rx.await;
        }));
        Ok(Self {
            address,
            port,
            state,
            clock,
            metrics_addr,
            _shutdown: tx,
            _keys_dir: owned_dir,
        })
    }
}

/// How long before the clock's start the test server's first key signs: tests may load the
/// directory as of a little earlier (`KeySet::load_or_generate(dir, alg, now - 100)`).
pub const KEY_BACKDATE_SECS: u64 = 3600;

/// When the keys directory holds no key, writes one that has signed since
/// [`KEY_BACKDATE_SECS`] ago, where a development server would generate one signing from now.
/// The builder then loads it like any mounted key.
fn seed_keys_dir(config: &Config, now: u64) -> Result<(), StartupError> {
    let empty = KeySet::load(&config.keys_dir).map_or(true, |set| set.all().is_empty());
    if !empty {
        return Ok(());
    }
    let since = now.saturating_sub(KEY_BACKDATE_SECS);
    let (key, der) =
        SigningKey::generate(config.signing_alg, since, since).map_err(StartupError::Io)?;
    std::fs::create_dir_all(&config.keys_dir).map_err(|e| StartupError::Io(e.to_string()))?;
    key.write(&config.keys_dir, &der)?;
    Ok(())
}

/// A directory under the system temp directory with a random name, removed (with its
/// contents) on drop. Created by whoever writes into it first.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    fn path_for(prefix: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{prefix}-{}", crate::crypto::random_id()))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deletes every key under `prefix` (and the `{prefix…}` keys the Redis store puts in the same
/// hash slots) from one node, or from every master of a cluster (found by `CLUSTER NODES` on
/// the first seed), by `SCAN`; returns how many it deleted. For the tests and benchmarks that
/// run `hallpass` as separate processes, whose stores keep no journal. Plain `redis://` only;
/// unreachable nodes are skipped.
pub fn delete_keys_with_prefix(target: &crate::store::redis::RedisTarget, prefix: &str) -> usize {
    use crate::store::redis::RedisTarget;
    let urls = match target {
        RedisTarget::Node(url) => vec![url.clone()],
        RedisTarget::Cluster(seeds) => seeds
            .first()
            .map(|s| cluster_masters(s))
            .unwrap_or_default(),
    };
    let mut deleted = 0;
    for url in urls {
        let Ok(mut conn) = redis::Client::open(url.as_str()).and_then(|c| c.get_connection())
        else {
            continue;
        };
        for pattern in [format!("{prefix}*"), format!("{{{prefix}*")] {
            let keys: Vec<String> = redis::cmd("SCAN")
                .cursor_arg(0)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .clone()
                .iter(&mut conn)
                .map(|it| it.filter_map(Result::ok).collect())
                .unwrap_or_default();
            for key in keys {
                let n: usize = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap_or(0);
                deleted += n;
            }
        }
    }
    deleted
}

/// The URL of every master of the cluster `seed` belongs to: the seed's URL (with its
/// credentials) at each master's host and port.
fn cluster_masters(seed: &str) -> Vec<String> {
    let Ok(mut conn) = redis::Client::open(seed).and_then(|c| c.get_connection()) else {
        return Vec::new();
    };
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut conn)
        .unwrap_or_default();
    nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let (host, port) = fields.get(1)?.split('@').next()?.rsplit_once(':')?;
            let mut url = url::Url::parse(seed).ok()?;
            url.set_host(Some(host)).ok()?;
            url.set_port(port.parse().ok()).ok()?;
            Some(url.to_string())
        })
        .collect()
}
