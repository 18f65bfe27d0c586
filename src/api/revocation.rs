//! `POST /oauth2/revoke` (RFC 7009), `POST /oauth2/introspect` (RFC 7662) and
//! `GET /oauth2/revocations`, the revocation feed offline verifiers poll
//! ([`crate::oauth::revocation_feed`]).

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Header, payload::Form, payload::Json};
use serde::Deserialize;

use crate::{
    api::{
        ApiTags,
        security::{ClientAuth, client_credentials},
        values::TokenTypeHint,
    },
    error::{Errors, OAuthError},
    oauth::{client, revocation, revocation_feed},
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
    /// What the revocation feed can answer besides the feed: the store is unreachable.
    pub FeedErrors = [500, 503];
}

/// How long a shared cache in front of Hallpass may keep the feed, in seconds. Verifiers
/// poll on their own schedule and revalidate with `If-None-Match`; this bounds the extra
/// delay a cache can add.
pub const FEED_MAX_AGE: u64 = 5;

/// A revoked access token in the feed.
#[derive(Object, Debug, Clone)]
pub struct RevokedToken {
    /// The token's `jti`.
    pub jti: String,
    /// When the entry leaves the feed (Unix seconds): the token's `exp` plus the leeway.
    pub exp: u64,
}

/// A "not before" rule: a token it covers whose `iat` is at or before `cutoff` is refused.
/// A rule with both digests covers one user at one client (consent withdrawn); with only
/// `client_id_sha256`, every token of a client (client deleted); with only `sub_sha256`,
/// every token of a user (sign out everywhere).
#[derive(Object, Debug, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct NotBeforeRule {
    /// SHA-256 of the token's `sub`, base64url without padding.
    pub sub_sha256: Option<String>,
    /// SHA-256 of the token's `client_id`, base64url without padding.
    pub client_id_sha256: Option<String>,
    /// Tokens issued at or before this Unix second are refused.
    pub cutoff: u64,
    /// When the rule leaves the feed (Unix seconds): every token it covers has expired.
    pub exp: u64,
}

/// The revocation feed: what a resource server verifying tokens offline must refuse.
#[derive(Object, Debug, Clone)]
pub struct RevocationFeed {
    /// The issuer whose tokens the feed is about.
    pub issuer: String,
    /// Revoked access tokens, until they expire.
    pub revoked: Vec<RevokedToken>,
    /// "Not before" rules for a user at a client, a client, or a user.
    pub not_before: Vec<NotBeforeRule>,
}

/// Revocation feed responses.
#[derive(ApiResponse)]
pub enum FeedResponse {
    /// The feed, with a strong `ETag`.
    #[oai(status = 200)]
    Ok(
        Json<RevocationFeed>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "ETag")] String,
    ),
    /// The feed has not changed since the given `ETag`.
    #[oai(status = 304)]
    NotModified(
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "ETag")] String,
    ),
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
    ) -> Result<(std::sync::Arc<client::Client>, String), throttle::Refusal> {
        let header = req
            .headers()
            .contains_key(poem::http::header::AUTHORIZATION);
        let creds = client_credentials(auth, header, f.client_id, f.client_secret);
        let work = |client, ()| std::future::ready(Ok(client));
        let client =
            client::authenticated(&self.state, creds, std::future::ready(()), work).await?;
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

    /// Revocation feed
    ///
    /// What resource servers that verify tokens offline must refuse: revoked `jti`s until
    /// they expire, and "not before" rules for a user at a client (consent withdrawn), a
    /// client (client deleted) or a user (sign out everywhere). Users and clients appear as
    /// SHA-256 digests. Public, small and cheap to poll: send the last `ETag` in
    /// `If-None-Match` to get 304 while nothing changed. `hallpass::verify` polls it every
    /// 10 s by default. Advertised in the metadata as `hallpass_revocation_feed_endpoint`.
    #[oai(
        path = "/oauth2/revocations",
        method = "get",
        operation_id = "revocationFeed",
        tag = "ApiTags::OAuth2"
    )]
    async fn feed(
        &self,
        #[oai(name = "If-None-Match")] if_none_match: Header<Option<String>>,
    ) -> Result<FeedResponse, Errors<FeedErrors>> {
        let feed = revocation_feed::read(&self.state).await?;
        let cache = format!("public, max-age={FEED_MAX_AGE}");
        if if_none_match.0.is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == feed.etag || t.trim() == "*")
        }) {
            return Ok(FeedResponse::NotModified(cache, feed.etag));
        }
        let body = RevocationFeed {
            issuer: self.state.config.issuer.clone(),
            revoked: feed
                .jtis
                .into_iter()
                .map(|(jti, exp)| RevokedToken { jti, exp })
                .collect(),
            not_before: feed
                .rules
                .into_iter()
                .map(|r| NotBeforeRule {
                    sub_sha256: r.sub_sha256,
                    client_id_sha256: r.client_id_sha256,
                    cutoff: r.cutoff,
                    exp: r.exp,
                })
                .collect(),
        };
        Ok(FeedResponse::Ok(Json(body), cache, feed.etag))
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
