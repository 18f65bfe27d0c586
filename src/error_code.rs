//! The error codes of the OAuth RFCs, spelled as on the wire. Shared by the protocol core,
//! the HTTP layer and the verifier; nothing here knows about HTTP (the OpenAPI schema of
//! [`ErrorCode`] is in [`crate::http::body`]).

/// The error codes Hallpass answers with, spelled as in the RFCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// RFC 6749 §5.2: "The request is missing a required parameter, includes an unsupported
    /// parameter value (other than grant type), repeats a parameter, includes multiple
    /// credentials, utilizes more than one mechanism for authenticating the client, or is
    /// otherwise malformed."
    InvalidRequest,
    /// RFC 6749 §5.2: "Client authentication failed (e.g., unknown client, no client
    /// authentication included, or unsupported authentication method)."
    InvalidClient,
    /// RFC 6749 §5.2: "The provided authorization grant (e.g., authorization code, resource
    /// owner credentials) or refresh token is invalid, expired, revoked, does not match the
    /// redirection URI used in the authorization request, or was issued to another client."
    InvalidGrant,
    /// RFC 6749 §5.2: "The authenticated client is not authorized to use this authorization
    /// grant type."
    UnauthorizedClient,
    /// RFC 6749 §5.2: "The authorization grant type is not supported by the authorization
    /// server."
    UnsupportedGrantType,
    /// RFC 6749 §5.2: "The requested scope is invalid, unknown, malformed, or exceeds the
    /// scope granted by the resource owner."
    InvalidScope,
    /// RFC 8707 §2: "The requested resource is invalid, missing, unknown, or malformed."
    InvalidTarget,
    /// RFC 6749 §4.1.2.1: "The resource owner or authorization server denied the request."
    AccessDenied,
    /// RFC 6749 §4.1.2.1: "The authorization server does not support obtaining an
    /// authorization code using this method."
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: "The authorization server encountered an unexpected condition that
    /// prevented it from fulfilling the request."
    ServerError,
    /// RFC 6749 §4.1.2.1: "The authorization server is currently unable to handle the request
    /// due to a temporary overloading or maintenance of the server."
    TemporarilyUnavailable,
    /// RFC 6750 §3.1: "The access token provided is expired, revoked, malformed, or invalid
    /// for other reasons."
    InvalidToken,
    /// RFC 6750 §3.1: "The request requires higher privileges than provided by the access
    /// token."
    InsufficientScope,
    /// RFC 7009 §2.2.1: "The authorization server does not support the revocation of the
    /// presented token type."
    UnsupportedTokenType,
    /// OpenID Connect Core §3.1.2.6: "The Authorization Server requires End-User
    /// authentication."
    LoginRequired,
    /// OpenID Connect Core §3.1.2.6: "The Authorization Server requires End-User consent."
    ConsentRequired,
    /// RFC 7591 §3.2.2: "The value of one or more redirection URIs is invalid."
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: "The value of one of the client metadata fields is invalid and the
    /// server has rejected this request."
    InvalidClientMetadata,
    /// Hallpass management API: the resource does not exist, or is not the caller's.
    NotFound,
    /// Hallpass management API: the resource already exists (for example a username).
    Conflict,
}

impl ErrorCode {
    /// Every code, in the order the OpenAPI schema lists them.
    pub const ALL: [ErrorCode; 20] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::InvalidTarget,
        ErrorCode::AccessDenied,
        ErrorCode::UnsupportedResponseType,
        ErrorCode::ServerError,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
        ErrorCode::UnsupportedTokenType,
        ErrorCode::LoginRequired,
        ErrorCode::ConsentRequired,
        ErrorCode::InvalidRedirectUri,
        ErrorCode::InvalidClientMetadata,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
    ];

    /// The code spelled `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The code as it appears on the wire (`invalid_request`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fixed description of every `server_error`.
pub const SERVER_ERROR_DESCRIPTION: &str = "the server could not complete the request";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_from_its_wire_spelling() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
