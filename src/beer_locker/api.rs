//! The beer locker's HTTP surface: the OpenAPI service (beers, RFC 9728 metadata, health),
//! whose handlers translate between HTTP and [`BeerLocker`] and decide nothing.

use poem_openapi::{
    ApiResponse, Object, OpenApi, OpenApiService, Tags, param::Path, payload::Json,
};

use super::{
    SCOPE_READ, SCOPE_WRITE,
    locker::{Beer, BeerDraft, BeerInput, BeerLocker},
};
use crate::{
    api::discovery::Health,
    docs::spec::{OAuth2Scheme, Spec},
    error::Errors,
    verify::{BearerAuth, RequiredScopes},
};

/// Requires `beers:read`.
#[derive(Debug, Clone, Copy)]
pub struct BeersRead;

impl RequiredScopes for BeersRead {
    const SCOPES: &'static [&'static str] = &[SCOPE_READ];
    const OPENAPI_REQUIREMENT: Option<&'static str> = Some("oauth2#beers:read");
}

/// Requires `beers:write`.
#[derive(Debug, Clone, Copy)]
pub struct BeersWrite;

impl RequiredScopes for BeersWrite {
    const SCOPES: &'static [&'static str] = &[SCOPE_WRITE];
    const OPENAPI_REQUIREMENT: Option<&'static str> = Some("oauth2#beers:write");
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

crate::error_statuses! {
    /// Errors of a read: the bearer token (400 for a repeated `Authorization` header, 401,
    /// 403 without the scope) and the store.
    pub ReadErrors = [400, 401, 403, 500, 503];
    /// Errors of a read of one beer: also 404.
    pub ReadOneErrors = [400, 401, 403, 404, 500, 503];
    /// Errors of adding a beer: also the body, and a full locker (409).
    pub CreateErrors = [400, 401, 403, 409, 413, 415, 500, 503];
    /// Errors of replacing a beer: the body and 404.
    pub ReplaceErrors = [400, 401, 403, 404, 413, 415, 500, 503];
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
    ) -> Result<BeerCreated, Errors<CreateErrors>> {
        let beer = self
            .locker
            .add(&auth.sub, BeerDraft::parse(&body.0)?)
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
    async fn list(&self, auth: BearerAuth<BeersRead>) -> Result<BeerList, Errors<ReadErrors>> {
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
    ) -> Result<BeerFound, Errors<ReadOneErrors>> {
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
    ) -> Result<BeerFound, Errors<ReplaceErrors>> {
        let draft = BeerDraft::parse(&body.0)?;
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
    ) -> Result<BeerDeleted, Errors<ReadOneErrors>> {
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

/// The beer locker's spec: [`build_openapi`] plus an `oauth2` scheme at its issuer. The
/// endpoint paths are Hallpass's (`/oauth2/authorize`, `/oauth2/token`), the issuer this
/// tutorial service is built for.
pub fn spec(locker: &BeerLocker) -> Result<Spec, serde_yaml::Error> {
    let issuer = locker.verifier.issuer().trim_end_matches('/');
    let scheme = OAuth2Scheme {
        description: format!(
            "Access tokens of {issuer}. Reads need `{SCOPE_READ}`, writes `{SCOPE_WRITE}`."
        ),
        authorization_url: format!("{issuer}/oauth2/authorize"),
        token_url: format!("{issuer}/oauth2/token"),
        scopes: vec![
            (
                SCOPE_READ.into(),
                "See the beers in your beer locker".into(),
            ),
            (
                SCOPE_WRITE.into(),
                "Add beers to your beer locker and change or remove them".into(),
            ),
        ],
        client_credentials: false,
    };
    Ok(Spec::new(&build_openapi(locker).spec_yaml(), &scheme)?.closed("BeerInput"))
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
