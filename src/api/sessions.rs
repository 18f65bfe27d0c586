//! `POST /api/users/me/sessions/revoke`: sign out everywhere.

use poem_openapi::{ApiResponse, OpenApi};

use crate::{
    api::{ApiTags, clients::ManageErrors, extractors::Manager},
    error::Errors,
    oauth::sign_out,
    state::AppState,
};

/// The answer to a sign-out everywhere.
#[derive(ApiResponse)]
pub enum SessionsRevoked {
    /// Every browser session of the caller signed in until now is ended, and every access
    /// token issued to the caller until now is revoked.
    #[oai(status = 204)]
    Revoked,
}

/// The browser-session API.
pub struct SessionsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl SessionsApi {
    /// Sign out everywhere
    ///
    /// Ends every Hallpass browser session of the caller signed in until now, on every
    /// device; the next visit asks for the password again. Every access token of the caller
    /// issued until now is refused from now on, here and, within their poll interval, at
    /// resource servers that read the revocation feed. Refresh tokens stay: an application
    /// may get new access tokens (withdraw the consent to stop one application). HTTP Basic,
    /// or a token with `hallpass:manage`.
    #[oai(
        path = "/api/users/me/sessions/revoke",
        method = "post",
        operation_id = "revokeSessions",
        tag = "ApiTags::Users"
    )]
    async fn revoke(&self, manager: Manager) -> Result<SessionsRevoked, Errors<ManageErrors>> {
        sign_out::end_all(&self.state, &manager.user().id).await?;
        Ok(SessionsRevoked::Revoked)
    }
}
