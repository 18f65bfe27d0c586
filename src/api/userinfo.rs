//! OpenID Connect UserInfo (Core §5.3): the signed-in user's claims, for a token with `openid`.

use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::{
    api::{
        ApiTags,
        security::{OpenIdBearer, UserBearer},
    },
    error::{ErrorCode, Errors, HttpError, OAuthError},
    oauth::{client, revocation, users},
    state::AppState,
};

/// The user's claims. `preferred_username` needs the `profile` scope.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct UserInfo {
    /// Subject: the same `sub` as in the tokens.
    pub sub: String,
    /// The username (scope `profile`).
    pub preferred_username: Option<String>,
}

/// UserInfo result.
#[derive(ApiResponse)]
pub enum UserInfoResponse {
    /// The claims.
    #[oai(status = 200)]
    Ok(Json<UserInfo>),
}

crate::error_statuses! {
    /// UserInfo's errors: a missing or bad token, or one without `openid`.
    pub UserInfoErrors = [401, 403, 500, 503];
}

/// The UserInfo endpoint.
pub struct UserInfoApi {
    /// Shared state.
    pub state: AppState,
}

impl UserInfoApi {
    async fn answer(
        &self,
        req: &poem::Request,
        auth: UserBearer,
    ) -> Result<UserInfoResponse, Errors<UserInfoErrors>> {
        let claims = revocation::check_access_token(&self.state, &auth.0.token).await?;
        if let Some(origin) = crate::api::cors::request_origin(req) {
            let refused = || {
                OAuthError::new(
                    ErrorCode::UnauthorizedClient,
                    "the token's client does not allow requests from this origin",
                )
            };
            let client = client::get(&self.state, &claims.client_id)
                .await?
                .ok_or_else(refused)?;
            origin.check(&client)?;
        }
        if !claims.has_scope("openid") {
            let err = OAuthError::new(
                ErrorCode::InsufficientScope,
                "the token lacks the openid scope",
            );
            return Err(HttpError::from(err).with_required_scope("openid").into());
        }
        let user = users::by_id(&self.state, &claims.sub)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the token's subject is not a user"))?;
        Ok(UserInfoResponse::Ok(Json(UserInfo {
            sub: user.id,
            preferred_username: claims.has_scope("profile").then_some(user.username),
        })))
    }
}

#[OpenApi]
impl UserInfoApi {
    /// The signed-in user's claims
    ///
    /// OpenID Connect UserInfo for an access token with the `openid` scope; `profile` adds
    /// `preferred_username`.
    #[oai(
        path = "/userinfo",
        method = "get",
        operation_id = "userinfo",
        tag = "ApiTags::OAuth2"
    )]
    async fn get(
        &self,
        req: &poem::Request,
        auth: OpenIdBearer,
    ) -> Result<UserInfoResponse, Errors<UserInfoErrors>> {
        self.answer(req, auth.0).await
    }

    /// The signed-in user's claims (POST)
    ///
    /// The same as `GET /userinfo`, for clients that POST (OpenID Connect Core §5.3.1).
    #[oai(
        path = "/userinfo",
        method = "post",
        operation_id = "userinfoPost",
        tag = "ApiTags::OAuth2"
    )]
    async fn post(
        &self,
        req: &poem::Request,
        auth: OpenIdBearer,
    ) -> Result<UserInfoResponse, Errors<UserInfoErrors>> {
        self.answer(req, auth.0).await
    }
}
