//! The beer locker: the tutorial's protected API, rebuilt as a separate resource server that
//! trusts nothing but the issuer's JWKS (through [`crate::verify`]).
//!
//! - `POST /api/beers`, `GET /api/beers`, `GET/PUT/DELETE /api/beers/{beer_id}`: a beer is
//!   `{name, type, quantity}` and belongs to the token's `sub`; reads need `beers:read`,
//!   writes `beers:write`. Another user's beer is indistinguishable from a missing one (404).
//! - Tokens the issuer revoked are refused: the verifier polls the issuer's revocation feed
//!   every `BEER_LOCKER_REVOCATION_POLL` seconds (default 10).
//! - `/.well-known/oauth-protected-resource`: RFC 9728 metadata naming the issuer. A missing
//!   or bad token gets 401 with `WWW-Authenticate: Bearer … resource_metadata="…"`, a missing
//!   scope 403 `insufficient_scope`.
//! - Its own OpenAPI spec (`/openapi.json`, `/openapi.yaml`) and Swagger UI (`/docs`).
//! - CORS ([`crate::http::cors::StaticCors`]): the metadata for any origin, the API for the
//!   origins in `BEER_LOCKER_CORS_ORIGINS` only; every 405 names the path's methods in
//!   `Allow` ([`crate::api::allow`]).
//!
//! Each user's beers are one JSON document in the [`crate::store::Store`] (memory, or Redis
//! with `REDIS_URL`), updated with compare-and-swap, so every change is atomic and touches one
//! key. Input is checked in [`locker`] and [`api`], and any mistake is a 4xx: lengths,
//! quantity range, unknown fields, malformed JSON, wrong content type, oversized bodies.
//!
//! [`BeerLockerServer::bind`] binds first (port 0 is fine) and then derives the resource URL
//! from the bound port, so tests run the service in-process exactly like the binary does.
//!
//! - [`config`]: flags, variables, validation.
//! - [`locker`]: the beers in the store.
//! - [`api`]: the OpenAPI service.
//! - here: routes and the bound server, served through the same [`crate::startup::serve`] as
//!   Hallpass.

use std::{net::SocketAddr, sync::Arc};

use poem::{Endpoint, EndpointExt, Route};
use tokio::net::TcpListener;

use crate::{
    error::{Challenge, rfc_errors},
    startup::{BodyLimit, StartupError},
    store::Store,
    time::Clock,
    verify::{BuildError, Verifier},
};

pub mod api;
pub mod config;
pub mod locker;

pub use api::{BeersRead, BeersWrite, build_openapi};
pub use config::{BeerLockerArgs, BeerLockerConfig};
pub use locker::{Beer, BeerDraft, BeerInput, BeerLocker};

/// The scope that lets a token read its owner's beers.
pub const SCOPE_READ: &str = "beers:read";
/// The scope that lets a token add, change and remove its owner's beers.
pub const SCOPE_WRITE: &str = "beers:write";
/// Longest beer name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest beer type, in characters.
pub const MAX_TYPE_CHARS: usize = 50;
/// Largest quantity of one beer.
pub const MAX_QUANTITY: u32 = 10_000;
/// Most beers one locker holds.
pub const MAX_BEERS: usize = 200;
/// Largest request body, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Where the RFC 9728 metadata is served.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Every route: the API (RFC-shaped JSON errors, `no-store`), Swagger UI, the spec, behind
/// the body limit, with the verifier in the request data for [`BearerAuth`](crate::verify::BearerAuth).
pub fn build_app(locker: &BeerLocker) -> impl Endpoint + use<> {
    let api = build_openapi(locker);
    let issuer = locker.verifier.issuer().to_string();
    let oauth = crate::docs::DocsOAuth {
        client_id: locker.docs_client_id.clone(),
        scopes: vec![SCOPE_READ.into(), SCOPE_WRITE.into()],
        redirect_url: format!("{}{}", locker.resource, crate::docs::REDIRECT_PATH),
        resource: Some(locker.resource.clone()),
    };
    let docs = crate::docs::routes(&api.swagger_ui_html(), &oauth, &[&issuer]);
    let route = match api::spec(locker) {
        Ok(spec) => crate::docs::serve_spec(Route::new(), &spec),
        Err(e) => {
            tracing::error!(error = %e, "the generated OpenAPI spec could not be read: /openapi.* not served");
            Route::new()
        }
    };
    route
        .nest("/", api.with(rfc_errors(Challenge::Bearer)))
        .nest("/docs", docs)
        .with(allow_on_405())
        .with(cors(locker))
        .with(BodyLimit(
            MAX_BODY_BYTES,
            crate::server::DEFAULT_BODY_READ_TIMEOUT,
        ))
        .data(locker.verifier.clone())
}

