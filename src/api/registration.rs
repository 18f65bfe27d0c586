//! Dynamic client registration (RFC 7591) at `POST /oauth2/register`, and the client
//! configuration endpoint of RFC 7592 at `/oauth2/register/{client_id}` (GET, PUT, DELETE
//! with the registration access token as a Bearer token). The decisions are in
//! [`crate::oauth::dynamic_client`]; `HALLPASS_DYNAMIC_CLIENTS` says whether they answer.
//!
//! The body is read by [`MetadataJson`], not poem-openapi's `Json`: a field of the wrong type
//! is an RFC 7591 §3.2.2 `invalid_client_metadata`, not a parser's `invalid_request`, and
//! unknown fields are ignored (RFC 7591 §2).

use poem::{FromRequest, Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, Object, OpenApi,
    SecurityScheme,
    auth::Bearer,
    param::Path,
    payload::{Json, Payload},
    registry::{MetaRequest, Registry},
    types::ParseFromJSON,
};

use crate::{
    api::{
        ApiTags,
        values::{AuthMethodName, GrantTypeName},
    },
    error::{Challenge, ErrorCode, Errors, HttpError, OAuthError},
    oauth::{
        client::{Client, Registration},
        dynamic_client::{self, Answer, UpdateIds},
        grant_type::GrantType,
    },
    state::AppState,
    throttle::{self, client_ip},
};

/// Client metadata (RFC 7591 §2): a registration, or the full replacement an RFC 7592
/// update sends. Fields Hallpass does not know (`client_uri`, `logo_uri`, `contacts`, ...)
/// are ignored.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct ClientMetadata {
    /// Name shown to users on the consent page (1 to 200 characters), marked there as
    /// unverified. Required.
    pub client_name: Option<String>,
    /// Redirect URIs: https; http on a loopback host (a loopback IP such as
    /// `http://127.0.0.1:PORT/path` then matches on any port, RFC 8252 §7.3); or, for a public
    /// client, a private-use scheme that is a reverse domain name (`com.example.app:/callback`,
    /// RFC 8252 §7.1). Required for `authorization_code`.
    pub redirect_uris: Option<Vec<String>>,
    /// Grant types: `authorization_code` when absent; `refresh_token` needs it too.
    pub grant_types: Option<Vec<GrantTypeName>>,
    /// Response types: only `code`.
    pub response_types: Option<Vec<String>>,
    // `client_secret_basic` when absent (RFC 7591 §2); a public client sends `none`. No `///`:
    // see `ErrorBody::error`.
    #[allow(missing_docs)]
    pub token_endpoint_auth_method: Option<AuthMethodName>,
    /// Space-separated scopes the client may request; defaults to every offered scope except
    /// `hallpass:manage`, which is refused.
    pub scope: Option<String>,
    /// Browser origins that may call the token, revocation and UserInfo endpoints, besides a
    /// public client's redirect URIs' origins.
    pub allowed_cors_origins: Option<Vec<String>>,
    /// Update only (RFC 7592 §2.2): the client's id, required there.
    pub client_id: Option<String>,
    /// Update only (RFC 7592 §2.2): when sent, it must be the client's current secret.
    pub client_secret: Option<String>,
}

/// A public native client that signs in with PKCE and a loopback redirect.
impl poem_openapi::types::Example for ClientMetadata {
    fn example() -> Self {
        ClientMetadata {
            client_name: Some("My CLI".into()),
            redirect_uris: Some(vec!["http://127.0.0.1:8080/callback".into()]),
            grant_types: Some(vec!["authorization_code".into(), "refresh_token".into()]),
            token_endpoint_auth_method: Some("none".into()),
            scope: Some("openid offline_access beers:read".into()),
            ..ClientMetadata::default()
        }
    }
}

