//! The one error type of Hallpass and its mapping to HTTP, in one place.
//!
//! - [`ErrorCode`] mirrors the error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1,
//!   RFC 7009 §2.2.1, RFC 7591 §3.2.2 and OpenID Connect Core §3.1.2.6, plus two codes of
//!   Hallpass's own management API (`not_found`, `conflict`).
//! - [`OAuthError`] is what the protocol core (`oauth/`) returns: a code, a description that
//!   is safe to show to the caller, and the HTTP status it maps to.
//! - [`ApiError`] is the OpenAPI response shape of every JSON error, and [`rfc_errors`] is
//!   the middleware that turns any error a poem extractor raises (bad form, wrong content
//!   type, missing credentials, oversized body) into the same RFC 6749 §5.2 JSON body.
//!
//! Internal causes are logged with their chain and never reach a response: a
//! `server_error` always carries the same fixed description.

use std::borrow::Cow;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{ApiResponse, Object, payload::Json};

pub use crate::error_code::{ErrorCode, SERVER_ERROR_DESCRIPTION};

/// Which `WWW-Authenticate` challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="hallpass"`: client or user authentication with a password.
    Basic,
    /// `Bearer error="invalid_token"` (RFC 6750 §3).
    Bearer,
    /// Both, for endpoints that take either a password or a token.
    BasicOrBearer,
}

/// An error the caller may see: RFC code, safe description, HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC error code.
    pub code: ErrorCode,
    /// A human-readable description that never contains secrets or internal details.
    pub description: Cow<'static, str>,
    status: u16,
    challenge: Option<Challenge>,
    /// The request carried no credentials: RFC 6750 §3.1 says the challenge then names no error.
    credentials_missing: bool,
}

impl OAuthError {
    /// An error with the status its code implies.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let (status, challenge) = match code {
            ErrorCode::InvalidClient => (401, Some(Challenge::Basic)),
            ErrorCode::InvalidToken => (401, Some(Challenge::Bearer)),
            ErrorCode::InsufficientScope => (403, None),
            ErrorCode::NotFound => (404, None),
            ErrorCode::Conflict => (409, None),
            ErrorCode::ServerError => (500, None),
            ErrorCode::TemporarilyUnavailable => (503, None),
            _ => (400, None),
        };
        Self {
            code,
            description: description.into(),
            status,
            challenge,
            credentials_missing: false,
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client` (401 with a Basic challenge).
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_token` (401 with a Bearer challenge).
    pub fn invalid_token(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidToken, description)
    }

    /// `not_found`.
    pub fn not_found(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::NotFound, description)
    }

    /// A `server_error`: the cause is logged here, the caller sees a fixed text.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "internal error");
        Self::new(ErrorCode::ServerError, SERVER_ERROR_DESCRIPTION)
    }

    /// `temporarily_unavailable` (503 with `Retry-After`).
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the service is temporarily unavailable; retry shortly",
        )
    }

    /// The same error with another HTTP status (for example 413 or 415 on `invalid_request`).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// The same error with another `WWW-Authenticate` challenge on its 401.
    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = Some(challenge);
        self
    }

    /// Marks the error as "no credentials were sent" (RFC 6750 §3.1: no error attribute in
    /// the Bearer challenge).
    pub fn credentials_missing(mut self) -> Self {
        self.credentials_missing = true;
        self
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `WWW-Authenticate` value, for a 401 or a 403 `insufficient_scope`.
    pub fn www_authenticate(&self) -> Option<String> {
        if self.code == ErrorCode::InsufficientScope {
            // RFC 6750 §3.1.
            return Some(format!(
                "Bearer realm=\"hallpass\", error=\"insufficient_scope\", error_description=\"{}\"",
                self.description.replace(['"', '\\'], "'")
            ));
        }
        if self.status != 401 {
            return None;
        }
        // RFC 6750 §3.1: only token errors carry an error attribute, and none when the
        // request had no credentials at all.
        let bearer = || {
            if self.code == ErrorCode::InvalidToken && !self.credentials_missing {
                format!(
                    "Bearer realm=\"hallpass\", error=\"invalid_token\", error_description=\"{}\"",
                    self.description.replace(['"', '\\'], "'")
                )
            } else {
                "Bearer realm=\"hallpass\"".to_string()
            }
        };
        Some(match self.challenge.unwrap_or(Challenge::Basic) {
            Challenge::Basic => "Basic realm=\"hallpass\", charset=\"UTF-8\"".to_string(),
            Challenge::Bearer => bearer(),
            Challenge::BasicOrBearer => {
                format!("Basic realm=\"hallpass\", charset=\"UTF-8\", {}", bearer())
            }
        })
    }

    /// The JSON response, with the exact status (also those [`ApiError`] has no variant
    /// for, such as 405).
    pub fn to_response(&self) -> Response {
        let mut resp = ApiError::from(self.clone()).into_response();
        if let Ok(status) = StatusCode::from_u16(self.status) {
            resp.set_status(status);
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp.headers_mut()
            .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        resp
    }

    /// The RFC 6749 §5.2 body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code,
            error_description: Some(self.description.to_string()),
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// The RFC 6749 §5.2 error body.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    /// The error code.
    pub error: ErrorCode,
    /// Human-readable text that helps the client developer understand the error.
    pub error_description: Option<String>,
}

/// Every JSON error response of the API, as documented in the OpenAPI spec.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed: a missing, repeated or invalid parameter, or a grant that is
    /// invalid, expired, already used or issued to another client.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Client or user authentication failed, or the access token is missing or invalid.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// Not allowed: the access token lacks a required scope (then `WWW-Authenticate` names
    /// `insufficient_scope`), or the operation is closed.
    #[oai(status = 403)]
    Forbidden(
        Json<ErrorBody>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// No such resource, or it is not the caller's.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource already exists.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than the server accepts.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body has a content type this operation does not accept.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// An unexpected condition; the details are in the server log, never in the response.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The store is unreachable; retry after the given number of seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> Self {
        let body = Json(err.body());
        match err.status {
            401 => ApiError::Unauthorized(body, err.www_authenticate().unwrap_or_default()),
            403 => ApiError::Forbidden(body, err.www_authenticate()),
            404 => ApiError::NotFound(body),
            409 => ApiError::Conflict(body),
            413 => ApiError::PayloadTooLarge(body),
            415 => ApiError::UnsupportedMediaType(body),
            500 => ApiError::Internal(body),
            503 => ApiError::Unavailable(body, "1".to_string()),
            _ => ApiError::BadRequest(body),
        }
    }
}

