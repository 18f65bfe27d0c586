//! `POST /oauth2/token` (RFC 6749 §3.2, §5).

use poem::{IntoResponse, Request};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Form, Json},
    registry::{MetaResponses, Registry},
};
use serde::{Deserialize, Serialize};

use crate::{
    api::{
        ApiTags,
        security::{ClientAuth, client_credentials},
        values::GrantTypeName,
    },
    error::Errors,
    oauth::{
        client,
        grant::{self, Issued, TokenRequest},
    },
    state::AppState,
    throttle,
};

/// The token request (`application/x-www-form-urlencoded`). Every field is optional here so
/// that a missing one gets an RFC 6749 `invalid_request`, not a parser error. `resource`
/// may be repeated (RFC 8707 §2); any other parameter sent twice is `invalid_request`
/// (RFC 6749 §3.2), and unknown ones are ignored.
#[derive(Object)]
#[oai(example)]
pub struct TokenForm {
    // Required in the spec (`crate::api::spec`), optional here: a missing one gets
    // `invalid_request`, an unknown or empty one `unsupported_grant_type`. No `///`: see
    // `ErrorBody::error`.
    #[allow(missing_docs)]
    pub grant_type: Option<GrantTypeName>,
    /// The authorization code (authorization_code grant).
    pub code: Option<String>,
    /// The redirect URI of the authorization request, when that request named one.
    pub redirect_uri: Option<String>,
    /// The PKCE code verifier (RFC 7636).
    pub code_verifier: Option<String>,
    /// The client id (`client_secret_post`, or public clients).
    pub client_id: Option<String>,
    /// The client secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// Requested scope (client_credentials; a narrower scope on refresh).
    pub scope: Option<String>,
    /// Refresh token (refresh_token grant).
    pub refresh_token: Option<String>,
    /// The resource server(s) the access token is for (RFC 8707): absolute URIs, repeat the
    /// parameter for several. At the code exchange and on refresh, a subset of those granted
    /// (default: all of them); for client credentials, registered resource servers (default:
    /// those accepting the requested scopes).
    pub resource: Option<Vec<String>>,
}

/// serde's derive refuses a repeated field and `serde_urlencoded` has no sequences, so the
/// form is read pair by pair: `resource` collects, everything else may appear once.
impl<'de> Deserialize<'de> for TokenForm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = TokenForm;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("token request parameters")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TokenForm, A::Error> {
                let mut form = TokenForm::empty();
                let mut resources = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    let slot = match key.as_str() {
                        "resource" => {
                            resources.push(value);
                            continue;
                        }
                        "grant_type" => {
                            if form.grant_type.is_some() {
                                return Err(serde::de::Error::duplicate_field("grant_type"));
                            }
                            form.grant_type = Some(GrantTypeName(value));
                            continue;
                        }
                        "code" => &mut form.code,
                        "redirect_uri" => &mut form.redirect_uri,
                        "code_verifier" => &mut form.code_verifier,
                        "client_id" => &mut form.client_id,
                        "client_secret" => &mut form.client_secret,
                        "scope" => &mut form.scope,
                        "refresh_token" => &mut form.refresh_token,
                        _ => continue,
                    };
                    if slot.replace(value).is_some() {
                        let name = FIELDS
                            .iter()
                            .find(|f| **f == key)
                            .copied()
                            .unwrap_or("parameter");
                        return Err(serde::de::Error::duplicate_field(name));
                    }
                }
                form.resource = (!resources.is_empty()).then_some(resources);
                Ok(form)
            }
        }
        const FIELDS: &[&str] = &[
            "grant_type",
            "code",
            "redirect_uri",
            "code_verifier",
            "client_id",
            "client_secret",
            "scope",
            "refresh_token",
            "resource",
        ];
        d.deserialize_struct("TokenForm", FIELDS, Pairs)
    }
}

impl TokenForm {
    fn empty() -> Self {
        TokenForm {
            grant_type: None,
            code: None,
            redirect_uri: None,
            code_verifier: None,
            client_id: None,
            client_secret: None,
            scope: None,
            refresh_token: None,
            resource: None,
        }
    }
}

/// A client-credentials request: valid as it stands for a confidential client that
/// authenticates with HTTP Basic (`clientSecretBasic`).
impl poem_openapi::types::Example for TokenForm {
    fn example() -> Self {
        TokenForm {
            grant_type: Some("client_credentials".into()),
            ..TokenForm::empty()
        }
    }
}

/// Shows which parameters were sent, never the code, verifier, secret or refresh token.
impl std::fmt::Debug for TokenForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("TokenForm")
            .field("grant_type", &self.grant_type)
            .field("code", &hidden(&self.code))
            .field("redirect_uri", &self.redirect_uri)
            .field("code_verifier", &hidden(&self.code_verifier))
            .field("client_id", &self.client_id)
            .field("client_secret", &hidden(&self.client_secret))
            .field("scope", &self.scope)
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("resource", &self.resource)
            .finish()
    }
}

// `Object` gives the spec its schema; `Serialize` (the same fields, names and omissions)
// writes the body, see `TokenOk`. Not in the `///` below: that becomes the spec's text.
/// A successful token response (RFC 6749 §5.1).
#[derive(Object, Serialize)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenBody {
    /// The access token: an RFC 9068 JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The granted scope.
    pub scope: String,
    /// The refresh token, when one was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// Never shows the tokens.
