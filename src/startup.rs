//! Startup as a testable value, one way for `main`, the tests and the benchmarks:
//! [`Application::builder`] takes the configuration and, optionally, a bound listener (port 0
//! is fine), a clock and a store; `build` loads the keys and the session secret, starts the key
//! reloader and binds; [`Application::run`] serves until a shutdown future resolves (mini-redis's
//! `run(listener, shutdown)`). [`build_app`] composes every route from an [`AppState`] and is a
//! pure function. The plumbing both binaries share (store selection, bind, serve, Ctrl-C) is
//! here too.

use std::{future::Future, net::SocketAddr, path::Path, sync::Arc};

use poem::{Endpoint, EndpointExt, Middleware, Request, Result, Route, listener::TcpAcceptor};
use tokio::net::TcpListener;

use crate::{
    api::build_openapi,
    config::Config,
    crypto::{Passwords, random_bytes},
    error::{Challenge, OAuthError, rfc_errors},
    state::{AppState, StateParts},
    store::{
        Store,
        memory::MemoryStore,
        redis::{Problem, RedisOptions, RedisStore},
    },
    time::{Clock, SystemClock},
    web,
};

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
    /// Redis is misconfigured (password, DB index, TLS): it will not heal by itself.
    #[error("{0}")]
    Redis(String),
}

/// Every route: the OpenAPI service, Swagger UI, the spec, and the browser pages, behind the
/// body limit. Tests call this with their own state.
pub fn build_app(state: AppState) -> impl Endpoint {
    let api = build_openapi(&state);
    let oauth = crate::docs::DocsOAuth {
        client_id: Some(crate::oauth::docs_client::CLIENT_ID.to_string()),
        scopes: crate::oauth::docs_client::default_scopes(&state.config),
        redirect_url: state.config.url(crate::oauth::docs_client::REDIRECT_PATH),
        resource: Some(state.config.audience.clone()),
    };
    let docs = crate::docs::routes(&api.swagger_ui_html(), &oauth, &[&state.config.issuer]);
    let spec = crate::api::spec(&state);
    let limit = state.config.max_body_bytes;
    let route = Route::new();
    let route = match &spec {
        Ok(spec) => crate::docs::serve_spec(route, spec),
        Err(e) => {
            tracing::error!(error = %e, "the generated OpenAPI spec could not be read: /openapi.* not served");
            route
        }
    };
    let route = route
        .nest("/", api.with(rfc_errors(Challenge::BasicOrBearer)))
        .nest("/docs", docs);
    let route = if crate::metrics_server::on_main_port(&state.config) {
        route.at("/metrics", poem::get(crate::metrics::metrics))
    } else {
        route
    };
    let count = crate::metrics::CountRequests(state.clone());
    let hsts = web::cookies::sends_hsts(&state.config);
    let cors = crate::api::cors::Cors::new(&state.config);
    web::mount(route)
        .with(method_table())
        .with(BodyLimit(limit, state.config.body_read_timeout))
        .with(cors)
        .with(count)
        .with_if(hsts, web::cookies::Hsts)
        .data(state)
}

/// `Allow` on 405s, from the API's operations and the pages' routes.
fn method_table() -> crate::api::allow::AllowOn405 {
    let mut table = crate::api::allow::MethodTable::from_openapi::<crate::api::Apis>();
    for (path, methods) in web::ROUTES {
        table.add(path, methods.iter().copied());
    }
    table.add("/metrics", ["GET"]);
    crate::api::allow::AllowOn405(Arc::new(table))
}

/// Rejects bodies larger than the limit with 413 (by `Content-Length` at once, and by counting
/// while reading for bodies without one: chunked HTTP/1.1 and HTTP/2), before any handler
/// reads them; a body not received within the read timeout (the second field) gets 408.
pub struct BodyLimit(pub usize, pub std::time::Duration);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
            read_timeout: self.1,
        }
    }
}

