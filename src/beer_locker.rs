//! The beer locker: the tutorial's protected API, rebuilt as a separate resource server that
//! trusts nothing but the issuer's JWKS (through [`crate::verify`]).
//!
//! - `POST /api/beers`, `GET /api/beers`, `GET/PUT/DELETE /api/beers/{beer_id}`: a beer is
//!   `{name, type, quantity}` and belongs to the token's `sub`; reads need `beers:read`,
//!   writes `beers:write`. Another user's beer is indistinguishable from a missing one (404).
//! - `/.well-known/oauth-protected-resource`: RFC 9728 metadata naming the issuer. A missing
//!   or bad token gets 401 with `WWW-Authenticate: Bearer … resource_metadata="…"`, a missing
//!   scope 403 `insufficient_scope`.
//! - Its own OpenAPI spec (`/openapi.json`, `/openapi.yaml`) and Swagger UI (`/docs`).
//!
//! Each user's beers are one JSON document in the [`Store`] (memory, or Redis with
//! `REDIS_URL`), updated with compare-and-swap, so every change is atomic and touches one key.
//! Input is checked here and any mistake is a 4xx: lengths, quantity range, unknown fields,
//! malformed JSON, wrong content type, oversized bodies.
//!
//! [`BeerLockerServer::bind`] binds first (port 0 is fine) and then derives the resource URL
//! from the bound port, so tests run the service in-process exactly like the binary does.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use poem::{
    Endpoint, EndpointExt, Response, Route, Server,
    listener::{Acceptor, Listener, TcpAcceptor, TcpListener},
};
use poem_openapi::{
    ApiResponse, Object, OpenApi, OpenApiService, Tags, param::Path, payload::Json,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::{
    api::discovery::Health,
    config::ConfigError,
    crypto::{random_bytes, random_id},
    error::{ApiError, Challenge, ErrorCode, OAuthError, rfc_errors},
    startup::BodyLimit,
    store::{Store, StoreError, memory::MemoryStore, redis::RedisStore},
    time::Clock,
    uri::is_loopback_host,
    verify::{BearerAuth, BuildError, RequiredScopes, Verifier},
};

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
/// How often a change to one locker is retried when concurrent changes keep winning.
const CAS_ATTEMPTS: u32 = 64;
/// Where the RFC 9728 metadata is served.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// The raw settings, as clap reads them from flags and `BEER_LOCKER_*` variables.
#[derive(clap::Args, Debug, Clone)]
pub struct BeerLockerArgs {
    /// Issuer URL of the Hallpass whose tokens are accepted: the exact `iss`, whose RFC 8414
    /// metadata names the JWKS.
    #[arg(
        long,
        env = "BEER_LOCKER_ISSUER",
        default_value = "http://127.0.0.1:3000"
    )]
    pub issuer: String,
    /// The `aud` tokens must carry. Defaults to the issuer, which is Hallpass's default
    /// audience (`HALLPASS_AUDIENCE`).
    #[arg(long, env = "BEER_LOCKER_AUDIENCE")]
    pub audience: Option<String>,
    /// Address and port to listen on; port 0 picks a free port.
    #[arg(long, env = "BEER_LOCKER_BIND", default_value = "127.0.0.1:4000")]
    pub bind: String,
    /// Public base URL of this service, its RFC 9728 resource identifier (for example
    /// https://beers.example.com). Defaults to http:// and the bound address.
    #[arg(long, env = "BEER_LOCKER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Redis URL (`redis://`, `redis+unix://`; `rediss://` is refused: no TLS in this build).
    /// Unset: the in-memory store, which keeps nothing across restarts.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key of the beer locker.
    #[arg(long, env = "BEER_LOCKER_REDIS_PREFIX", default_value = "beer-locker:")]
    pub redis_prefix: String,
}

