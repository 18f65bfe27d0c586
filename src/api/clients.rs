//! The client API (RFC 7591 field names): register, list, show, delete, rotate the secret.
//! Every operation acts on the caller's own clients only; anyone else's answer 404.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};

use crate::{
    api::{
        ApiTags,
        extractors::Manager,
        values::{AuthMethodName, GrantTypeName},
    },
    error::Errors,
    http::text::Text,
    oauth::client::{self, Client, Registration},
    state::AppState,
};

/// A client registration request (RFC 7591 §2).
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct ClientRegistration {
    /// Name shown to users on the consent page (1 to 200 characters, after trimming spaces).
    /// Required.
    pub client_name: Option<Text>,
    /// Redirect URIs: absolute, no fragment, https, or http on a loopback host (RFC 8252).
    /// Required for `authorization_code`.
    pub redirect_uris: Option<Vec<Text>>,
    /// Grant types: `authorization_code` when absent; `refresh_token` needs it too.
    pub grant_types: Option<Vec<GrantTypeName>>,
    // `client_secret_basic` when absent. No `///`: see `ErrorBody::error`.
    #[allow(missing_docs)]
    pub token_endpoint_auth_method: Option<AuthMethodName>,
    /// Space-separated scopes the client may request; defaults to every offered scope except
    /// `hallpass:manage`, which is refused here: only first-party clients, named by the
    /// operator, may be granted it.
    pub scope: Option<Text>,
    /// Browser origins (`https://app.example`: https, or http on a loopback host, exactly as
    /// browsers send `Origin`) that may call the token, revocation and UserInfo endpoints.
    /// A public client also allows the origins of its redirect URIs; a confidential client
    /// only these (none by default).
    pub allowed_cors_origins: Option<Vec<Text>>,
}

impl poem_openapi::types::Example for ClientRegistration {
    fn example() -> Self {
        ClientRegistration {
            client_name: Some("My app".into()),
            redirect_uris: Some(vec!["http://127.0.0.1:8080/callback".into()]),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            token_endpoint_auth_method: Some("none".into()),
            scope: Some("openid profile offline_access beers:read beers:write".into()),
            allowed_cors_origins: None,
        }
    }
}

/// A registered client. `client_secret` appears only when it was just created or rotated.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClientView {
    /// The client id.
    pub client_id: String,
    /// The secret, shown once: store it now.
    pub client_secret: Option<String>,
    /// `0`: the secret does not expire (RFC 7591 §3.2.1). Present with the secret.
    pub client_secret_expires_at: Option<u64>,
    /// Unix seconds.
    pub client_id_issued_at: u64,
    /// Display name.
    pub client_name: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<GrantTypeName>,
    // No `///`: see `ErrorBody::error`.
    #[allow(missing_docs)]
    pub token_endpoint_auth_method: AuthMethodName,
    /// Allowed scopes.
    pub scope: String,
    /// Browser origins registered explicitly (besides a public client's redirect URIs').
    pub allowed_cors_origins: Vec<String>,
}

/// Never shows the secret.
impl std::fmt::Debug for ClientView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientView")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_name", &self.client_name)
            .field("grant_types", &self.grant_types)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

fn texts(v: Vec<Text>) -> Vec<String> {
    v.into_iter().map(Text::into_inner).collect()
}

fn view(c: Client, secret: Option<String>) -> ClientView {
    ClientView {
        client_id: c.client_id,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: c.created_at,
        client_name: c.client_name,
        redirect_uris: c.redirect_uris,
        grant_types: c
            .grant_types
            .iter()
            .map(|g| GrantTypeName::from(g.as_str()))
            .collect(),
        token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().into(),
        scope: c.scope.to_string(),
        allowed_cors_origins: c.allowed_cors_origins,
    }
}

/// Registration result.
#[derive(ApiResponse)]
pub enum ClientCreated {
    /// The client, with its secret for confidential clients.
    #[oai(status = 201)]
    Created(Json<ClientView>),
}

/// One client.
#[derive(ApiResponse)]
pub enum ClientOne {
    /// The client.
    #[oai(status = 200)]
    Ok(Json<ClientView>),
}

/// The caller's clients.
#[derive(ApiResponse)]
pub enum ClientList {
    /// The clients, oldest first, without secrets.
    #[oai(status = 200)]
    Ok(Json<Vec<ClientView>>),
}

/// Deletion result.
#[derive(ApiResponse)]
pub enum ClientDeleted {
    /// Deleted.
    #[oai(status = 204)]
    Deleted,
}