/// `Allow` on 405s (RFC 9110 §15.5.6), from the API's operations.
fn allow_on_405() -> crate::api::allow::AllowOn405 {
    let table = crate::api::allow::MethodTable::from_openapi::<(api::BeersApi, api::ResourceApi)>();
    crate::api::allow::AllowOn405(Arc::new(table))
}

/// CORS: the RFC 9728 metadata for any origin; the API for `BEER_LOCKER_CORS_ORIGINS`, with
/// preflights for its methods and the `Authorization` header.
fn cors(locker: &BeerLocker) -> crate::http::cors::StaticCors {
    use crate::http::cors::{Preflight, StaticCors};
    StaticCors {
        origins: locker.cors_origins.clone(),
        public: &[METADATA_PATH],
        public_preflight: Preflight {
            methods: "GET",
            headers: "",
            max_age: 86_400,
        },
        preflight: Preflight {
            methods: "GET, POST, PUT, DELETE",
            headers: "Authorization, Content-Type",
            max_age: 600,
        },
    }
}

/// Why the beer locker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BeerLockerError {
    /// Binding failed (the message names `BEER_LOCKER_BIND`).
    #[error(transparent)]
    Bind(#[from] StartupError),
    /// The verifier could not be built.
    #[error("BEER_LOCKER_ISSUER / BEER_LOCKER_AUDIENCE: {0}")]
    Verifier(#[from] BuildError),
}

/// A bound, ready-to-run beer locker.
pub struct BeerLockerServer {
    addr: SocketAddr,
    locker: BeerLocker,
    listener: TcpListener,
}

impl BeerLockerServer {
    /// Binds `config.bind`, then builds the verifier knowing the bound port.
    pub async fn bind(
        config: &BeerLockerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BeerLockerError> {
        let listener = crate::startup::bind(config.bind, "BEER_LOCKER_BIND / --bind").await?;
        Self::with_listener(config, listener, store, clock)
    }

    /// Like [`bind`](Self::bind), on a listener bound already (so that a test knows the
    /// resource identifier before it starts the authorization server that must register it).
    pub fn with_listener(
        config: &BeerLockerConfig,
        listener: TcpListener,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BeerLockerError> {
        let addr = listener.local_addr().unwrap_or(config.bind);
        let resource = match &config.public_url {
            Some(url) => url.clone(),
            None if addr.ip().is_unspecified() => {
                tracing::warn!(
                    "listening on every interface without BEER_LOCKER_PUBLIC_URL; advertising http://127.0.0.1:{}",
                    addr.port()
                );
                format!("http://127.0.0.1:{}", addr.port())
            }
            None => format!("http://{addr}"),
        };
        // Its own identifier, the `resource` of its metadata, unless configured otherwise.
        let audience = config.audience.clone().unwrap_or_else(|| resource.clone());
        if audience != resource {
            tracing::warn!(%audience, %resource, "BEER_LOCKER_AUDIENCE differs from the resource identifier in the RFC 9728 metadata; clients that send that resource get tokens this service refuses");
        }
        let verifier = Verifier::builder(&config.issuer, &audience)
            .resource_metadata(BeerLocker::metadata_url(&resource))
            .clock(Arc::clone(&clock))
            .revocation_poll_interval(config.revocation_poll)
            .build()?;
        let locker = BeerLocker {
            resource,
            verifier,
            store,
            clock,
            cors_origins: config.cors_origins.clone().into(),
            docs_client_id: config.docs_client_id.clone(),
        };
        Ok(Self {
            addr,
            locker,
            listener,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The state the routes share (resource URL, verifier, store).
    pub fn locker(&self) -> &BeerLocker {
        &self.locker
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        crate::startup::serve(
            self.listener,
            build_app(&self.locker),
            crate::server::ConnectionLimits::default(),
            shutdown,
        )
        .await
    }

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run(std::future::pending()).await
    }
}
