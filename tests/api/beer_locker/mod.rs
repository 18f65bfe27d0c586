//! The beer locker as a separate resource server: Hallpass and the beer locker each on port
//! 0 (in-process, and once as a real child process of the `beer-locker` binary); users get
//! tokens through the code flow and manage beers that only they can see; bad tokens, missing
//! scopes and bad input are refused with the right 4xx; a key rotation at Hallpass needs no
//! restart of the beer locker.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::Arc,
};

use hallpass::{
    beer_locker::{BeerLockerConfig, BeerLockerServer, MAX_BEERS},
    config::{Config, SigningAlg},
    keys::{self, KeySet, SigningKey},
    oauth::{
        resource::{ResourceServer, Resources},
        scope::Scope,
    },
    time::Clock,
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, Cleanup, TestApp, TestClient, backends, spawn_app, spawn_app_on},
    verify::kid_of,
};

/// A running beer locker and a client for it.
struct Locker {
    /// `http://127.0.0.1:<port>`, also the resource identifier.
    address: String,
    http: reqwest::Client,
    /// Puts a TTL on the locker's Redis keys on drop.
    _cleanup: Cleanup,
}

/// A loopback port for a beer locker, bound before Hallpass starts so that Hallpass can
/// register its resource identifier (`http://127.0.0.1:<port>`, its RFC 9728 `resource` and
/// the `aud` it checks).
struct LockerSlot {
    listener: tokio::net::TcpListener,
    address: String,
}

impl LockerSlot {
    async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        Self { listener, address }
    }

    /// Starts a beer locker on this port trusting `app`, on `backend`, on the app's clock.
    async fn start(self, app: &TestApp, backend: &Backend) -> Locker {
        self.start_with(app, backend, |_| {}).await
    }

    /// [`Self::start`] with `tweak` applied to the beer locker's configuration.
    async fn start_with(
        self,
        app: &TestApp,
        backend: &Backend,
        tweak: impl FnOnce(&mut BeerLockerConfig),
    ) -> Locker {
        let (store, cleanup) = backend.store("beer-locker-test");
        let clock: Arc<dyn Clock> = app.clock.clone();
        let mut config = BeerLockerConfig::new(&app.address);
        tweak(&mut config);
        let server = BeerLockerServer::with_listener(&config, self.listener, store, clock)
            .expect("the beer locker starts");
        assert_eq!(server.locker().resource, self.address);
        tokio::spawn(server.run_until_stopped());
        Locker {
            address: self.address,
            http: reqwest::Client::new(),
            _cleanup: cleanup,
        }
    }
}

/// Registers the beer locker at `address` (scopes `beers:read`, `beers:write`) in `config`.
fn register_locker(config: &mut Config, address: &str) {
    config.resources = Resources::from_servers(
        vec![ResourceServer {
            id: address.to_string(),
            name: "Beer locker".into(),
            scopes: Scope::from_tokens(["beers:read", "beers:write"]),
        }],
        None,
        &config.scopes,
        &config.audience,
    )
    .unwrap();
}

/// Hallpass (memory store, `tweak` applied) with a beer locker port registered, for
/// [`LockerSlot::start`].
async fn app_for_locker(tweak: impl FnOnce(&mut Config)) -> (TestApp, LockerSlot) {
    let slot = LockerSlot::bind().await;
    let app = spawn_app_on(Backend::Memory, |c| {
        tweak(c);
        register_locker(c, &slot.address);
    })
    .await;
    (app, slot)
}

/// Hallpass and a beer locker on `backend` that trusts it.
async fn app_and_locker(backend: &Backend) -> (TestApp, Locker) {
    let (app, slot) = app_for_locker(|_| {}).await;
    let locker = slot.start(&app, backend).await;
    (app, locker)
}

/// The `beer-locker` binary as a child process; killed when dropped, then its Redis keys
/// deleted.
struct LockerProcess {
    child: Child,
    locker: Locker,
    _keys: Option<crate::backends::PrefixCleanup>,
}

impl Drop for LockerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `beer-locker` binary on `bind` for `issuer` and reads its address from the
/// `listening on …` line. Uses the Redis Cluster when `REDIS_CLUSTER_URLS` is set, else Redis
/// when `REDIS_URL` is (under a fresh prefix, with Hallpass's store settings), else memory.
async fn spawn_locker_process(issuer: &str, bind: &str) -> LockerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_beer-locker"));
    cmd.args(["--bind", bind])
        .env("BEER_LOCKER_ISSUER", issuer)
        .env_remove("BEER_LOCKER_AUDIENCE")
        .env_remove("BEER_LOCKER_PUBLIC_URL")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.env_remove("REDIS_URL").env_remove("REDIS_CLUSTER_URLS");
    let prefix = format!("beer-locker-test:{}:", hallpass::crypto::random_id());
    let backend = backends()
        .into_iter()
        .rev()
        .find(|b| matches!(b, Backend::Cluster(_) | Backend::Redis(_)));
    match &backend {
        Some(Backend::Cluster(seeds)) => cmd.env("REDIS_CLUSTER_URLS", seeds.join(",")),
        Some(Backend::Redis(url)) => cmd.env("REDIS_URL", url),
        _ => &mut cmd,
    }
    .env("BEER_LOCKER_REDIS_PREFIX", &prefix);
    let mut child = cmd.spawn().expect("the beer-locker binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let mut err = String::new();
        let _ = child.kill();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("beer-locker printed {line:?}; stderr: {err}");
    };
    let locker = Locker {
        address: format!("http://{addr}"),
        http: reqwest::Client::new(),
        _cleanup: Cleanup::none(),
    };
    LockerProcess {
        child,
        locker,
        _keys: backend.map(|backend| crate::backends::PrefixCleanup { backend, prefix }),
    }
}

impl Locker {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post_beer(&self, token: &str, beer: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, "/api/beers", Some(token), Some(beer))
            .await
    }

    /// Adds a beer and returns it.
    async fn add_beer(&self, token: &str, beer: &Value) -> Value {
        let resp = self.post_beer(token, beer).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// The caller's beers.
    async fn beers(&self, token: &str) -> Vec<Value> {
        let resp = self.get("/api/beers", token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    fn metadata_url(&self) -> String {
        self.url("/.well-known/oauth-protected-resource")
    }
}

/// A token for a new user (the owner of a new client) through the code flow.
async fn user_token(app: &TestApp, scope: &str) -> (String, TestClient) {
    let client = app.confidential_client().await;
    let token = token_for(app, &client, scope).await;
    (token, client)
}

/// Another token for `client`'s owner through the code flow.
async fn token_for(app: &TestApp, client: &TestClient, scope: &str) -> String {
    let code = app.code_for(client, &[("scope", scope)]).await;
    let resp = app.redeem(client, &code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Asserts a 401/403 bearer refusal and returns the `WWW-Authenticate` value.
async fn assert_refused(
    resp: reqwest::Response,
    status: u16,
    code: &str,
    locker: &Locker,
) -> String {
    let got = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{}\"", locker.metadata_url())),
        "{challenge}"
    );
    challenge
}

const ORVAL: &str = r#"{"name": "Orval", "type": "trappist", "quantity": 6}"#;

fn orval() -> Value {
    serde_json::from_str(ORVAL).unwrap()
}

mod flows;
mod input;
mod key_rotation;
mod refusals;
mod revocation;
