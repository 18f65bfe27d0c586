//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592), as
//! `HALLPASS_DYNAMIC_CLIENTS` allows: `off` (every call is `not_found`), `public` (public
//! clients only, which must use PKCE at the authorization endpoint) or `all`.
//!
//! A registration is validated by the same [`client::validate`] as the management API's, so
//! the rules on redirect URIs (RFC 8252 loopback and private-use schemes included), grant
//! types and scopes are one. The client gets:
//! - an id with the prefix [`ID_PREFIX`], which no other client id has (server ids are
//!   base64url, which has no `.`); so it is never first-party, whatever
//!   `HALLPASS_FIRST_PARTY_CLIENTS` says ([`crate::oauth::first_party::is_first_party`]);
//! - no owner: it never appears in, and cannot be changed through, `/api/clients`;
//! - a registration access token (256 random bits, shown in the registration response, stored
//!   only as its SHA-256 and compared in constant time), the only credential that reads,
//!   updates or deletes it ([`client_update::Access::RegistrationToken`]).
//!
//! Read and update answers repeat the token the caller presented (RFC 7592 §3 requires it in
//! every client information response, and only its hash is stored). An update replaces the
//! metadata (RFC 7592 §2.2: omitted fields return to their defaults); a confidential client
//! keeps its secret, a client that becomes confidential gets one (shown once), one that
//! becomes public loses it. A deletion refuses the tokens already issued to the client, as
//! the management API's does.

use crate::{
    config::DynamicClients,
    crypto::{ct_eq, random_id, random_token, sha256_b64},
    oauth::{
        client::{self, AuthMethod, Client, Registration},
        client_update::{self, Access},
        error::{ErrorCode, OAuthError},
    },
    state::AppState,
    store::{StoreJson, schema},
};

/// The prefix of every dynamically registered client id.
pub const ID_PREFIX: &str = "dyn.";

/// Whether `client_id` was issued by dynamic registration.
pub fn is_dynamic_id(client_id: &str) -> bool {
    client_id.starts_with(ID_PREFIX)
}

/// A client as the registration endpoint answers it: the record, and the secrets shown in
/// this response only.
pub struct Answer {
    /// The client.
    pub client: Client,
    /// The client secret, when it was just issued.
    pub client_secret: Option<String>,
    /// The registration access token: issued now, or the one the caller presented.
    pub registration_access_token: String,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("client_id", &self.client.client_id)
            .finish_non_exhaustive()
    }
}

/// What the server allows; `not_found` when dynamic registration is off, so the endpoint
/// looks as absent as the metadata says it is.
pub fn mode(state: &AppState) -> Result<DynamicClients, OAuthError> {
    match state.config.dynamic_clients {
        DynamicClients::Off => Err(OAuthError::not_found(
            "dynamic client registration is not enabled on this server",
        )),
        mode => Ok(mode),
    }
}

/// `invalid_client_metadata` for a confidential client when only public ones may register.
fn check_mode(mode: DynamicClients, method: AuthMethod) -> Result<(), OAuthError> {
    if mode == DynamicClients::Public && method != AuthMethod::None {
        return Err(OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            "this server registers only public clients: send token_endpoint_auth_method none (and use PKCE)",
        ));
    }
    Ok(())
}

/// Registers a client (RFC 7591 §3.1).
#[tracing::instrument(skip_all)]
pub async fn register(state: &AppState, reg: Registration) -> Result<Answer, OAuthError> {
    let mode = mode(state)?;
    let meta = client::validate(state, reg)?;
    check_mode(mode, meta.token_endpoint_auth_method)?;
    let secret = (meta.token_endpoint_auth_method != AuthMethod::None).then(random_token);
    let token = random_token();
    let id = format!("{ID_PREFIX}{}", random_id());
    let mut client = Client::new(id, String::new(), meta, secret.as_deref(), state.now());
    client.registration_token_hash = Some(sha256_b64(token.as_bytes()));
    state
        .store
        .put_json(&schema::client(&client.client_id), &client, None)
        .await?;
    tracing::info!(client_id = %client.client_id, "client registered dynamically");
    Ok(Answer {
        client,
        client_secret: secret,
        registration_access_token: token,
    })
}

/// Reads a client with its registration access token (RFC 7592 §2.1).
pub async fn read(state: &AppState, client_id: &str, token: &str) -> Result<Answer, OAuthError> {
    mode(state)?;
    let (client, _) =
        client_update::read(state, Access::RegistrationToken(token), client_id).await?;
    Ok(Answer {
        client,
        client_secret: None,
        registration_access_token: token.to_string(),
    })
}

/// The identifiers an RFC 7592 §2.2 update repeats in its body.
#[derive(Default)]
pub struct UpdateIds {
    /// `client_id`: required, and must be the client's.
    pub client_id: Option<String>,
    /// `client_secret`: optional; when sent, must be the client's current secret.
    pub client_secret: Option<String>,
}

/// Replaces a client's metadata with its registration access token (RFC 7592 §2.2).
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn update(
    state: &AppState,
    client_id: &str,
    token: &str,
    ids: UpdateIds,
    reg: Registration,
) -> Result<Answer, OAuthError> {
    let mode = mode(state)?;
    let (current, raw) =
        client_update::read_for_change(state, Access::RegistrationToken(token), client_id).await?;
    let bad = |msg: &'static str| OAuthError::new(ErrorCode::InvalidClientMetadata, msg);
    if ids.client_id.as_deref() != Some(current.client_id.as_str()) {
        return Err(bad(
            "client_id is required in the body and must be this client's id (RFC 7592 §2.2)",
        ));
    }
    if let Some(sent) = ids.client_secret.as_deref() {
        let presented = sha256_b64(sent.as_bytes());
        let matches = current
            .secret_hash
            .as_deref()
            .is_some_and(|h| ct_eq(presented.as_bytes(), h.as_bytes()));
        if !matches {
            return Err(bad("client_secret is not this client's current secret"));
        }
    }
    let meta = client::validate(state, reg)?;
    check_mode(mode, meta.token_endpoint_auth_method)?;
    let confidential = meta.token_endpoint_auth_method != AuthMethod::None;
    let new_secret = (confidential && current.secret_hash.is_none()).then(random_token);
    let mut updated = Client::new(
        current.client_id.clone(),
        String::new(),
        meta,
        new_secret.as_deref(),
        current.created_at,
    );
    if confidential && new_secret.is_none() {
        updated.secret_hash = current.secret_hash.clone();
    }
    updated.registration_token_hash = current.registration_token_hash.clone();
    client_update::replace(state, &raw, &updated).await?;
    tracing::info!("dynamically registered client updated");
    Ok(Answer {
        client: updated,
        client_secret: new_secret,
        registration_access_token: token.to_string(),
    })
}

/// Deletes a client with its registration access token (RFC 7592 §2.3); its tokens stop
/// working as with any deleted client.
#[tracing::instrument(skip_all, fields(client_id = %client_id))]
pub async fn delete(state: &AppState, client_id: &str, token: &str) -> Result<(), OAuthError> {
    mode(state)?;
    client_update::delete(state, Access::RegistrationToken(token), client_id).await
}