impl ClientMetadata {
    fn split(self) -> (UpdateIds, Registration) {
        let ids = UpdateIds {
            client_id: self.client_id,
            client_secret: self.client_secret,
        };
        let reg = Registration {
            client_name: self.client_name,
            redirect_uris: self.redirect_uris,
            grant_types: self
                .grant_types
                .map(|g| g.into_iter().map(|g| g.0).collect()),
            token_endpoint_auth_method: self.token_endpoint_auth_method.map(|m| m.0),
            scope: self.scope,
            allowed_cors_origins: self.allowed_cors_origins,
            response_types: self.response_types,
        };
        (ids, reg)
    }
}

/// A client information response (RFC 7591 §3.2.1, RFC 7592 §3).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClientInformation {
    /// The client id.
    pub client_id: String,
    /// The client secret, in the response that issued it only: store it now.
    pub client_secret: Option<String>,
    /// Unix seconds.
    pub client_id_issued_at: u64,
    /// `0` (the secret does not expire), for a confidential client.
    pub client_secret_expires_at: Option<u64>,
    /// The Bearer token that reads, updates and deletes this registration at
    /// `registration_client_uri`. Hallpass keeps only its hash: store it now.
    pub registration_access_token: String,
    /// This client's configuration endpoint (RFC 7592).
    pub registration_client_uri: String,
    /// Display name.
    pub client_name: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Allowed grant types.
    pub grant_types: Vec<GrantTypeName>,
    /// `code` with the authorization code grant.
    pub response_types: Vec<String>,
    // No `///`: see `ErrorBody::error`.
    #[allow(missing_docs)]
    pub token_endpoint_auth_method: AuthMethodName,
    /// Allowed scopes.
    pub scope: String,
    /// Browser origins registered explicitly.
    pub allowed_cors_origins: Vec<String>,
}

/// Never shows the secret or the registration access token.
impl std::fmt::Debug for ClientInformation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInformation")
            .field("client_id", &self.client_id)
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}

fn information(state: &AppState, a: Answer) -> ClientInformation {
    let c: Client = a.client;
    let code = c.allows_grant(GrantType::AuthorizationCode);
    ClientInformation {
        registration_client_uri: state
            .config
            .url(&format!("/oauth2/register/{}", c.client_id)),
        client_secret_expires_at: (!c.is_public()).then_some(0),
        client_id: c.client_id,
        client_secret: a.client_secret,
        client_id_issued_at: c.created_at,
        registration_access_token: a.registration_access_token,
        client_name: c.client_name,
        redirect_uris: c.redirect_uris,
        grant_types: c
            .grant_types
            .iter()
            .map(|g| GrantTypeName::from(g.as_str()))
            .collect(),
        response_types: if code {
            vec!["code".into()]
        } else {
            Vec::new()
        },
        token_endpoint_auth_method: c.token_endpoint_auth_method.as_str().into(),
        scope: c.scope.to_string(),
        allowed_cors_origins: c.allowed_cors_origins,
    }
}

/// The fields of [`ClientMetadata`] that are strings, and those that are arrays of strings.
const STRING_FIELDS: &[&str] = &[
    "client_name",
    "token_endpoint_auth_method",
    "scope",
    "client_id",
    "client_secret",
];
const STRING_ARRAY_FIELDS: &[&str] = &[
    "redirect_uris",
    "grant_types",
    "response_types",
    "allowed_cors_origins",
];

/// Why a known field of `body` has the wrong JSON type (poem-openapi would turn a number
/// into a string); unknown fields are not looked at.
fn check_types(body: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    use serde_json::Value;
    for (name, value) in body {
        let ok = match value {
            Value::Null => true,
            Value::String(_) => STRING_FIELDS.contains(&name.as_str()),
            Value::Array(items) => {
                STRING_ARRAY_FIELDS.contains(&name.as_str()) && items.iter().all(Value::is_string)
            }
            _ => false,
        };
        let known =
            STRING_FIELDS.contains(&name.as_str()) || STRING_ARRAY_FIELDS.contains(&name.as_str());
        if known && !ok {
            let want = if STRING_FIELDS.contains(&name.as_str()) {
                "a string"
            } else {
                "an array of strings"
            };
            return Err(format!("{name} must be {want}"));
        }
    }
    Ok(())
}

