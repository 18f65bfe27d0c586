//! Startup as a testable value: [`Application::build`] binds (port 0 is fine) and exposes the
//! port; [`build_app`] composes every route from an [`AppState`] and is a pure function.

use std::{path::Path, sync::Arc};

use poem::{
    Endpoint, EndpointExt, Middleware, Request, Result, Route, Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};

use crate::{
    api::build_openapi,
    config::Config,
    crypto::{Passwords, random_bytes},
    error::{Challenge, OAuthError, rfc_errors},
    keys::KeySet,
    state::AppState,
    store::{Store, memory::MemoryStore, redis::RedisStore},
    time::{Clock, SystemClock},
    web,
};

/// How often every instance re-reads the keys directory.
pub const KEY_RELOAD_SECS: u64 = 10;

/// How far ahead of signing a rotated key is published: one JWKS `max-age`, one reload
/// interval for every instance to see the file, and a minute of margin for clock skew.
pub fn rotation_lead(jwks_max_age: u64) -> u64 {
    jwks_max_age + KEY_RELOAD_SECS + 60
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Keys could not be loaded or generated.
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    /// The store could not be set up.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Binding or another I/O step failed.
    #[error("{0}")]
    Io(String),
}

/// Every route: the OpenAPI service, Swagger UI, the spec, and the browser pages, behind the
/// body limit. Tests call this with their own state.
pub fn build_app(state: AppState) -> impl Endpoint {
    let api = build_openapi(&state);
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let ui = api.swagger_ui();
    let limit = state.config.max_body_bytes;
    let route = Route::new()
        .nest("/", api.with(rfc_errors(Challenge::BasicOrBearer)))
        .nest("/docs", ui)
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml);
    let route = route.at("/metrics", poem::get(crate::metrics::metrics));
    let count = crate::metrics::CountRequests(state.clone());
    let hsts = web::cookies::sends_hsts(&state.config);
    web::mount(route)
        .with(BodyLimit(limit))
        .with(count)
        .with_if(hsts, web::cookies::Hsts)
        .data(state)
}

/// Rejects bodies larger than the limit with 413 (by `Content-Length` at once, and by counting
/// while reading for bodies without one: chunked HTTP/1.1 and HTTP/2), before any handler
/// reads them.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

/// See [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = poem::Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        use poem::IntoResponse;
        let too_large = || {
            Ok(poem::error::ResponseError::as_response(
                &crate::error::HttpError::from(OAuthError::invalid_request(format!(
                    "the request body is larger than {} bytes",
                    self.limit
                )))
                .with_status(413),
            ))
        };
        let declared = req
            .header(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return too_large();
        }
        // Always read through the limit: a chunked HTTP/1.1 body or an HTTP/2 body carries
        // no Content-Length, and nothing downstream caps what it reads.
        match req.take_body().into_bytes_limit(self.limit).await {
            Ok(bytes) => req.set_body(bytes),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return too_large(),
            Err(_) => {
                return Ok(poem::error::ResponseError::as_response(
                    &OAuthError::invalid_request("the request body could not be read"),
                ));
            }
        }
        Ok(self.inner.call(req).await?.into_response())
    }
}

/// A loopback issuer whose port is not the bound one sends every client to the wrong place.
fn warn_if_issuer_misses_bind(config: &Config) {
    let Ok(issuer) = url::Url::parse(&config.issuer) else {
        return;
    };
    let issuer_port = issuer.port_or_known_default();
    if crate::uri::is_loopback_host(&issuer)
        && config.bind.port() != 0
        && issuer_port != Some(config.bind.port())
    {
        tracing::warn!(
            issuer = %config.issuer,
            bind = %config.bind,
            "HALLPASS_ISSUER points at another port than HALLPASS_BIND: tokens and metadata will name the issuer's port; set both"
        );
    }
}

/// The store `config` names: Redis when `REDIS_URL` is set, else memory (with a warning).
pub fn build_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    Ok(match &config.redis_url {
        Some(url) => Arc::new(RedisStore::new(url, &config.redis_prefix)?),
        None => {
            tracing::warn!(
                "using the IN-MEMORY store: users, clients and codes are lost on restart and not shared between instances; set REDIS_URL for production"
            );
            Arc::new(MemoryStore::new())
        }
    })
}

