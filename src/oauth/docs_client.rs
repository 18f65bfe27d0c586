//! `hallpass-docs`: the built-in public client Swagger UI at `/docs` signs in with.
//!
//! It exists without registration: [`crate::oauth::client::get`] resolves its id to
//! [`client`], which is never stored, has no owner (so no user can show, delete or rotate
//! it: those answer 404), and is first-party by construction
//! ([`crate::oauth::first_party::BUILT_IN`]). It is a public client (`none`, so PKCE is
//! required, S256 only) with one redirect URI, `<issuer>/docs/oauth2-redirect.html`, and the
//! authorization-code grant only.

use crate::{
    config::Config,
    oauth::{
        client::{AuthMethod, Client},
        grant_type::GrantType,
        scope::Scope,
    },
};

/// The client id of the docs client.
pub const CLIENT_ID: &str = "hallpass-docs";

/// Its redirect URI's path under the issuer.
pub const REDIRECT_PATH: &str = "/docs/oauth2-redirect.html";

/// The scopes the Authorize dialog selects: sign-in, the username, the management API.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", crate::oauth::users::MANAGE_SCOPE];

/// The docs client under `config`: it may ask for every offered scope except
/// `offline_access` (it has no refresh grant).
pub fn client(config: &Config) -> Client {
    Client {
        client_id: CLIENT_ID.to_string(),
        secret_hash: None,
        owner: String::new(),
        client_name: "Hallpass API documentation (Swagger UI)".to_string(),
        redirect_uris: vec![config.url(REDIRECT_PATH)],
        grant_types: vec![GrantType::AuthorizationCode],
        token_endpoint_auth_method: AuthMethod::None,
        scope: Scope::from_tokens(
            config
                .scopes
                .iter()
                .map(|s| s.name.as_str())
                .filter(|s| *s != crate::oauth::client::OFFLINE_ACCESS),
        ),
        created_at: 0,
        allowed_cors_origins: Vec::new(),
        registration_token_hash: None,
    }
}

/// The scopes of [`DEFAULT_SCOPES`] that `config` offers.
pub fn default_scopes(config: &Config) -> Vec<String> {
    DEFAULT_SCOPES
        .iter()
        .filter(|s| config.scopes.iter().any(|o| o.name == **s))
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_client_is_public_first_party_and_redirects_only_to_the_docs() {
        let config = Config::default();
        let c = client(&config);
        assert!(c.is_public());
        assert_eq!(
            c.redirect_uris,
            [format!("{}{REDIRECT_PATH}", config.issuer)]
        );
        assert!(crate::oauth::first_party::is_first_party(
            &config, CLIENT_ID
        ));
        assert!(c.owner.is_empty());
        assert!(!c.allows_grant(GrantType::RefreshToken));
        assert_eq!(default_scopes(&config), DEFAULT_SCOPES);
    }
}
