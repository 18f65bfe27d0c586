//! The server's HTTP error layer: the one place where a protocol error becomes a response.
//!
//! The protocol core (`oauth/`) returns an [`OAuthError`]: a code and a description. Here,
//! and only here, that becomes an HTTP status, a `WWW-Authenticate` challenge and a
//! `Retry-After`:
//! - [`HttpError`] is an [`OAuthError`] with the status and challenge it is answered with;
//!   `From<OAuthError>` gives the defaults each code implies (`invalid_client` is 401 +
//!   Basic, `invalid_token` 401 + Bearer, `insufficient_scope` 403, `access_denied` 403,
//!   `temporarily_unavailable` 503 + `Retry-After`, ...), and the few endpoints that answer
//!   differently say so with [`HttpError::with_status`] or [`HttpError::with_challenge`].
//! - [`ApiError`] is the OpenAPI response shape of every JSON error, and the one mapping
//!   from an [`HttpError`]. An operation returns [`Errors<S>`]: the same responses, but its
//!   spec lists only the statuses `S` names (declared with [`error_statuses!`]).
//! - [`rfc_errors`] is the middleware that turns any error a poem extractor raises (bad form,
//!   wrong content type, missing credentials, oversized body) into the same RFC 6749 §5.2 body.
//!
//! The body and challenge builders themselves are in [`crate::http`], shared with the
//! verifier.

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, StatusCode, header},
};
use std::marker::PhantomData;

use poem_openapi::{
    ApiResponse,
    payload::Json,
    registry::{MetaResponses, Registry},
};

pub use crate::error_code::{ErrorCode, SERVER_ERROR_DESCRIPTION};
pub use crate::http::body::ErrorBody;
use crate::http::challenge::{RETRY_AFTER, WwwAuthenticate};
pub use crate::oauth::error::OAuthError;

/// The realm of every challenge the server sends.
pub const REALM: &str = "hallpass";

/// Which credentials a 401 asks for in its `WWW-Authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="hallpass"`: client or user authentication with a password.
    Basic,
    /// `Bearer realm="hallpass"` (RFC 6750 §3), with `error="invalid_token"` for a bad token.
    Bearer,
    /// Both, for endpoints that take either a password or a token.
    BasicOrBearer,
}

/// An [`OAuthError`] with the HTTP status and challenge it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The protocol error: code and description.
    pub error: OAuthError,
    status: u16,
    challenge: Option<Challenge>,
    /// The request carried no credentials: RFC 6750 §3.1 says the challenge then names no error.
    credentials_missing: bool,
    /// For `insufficient_scope`: the scope the request needs (RFC 6750 §3 `scope`).
    required_scope: Option<&'static str>,
}

impl From<OAuthError> for HttpError {
    fn from(error: OAuthError) -> Self {
        let (status, challenge) = match error.code {
            ErrorCode::InvalidClient => (401, Some(Challenge::Basic)),
            ErrorCode::InvalidToken => (401, Some(Challenge::Bearer)),
            ErrorCode::InsufficientScope | ErrorCode::AccessDenied => (403, None),
            ErrorCode::NotFound => (404, None),
            ErrorCode::Conflict => (409, None),
            ErrorCode::ServerError => (500, None),
            ErrorCode::TemporarilyUnavailable => (503, None),
            _ => (400, None),
        };
        Self {
            error,
            status,
            challenge,
            credentials_missing: false,
            required_scope: None,
        }
    }
}

impl HttpError {
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

