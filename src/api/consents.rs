//! `/api/consents`: the applications a user has granted access, and withdrawing a grant.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use crate::{
    api::{
        ApiTags,
        clients::{ManageErrors, OneClientErrors},
        extractors::Manager,
    },
    error::Errors,
    oauth::consent,
    state::AppState,
};

/// A remembered grant.
#[derive(Object, Debug)]
pub struct ConsentView {
    /// The client.
    pub client_id: String,
    /// The client's name.
    pub client_name: String,
    /// Every scope granted to it.
    pub scope: String,
    /// When it was last granted (Unix seconds).
    pub granted_at: u64,
}

/// The caller's grants.
#[derive(ApiResponse)]
pub enum ConsentList {
    /// The grants.
    #[oai(status = 200)]
    Ok(Json<Vec<ConsentView>>),
}

/// Withdrawal result.
#[derive(ApiResponse)]
pub enum Withdrawn {
    /// Withdrawn: the client must ask again, and its refresh tokens are revoked.
    #[oai(status = 204)]
    Withdrawn,
}

/// The consent API.
pub struct ConsentsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl ConsentsApi {
    /// List your grants
    ///
    /// The applications the caller has allowed, with the scopes granted to each.
    #[oai(
        path = "/api/consents",
        method = "get",
        operation_id = "listConsents",
        tag = "ApiTags::Users"
    )]
    async fn list(&self, manager: Manager) -> Result<ConsentList, Errors<ManageErrors>> {
        let user = manager.0;
        let grants = consent::list(&self.state, &user).await?;
        Ok(ConsentList::Ok(Json(
            grants
                .into_iter()
                .map(|(g, client_name)| ConsentView {
                    client_id: g.client_id,
                    client_name,
                    scope: g.scope.to_string(),
                    granted_at: g.granted_at,
                })
                .collect(),
        )))
    }

    /// Withdraw a grant
    ///
    /// Forgets the caller's consent for the client (it must ask again), revokes every
    /// refresh token the client holds for the caller, and makes Hallpass refuse the access
    /// tokens it already holds for the caller (at `/userinfo`, this API and introspection).
    #[oai(
        path = "/api/consents/:client_id",
        method = "delete",
        operation_id = "withdrawConsent",
        tag = "ApiTags::Users"
    )]
    async fn withdraw(
        &self,
        manager: Manager,
        client_id: Path<String>,
    ) -> Result<Withdrawn, Errors<OneClientErrors>> {
        let user = manager.0;
        consent::withdraw(&self.state, &user, &client_id.0).await?;
        Ok(Withdrawn::Withdrawn)
    }
}