/// The validated configuration of the beer locker.
#[derive(Clone)]
pub struct BeerLockerConfig {
    /// Accepted issuer (`BEER_LOCKER_ISSUER`).
    pub issuer: String,
    /// Required audience (`BEER_LOCKER_AUDIENCE`, default the issuer).
    pub audience: String,
    /// Listen address (`BEER_LOCKER_BIND`).
    pub bind: SocketAddr,
    /// Public base URL without a trailing slash (`BEER_LOCKER_PUBLIC_URL`); `None`: from the
    /// bound address.
    pub public_url: Option<String>,
    /// Redis URL (`REDIS_URL`); `None`: memory. May hold a password: never logged.
    pub redis_url: Option<String>,
    /// Redis key prefix (`BEER_LOCKER_REDIS_PREFIX`).
    pub redis_prefix: String,
}

impl std::fmt::Debug for BeerLockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeerLockerConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field(
                "store",
                &if self.redis_url.is_some() {
                    "redis"
                } else {
                    "memory"
                },
            )
            .finish_non_exhaustive()
    }
}

impl BeerLockerConfig {
    /// A configuration for tokens of `issuer` (audience = issuer), on a free loopback port,
    /// memory store: what tests start from.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Self {
            audience: issuer.clone(),
            issuer,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            redis_url: None,
            redis_prefix: "beer-locker:".into(),
        }
    }

    /// Validates the raw settings; the error says which variable to fix and how.
    pub fn from_args(args: BeerLockerArgs) -> Result<Self, ConfigError> {
        let audience = args.audience.unwrap_or_else(|| args.issuer.clone());
        if let Err(e) = Verifier::new(&args.issuer, &audience) {
            return Err(ConfigError(match e {
                BuildError::Audience => {
                    "BEER_LOCKER_AUDIENCE / --audience must not be empty".to_string()
                }
                other => format!("BEER_LOCKER_ISSUER / --issuer: {other}"),
            }));
        }
        let bind: SocketAddr = args.bind.parse().map_err(|_| {
            ConfigError(format!(
                "BEER_LOCKER_BIND / --bind is {:?}; give an address and port such as 127.0.0.1:4000 or 0.0.0.0:8080",
                args.bind
            ))
        })?;
        let public_url = match args.public_url.filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => Some(validate_public_url(&raw)?),
        };
        let redis_url = args.redis_url.filter(|u| !u.is_empty());
        if let Some(url) = &redis_url {
            if url.starts_with("rediss://") {
                return Err(ConfigError(
                    "REDIS_URL: rediss:// (TLS) is not supported by this build; use redis:// on a trusted network, or a local TLS tunnel such as stunnel".into(),
                ));
            }
            if !["redis://", "redis+unix://", "unix://"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(ConfigError(
                    "REDIS_URL / --redis-url must start with redis:// or redis+unix:// (or be unset for the memory store)".into(),
                ));
            }
        }
        Ok(Self {
            issuer: args.issuer,
            audience,
            bind,
            public_url,
            redis_url,
            redis_prefix: args.redis_prefix,
        })
    }

    /// The store this configuration selects: Redis when `REDIS_URL` is set, else memory.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match &self.redis_url {
            Some(url) => Arc::new(RedisStore::new(url, &self.redis_prefix)?),
            None => Arc::new(MemoryStore::new()),
        })
    }
}

fn validate_public_url(raw: &str) -> Result<String, ConfigError> {
    let fix = "BEER_LOCKER_PUBLIC_URL / --public-url must be an https URL with no path, query or fragment, such as https://beers.example.com (http is allowed on 127.0.0.1, [::1] and localhost)";
    let url =
        Url::parse(raw).map_err(|e| ConfigError(format!("{fix}; {raw:?} does not parse: {e}")))?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url));
    if !secure || url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(ConfigError(format!("{fix}; got {raw:?}")));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

// ---------------------------------------------------------------------------------------
// Domain: lockers in the store (no poem types)
// ---------------------------------------------------------------------------------------

/// A beer as stored and as shown.
#[derive(Object, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Beer {
    /// Stable id, unique within the owner's locker.
    pub id: String,
    /// The beer's name.
    pub name: String,
    /// What kind of beer it is (lager, stout, ...).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub kind: String,
    /// How many the locker holds.
    pub quantity: u32,
    /// When it was added (Unix seconds).
    pub created_at: u64,
    /// When it was last changed (Unix seconds).
    pub updated_at: u64,
}

