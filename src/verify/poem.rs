//! The poem and poem-openapi integration (feature `verify-poem`): the [`BearerAuth`] security
//! scheme, [`authenticate`] for plain handlers, and the RFC 6750 responses of a refusal
//! (RFC 6749 §5.2 JSON body, `WWW-Authenticate` with RFC 9728 `resource_metadata`).

use std::{fmt, marker::PhantomData, ops::Deref};

use poem::{
    IntoResponse, Request, RequestBody, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    payload::Json,
    registry::{MetaSecurityScheme, Registry},
};

use super::{Claims, Verifier, VerifyError};
use crate::{
    error_code::{ErrorCode, SERVER_ERROR_DESCRIPTION},
    http::{
        body::ErrorBody,
        challenge::{RETRY_AFTER, WwwAuthenticate},
    },
};

/// The name of the [`BearerAuth`] security scheme in an OpenAPI spec.
pub const SECURITY_SCHEME: &str = "bearerAccessToken";

impl VerifyError {
    /// The HTTP status: 401, 403 for missing scopes, 503 when the keys cannot be fetched.
    pub fn status(&self) -> StatusCode {
        match self {
            VerifyError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            VerifyError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The scopes an operation protected by [`BearerAuth`] requires.
pub trait RequiredScopes: Send + Sync + 'static {
    /// Every scope in this list must be granted.
    const SCOPES: &'static [&'static str];
    /// A second security requirement the spec lists for these operations, for example
    /// `oauth2#beers:read`: the server's spec post-processing (`docs::spec` in the `server`
    /// feature) turns `oauth2#<scopes>` into a requirement of its `oauth2` scheme. `None`: only
    /// [`SECURITY_SCHEME`].
    const OPENAPI_REQUIREMENT: Option<&'static str> = None;
}

/// No scope required: any valid token.
#[derive(Debug, Clone, Copy)]
pub struct AnyScope;

impl RequiredScopes for AnyScope {
    const SCOPES: &'static [&'static str] = &[];
}

/// A poem-openapi security scheme (HTTP bearer, JWT) whose value is the claims of a token
/// that passed every check of the [`Verifier`] found in the request data
/// (`.data(verifier)`) and grants every scope of `S`.
///
/// Failures never reach the handler: a missing token is 401 with a bare `Bearer` challenge,
/// a bad one 401 `invalid_token`, missing scopes 403 `insufficient_scope` (with the `scope`
/// attribute), unreachable keys 503. Every challenge carries `resource_metadata` when the
/// verifier was built with [`super::VerifierBuilder::resource_metadata`]. Bodies are RFC 6749 §5.2
/// JSON and responses are built with [`poem::Error::from_response`], so the
/// [`crate::error::rfc_errors`] middleware passes them through untouched.
pub struct BearerAuth<S: RequiredScopes = AnyScope> {
    claims: Claims,
    scopes: PhantomData<fn() -> S>,
}

impl<S: RequiredScopes> BearerAuth<S> {
    /// The verified claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// The verified claims, owned.
    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

impl<S: RequiredScopes> Deref for BearerAuth<S> {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl<S: RequiredScopes> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("sub", &self.claims.sub)
            .field("scope", &self.claims.scope)
            .finish_non_exhaustive()
    }
}

impl<'a, S: RequiredScopes> ApiExtractor<'a> for BearerAuth<S> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SECURITY_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "An RFC 9068 JWT access token from the authorization server, verified offline against its JWKS.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        std::iter::once(SECURITY_SCHEME)
            .chain(S::OPENAPI_REQUIREMENT)
            .collect()
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match authenticate(req, S::SCOPES).await {
            Ok(claims) => Ok(Self {
                claims,
                scopes: PhantomData,
            }),
            Err(rejection) => Err(rejection.into_poem_error()),
        }
    }
}

/// Verifies the bearer token of `req` with the [`Verifier`] in its data and checks
/// `scopes`. For plain poem handlers; poem-openapi operations take a [`BearerAuth`].
pub async fn authenticate(req: &Request, scopes: &[&str]) -> Result<Claims, BearerRejection> {
    let Some(verifier) = req.data::<Verifier>() else {
        tracing::error!("no Verifier in the request data: add .data(verifier) to the route");
        return Err(BearerRejection {
            reason: Rejection::NotConfigured,
            resource_metadata: None,
        });
    };
    let reject = |reason| BearerRejection {
        reason,
        resource_metadata: verifier.resource_metadata().map(str::to_string),
    };
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (value, repeated) = (values.next(), values.next().is_some());
    if repeated {
        return Err(reject(Rejection::InvalidRequest(
            "send one Authorization header",
        )));
    }
    let Some(value) = value else {
        return Err(reject(Rejection::MissingToken));
    };
    let value = value.to_str().unwrap_or_default().trim();
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        // Another scheme (Basic, ...) carries no bearer token.
        _ => return Err(reject(Rejection::MissingToken)),
    };
    if token.is_empty() {
        return Err(reject(Rejection::Token(VerifyError::Malformed(
            "the bearer token is empty",
        ))));
    }
    verifier
        .verify_with_scopes(token, scopes)
        .await
        .map_err(|e| reject(Rejection::Token(e)))
}

