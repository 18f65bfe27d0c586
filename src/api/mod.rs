//! The JSON API, declared with poem-openapi so the spec is generated from the handlers.
//!
//! Handlers translate: they parse input, call one `oauth::` function, and map the result.
//! [`build_openapi`] is the single source of the spec: the server, the `hallpass openapi`
//! command and the drift test all call it. [`extractors`] holds the management API's caller
//! extractor; errors become responses in [`crate::error`].

pub mod allow;
pub mod clients;
pub mod consents;
pub mod cors;
pub mod discovery;
pub mod extractors;
pub mod revocation;
pub mod security;
pub mod sessions;
pub mod token;
pub mod userinfo;
pub mod users;

use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

/// Operation groups in the spec.
#[derive(Tags)]
pub enum ApiTags {
    /// OAuth 2.0 protocol endpoints.
    #[oai(rename = "OAuth 2.0")]
    OAuth2,
    /// Metadata and keys.
    Discovery,
    /// User accounts.
    Users,
    /// Application clients owned by a user.
    Clients,
    /// Probes.
    Health,
}

/// All API operations.
pub type Apis = (
    token::TokenApi,
    revocation::RevocationApi,
    discovery::DiscoveryApi,
    users::UsersApi,
    clients::ClientsApi,
    consents::ConsentsApi,
    userinfo::UserInfoApi,
    sessions::SessionsApi,
);

/// The OpenAPI service of every JSON endpoint.
pub fn build_openapi(state: &AppState) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            token::TokenApi { state: state.clone() },
            revocation::RevocationApi { state: state.clone() },
            discovery::DiscoveryApi { state: state.clone() },
            users::UsersApi { state: state.clone() },
            clients::ClientsApi { state: state.clone() },
            consents::ConsentsApi { state: state.clone() },
            userinfo::UserInfoApi { state: state.clone() },
            sessions::SessionsApi { state: state.clone() },
        ),
        "Hallpass",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "An OAuth 2.0 authorization server that issues RFC 9068 JWT access tokens, verified offline through its JWKS. \
         The browser endpoints (/oauth2/authorize, /login, /logout) are HTML pages and are not part of this spec.",
    )
    .server(state.config.issuer.clone())
}