/// A beer as the caller sends it, for `POST` (add) and `PUT` (replace).
#[derive(Object, Debug, Clone)]
#[oai(deny_unknown_fields)]
pub struct BeerInput {
    /// 1 to 100 characters, no control characters; surrounding spaces are dropped.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// 1 to 50 characters, no control characters; surrounding spaces are dropped.
    #[oai(rename = "type", validator(min_length = 1, max_length = 50))]
    pub kind: String,
    /// 0 to 10000.
    #[oai(validator(maximum(value = "10000")))]
    pub quantity: u32,
}

/// A validated [`BeerInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeerDraft {
    name: String,
    kind: String,
    quantity: u32,
}

impl BeerDraft {
    /// Checks lengths, characters and range; the error names the field.
    pub fn parse(input: BeerInput) -> Result<Self, OAuthError> {
        let text = |field: &str, value: &str, max: usize| {
            let value = value.trim();
            let chars = value.chars().count();
            if chars == 0 || chars > max || value.chars().any(char::is_control) {
                return Err(OAuthError::invalid_request(format!(
                    "{field} must be 1 to {max} characters without control characters"
                )));
            }
            Ok(value.to_string())
        };
        if input.quantity > MAX_QUANTITY {
            return Err(OAuthError::invalid_request(format!(
                "quantity must be between 0 and {MAX_QUANTITY}"
            )));
        }
        Ok(Self {
            name: text("name", &input.name, MAX_NAME_CHARS)?,
            kind: text("type", &input.kind, MAX_TYPE_CHARS)?,
            quantity: input.quantity,
        })
    }
}

/// One user's beers: one store key.
#[derive(Debug, Default, Serialize, Deserialize)]
struct LockerDoc {
    beers: Vec<Beer>,
}