/// Why [`authenticate`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization: Bearer` header.
    MissingToken,
    /// The request is malformed (for example two `Authorization` headers).
    InvalidRequest(&'static str),
    /// The token failed a check.
    Token(VerifyError),
    /// The route has no [`Verifier`] in its data (a wiring bug; logged, answered 500).
    NotConfigured,
}

/// A refused bearer request, rendered as an RFC 6749 §5.2 JSON body with the RFC 6750 §3
/// `WWW-Authenticate` challenge (plus RFC 9728 `resource_metadata`).
#[derive(Debug, Clone)]
pub struct BearerRejection {
    reason: Rejection,
    resource_metadata: Option<String>,
}

impl BearerRejection {
    /// What went wrong.
    pub fn reason(&self) -> &Rejection {
        &self.reason
    }

    /// The response status.
    pub fn status(&self) -> StatusCode {
        match &self.reason {
            Rejection::MissingToken => StatusCode::UNAUTHORIZED,
            Rejection::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::Token(e) => e.status(),
            Rejection::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code_and_description(&self) -> (ErrorCode, String) {
        match &self.reason {
            Rejection::MissingToken => (
                ErrorCode::InvalidToken,
                "this endpoint requires a bearer access token".to_string(),
            ),
            Rejection::InvalidRequest(d) => (ErrorCode::InvalidRequest, (*d).to_string()),
            Rejection::Token(e) => (e.error_code(), e.to_string()),
            Rejection::NotConfigured => {
                (ErrorCode::ServerError, SERVER_ERROR_DESCRIPTION.to_string())
            }
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3, RFC 9728 §5.1), for 400, 401 and 403.
    pub fn www_authenticate(&self) -> Option<String> {
        let mut challenge = WwwAuthenticate::bearer();
        match &self.reason {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            Rejection::MissingToken => {}
            Rejection::Token(VerifyError::KeysUnavailable) | Rejection::NotConfigured => {
                return None;
            }
            Rejection::InvalidRequest(_) | Rejection::Token(_) => {
                let (code, description) = self.code_and_description();
                challenge = challenge
                    .param("error", code.as_str())
                    .param("error_description", &description);
                if let Rejection::Token(VerifyError::InsufficientScope { missing }) = &self.reason {
                    challenge = challenge.param("scope", &missing.join(" "));
                }
            }
        }
        if let Some(url) = &self.resource_metadata {
            challenge = challenge.param("resource_metadata", url);
        }
        Some(challenge.to_string())
    }

    /// The response as a [`poem::Error`] that middleware leaves as it is.
    pub fn into_poem_error(self) -> poem::Error {
        poem::Error::from_response(self.to_response())
    }

    /// The JSON response with its headers.
    pub fn to_response(&self) -> Response {
        let (code, description) = self.code_and_description();
        let mut response = Json(ErrorBody {
            error: code,
            error_description: Some(description),
        })
        .into_response();
        response.set_status(self.status());
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self
            .www_authenticate()
            .and_then(|c| HeaderValue::from_str(&c).ok())
        {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
        }
        response
    }
}

impl fmt::Display for BearerRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, description) = self.code_and_description();
        write!(f, "{}: {description}", code.as_str())
    }
}

impl std::error::Error for BearerRejection {}

impl poem::error::ResponseError for BearerRejection {
    fn status(&self) -> StatusCode {
        BearerRejection::status(self)
    }

    fn as_response(&self) -> Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750_and_rfc_9728() {
        let rm = Some("https://rs.example/.well-known/oauth-protected-resource".to_string());
        let missing = BearerRejection {
            reason: Rejection::MissingToken,
            resource_metadata: rm.clone(),
        };
        assert_eq!(
            missing.www_authenticate().as_deref(),
            Some(
                "Bearer resource_metadata=\"https://rs.example/.well-known/oauth-protected-resource\""
            )
        );
        let scope = BearerRejection {
            reason: Rejection::Token(VerifyError::InsufficientScope {
                missing: vec!["beers:write".into()],
            }),
            resource_metadata: rm,
        };
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        let challenge = scope.www_authenticate().unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"beers:write\""), "{challenge}");
        let bare = BearerRejection {
            reason: Rejection::MissingToken,
            resource_metadata: None,
        };
        assert_eq!(bare.www_authenticate().as_deref(), Some("Bearer"));
    }

    #[test]
    fn a_revoked_token_is_a_401_invalid_token() {
        let revoked = BearerRejection {
            reason: Rejection::Token(VerifyError::Revoked),
            resource_metadata: None,
        };
        assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            revoked.www_authenticate().as_deref(),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"the token has been revoked\""
            )
        );
    }
}