/// See [`BodyLimit`].
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
    read_timeout: std::time::Duration,
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
        let read = req.take_body().into_bytes_limit(self.limit);
        let Ok(read) = tokio::time::timeout(self.read_timeout, read).await else {
            return Ok(crate::server::body_timeout_response(self.read_timeout));
        };
        match read {
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

/// The store `config` names: Redis (one node or a cluster) when set, else memory (with a
/// warning).
pub fn build_store(config: &Config) -> Result<Arc<dyn Store>, StartupError> {
    Ok(open_store(
        config.redis_options(),
        "users, clients and codes",
    )?)
}

/// The store both binaries select the same way: Redis with `redis` options, or else memory,
/// with a warning that `what` is lost on restart.
pub fn open_store(
    redis: Option<RedisOptions>,
    what: &str,
) -> Result<Arc<dyn Store>, crate::store::StoreError> {
    Ok(match redis {
        Some(options) => Arc::new(RedisStore::open(options)),
        None => {
            tracing::warn!(
                "using the IN-MEMORY store: {what} are lost on restart and not shared between instances; set REDIS_URL or REDIS_CLUSTER_URLS for production"
            );
            Arc::new(MemoryStore::new())
        }
    })
}

/// Connects to Redis once at start and names what is wrong: a problem that cannot heal by
/// itself (wrong password, DB index out of range, TLS or CA failure) is an error that stops
/// the start; an unreachable node is a warning (requests get 503 until it answers). Names
/// hosts only (the URL may carry a password).
pub async fn check_redis(redis: Option<&RedisOptions>) -> Result<(), StartupError> {
    let Some(options) = redis else {
        return Ok(());
    };
    let location = options.location();
    let probe = RedisStore::open(options.clone());
    match probe.check().await {
        Ok(()) => {
            tracing::info!(store = %location, prefix = %options.prefix, "store: Redis, reachable");
            Ok(())
        }
        Err(Problem::Unreachable(why)) => {
            tracing::warn!(store = %location, "store: {why}; requests that need it get 503 until it answers");
            Ok(())
        }
        Err(Problem::Fatal(why)) => Err(StartupError::Redis(format!("{location}: {why}"))),
    }
}

/// Binds `addr`, with an error that names the setting to change (`hint`, such as
/// `HALLPASS_BIND / --bind`). Both binaries bind through this.
pub async fn bind(addr: SocketAddr, hint: &str) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr).await.map_err(|e| {
        StartupError::Io(format!(
            "cannot listen on {addr}: {e}; set {hint} to a free address"
        ))
    })
}

/// Serves `app` on `listener` within `limits` (header, idle and connection bounds, see
/// [`crate::server`]) until `shutdown` resolves, then drains in-flight requests for up to ten
/// seconds (mini-redis's `run(listener, shutdown)`). Both binaries serve through this.
pub async fn serve(
    listener: TcpListener,
    app: impl Endpoint + 'static,
    limits: crate::server::ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    crate::server::serve(acceptor, app.map_to_response(), limits, shutdown).await
}

/// Resolves on Ctrl-C (SIGINT): the shutdown future of both binaries.
pub async fn ctrl_c() {
    let _ = tokio::signal::ctrl_c().await;
}

/// How [`Application`] is put together: the configuration, plus whatever a caller (a test, a
/// benchmark) wants to supply instead of what the configuration names.
#[must_use]
pub struct ApplicationBuilder {
    config: Config,
    listener: Option<TcpListener>,
    clock: Option<Arc<dyn Clock>>,
    store: Option<Arc<dyn Store>>,
}

impl ApplicationBuilder {
    /// Serve on this already-bound listener instead of binding `config.bind` (tests bind
    /// port 0 first to put the port in the issuer).
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Read time from this clock instead of the system clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Use this store instead of the one `REDIS_URL` selects.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Read the keys and the session secret from `dir` instead of `HALLPASS_KEYS_DIR`.
    pub fn keys_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.keys_dir = dir.into();
        self
    }

    /// Loads (or, when the directory is empty, generates) the keys and the session secret,
    /// opens the store, starts the key reloader and binds.
    pub async fn build(self) -> Result<Application, StartupError> {
        let Self {
            config,
            listener,
            clock,
            store,
        } = self;
        let clock = clock.unwrap_or_else(|| Arc::new(SystemClock));
        let store = match store {
            Some(store) => store,
            None => {
                check_redis(config.redis_options().as_ref()).await?;
                build_store(&config)?
            }
        };
        let listener = match listener {
            Some(listener) => listener,
            None => {
                warn_if_issuer_misses_bind(&config);
                bind(config.bind, "HALLPASS_BIND / --bind").await?
            }
        };
        let keys = crate::keys::load_at_startup(&config, clock.now()).await?;
        let session_secret = load_or_create_session_secret(&config.keys_dir)?;
        let passwords = Passwords::new().map_err(|e| StartupError::Io(e.to_string()))?;
        let state = AppState::from_parts(StateParts {
            config,
            store,
            keys,
            clock,
            passwords,
            session_secret,
        });
        crate::keys::spawn_reloader(state.clone());
        let metrics_addr = crate::metrics_server::spawn(&state).await?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Io(e.to_string()))?
            .port();
        Ok(Application {
            port,
            listener,
            state,
            metrics_addr,
        })
    }
}

/// A bound, ready-to-run server. Made by [`Application::builder`].
pub struct Application {
    port: u16,
    listener: TcpListener,
    state: AppState,
    metrics_addr: Option<SocketAddr>,
}

impl Application {
    /// Starts building from `config`; everything else defaults to what `config` names.
    pub fn builder(config: Config) -> ApplicationBuilder {
        ApplicationBuilder {
            config,
            listener: None,
            clock: None,
            store: None,
        }
    }

    /// Builds everything from `config` alone and binds `config.bind` (what `main` does).
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::builder(config).build().await
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state the routes share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Where the separate `/metrics` listener is bound (`HALLPASS_METRICS_BIND`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let limits = crate::server::ConnectionLimits::from_config(&self.state.config);
        serve(self.listener, build_app(self.state), limits, shutdown).await
    }

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run(std::future::pending()).await
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