/// Everything the beer locker needs at request time. Cheap to clone.
#[derive(Clone)]
pub struct BeerLocker {
    /// The resource identifier (public base URL, no trailing slash).
    pub resource: String,
    /// Verifies access tokens against the issuer's JWKS.
    pub verifier: Verifier,
    /// Where lockers live.
    pub store: Arc<dyn Store>,
    /// Timestamps of beers.
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BeerLocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeerLocker")
            .field("resource", &self.resource)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

fn not_found() -> OAuthError {
    OAuthError::not_found("no beer with this id in your locker")
}

fn is_beer_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl BeerLocker {
    /// The RFC 9728 metadata URL of `resource` (which has no path).
    pub fn metadata_url(resource: &str) -> String {
        format!("{}{METADATA_PATH}", resource.trim_end_matches('/'))
    }

    fn key(owner: &str) -> String {
        format!("locker:{owner}")
    }

    async fn load(&self, owner: &str) -> Result<LockerDoc, OAuthError> {
        let bytes = self.store.get(&Self::key(owner)).await?;
        Ok(decode_doc(bytes.as_deref())?)
    }

    /// Applies `change` to the owner's locker atomically (compare-and-swap, retried when
    /// another request changed the locker meanwhile).
    async fn update<R>(
        &self,
        owner: &str,
        mut change: impl FnMut(&mut LockerDoc) -> Result<R, OAuthError>,
    ) -> Result<R, OAuthError> {
        let key = Self::key(owner);
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Another request won the race: back off a random 0–15 ms so that a crowd of
                // writers to one locker spreads out instead of colliding again.
                let jitter = u64::from(random_bytes::<1>()[0] % 16);
                tokio::time::sleep(Duration::from_millis(jitter)).await;
            }
            let current = self.store.get(&key).await?;
            let mut doc = decode_doc(current.as_deref())?;
            let out = change(&mut doc)?;
            let new = if doc.beers.is_empty() {
                None
            } else {
                Some(serde_json::to_vec(&doc).map_err(|e| OAuthError::internal(&e))?)
            };
            let written = match (&current, &new) {
                (None, None) => true,
                (None, Some(new)) => self.store.put_new(&key, new, None).await?,
                (Some(cur), new) => {
                    self.store
                        .compare_and_swap(&key, cur, new.as_deref(), None)
                        .await?
                }
            };
            if written {
                return Ok(out);
            }
        }
        tracing::warn!(
            attempts = CAS_ATTEMPTS,
            "a locker kept changing under this request; giving up"
        );
        Err(OAuthError::unavailable())
    }

    /// Every beer of `owner`, oldest first.
    pub async fn list(&self, owner: &str) -> Result<Vec<Beer>, OAuthError> {
        Ok(self.load(owner).await?.beers)
    }

    /// One beer of `owner`.
    pub async fn get(&self, owner: &str, id: &str) -> Result<Beer, OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        self.load(owner)
            .await?
            .beers
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(not_found)
    }

    /// Adds a beer to `owner`'s locker.
    pub async fn add(&self, owner: &str, draft: BeerDraft) -> Result<Beer, OAuthError> {
        let now = self.clock.now();
        let beer = Beer {
            id: random_id(),
            name: draft.name,
            kind: draft.kind,
            quantity: draft.quantity,
            created_at: now,
            updated_at: now,
        };
        self.update(owner, |doc| {
            if doc.beers.len() >= MAX_BEERS {
                return Err(OAuthError::new(
                    ErrorCode::Conflict,
                    format!("a locker holds at most {MAX_BEERS} beers; remove one first"),
                ));
            }
            doc.beers.push(beer.clone());
            Ok(())
        })
        .await?;
        Ok(beer)
    }

    /// Replaces the name, type and quantity of one of `owner`'s beers.
    pub async fn replace(
        &self,
        owner: &str,
        id: &str,
        draft: BeerDraft,
    ) -> Result<Beer, OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        let now = self.clock.now();
        self.update(owner, |doc| {
            let beer = doc
                .beers
                .iter_mut()
                .find(|b| b.id == id)
                .ok_or_else(not_found)?;
            beer.name.clone_from(&draft.name);
            beer.kind.clone_from(&draft.kind);
            beer.quantity = draft.quantity;
            beer.updated_at = now;
            Ok(beer.clone())
        })
        .await
    }

    /// Removes one of `owner`'s beers.
    pub async fn remove(&self, owner: &str, id: &str) -> Result<(), OAuthError> {
        if !is_beer_id(id) {
            return Err(not_found());
        }
        self.update(owner, |doc| {
            let before = doc.beers.len();
            doc.beers.retain(|b| b.id != id);
            if doc.beers.len() == before {
                Err(not_found())
            } else {
                Ok(())
            }
        })
        .await
    }
}

fn decode_doc(bytes: Option<&[u8]>) -> Result<LockerDoc, StoreError> {
    match bytes {
        None => Ok(LockerDoc::default()),
        Some(b) => serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string())),
    }
}

// ---------------------------------------------------------------------------------------
// HTTP: handlers translate
// ---------------------------------------------------------------------------------------

/// Requires `beers:read`.
#[derive(Debug, Clone, Copy)]
pub struct BeersRead;

impl RequiredScopes for BeersRead {
    const SCOPES: &'static [&'static str] = &[SCOPE_READ];
}

/// Requires `beers:write`.
#[derive(Debug, Clone, Copy)]
pub struct BeersWrite;

impl RequiredScopes for BeersWrite {
    const SCOPES: &'static [&'static str] = &[SCOPE_WRITE];
}

/// Operation groups in the spec.
#[derive(Tags)]
pub enum BeerTags {
    /// The caller's beers.
    Beers,
    /// Metadata and probes.
    Discovery,
}

