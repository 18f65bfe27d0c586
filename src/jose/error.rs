//! Why a token was refused: one error for the server's own checks and the verifier.

use crate::error_code::ErrorCode;

/// Which check a token failed. The text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS, or a part does not decode; the text says which part.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The JOSE header `typ` is not `at+jwt` (RFC 9068 §4).
    #[error("the token is not an access token (typ must be at+jwt)")]
    Type,
    /// The token's `alg` is not one this verifier accepts, or not the algorithm of the key
    /// named by its `kid` (this is where `alg: none` and HS256 end).
    #[error("the token's algorithm is not the algorithm of its signing key")]
    Algorithm,
    /// The JOSE header has no `kid`.
    #[error("the token names no signing key (kid)")]
    MissingKeyId,
    /// No key with this `kid` is published by the issuer.
    #[error("the token was signed by a key the issuer does not publish")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    Signature,
    /// A claim RFC 9068 §2.2 requires is absent.
    #[error("the token lacks the required claim {0}")]
    MissingClaim(&'static str),
    /// `iss` is not the expected issuer.
    #[error("the token was issued by another issuer")]
    Issuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is intended for another audience")]
    Audience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The issuer's revocation feed lists the token: its `jti` was revoked, or a "not before"
    /// rule of its user, its client or both covers it (consent withdrawn, client deleted,
    /// sign out everywhere).
    #[error("the token has been revoked")]
    Revoked,
    /// The token is valid but lacks scopes the operation requires.
    #[error("the token lacks the scope {}", .missing.join(" "))]
    InsufficientScope {
        /// The required scopes the token does not grant.
        missing: Vec<String>,
    },
    /// The issuer's keys could not be fetched and the `kid` is not cached: the token may be
    /// fine, the verifier cannot tell right now.
    #[error("the issuer's signing keys cannot be fetched right now; retry shortly")]
    KeysUnavailable,
}

impl VerifyError {
    /// The RFC 6750 §3.1 error code: `invalid_token`, `insufficient_scope`, or
    /// `temporarily_unavailable` when the keys cannot be fetched.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            VerifyError::InsufficientScope { .. } => ErrorCode::InsufficientScope,
            VerifyError::KeysUnavailable => ErrorCode::TemporarilyUnavailable,
            _ => ErrorCode::InvalidToken,
        }
    }
}
