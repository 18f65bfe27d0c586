//! Discovery: RFC 8414 metadata, OpenID Connect discovery, and the JWKS (RFC 7517), plus
//! liveness and readiness probes.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Json};

use crate::{
    api::ApiTags, crypto::sha256_b64, http::challenge::RETRY_AFTER, oauth::grant_type::GrantType,
    state::AppState,
};

/// Authorization-server metadata (RFC 8414 §2), also served as OpenID Connect discovery.
#[derive(Object, Debug, Clone)]
pub struct Metadata {
    /// The issuer identifier.
    pub issuer: String,
    /// The authorization endpoint.
    pub authorization_endpoint: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The JWKS.
    pub jwks_uri: String,
    /// OpenID Connect UserInfo endpoint.
    pub userinfo_endpoint: String,
    /// RFC 7009 revocation endpoint.
    pub revocation_endpoint: String,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// Client authentication methods at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication methods at the introspection endpoint.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// Supported `response_type` values.
    pub response_types_supported: Vec<String>,
    /// Supported `response_mode` values.
    pub response_modes_supported: Vec<String>,
    /// Supported grant types.
    pub grant_types_supported: Vec<String>,
    /// Supported client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Supported PKCE methods: S256 only.
    pub code_challenge_methods_supported: Vec<String>,
    /// Offered scopes.
    pub scopes_supported: Vec<String>,
    /// RFC 9207: authorization responses carry `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    /// OpenID Connect: subject identifier types.
    pub subject_types_supported: Vec<String>,
    /// OpenID Connect: ID-token signing algorithms.
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Human-readable documentation (Swagger UI).
    pub service_documentation: String,
    /// RFC 7591 registration endpoint; present only when `HALLPASS_DYNAMIC_CLIENTS` is not
    /// `off`.
    #[oai(skip_serializing_if_is_none)]
    pub registration_endpoint: Option<String>,
    /// Hallpass extension: the revocation feed (`GET`), which resource servers verifying
    /// tokens offline poll to refuse revoked tokens (`hallpass::verify` does).
    pub hallpass_revocation_feed_endpoint: String,
    /// draft-ietf-oauth-client-id-metadata-document: a `client_id` may be an https URL
    /// serving the client's metadata; true when `HALLPASS_CLIENT_ID_METADATA_DOCUMENTS` is `on`.
    pub client_id_metadata_document_supported: bool,
}

/// One public key (RFC 7517 §4) and a JWK Set (§5): the one JWK type, from [`crate::jose`].
pub use crate::jose::{Jwk, Jwks};

/// JWKS responses.
#[derive(ApiResponse)]
pub enum JwksResponse {
    /// The key set, cacheable for `max-age` seconds.
    #[oai(status = 200)]
    Ok(
        Json<Jwks>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "ETag")] String,
    ),
    /// The key set has not changed since the given `ETag`.
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "ETag")] String,
    ),
}

/// Metadata responses.
#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The metadata document.
    #[oai(status = 200)]
    Ok(Json<Metadata>, #[oai(header = "Cache-Control")] String),
}

/// Health check result.
#[derive(Object, Debug)]
pub struct Health {
    /// `ok`, or what is wrong.
    pub status: String,
}

/// Probe responses.
#[derive(ApiResponse)]
pub enum HealthResponse {
    /// Healthy.
    #[oai(status = 200)]
    Ok(Json<Health>),
    /// Not ready: the store is unreachable or no key can sign.
    #[oai(status = 503)]
    Unavailable(Json<Health>, #[oai(header = "Retry-After")] String),
}

/// Discovery and health endpoints.
pub struct DiscoveryApi {
    /// Shared state.
    pub state: AppState,
}

impl DiscoveryApi {
    /// The algorithms of the keys that may sign now or soon (next, active).
    fn signing_algs(&self) -> Vec<String> {
        let keys = self.state.keys();
        let now = self.state.now();
        let mut algs: Vec<String> = keys
            .all()
            .iter()
            .filter(|k| {
                keys.state_of(k, now, self.state.config.access_token_ttl)
                    .is_published()
            })
            .map(|k| k.meta.alg.as_str().to_string())
            .collect();
        algs.sort();
        algs.dedup();
        algs
    }