/// `POST /api/beers` result.
#[derive(ApiResponse)]
pub enum BeerCreated {
    /// The beer was added; `Location` is its URL.
    #[oai(status = 201)]
    Created(Json<Beer>, #[oai(header = "Location")] String),
}

/// `GET /api/beers` result.
#[derive(ApiResponse)]
pub enum BeerList {
    /// The caller's beers, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<Beer>>),
}

/// `GET` and `PUT /api/beers/{beer_id}` result.
#[derive(ApiResponse)]
pub enum BeerFound {
    /// The beer.
    #[oai(status = 200)]
    Ok(Json<Beer>),
}

/// `DELETE /api/beers/{beer_id}` result.
#[derive(ApiResponse)]
pub enum BeerDeleted {
    /// The beer was removed.
    #[oai(status = 204)]
    NoContent,
}

/// The beers API.
pub struct BeersApi {
    /// Shared state.
    pub locker: BeerLocker,
}

#[OpenApi]
impl BeersApi {
    /// Add a beer
    ///
    /// Requires scope `beers:write`. The beer belongs to the token's subject.
    #[oai(
        path = "/api/beers",
        method = "post",
        operation_id = "createBeer",
        tag = "BeerTags::Beers"
    )]
    #[tracing::instrument(skip_all, fields(sub = %auth.sub))]
    async fn create(
        &self,
        auth: BearerAuth<BeersWrite>,
        body: Json<BeerInput>,
    ) -> Result<BeerCreated, ApiError> {
        let beer = self
            .locker
            .add(&auth.sub, BeerDraft::parse(body.0)?)
            .await?;
        let location = format!("{}/api/beers/{}", self.locker.resource, beer.id);
        Ok(BeerCreated::Created(Json(beer), location))
    }

    /// List your beers
    ///
    /// Requires scope `beers:read`. Only the token subject's beers.
    #[oai(
        path = "/api/beers",
        method = "get",
        operation_id = "listBeers",
        tag = "BeerTags::Beers"
    )]
    #[tracing::instrument(skip_all, fields(sub = %auth.sub))]
    async fn list(&self, auth: BearerAuth<BeersRead>) -> Result<BeerList, ApiError> {
        Ok(BeerList::Ok(Json(self.locker.list(&auth.sub).await?)))
    }

    /// Show a beer
    ///
    /// Requires scope `beers:read`. 404 when the beer does not exist or is someone else's.
    #[oai(
        path = "/api/beers/:beer_id",
        method = "get",
        operation_id = "getBeer",
        tag = "BeerTags::Beers"
    )]
    #[tracing::instrument(skip_all, fields(sub = %auth.sub))]
    async fn get(
        &self,
        auth: BearerAuth<BeersRead>,
        beer_id: Path<String>,
    ) -> Result<BeerFound, ApiError> {
        Ok(BeerFound::Ok(Json(
            self.locker.get(&auth.sub, &beer_id).await?,
        )))
    }

    /// Replace a beer
    ///
    /// Requires scope `beers:write`. Sets name, type and quantity. 404 when the beer does not
    /// exist or is someone else's.
    #[oai(
        path = "/api/beers/:beer_id",
        method = "put",
        operation_id = "replaceBeer",
        tag = "BeerTags::Beers"
    )]
    #[tracing::instrument(skip_all, fields(sub = %auth.sub))]
    async fn replace(
        &self,
        auth: BearerAuth<BeersWrite>,
        beer_id: Path<String>,
        body: Json<BeerInput>,
    ) -> Result<BeerFound, ApiError> {
        let draft = BeerDraft::parse(body.0)?;
        Ok(BeerFound::Ok(Json(
            self.locker.replace(&auth.sub, &beer_id, draft).await?,
        )))
    }

    /// Remove a beer
    ///
    /// Requires scope `beers:write`. 404 when the beer does not exist or is someone else's.
    #[oai(
        path = "/api/beers/:beer_id",
        method = "delete",
        operation_id = "deleteBeer",
        tag = "BeerTags::Beers"
    )]
    #[tracing::instrument(skip_all, fields(sub = %auth.sub))]
    async fn delete(
        &self,
        auth: BearerAuth<BeersWrite>,
        beer_id: Path<String>,
    ) -> Result<BeerDeleted, ApiError> {
        self.locker.remove(&auth.sub, &beer_id).await?;
        Ok(BeerDeleted::NoContent)
    }
}