crate::error_statuses! {
    /// Errors of a management operation: credentials, the `hallpass:manage` scope, limits.
    pub ManageErrors = [401, 403, 429, 500, 503];
    /// Client registration's errors: also a bad body and the per-user limit (409).
    pub RegisterClientErrors = [400, 401, 403, 409, 413, 415, 429, 500, 503];
    /// Errors of an operation on one client: also 404.
    pub OneClientErrors = [401, 403, 404, 429, 500, 503];
    /// Errors of a change to one client: also a concurrent change (409).
    pub ClientChangeErrors = [401, 403, 404, 409, 429, 500, 503];
    /// Errors of a secret rotation: also a public client, which has no secret (400).
    pub RotateErrors = [400, 401, 403, 404, 409, 429, 500, 503];
}

/// The client API.
pub struct ClientsApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl ClientsApi {
    /// Register a client
    ///
    /// Creates an application client owned by the caller. Confidential clients get a
    /// server-generated `client_secret`, shown in this response only.
    #[oai(
        path = "/api/clients",
        method = "post",
        operation_id = "registerClient",
        tag = "ApiTags::Clients"
    )]
    async fn register(
        &self,
        manager: Manager,
        body: Json<ClientRegistration>,
    ) -> Result<ClientCreated, Errors<RegisterClientErrors>> {
        let owner = manager.0;
        let b = body.0;
        let reg = Registration {
            client_name: b.client_name.map(Text::into_inner),
            redirect_uris: b.redirect_uris.map(texts),
            grant_types: b.grant_types.map(|g| g.into_iter().map(|g| g.0).collect()),
            token_endpoint_auth_method: b.token_endpoint_auth_method.map(|m| m.0),
            scope: b.scope.map(Text::into_inner),
            allowed_cors_origins: b.allowed_cors_origins.map(texts),
            response_types: None,
        };
        let (c, secret) = client::register(&self.state, &owner, reg).await?;
        Ok(ClientCreated::Created(Json(view(c, secret))))
    }

    /// List your clients
    ///
    /// Every client the caller owns, without secrets.
    #[oai(
        path = "/api/clients",
        method = "get",
        operation_id = "listClients",
        tag = "ApiTags::Clients"
    )]
    async fn list(&self, manager: Manager) -> Result<ClientList, Errors<ManageErrors>> {
        let owner = manager.0;
        let clients = client::list(&self.state, &owner).await?;
        Ok(ClientList::Ok(Json(
            clients.into_iter().map(|c| view(c, None)).collect(),
        )))
    }

    /// Show a client
    ///
    /// One of the caller's clients; 404 for any other.
    #[oai(
        path = "/api/clients/:client_id",
        method = "get",
        operation_id = "getClient",
        tag = "ApiTags::Clients"
    )]
    async fn get(
        &self,
        manager: Manager,
        client_id: Path<String>,
    ) -> Result<ClientOne, Errors<OneClientErrors>> {
        let owner = manager.0;
        let c = client::get_owned(&self.state, &owner, &client_id.0).await?;
        Ok(ClientOne::Ok(Json(view(c, None))))
    }

    /// Delete a client
    ///
    /// Deletes one of the caller's clients; its codes can no longer be redeemed, and Hallpass
    /// refuses the access tokens already issued to it (at `/userinfo`, this API and
    /// introspection). 404 when it is already gone.
    #[oai(
        path = "/api/clients/:client_id",
        method = "delete",
        operation_id = "deleteClient",
        tag = "ApiTags::Clients"
    )]
    async fn delete(
        &self,
        manager: Manager,
        client_id: Path<String>,
    ) -> Result<ClientDeleted, Errors<ClientChangeErrors>> {
        let owner = manager.0;
        client::delete(&self.state, &owner, &client_id.0).await?;
        Ok(ClientDeleted::Deleted)
    }

    /// Rotate a client secret
    ///
    /// Replaces the secret of one of the caller's confidential clients and shows the new
    /// one, once. The old secret stops working immediately. 409 when a concurrent rotation or
    /// deletion of the same client won: the secret did not change; retry.
    #[oai(
        path = "/api/clients/:client_id/secret",
        method = "post",
        operation_id = "rotateClientSecret",
        tag = "ApiTags::Clients"
    )]
    async fn rotate_secret(
        &self,
        manager: Manager,
        client_id: Path<String>,
    ) -> Result<ClientOne, Errors<RotateErrors>> {
        let owner = manager.0;
        let (c, secret) = client::rotate_secret(&self.state, &owner, &client_id.0).await?;
        Ok(ClientOne::Ok(Json(view(c, Some(secret)))))
    }
}