    fn metadata(&self) -> Metadata {
        let c = &self.state.config;
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Metadata {
            issuer: c.issuer.clone(),
            authorization_endpoint: c.url("/oauth2/authorize"),
            token_endpoint: c.url("/oauth2/token"),
            jwks_uri: c.url("/.well-known/jwks.json"),
            userinfo_endpoint: c.url("/userinfo"),
            revocation_endpoint: c.url("/oauth2/revoke"),
            introspection_endpoint: c.url("/oauth2/introspect"),
            revocation_endpoint_auth_methods_supported: strs(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            introspection_endpoint_auth_methods_supported: strs(&[
                "client_secret_basic",
                "client_secret_post",
            ]),
            response_types_supported: strs(&["code"]),
            response_modes_supported: strs(&["query"]),
            grant_types_supported: GrantType::ALL
                .iter()
                .map(|g| g.as_str().to_string())
                .collect(),
            token_endpoint_auth_methods_supported: strs(&[
                "client_secret_basic",
                "client_secret_post",
                "none",
            ]),
            code_challenge_methods_supported: strs(&["S256"]),
            scopes_supported: c.scopes.iter().map(|s| s.name.clone()).collect(),
            authorization_response_iss_parameter_supported: true,
            subject_types_supported: strs(&["public"]),
            id_token_signing_alg_values_supported: self.signing_algs(),
            service_documentation: c.url("/docs"),
            registration_endpoint: (c.dynamic_clients != crate::config::DynamicClients::Off)
                .then(|| c.url("/oauth2/register")),
            hallpass_revocation_feed_endpoint: c.url("/oauth2/revocations"),
            client_id_metadata_document_supported: c.cimd.enabled,
        }
    }
}

#[OpenApi]
impl DiscoveryApi {
    /// Authorization-server metadata
    ///
    /// RFC 8414: the issuer, every endpoint, and what this server supports.
    #[oai(
        path = "/.well-known/oauth-authorization-server",
        method = "get",
        operation_id = "oauthMetadata",
        tag = "ApiTags::Discovery"
    )]
    async fn oauth_metadata(&self) -> MetadataResponse {
        MetadataResponse::Ok(
            Json(self.metadata()),
            format!("public, max-age={}", self.state.config.jwks_max_age),
        )
    }

    /// OpenID Connect discovery
    ///
    /// The same facts as the RFC 8414 document, at the OpenID Connect Discovery 1.0 location.
    #[oai(
        path = "/.well-known/openid-configuration",
        method = "get",
        operation_id = "openidConfiguration",
        tag = "ApiTags::Discovery"
    )]
    async fn openid_configuration(&self) -> MetadataResponse {
        MetadataResponse::Ok(
            Json(self.metadata()),
            format!("public, max-age={}", self.state.config.jwks_max_age),
        )
    }

    /// Public signing keys
    ///
    /// The JWK Set resource servers verify access tokens with. Cache it for `max-age`
    /// seconds; on a token with an unknown `kid`, fetch it again. Supports `If-None-Match`.
    #[oai(
        path = "/.well-known/jwks.json",
        method = "get",
        operation_id = "jwks",
        tag = "ApiTags::Discovery"
    )]
    async fn jwks(
        &self,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> JwksResponse {
        let doc = self
            .state
            .keys()
            .jwks(self.state.now(), self.state.config.access_token_ttl);
        let etag = format!("\"{}\"", sha256_b64(doc.to_string().as_bytes()));
        let cache = format!("public, max-age={}", self.state.config.jwks_max_age);
        if if_none_match
            .0
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
        {
            return JwksResponse::NotModified(cache, etag);
        }
        JwksResponse::Ok(Json(doc), cache, etag)
    }

    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(
        path = "/healthz",
        method = "get",
        operation_id = "healthz",
        tag = "ApiTags::Health"
    )]
    async fn healthz(&self) -> HealthResponse {
        HealthResponse::Ok(Json(Health {
            status: "ok".into(),
        }))
    }

    /// Readiness
    ///
    /// 200 when the store answers and a key can sign; 503 otherwise.
    #[oai(
        path = "/readyz",
        method = "get",
        operation_id = "readyz",
        tag = "ApiTags::Health"
    )]
    async fn readyz(&self) -> HealthResponse {
        if self.state.signing_key().is_err() {
            return HealthResponse::Unavailable(
                Json(Health {
                    status: "no active signing key".into(),
                }),
                RETRY_AFTER.into(),
            );
        }
        match self.state.store.ping().await {
            Ok(()) => HealthResponse::Ok(Json(Health {
                status: "ok".into(),
            })),
            Err(_) => HealthResponse::Unavailable(
                Json(Health {
                    status: "store unreachable".into(),
                }),
                RETRY_AFTER.into(),
            ),
        }
    }
}
