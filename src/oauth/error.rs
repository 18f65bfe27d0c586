//! The protocol core's error: an RFC [`ErrorCode`] and a description safe to show the
//! caller. Nothing here knows about HTTP: the status, `WWW-Authenticate` and `Retry-After`
//! an error gets are decided by the HTTP layer ([`crate::error`]).
//!
//! Internal causes are logged with their chain by [`OAuthError::internal`] and never reach a
//! response: a `server_error` always carries [`SERVER_ERROR_DESCRIPTION`].

use std::borrow::Cow;

pub use crate::error_code::{ErrorCode, SERVER_ERROR_DESCRIPTION};

/// An error the caller may see: RFC code and safe description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC error code.
    pub code: ErrorCode,
    /// A human-readable description that never contains secrets or internal details.
    pub description: Cow<'static, str>,
}

impl OAuthError {
    /// An error with this code and description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`: client authentication failed.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    /// `invalid_grant`: a code, refresh token or the resource owner's credentials are wrong.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_token`: an access token is missing, malformed, expired or revoked.
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

    /// `temporarily_unavailable`: the store cannot be reached; the caller should retry.
    pub fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the service is temporarily unavailable; retry shortly",
        )
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}