/// A JSON body of [`ClientMetadata`] whose parse errors are `invalid_client_metadata` (RFC
/// 7591 §3.2.2); its spec is the type's schema, as with `Json<T>`.
pub struct MetadataJson(pub ClientMetadata);

impl<'a> ApiExtractor<'a> for MetadataJson {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<ClientMetadata> as ApiExtractor<'a>>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        <Json<ClientMetadata> as ApiExtractor<'a>>::request_meta()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        use poem_openapi::error::ContentTypeError;
        match request.content_type() {
            Some(ct) if <Json<ClientMetadata> as Payload>::check_content_type(ct) => {}
            Some(ct) => {
                return Err(ContentTypeError::NotSupported {
                    content_type: ct.to_string(),
                }
                .into());
            }
            None => return Err(ContentTypeError::ExpectContentType.into()),
        }
        let invalid = |msg: String| OAuthError::new(ErrorCode::InvalidClientMetadata, msg);
        let data = <Vec<u8> as FromRequest>::from_request(request, body).await?;
        let value: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|_| invalid("the body is not a JSON object of client metadata".into()))?;
        let Some(fields) = value.as_object() else {
            return Err(invalid("the body must be a JSON object of client metadata".into()).into());
        };
        check_types(fields).map_err(invalid)?;
        ClientMetadata::parse_from_json(Some(value))
            .map(MetadataJson)
            .map_err(|e| invalid(format!("invalid client metadata: {}", e.into_message())).into())
    }
}

/// The registration access token (RFC 7592 §2.1), as `Authorization: Bearer`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", rename = "registrationAccessToken")]
pub struct RegistrationTokenScheme(pub Bearer);

/// [`RegistrationTokenScheme`], whose absence is a 401 `invalid_token` with a Bearer
/// challenge (RFC 6750 §3.1: without an error attribute), as RFC 7592 §2 asks.
pub struct RegistrationToken(pub String);

impl<'a> ApiExtractor<'a> for RegistrationToken {
    const TYPES: &'static [ApiExtractorType] = <RegistrationTokenScheme as ApiExtractor<'a>>::TYPES;
    type ParamType = <RegistrationTokenScheme as ApiExtractor<'a>>::ParamType;
    type ParamRawType = <RegistrationTokenScheme as ApiExtractor<'a>>::ParamRawType;

    fn register(registry: &mut Registry) {
        <RegistrationTokenScheme as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        <RegistrationTokenScheme as ApiExtractor<'a>>::security_schemes()
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match <RegistrationTokenScheme as ApiExtractor<'a>>::from_request(request, body, param_opts)
            .await
        {
            Ok(RegistrationTokenScheme(b)) => Ok(RegistrationToken(b.token)),
            Err(_) => Err(HttpError::from(OAuthError::invalid_token(
                "send the registration access token as Authorization: Bearer",
            ))
            .with_challenge(Challenge::Bearer)
            .credentials_missing()
            .into()),
        }
    }
}

/// A registration.
#[derive(ApiResponse)]
pub enum Registered {
    /// The client, its secret (confidential clients) and its registration access token.
    #[oai(status = 201)]
    Created(Json<ClientInformation>),
}

/// A client's current registration.
#[derive(ApiResponse)]
pub enum Information {
    /// The client (without its secret).
    #[oai(status = 200)]
    Ok(Json<ClientInformation>),
}

/// A deleted registration.
#[derive(ApiResponse)]
pub enum Unregistered {
    /// Deleted; the tokens issued to the client stop working at Hallpass.
    #[oai(status = 204)]
    Deleted,
}