impl std::fmt::Debug for TokenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("TokenBody")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("refresh_token", &hidden(&self.refresh_token))
            .field("id_token", &hidden(&self.id_token))
            .finish()
    }
}

impl From<Issued> for TokenBody {
    fn from(i: Issued) -> Self {
        TokenBody {
            access_token: i.access_token,
            token_type: i.token_type.to_string(),
            expires_in: i.expires_in,
            scope: i.scope,
            refresh_token: i.refresh_token,
            id_token: i.id_token,
        }
    }
}

/// The token endpoint's success as the spec documents it: [`TokenOk`]'s `meta` and schema.
#[derive(ApiResponse)]
#[expect(dead_code, reason = "never built: only its meta and schema are used")]
enum TokenOkSpec {
    /// Tokens issued. `Cache-Control: no-store`.
    #[oai(status = 200)]
    Ok(Json<TokenBody>),
}

/// The token endpoint's success: 200 with the [`TokenBody`] as JSON.
///
/// Documented as [`TokenOkSpec`], written with serde: poem-openapi's `Json` first builds a
/// `serde_json::Value` tree (a copy of every token and a map of its fields) and then
/// serialises that, on every token issued.
pub struct TokenOk(pub TokenBody);

impl ApiResponse for TokenOk {
    fn meta() -> MetaResponses {
        TokenOkSpec::meta()
    }

    fn register(registry: &mut Registry) {
        TokenOkSpec::register(registry);
    }
}

impl IntoResponse for TokenOk {
    fn into_response(self) -> poem::Response {
        poem::web::Json(self.0).into_response()
    }
}

crate::error_statuses! {
    /// What the token endpoint can answer besides tokens.
    pub TokenErrors = [400, 401, 413, 415, 429, 500, 503];
}

/// The token endpoint.
pub struct TokenApi {
    /// Shared state.
    pub state: AppState,
}

#[OpenApi]
impl TokenApi {
    /// Exchange a grant for tokens
    ///
    /// Grants: `authorization_code` (with PKCE), `refresh_token` (rotated on every use; a
    /// retry within the grace window gets the same successor) and `client_credentials`. Clients authenticate
    /// with HTTP Basic (`client_secret_basic`), with `client_id` and `client_secret` in the body
    /// (`client_secret_post`), or, for public clients, with `client_id` alone. `resource`
    /// (RFC 8707, repeatable) names the resource servers the access token is for: its `aud`,
    /// with the scope narrowed to what they accept; an unknown, malformed or not granted one
    /// is `invalid_target`. Errors follow RFC 6749 §5.2; `invalid_client` is a 401 with
    /// `WWW-Authenticate`.
    #[oai(
        path = "/oauth2/token",
        method = "post",
        operation_id = "token",
        tag = "ApiTags::OAuth2"
    )]
    async fn token(
        &self,
        req: &Request,
        auth: ClientAuth,
        form: Form<TokenForm>,
    ) -> Result<TokenOk, Errors<TokenErrors>> {
        let f = form.0;
        let creds = client_credentials(
            auth,
            req.headers()
                .contains_key(poem::http::header::AUTHORIZATION),
            f.client_id,
            f.client_secret,
        );
        let request = TokenRequest {
            grant_type: f.grant_type.map(|g| g.0),
            code: f.code,
            redirect_uri: f.redirect_uri,
            code_verifier: f.code_verifier,
            scope: f.scope,
            refresh_token: f.refresh_token,
            resources: f.resource.unwrap_or_default(),
            origin: crate::api::cors::request_origin(req),
        };
        let grant_type = grant::grant_type(&request).map_err(throttle::Refusal::Error)?;
        // A code is consumed only once its client has authenticated, so nothing of the
        // grant is read alongside the client's record.
        let work = |client, ()| grant::token(&self.state, client, grant_type, request);
        let issued =
            client::authenticated(&self.state, creds, std::future::ready(()), work).await?;
        Ok(TokenOk(issued.into()))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    fn body(refresh_token: Option<&str>, id_token: Option<&str>) -> TokenBody {
        TokenBody {
            access_token: "eyJ.a\"t\\.x".into(),
            token_type: "Bearer".into(),
            expires_in: 600,
            scope: "beers:read openid".into(),
            refresh_token: refresh_token.map(Into::into),
            id_token: id_token.map(Into::into),
        }
    }

    /// The body written (serde) is the body the spec describes (poem-openapi's `Object`):
    /// the same names, values and omitted fields, for every combination of the optional ones.
    #[tokio::test]
    async fn the_written_body_is_the_documented_one() {
        for (refresh, id) in [
            (None, None),
            (Some("r.t"), None),
            (None, Some("i.t")),
            (Some("r.t"), Some("i.t")),
        ] {
            let documented = body(refresh, id).to_json().unwrap();
            let resp = TokenOk(body(refresh, id)).into_response();
            assert_eq!(resp.status(), poem::http::StatusCode::OK);
            assert_eq!(resp.content_type(), Some("application/json; charset=utf-8"));
            let bytes = resp.into_body().into_vec().await.unwrap();
            let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(written, documented, "refresh {refresh:?}, id {id:?}");
            let fields = written.as_object().unwrap();
            assert_eq!(fields.contains_key("refresh_token"), refresh.is_some());
            assert_eq!(fields.contains_key("id_token"), id.is_some());
        }
    }
}
