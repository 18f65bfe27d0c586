//! Which browser origins may call the token, revocation and UserInfo endpoints of a client
//! (draft-ietf-oauth-browser-based-apps §6, "CORS").
//!
//! A client allows the origins it lists in `allowed_cors_origins`, and a public client also
//! the origins of its redirect URIs. A confidential client allows only what it lists: a
//! browser cannot keep a secret, so by default nothing. The check runs right after the client
//! is identified and before a grant runs, so a refused request neither consumes a code nor
//! rotates a refresh token.
//!
//! [`RequestOrigin`] carries the request's `Origin` in and whether it was allowed back out:
//! the HTTP layer sends `Access-Control-Allow-Origin` only when [`RequestOrigin::check`]
//! passed, so an answer is readable by exactly the origins the client allows.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::oauth::{
    client::Client,
    error::{ErrorCode, OAuthError},
};

/// Most origins one client may list.
pub const MAX_ORIGINS: usize = 20;

/// The `Origin` of a cross-origin browser request, and whether a check allowed it.
#[derive(Debug, Clone)]
pub struct RequestOrigin {
    origin: String,
    allowed: Arc<AtomicBool>,
}

impl RequestOrigin {
    /// A request from `origin`, not (yet) allowed.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            allowed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The origin as sent.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    /// Whether a [`check`](Self::check) passed for this request (seen by every clone).
    pub fn is_allowed(&self) -> bool {
        self.allowed.load(Ordering::SeqCst)
    }

    /// Allows the request when `client` allows the origin; else `unauthorized_client`.
    pub fn check(&self, client: &Client) -> Result<(), OAuthError> {
        if allowed_origins(client).contains(&self.origin) {
            self.allowed.store(true, Ordering::SeqCst);
            return Ok(());
        }
        tracing::info!(client_id = %client.client_id, origin = %self.origin, "request from an origin the client does not allow");
        Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client does not allow requests from this origin: list it in the client's allowed_cors_origins",
        ))
    }
}

/// Checks `origin` against `client` when the request came from another origin; requests
/// without one (server-side clients, same-origin pages) pass.
pub fn check(origin: Option<&RequestOrigin>, client: &Client) -> Result<(), OAuthError> {
    origin.map_or(Ok(()), |o| o.check(client))
}

/// The origins `client` allows: its `allowed_cors_origins`, and for a public client the
/// origins of its http(s) redirect URIs.
pub fn allowed_origins(client: &Client) -> Vec<String> {
    let mut out = client.allowed_cors_origins.clone();
    if client.is_public() {
        out.extend(
            client
                .redirect_uris
                .iter()
                .filter_map(|u| url::Url::parse(u).ok())
                .filter(|u| matches!(u.scheme(), "https" | "http"))
                .filter_map(|u| crate::uri::origin_of(&u)),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Validates a registration's `allowed_cors_origins` (each an exact origin, https or
/// loopback http, at most [`MAX_ORIGINS`]); returns them sorted without duplicates.
pub fn validate(origins: Vec<String>) -> Result<Vec<String>, OAuthError> {
    let bad = |msg: String| OAuthError::new(ErrorCode::InvalidClientMetadata, msg);
    if origins.len() > MAX_ORIGINS {
        return Err(bad(format!(
            "allowed_cors_origins holds at most {MAX_ORIGINS} origins"
        )));
    }
    for o in &origins {
        crate::uri::check_origin(o)
            .map_err(|why| bad(format!("allowed_cors_origins: {o:?} {why}")))?;
    }
    let mut origins = origins;
    origins.sort();
    origins.dedup();
    Ok(origins)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::{client::AuthMethod, scope::Scope};

    #[test]
    fn a_public_client_allows_its_http_redirect_origins_and_no_private_use_scheme() {
        let client = Client {
            client_id: "c".into(),
            secret_hash: None,
            owner: String::new(),
            client_name: "App".into(),
            redirect_uris: vec![
                "http://127.0.0.1:8765/cb".into(),
                "com.example.app:/cb".into(),
                "https://app.example/cb".into(),
            ],
            grant_types: Vec::new(),
            token_endpoint_auth_method: AuthMethod::None,
            scope: Scope::default(),
            allowed_cors_origins: Vec::new(),
            created_at: 0,
            registration_token_hash: None,
        };
        // The registered loopback port only: the any-port rule is for redirects, not CORS.
        assert_eq!(
            allowed_origins(&client),
            ["http://127.0.0.1:8765", "https://app.example"]
        );
    }
}
