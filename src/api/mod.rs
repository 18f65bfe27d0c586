//! The JSON API, declared with poem-openapi so the spec is generated from the handlers.
//!
//! Handlers translate: they parse input, call one `oauth::` function, and map the result.
//! [`build_openapi`] is the single source of the spec: the server, the `hallpass openapi`
//! command and the drift test all call it, through [`spec`], which adds the `oauth2` scheme
//! from the configuration (issuer URLs, offered scopes). [`extractors`] holds the management API's caller
//! extractor; errors become responses in [`crate::error`].

pub mod allow;
pub mod clients;
pub mod consents;
pub mod cors;
pub mod discovery;
pub mod extractors;
pub mod registration;
pub mod revocation;
pub mod security;
pub mod sessions;
pub mod token;
pub mod userinfo;
pub mod users;
pub mod values;

use poem_openapi::{OpenApiService, Tags};

use crate::{
    docs::spec::{OAuth2Scheme, Spec},
    state::AppState,
};

/// Operation groups in the spec.
#[derive(Tags)]
pub enum ApiTags {
    // Named `Protocol`, a word, so that SDK generators make a clean module name of it
    // ("OAuth 2.0" became `o_auth_2_0`).
    /// OAuth 2.0 and OpenID Connect protocol endpoints.
    #[oai(rename = "Protocol")]
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
    registration::RegistrationApi,
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
            registration::RegistrationApi { state: state.clone() },
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

/// The `oauth2` scheme of Hallpass's spec: its own endpoints and offered scopes.
pub fn oauth2_scheme(state: &AppState) -> OAuth2Scheme {
    let c = &state.config;
    OAuth2Scheme {
        description: "Hallpass access tokens. In Swagger UI, Authorize signs in with the built-in \
                      docs client (authorization code with PKCE); the management API needs \
                      `hallpass:manage`, which only first-party clients are granted. Client \
                      credentials tokens name a client, not a user, so the user API refuses them."
            .into(),
        authorization_url: c.url("/oauth2/authorize"),
        token_url: c.url("/oauth2/token"),
        scopes: c
            .scopes
            .iter()
            .map(|s| (s.name.clone(), s.description.clone()))
            .collect(),
        client_credentials: true,
    }
}

/// The spec Hallpass serves and commits: [`build_openapi`] plus [`oauth2_scheme`].
/// The limits and required fields the protocol core enforces are stated here, from its own
/// constants, rather than as poem-openapi validators, which would refuse with their own
/// message before the core could answer with its RFC error.
pub fn spec(state: &AppState) -> Result<Spec, serde_yaml::Error> {
    use crate::oauth::{client, passwords, username};
    let n = |v: usize| serde_yaml::Value::Number(v.into());
    Ok(
        Spec::new(&build_openapi(state).spec_yaml(), &oauth2_scheme(state))?
            .property("NewUser", "username", "minLength", n(1))
            .property(
                "NewUser",
                "username",
                "maxLength",
                n(username::MAX_USERNAME_CHARS),
            )
            .property(
                "NewUser",
                "password",
                "minLength",
                n(passwords::MIN_PASSWORD_CHARS),
            )
            // maxLength counts characters; the limit is in bytes (see the field's docs).
            .property(
                "NewUser",
                "password",
                "maxLength",
                n(passwords::MAX_PASSWORD_BYTES),
            )
            .example("NewUser", "password", users::EXAMPLE_PASSWORD.into())
            .require("ClientRegistration", "client_name")
            .property("ClientRegistration", "client_name", "minLength", n(1))
            .property(
                "ClientRegistration",
                "client_name",
                "maxLength",
                n(client::MAX_CLIENT_NAME_CHARS),
            )
            .property(
                "ClientRegistration",
                "client_name",
                "pattern",
                crate::http::text::DISPLAY_NAME_PATTERN.into(),
            )
            .require("TokenForm", "grant_type")
            .require("TokenHintForm", "token"),
    )
}