/// RFC 9728 §2 protected-resource metadata.
#[derive(Object, Debug, Clone)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier.
    pub resource: String,
    /// Issuers whose access tokens this resource accepts.
    pub authorization_servers: Vec<String>,
    /// Scopes this resource understands.
    pub scopes_supported: Vec<String>,
    /// How to send the token: in the `Authorization` header only.
    pub bearer_methods_supported: Vec<String>,
    /// Human-readable name.
    pub resource_name: String,
    /// Human-readable documentation (Swagger UI).
    pub resource_documentation: String,
}

/// Metadata response.
#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The metadata document, cacheable.
    #[oai(status = 200)]
    Ok(
        Json<ProtectedResourceMetadata>,
        #[oai(header = "Cache-Control")] String,
    ),
}

/// Probe response.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The process serves requests.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

/// Metadata and probes.
pub struct ResourceApi {
    /// Shared state.
    pub locker: BeerLocker,
}

#[OpenApi]
impl ResourceApi {
    /// Protected-resource metadata
    ///
    /// RFC 9728: this resource, the authorization server whose tokens it accepts, and its
    /// scopes. Every 401 points here.
    #[oai(
        path = "/.well-known/oauth-protected-resource",
        method = "get",
        operation_id = "protectedResourceMetadata",
        tag = "BeerTags::Discovery"
    )]
    async fn metadata(&self) -> MetadataResponse {
        let resource = self.locker.resource.clone();
        MetadataResponse::Ok(
            Json(ProtectedResourceMetadata {
                authorization_servers: vec![self.locker.verifier.issuer().to_string()],
                scopes_supported: vec![SCOPE_READ.into(), SCOPE_WRITE.into()],
                bearer_methods_supported: vec!["header".into()],
                resource_name: "Beer Locker".into(),
                resource_documentation: format!("{resource}/docs"),
                resource,
            }),
            "public, max-age=3600".into(),
        )
    }

    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(
        path = "/healthz",
        method = "get",
        operation_id = "healthz",
        tag = "BeerTags::Discovery"
    )]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".into(),
        }))
    }
}

/// The OpenAPI service of the beer locker; the server and any spec dump use this.
pub fn build_openapi(locker: &BeerLocker) -> OpenApiService<(BeersApi, ResourceApi), ()> {
    OpenApiService::new(
        (
            BeersApi {
                locker: locker.clone(),
            },
            ResourceApi {
                locker: locker.clone(),
            },
        ),
        "Beer Locker",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "The tutorial's beer API as a separate resource server. Send a Hallpass access token as \
         `Authorization: Bearer`; it is verified offline against the issuer's JWKS. Reads need \
         scope `beers:read`, writes `beers:write`.",
    )
    .server(locker.resource.clone())
}

/// Every route: the API (RFC-shaped JSON errors, `no-store`), Swagger UI, the spec, behind
/// the body limit, with the verifier in the request data for [`BearerAuth`].
pub fn build_app(locker: BeerLocker) -> impl Endpoint {
    let api = build_openapi(&locker);
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let ui = api.swagger_ui();
    Route::new()
        .nest("/", api.with(rfc_errors(Challenge::Bearer)))
        .nest("/docs", ui)
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .with(BodyLimit(
            MAX_BODY_BYTES,
            crate::server::DEFAULT_BODY_READ_TIMEOUT,
        ))
        .data(locker.verifier.clone())
}

/// Why the beer locker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BeerLockerError {
    /// Binding failed.
    #[error("cannot listen on {addr}: {source}; set BEER_LOCKER_BIND / --bind to a free address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The verifier could not be built.
    #[error("BEER_LOCKER_ISSUER / BEER_LOCKER_AUDIENCE: {0}")]
    Verifier(#[from] BuildError),
}

/// A bound, ready-to-run beer locker.
pub struct BeerLockerServer {
    addr: SocketAddr,
    locker: BeerLocker,
    acceptor: TcpAcceptor,
    app: poem::endpoint::BoxEndpoint<'static, Response>,
}