/// A bound, ready-to-run server.
pub struct Application {
    port: u16,
    acceptor: TcpAcceptor,
    app: poem::endpoint::BoxEndpoint<'static, poem::Response>,
}

impl Application {
    /// Builds the state from `config` (store, keys, session secret) and binds.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let store = build_store(&config)?;
        if let Some(url) = config
            .redis_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
        {
            // Host and port only: the URL may carry a password.
            let at = format!(
                "{}:{}",
                url.host_str().unwrap_or("unix socket"),
                url.port().unwrap_or(6379)
            );
            match store.ping().await {
                Ok(()) => {
                    tracing::info!(redis = %at, prefix = %config.redis_prefix, "store: Redis, reachable")
                }
                Err(_) => {
                    tracing::warn!(redis = %at, "store: Redis NOT reachable yet; requests that need it get 503 until it is")
                }
            }
        }
        warn_if_issuer_misses_bind(&config);
        let (keys, generated) =
            KeySet::load_or_generate(&config.keys_dir, config.signing_alg, clock.now())?;
        if generated {
            tracing::warn!(dir = %config.keys_dir.display(), alg = config.signing_alg.as_str(), "generated a new signing key (development); production should mount its keys");
        }
        let secret = load_or_create_session_secret(&config.keys_dir)?;
        let dummy = Passwords::new()
            .await
            .map_err(|e| StartupError::Io(e.to_string()))?;
        let state = AppState::new(config, store, keys, clock, dummy, &secret);
        let reloader = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(KEY_RELOAD_SECS));
            loop {
                tick.tick().await;
                if let Err(e) = reloader.reload_keys() {
                    tracing::error!(error = %e, "reloading the keys directory failed; keeping the previous keys");
                }
                if let Err(e) = reloader.rotate_if_due().await {
                    tracing::error!(error = %e, "scheduled key rotation failed; retrying at the next tick");
                }
            }
        });
        Self::bind(state).await
    }

    /// Binds `state.config.bind` and composes the app.
    pub async fn bind(state: AppState) -> Result<Self, StartupError> {
        let addr = state.config.bind;
        Self::bind_then(addr, |_| state).await
    }

    /// Binds `addr` first, then builds the state knowing the bound port (tests bind port 0
    /// and need the port in the issuer URL).
    pub async fn bind_then(
        addr: std::net::SocketAddr,
        make_state: impl FnOnce(u16) -> AppState,
    ) -> Result<Self, StartupError> {
        let acceptor = TcpListener::bind(addr).into_acceptor().await.map_err(|e| {
            StartupError::Io(format!(
                "cannot listen on {addr}: {e}; set HALLPASS_BIND / --bind to a free address"
            ))
        })?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .unwrap_or(addr.port());
        let state = make_state(port);
        Ok(Self {
            port,
            acceptor,
            app: build_app(state).map_to_response().boxed(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the future completes with an error or the process is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        Server::new_with_acceptor(self.acceptor).run(self.app).await
    }

    /// Serves until `signal` resolves, then drains in-flight requests.
    pub async fn run_with_shutdown(
        self,
        signal: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, signal, Some(std::time::Duration::from_secs(10)))
            .await
    }
}

/// The session HMAC secret: `session.key` in the keys directory, created (mode 0600) on first
/// start. Every instance must share it, exactly like the signing keys.
pub fn load_or_create_session_secret(dir: &Path) -> Result<Vec<u8>, StartupError> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let path = dir.join("session.key");
    let io = |p: &Path, e: std::io::Error| StartupError::Io(format!("{}: {e}", p.display()));
    let read = |path: &Path| -> Result<Option<Vec<u8>>, StartupError> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 32 => Ok(Some(bytes)),
            Ok(_) => Err(StartupError::Io(format!(
                "{}: must hold at least 32 bytes",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path, e)),
        }
    };
    if let Some(secret) = read(&path)? {
        return Ok(secret);
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    // Write a private temporary file, then link it into place: the link either creates the
    // complete file or fails because another instance got there first, whose secret we then use.
    let secret = random_bytes::<32>();
    let tmp = dir.join(format!(".session.key.{}", crate::crypto::random_id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io(&tmp, e))?;
    f.write_all(&secret)
        .and_then(|()| f.sync_all())
        .map_err(|e| io(&tmp, e))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| StartupError::Io(format!("{}: vanished", path.display())))
        }
        Err(e) => Err(io(&path, e)),
    }
}