impl poem::error::ResponseError for OAuthError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

/// Turns a poem error raised before a handler ran (extractors, body limits, routing) into an
/// RFC-shaped [`OAuthError`]. `challenge` says which `WWW-Authenticate` a missing credential
/// gets on this path.
pub fn from_poem_error(err: &poem::Error, challenge: Challenge) -> OAuthError {
    use poem_openapi::error::{AuthorizationError, ContentTypeError, ParseRequestPayloadError};
    if let Some(e) = err.downcast_ref::<OAuthError>() {
        return e.clone();
    }
    if err.is::<AuthorizationError>() {
        let code = match challenge {
            Challenge::Basic => ErrorCode::InvalidClient,
            _ => ErrorCode::InvalidToken,
        };
        return OAuthError::new(
            code,
            "authentication required: send HTTP Basic credentials or a Bearer token",
        )
        .with_status(401)
        .with_challenge(challenge)
        .credentials_missing();
    }
    if err.is::<ContentTypeError>() {
        return OAuthError::invalid_request("unsupported content type for this operation")
            .with_status(415);
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return OAuthError::invalid_request(format!("malformed request body: {}", e.reason));
    }
    match err.status().as_u16() {
        404 => OAuthError::not_found("no such resource"),
        405 => OAuthError::invalid_request("method not allowed").with_status(405),
        413 => OAuthError::invalid_request("request body too large").with_status(413),
        status @ 400..=499 => OAuthError::invalid_request(err.to_string()).with_status(status),
        _ => OAuthError::internal(err),
    }
}

/// Middleware: every error of the wrapped JSON API becomes an RFC 6749 §5.2 body, and every
/// response gets `Cache-Control: no-store` unless it set its own caching.
pub fn rfc_errors(challenge: Challenge) -> RfcErrors {
    RfcErrors { challenge }
}

/// See [`rfc_errors`].
pub struct RfcErrors {
    challenge: Challenge,
}

impl<E: Endpoint> Middleware<E> for RfcErrors {
    type Output = RfcErrorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RfcErrorsEndpoint {
            inner: ep,
            challenge: self.challenge,
        }
    }
}

/// The endpoint [`RfcErrors`] produces.
pub struct RfcErrorsEndpoint<E> {
    inner: E,
    challenge: Challenge,
}

impl<E: Endpoint> Endpoint for RfcErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let mut resp = match self.inner.call(req).await {
            Ok(out) => out.into_response(),
            // A handler's own ApiError arrives as an error built from its response: keep it.
            Err(err) if err.is_from_response() => err.into_response(),
            Err(err) => from_poem_error(&err, self.challenge).to_response(),
        };
        let headers = resp.headers_mut();
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        }
        Ok(resp)
    }
}
