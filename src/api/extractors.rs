//! The management API's caller, as one extractor: [`Manager`] (and [`Caller`] for
//! `/api/users/me`) takes the [`UserAuth`] credentials, resolves the user through
//! `oauth::users::authenticate_caller`, and answers a failure the same way everywhere: 401
//! with both challenges (`Basic` and `Bearer`) for wrong credentials, 403
//! `insufficient_scope` naming the scope for a token that lacks it.

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, registry::Registry};

use crate::{
    api::security::UserAuth,
    error::{ApiError, Challenge, ErrorCode, HttpError, OAuthError},
    oauth::{
        scope::Scope,
        users::{self, MANAGE_SCOPE, User},
    },
    state::AppState,
    throttle::{self, Refusal, client_ip},
};

/// The scope a [`UserCaller`] requires of a Bearer token (HTTP Basic needs none).
pub trait Requirement: Send + Sync + 'static {
    /// The scope, if any.
    const SCOPE: Option<&'static str>;
    /// The `oauth2` requirement the spec lists for it: `oauth2#` and the scope (see
    /// [`crate::docs::spec`]).
    const OAUTH2: &'static str;
}

/// Requires [`MANAGE_SCOPE`].
pub struct Manage;

impl Requirement for Manage {
    const SCOPE: Option<&'static str> = Some(MANAGE_SCOPE);
    const OAUTH2: &'static str = "oauth2#hallpass:manage";
}

/// Requires no particular scope.
pub struct AnyScope;

impl Requirement for AnyScope {
    const SCOPE: Option<&'static str> = None;
    const OAUTH2: &'static str = "oauth2#";
}

/// The authenticated user of a management-API request.
pub struct UserCaller<R: Requirement>(pub User, PhantomData<R>, Option<Scope>);

/// A user who may manage their clients and consents: HTTP Basic, or a token with
/// `hallpass:manage`.
pub type Manager = UserCaller<Manage>;

/// Any authenticated user: HTTP Basic, or any token issued for a user.
pub type Caller = UserCaller<AnyScope>;

impl<R: Requirement> UserCaller<R> {
    /// The user.
    pub fn user(&self) -> &User {
        &self.0
    }

    /// The Bearer token's scope; `None` when the caller used HTTP Basic.
    pub fn token_scope(&self) -> Option<&Scope> {
        self.2.as_ref()
    }
}

/// How a failure of `authenticate_caller` is answered on the management API.
fn rejection(err: OAuthError, scope: Option<&'static str>) -> HttpError {
    match err.code {
        ErrorCode::InvalidGrant | ErrorCode::InvalidToken => HttpError::from(err)
            .with_status(401)
            .with_challenge(Challenge::BasicOrBearer),
        ErrorCode::InsufficientScope => match scope {
            Some(scope) => HttpError::from(err).with_required_scope(scope),
            None => err.into(),
        },
        _ => err.into(),
    }
}

impl<'a, R: Requirement> ApiExtractor<'a> for UserCaller<R> {
    const TYPES: &'static [ApiExtractorType] = <UserAuth as ApiExtractor<'a>>::TYPES;
    type ParamType = <UserAuth as ApiExtractor<'a>>::ParamType;
    type ParamRawType = <UserAuth as ApiExtractor<'a>>::ParamRawType;

    fn register(registry: &mut Registry) {
        <UserAuth as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <UserAuth as ApiExtractor<'a>>::security_schemes();
        schemes.push(R::OAUTH2);
        schemes
    }

    fn has_security_fallback() -> bool {
        <UserAuth as ApiExtractor<'a>>::has_security_fallback()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let auth = <UserAuth as ApiExtractor<'a>>::from_request(request, body, param_opts).await?;
        let Some(state) = request.data::<AppState>() else {
            let missing = std::io::Error::other("AppState is not attached to the request");
            return Err(HttpError::from(OAuthError::internal(&missing)).into());
        };
        let creds = users::UserCredentials::from(auth);
        let attempt = throttle::Attempt::user_credentials(&creds, client_ip::of(request, state));
        let work = users::authenticate_caller(state, creds, R::SCOPE);
        match throttle::guard(state, &attempt, work, throttle::caller_outcome).await {
            Ok((user, scope)) => Ok(UserCaller(user, PhantomData, scope)),
            Err(Refusal::Throttled(t)) => Err(ApiError::from(t).into()),
            Err(Refusal::Error(err)) => Err(rejection(err, R::SCOPE).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker<R: Requirement>() -> String {
        format!(
            "{}{}",
            crate::docs::spec::REQUIREMENT_PREFIX,
            R::SCOPE.unwrap_or("")
        )
    }

    #[test]
    fn the_oauth2_requirement_names_the_scope_the_extractor_checks() {
        assert_eq!(Manage::OAUTH2, marker::<Manage>());
        assert_eq!(AnyScope::OAUTH2, marker::<AnyScope>());
    }
}
