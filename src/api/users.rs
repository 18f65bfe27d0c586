//! The tutorial's user API: `POST /api/users` (register) and `GET /api/users/me`.

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use crate::{
    api::{ApiTags, extractors::Caller},
    error::{ErrorCode, Errors, OAuthError},
    http::text::Text,
    oauth::{
        disclosure,
        users::{self, User},
    },
    state::AppState,
    throttle::{self, client_ip},
};

// The spec's length limits come from the domain's constants (see `crate::api::spec`).
/// A registration request.
#[derive(Object)]
#[oai(example)]
pub struct NewUser {
    /// 1 to 64 characters after PRECIS (RFC 8265) mapping; no spaces, control characters
    /// or `:`.
    pub username: Text,
    /// At least 8 characters and at most 256 bytes of UTF-8 (`maxLength` counts characters,
    /// so 256 characters of a script with multi-byte characters are still refused); not a
    /// commonly used password, not only spaces, not the username.
    #[oai(write_only)]
    pub password: Text,
}

/// The password of the spec's example registration.
pub const EXAMPLE_PASSWORD: &str = "plum-lantern-tuesday-42";

/// `password` is `writeOnly`, so poem-openapi leaves it out of the example it writes;
/// [`crate::api::spec`] puts [`EXAMPLE_PASSWORD`] back.
impl poem_openapi::types::Example for NewUser {
    fn example() -> Self {
        NewUser {
            username: "alice".into(),
            password: EXAMPLE_PASSWORD.into(),
        }
    }
}

/// Never shows the password.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct UserView {
    /// Stable id: the `sub` of this user's tokens.
    pub id: String,
    /// Login name. `GET /api/users/me` omits it for a Bearer token without the `profile`
    /// scope.
    pub username: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            username: Some(u.username),
            created_at: u.created_at,
        }
    }
}

/// Registration result.
#[derive(ApiResponse)]
pub enum Created {
    /// The user was created.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

/// The caller.
#[derive(ApiResponse)]
pub enum Me {
    /// The authenticated user.
    #[oai(status = 200)]
    Ok(Json<UserView>),
}

crate::error_statuses! {
    /// Registration's errors: a bad body, closed registration, a taken name, too many.
    pub RegisterUserErrors = [400, 403, 409, 413, 415, 429, 500, 503];
    /// Errors of an operation that only authenticates the caller.
    pub CallerErrors = [401, 429, 500, 503];
}

/// The user API.
pub struct UsersApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl UsersApi {
    /// Register a user
    ///
    /// Creates an account. 409 when the username is taken; 403 when registration is closed.
    #[oai(
        path = "/api/users",
        method = "post",
        operation_id = "registerUser",
        tag = "ApiTags::Users"
    )]
    async fn register(
        &self,
        req: &Request,
        body: Json<NewUser>,
    ) -> Result<Created, Errors<RegisterUserErrors>> {
        if !self.state.config.registration_open {
            return Err(OAuthError::new(ErrorCode::AccessDenied, "registration is closed").into());
        }
        let attempt = throttle::Attempt::registration(client_ip::of(req, &self.state));
        let work = users::register(&self.state, &body.username, &body.password);
        let user = throttle::guard(&self.state, &attempt, work, throttle::every_attempt).await?;
        Ok(Created::Created(Json(user.into())))
    }

    /// The current user
    ///
    /// Accepts HTTP Basic (username and password) or a Bearer access token. A token shows
    /// the username only with the `profile` scope, as at `/userinfo`.
    #[oai(
        path = "/api/users/me",
        method = "get",
        operation_id = "currentUser",
        tag = "ApiTags::Users"
    )]
    async fn me(&self, caller: Caller) -> Result<Me, Errors<CallerErrors>> {
        let shows_username = disclosure::shows_username(caller.token_scope());
        let mut view = UserView::from(caller.0);
        if !shows_username {
            view.username = None;
        }
        Ok(Me::Ok(Json(view)))
    }
}