    /// Names the scope an `insufficient_scope` error lacked, in its challenge.
    pub fn with_required_scope(mut self, scope: &'static str) -> Self {
        self.required_scope = Some(scope);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The `WWW-Authenticate` value, for a 401 or a 403 `insufficient_scope`.
    pub fn www_authenticate(&self) -> Option<String> {
        let described = |code: ErrorCode| {
            WwwAuthenticate::bearer()
                .param("realm", REALM)
                .param("error", code.as_str())
                .param("error_description", &self.error.description)
        };
        if self.error.code == ErrorCode::InsufficientScope {
            // RFC 6750 §3.1.
            let mut bearer = described(ErrorCode::InsufficientScope);
            if let Some(scope) = self.required_scope {
                bearer = bearer.param("scope", scope);
            }
            return Some(bearer.to_string());
        }
        if self.status != 401 {
            return None;
        }
        // RFC 6750 §3.1: only token errors carry an error attribute, and none when the
        // request had no credentials at all.
        let bearer = if self.error.code == ErrorCode::InvalidToken && !self.credentials_missing {
            described(ErrorCode::InvalidToken)
        } else {
            WwwAuthenticate::bearer().param("realm", REALM)
        };
        let basic = WwwAuthenticate::basic(REALM);
        Some(match self.challenge.unwrap_or(Challenge::Basic) {
            Challenge::Basic => basic.to_string(),
            Challenge::Bearer => bearer.to_string(),
            Challenge::BasicOrBearer => WwwAuthenticate::join(&[basic, bearer]),
        })
    }

    /// The `Retry-After` value, for a 503.
    pub fn retry_after(&self) -> Option<&'static str> {
        (self.status == 503).then_some(RETRY_AFTER)
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
            error: self.error.code,
            error_description: Some(self.error.description.to_string()),
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for HttpError {}

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
    /// Too many failed attempts (sign-ins, client authentications) or registrations from
    /// here: wait the given number of seconds (`Retry-After`) before the next one.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
    /// An unexpected condition; the details are in the server log, never in the response.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The store is unreachable; retry after the given number of seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
}

impl From<HttpError> for ApiError {
    fn from(err: HttpError) -> Self {
        let body = Json(err.body());
        match err.status {
            401 => ApiError::Unauthorized(body, err.www_authenticate().unwrap_or_default()),
            403 => ApiError::Forbidden(body, err.www_authenticate()),
            404 => ApiError::NotFound(body),
            409 => ApiError::Conflict(body),
            413 => ApiError::PayloadTooLarge(body),
            415 => ApiError::UnsupportedMediaType(body),
            500 => ApiError::Internal(body),
            503 => ApiError::Unavailable(body, RETRY_AFTER.to_string()),
            _ => ApiError::BadRequest(body),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(err: OAuthError) -> Self {
        HttpError::from(err).into()
    }
}

/// The error statuses one operation can answer with: its spec lists only these.
pub trait ErrorStatuses: Send + Sync + 'static {
    /// The statuses, each one an [`ApiError`] variant.
    const STATUSES: &'static [u16];
}

/// Declares [`ErrorStatuses`] types: `error_statuses! { /// doc
/// pub TokenErrors = [400, 401]; }`.
#[macro_export]
macro_rules! error_statuses {
    ($($(#[$meta:meta])* pub $name:ident = [$($status:literal),* $(,)?];)*) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl $crate::error::ErrorStatuses for $name {
                const STATUSES: &'static [u16] = &[$($status),*];
            }
        )*
    };
}

/// An [`ApiError`] answered by an operation whose spec lists only the statuses of `S`.
/// The response itself is exactly the [`ApiError`]'s: the mapping stays in one place.
#[derive(Debug)]
pub struct Errors<S: ErrorStatuses>(pub ApiError, PhantomData<S>);

impl<S: ErrorStatuses> ApiResponse for Errors<S> {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses
            .retain(|r| r.status.is_some_and(|s| S::STATUSES.contains(&s)));
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

impl<S: ErrorStatuses> From<Errors<S>> for poem::Error {
    fn from(e: Errors<S>) -> Self {
        e.0.into()
    }
}

macro_rules! errors_from {
    ($($ty:ty),*) => {
        $(impl<S: ErrorStatuses> From<$ty> for Errors<S> {
            fn from(e: $ty) -> Self {
                Errors(ApiError::from(e), PhantomData)
            }
        })*
    };
}

errors_from!(
    HttpError,
    OAuthError,
    crate::throttle::Throttled,
    crate::throttle::Refusal
);

impl<S: ErrorStatuses> From<ApiError> for Errors<S> {
    fn from(e: ApiError) -> Self {
        Errors(e, PhantomData)
    }
}

/// A rate limit's refusal is 429 with `Retry-After` (RFC 6585 §4).
impl From<crate::throttle::Throttled> for ApiError {
    fn from(t: crate::throttle::Throttled) -> Self {
        let body = HttpError::from(t.error()).body();
        ApiError::TooManyRequests(Json(body), t.retry_after.to_string())
    }
}

impl From<crate::throttle::Refusal> for ApiError {
    fn from(r: crate::throttle::Refusal) -> Self {
        match r {
            crate::throttle::Refusal::Throttled(t) => t.into(),
            crate::throttle::Refusal::Error(e) => e.into(),
        }
    }
}

impl poem::error::ResponseError for HttpError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

impl poem::error::ResponseError for OAuthError {
    fn status(&self) -> StatusCode {
        poem::error::ResponseError::status(&HttpError::from(self.clone()))
    }

    fn as_response(&self) -> Response {
        HttpError::from(self.clone()).to_response()
    }
}

/// Turns a poem error raised before a handler ran (extractors, body limits, routing) into an
/// RFC-shaped [`HttpError`]. `challenge` says which `WWW-Authenticate` a missing credential
/// gets on this path.
pub fn from_poem_error(err: &poem::Error, challenge: Challenge) -> HttpError {
    use poem_openapi::error::{AuthorizationError, ContentTypeError, ParseRequestPayloadError};
    if let Some(e) = err.downcast_ref::<HttpError>() {
        return e.clone();
    }
    if let Some(e) = err.downcast_ref::<OAuthError>() {
        return e.clone().into();
    }
    let invalid_request = |d: String| HttpError::from(OAuthError::invalid_request(d));
    if err.is::<AuthorizationError>() {
        let code = match challenge {
            Challenge::Basic => ErrorCode::InvalidClient,
            _ => ErrorCode::InvalidToken,
        };
        return HttpError::from(OAuthError::new(
            code,
            "authentication required: send HTTP Basic credentials or a Bearer token",
        ))
        .with_status(401)
        .with_challenge(challenge)
        .credentials_missing();
    }
    if err.is::<ContentTypeError>() {
        return invalid_request("unsupported content type for this operation".into())
            .with_status(415);
    }
    if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        return invalid_request(format!("malformed request body: {}", e.reason));
    }
    match err.status().as_u16() {
        404 => OAuthError::not_found("no such resource").into(),
        405 => invalid_request("method not allowed".into()).with_status(405),
        413 => invalid_request("request body too large".into()).with_status(413),
        status @ 400..=499 => invalid_request(err.to_string()).with_status(status),
        _ => OAuthError::internal(err).into(),
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