crate::error_statuses! {
    /// Registration's errors: invalid metadata, registration off (404), too many from here.
    pub RegisterErrors = [400, 404, 413, 415, 429, 500, 503];
    /// Reading's errors: a wrong registration access token, registration off.
    pub ReadErrors = [401, 404, 500, 503];
    /// Updating's errors: also invalid metadata and a concurrent change.
    pub UpdateErrors = [400, 401, 404, 409, 413, 415, 500, 503];
    /// Deleting's errors.
    pub DeleteErrors = [401, 404, 409, 500, 503];
}

/// RFC 7591 and RFC 7592.
pub struct RegistrationApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl RegistrationApi {
    /// Register a client (RFC 7591)
    ///
    /// Open to anyone when `HALLPASS_DYNAMIC_CLIENTS` is `public` (public clients only,
    /// `token_endpoint_auth_method` `none`, which must use PKCE) or `all`; 404 when it is
    /// `off`. The response carries the `registration_access_token` that manages the client at
    /// `registration_client_uri`, and, for a confidential client, its `client_secret`: both
    /// shown only here. Such a client has no owner, is never first-party, and its consent page
    /// says it is unverified. Rate limited per IP (429 with `Retry-After`).
    #[oai(
        path = "/oauth2/register",
        method = "post",
        operation_id = "registerDynamicClient",
        tag = "ApiTags::OAuth2"
    )]
    async fn register(
        &self,
        req: &Request,
        body: MetadataJson,
    ) -> Result<Registered, Errors<RegisterErrors>> {
        dynamic_client::mode(&self.state)?;
        let (_, reg) = body.0.split();
        let attempt = throttle::Attempt::client_registration(client_ip::of(req, &self.state));
        let work = dynamic_client::register(&self.state, reg);
        let answer = throttle::guard(&self.state, &attempt, work, throttle::every_attempt).await?;
        Ok(Registered::Created(Json(information(&self.state, answer))))
    }

    /// Read a client registration (RFC 7592)
    ///
    /// With the registration access token. 401 `invalid_token` for a wrong token or an
    /// unknown client.
    #[oai(
        path = "/oauth2/register/:client_id",
        method = "get",
        operation_id = "getDynamicClient",
        tag = "ApiTags::OAuth2"
    )]
    async fn read(
        &self,
        client_id: Path<String>,
        token: RegistrationToken,
    ) -> Result<Information, Errors<ReadErrors>> {
        let answer = dynamic_client::read(&self.state, &client_id.0, &token.0).await?;
        Ok(Information::Ok(Json(information(&self.state, answer))))
    }

    /// Update a client registration (RFC 7592)
    ///
    /// Replaces the metadata: send every field, as read; omitted ones return to their
    /// defaults. `client_id` is required and must be this client's; `client_secret`, if sent,
    /// must be its current secret. A client that becomes confidential gets a secret, shown
    /// in this response only.
    #[oai(
        path = "/oauth2/register/:client_id",
        method = "put",
        operation_id = "updateDynamicClient",
        tag = "ApiTags::OAuth2"
    )]
    async fn update(
        &self,
        client_id: Path<String>,
        token: RegistrationToken,
        body: MetadataJson,
    ) -> Result<Information, Errors<UpdateErrors>> {
        let (ids, reg) = body.0.split();
        let answer = dynamic_client::update(&self.state, &client_id.0, &token.0, ids, reg).await?;
        Ok(Information::Ok(Json(information(&self.state, answer))))
    }

    /// Delete a client registration (RFC 7592)
    ///
    /// The client stops working: its codes can no longer be redeemed and Hallpass refuses
    /// the access tokens already issued to it.
    #[oai(
        path = "/oauth2/register/:client_id",
        method = "delete",
        operation_id = "deleteDynamicClient",
        tag = "ApiTags::OAuth2"
    )]
    async fn delete(
        &self,
        client_id: Path<String>,
        token: RegistrationToken,
    ) -> Result<Unregistered, Errors<DeleteErrors>> {
        dynamic_client::delete(&self.state, &client_id.0, &token.0).await?;
        Ok(Unregistered::Deleted)
    }
}