impl BeerLockerServer {
    /// Binds `config.bind`, then builds the verifier and routes knowing the bound port.
    pub async fn bind(
        config: &BeerLockerConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, BeerLockerError> {
        let acceptor = TcpListener::bind(config.bind)
            .into_acceptor()
            .await
            .map_err(|source| BeerLockerError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(config.bind);
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
        let verifier = Verifier::builder(&config.issuer, &config.audience)
            .resource_metadata(BeerLocker::metadata_url(&resource))
            .clock(Arc::clone(&clock))
            .build()?;
        let locker = BeerLocker {
            resource,
            verifier,
            store,
            clock,
        };
        let app = build_app(locker.clone()).map_to_response().boxed();
        Ok(Self {
            addr,
            locker,
            acceptor,
            app,
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

    /// Serves until the process is stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        Server::new_with_acceptor(self.acceptor).run(self.app).await
    }

    /// Serves until `signal` resolves, then drains in-flight requests.
    pub async fn run_with_shutdown(
        self,
        signal: impl std::future::Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(self.app, signal, Some(Duration::from_secs(10)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, kind: &str, quantity: u32) -> BeerInput {
        BeerInput {
            name: name.into(),
            kind: kind.into(),
            quantity,
        }
    }

    #[test]
    fn drafts_trim_and_bound_their_fields() {
        let ok =
            BeerDraft::parse(input("  Orval ", "trappist", 6)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok,
            BeerDraft {
                name: "Orval".into(),
                kind: "trappist".into(),
                quantity: 6
            }
        );
        assert!(BeerDraft::parse(input("   ", "ale", 1)).is_err());
        assert!(BeerDraft::parse(input(&"x".repeat(101), "ale", 1)).is_err());
        assert!(
            BeerDraft::parse(input(&"é".repeat(100), "ale", 1)).is_ok(),
            "characters, not bytes"
        );
        assert!(BeerDraft::parse(input("a\u{0}b", "ale", 1)).is_err());
        assert!(BeerDraft::parse(input("a", "ale", MAX_QUANTITY + 1)).is_err());
    }

    #[test]
    fn public_urls_are_origins() {
        assert_eq!(
            validate_public_url("https://beers.example/")
                .ok()
                .as_deref(),
            Some("https://beers.example")
        );
        assert!(validate_public_url("http://127.0.0.1:4000").is_ok());
        assert!(validate_public_url("http://beers.example").is_err());
        assert!(validate_public_url("https://beers.example/api").is_err());
    }

    fn args(issuer: &str) -> BeerLockerArgs {
        BeerLockerArgs {
            issuer: issuer.into(),
            audience: None,
            bind: "127.0.0.1:4000".into(),
            public_url: None,
            redis_url: None,
            redis_prefix: "beer-locker:".into(),
        }
    }

    #[test]
    fn configuration_defaults_the_audience_to_the_issuer_and_names_the_variable_to_fix() {
        let config = BeerLockerConfig::from_args(args("http://127.0.0.1:3000"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.audience, "http://127.0.0.1:3000");
        let err = |a: BeerLockerArgs| {
            BeerLockerConfig::from_args(a)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(args("http://auth.example")).contains("BEER_LOCKER_ISSUER"));
        assert!(
            err(BeerLockerArgs {
                bind: "4000".into(),
                ..args("https://auth.example")
            })
            .contains("BEER_LOCKER_BIND")
        );
        let rediss = BeerLockerArgs {
            redis_url: Some("rediss://r:6380".into()),
            ..args("https://auth.example")
        };
        assert!(err(rediss).contains("rediss://"));
        let public = BeerLockerArgs {
            public_url: Some("https://beers.example/v1".into()),
            ..args("https://auth.example")
        };
        assert!(err(public).contains("BEER_LOCKER_PUBLIC_URL"));
    }

    #[test]
    fn beer_ids_are_short_url_safe_tokens() {
        assert!(is_beer_id(&random_id()));
        assert!(!is_beer_id(""));
        assert!(!is_beer_id("../x"));
        assert!(!is_beer_id(&"a".repeat(65)));
    }
}
