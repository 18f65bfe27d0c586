//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect` (RFC 7662).

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Form, payload::Json};
use serde::Deserialize;

use crate::{
    api::{
        ApiTags,
        security::{ClientAuth, client_credentials},
        values::TokenTypeHint,
    },
    error::{Errors, OAuthError},
    oauth::{client, revocation},
    state::AppState,
    throttle,
};

/// A revocation or introspection request (`application/x-www-form-urlencoded`).
#[derive(Object, Deserialize)]
#[oai(example)]
pub struct TokenHintForm {
    /// The token: an access token or a refresh token. Required (a missing one gets
    /// `invalid_request`).
    #[serde(default)]
    pub token: String,
    // A hint only. No `///`: see `ErrorBody::error`.
    #[allow(missing_docs)]
    pub token_type_hint: Option<TokenTypeHint>,
    /// The client id (`client_secret_post`, or public clients for revocation).
    pub client_id: Option<String>,
    /// The client secret (`client_secret_post`).
    pub client_secret: Option<String>,
}

/// A request for a client that authenticates with HTTP Basic; paste a token of its own.
impl poem_openapi::types::Example for TokenHintForm {
    fn example() -> Self {
        TokenHintForm {
            token: "paste-an-access-or-refresh-token".into(),
            token_type_hint: Some("access_token".into()),
            client_id: None,
            client_secret: None,
        }
    }
}

/// Never shows the token or the secret.
impl std::fmt::Debug for TokenHintForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("TokenHintForm")
            .field("token", &"[redacted]")
            .field("token_type_hint", &self.token_type_hint)
            .field("client_id", &self.client_id)
            .field("client_secret", &hidden(&self.client_secret))
            .finish()
    }
}

/// Revocation result.
#[derive(ApiResponse)]
pub enum Revoked {
    /// The token is revoked, or was unknown, invalid or not this client's (RFC 7009 §2.2: the
    /// answer is the same either way).
    #[oai(status = 200)]
    Ok,
}

/// An introspection answer (RFC 7662 §2.2). An inactive token is exactly `{"active": false}`.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct IntrospectionBody {
    /// Whether the token is active.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    pub token_type: Option<String>,
    /// Granted scope.
    pub scope: Option<String>,
    /// The client it was issued to.
    pub client_id: Option<String>,
    /// Subject.
    pub sub: Option<String>,
    /// The user's name.
    pub username: Option<String>,
    /// Expiry (Unix seconds).
    pub exp: Option<u64>,
    /// Issued at (Unix seconds).
    pub iat: Option<u64>,
    /// Issuer.
    pub iss: Option<String>,
    /// Audience.
    pub aud: Option<String>,
    /// Token id.
    pub jti: Option<String>,
}

/// Introspection result.
#[derive(ApiResponse)]
pub enum Introspected {
    /// What the token is.
    #[oai(status = 200)]
    Ok(Json<IntrospectionBody>),
}

crate::error_statuses! {
    /// What revocation and introspection can answer besides their result.
    pub TokenHintErrors = [400, 401, 413, 415, 429, 500, 503];
}

/// Revocation and introspection.
pub struct RevocationApi {
    /// Shared state.
    pub state: AppState,
}

impl RevocationApi {
    async fn client_and_token(
        &self,
        req: &Request,
        auth: ClientAuth,
        f: TokenHintForm,
    ) -> Result<(client::Client, String), throttle::Refusal> {
        let header = req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION);
        let creds = client_credentials(auth, header, f.client_id, f.client_secret);
        let attempt = throttle::Attempt::client_auth(&creds);
        let work = client::authenticate(&self.state, creds);
        let client = throttle::guard(&self.state, &attempt, work, throttle::client_outcome).await?;
        crate::oauth::cors::check(crate::api::cors::request_origin(req).as_ref(), &client)?;
        let token = Some(f.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
        Ok((client, token))
    }
}

#[OpenApi]
impl RevocationApi {
    /// Revoke a token
    ///
    /// RFC 7009. A refresh token revokes its whole family; an access token is denied until it
    /// expires. Only the client's own tokens are revoked; the answer is 200 either way.
    #[oai(
        path = "/oauth2/revoke",
        method = "post",
        operation_id = "revoke",
        tag = "ApiTags::OAuth2"
    )]
    async fn revoke(
        &self,
        req: &Request,
        auth: ClientAuth,
        form: Form<TokenHintForm>,
    ) -> Result<Revoked, Errors<TokenHintErrors>> {
        let hint = form.0.token_type_hint.clone().map(|h| h.0);
        let (client, token) = self.client_and_token(req, auth, form.0).await?;
        revocation::revoke(&self.state, &client, &token, hint.as_deref()).await?;
        Ok(Revoked::Ok)
    }

    /// Introspect a token
    ///
    /// RFC 7662, for confidential clients. Active tokens come with their claims; anything
    /// expired, revoked, tampered with, foreign or malformed is exactly `{"active": false}`.
    #[oai(
        path = "/oauth2/introspect",
        method = "post",
        operation_id = "introspect",
        tag = "ApiTags::OAuth2"
    )]
    async fn introspect(
        &self,
        req: &Request,
        auth: ClientAuth,
        form: Form<TokenHintForm>,
    ) -> Result<Introspected, Errors<TokenHintErrors>> {
        let (client, token) = self.client_and_token(req, auth, form.0).await?;
        let i = revocation::introspect(&self.state, &client, &token).await?;
        Ok(Introspected::Ok(Json(IntrospectionBody {
            active: i.active,
            token_type: i.token_type.map(str::to_string),
            scope: i.scope,
            client_id: i.client_id,
            sub: i.sub,
            username: i.username,
            exp: i.exp,
            iat: i.iat,
            iss: i.iss,
            aud: i.aud,
            jti: i.jti,
        })))
    }
}
