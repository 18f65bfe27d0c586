//! OpenAPI security schemes. They only extract credentials; deciding who the caller is
//! happens in `oauth::client::authenticate` and, for the management API, in the
//! [`Manager`](crate::api::extractors::Manager) extractor built on [`UserAuth`].

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme,
    auth::{Basic, Bearer},
    registry::Registry,
};

use crate::oauth::{client::ClientCredentials, users::UserCredentials};

/// Client authentication with HTTP Basic (`client_secret_basic`, RFC 6749 §2.3.1): the
/// client id and secret, each form-urlencoded.
#[derive(SecurityScheme)]
#[oai(ty = "basic", rename = "clientSecretBasic")]
pub struct ClientBasic(pub Basic);

/// Token-endpoint client authentication: HTTP Basic, or credentials in the form body
/// (`client_secret_post`, or `client_id` alone for public clients).
#[derive(SecurityScheme)]
pub enum ClientAuth {
    /// HTTP Basic.
    Basic(ClientBasic),
    /// No usable `Authorization` header: the form body carries the client's identity.
    #[oai(fallback)]
    Form,
}

/// A user's username and password, with HTTP Basic.
#[derive(SecurityScheme)]
#[oai(ty = "basic", rename = "userBasic")]
pub struct UserBasic(pub Basic);

/// A Hallpass access token whose subject is a user.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", rename = "bearerToken")]
pub struct UserBearer(pub Bearer);

/// Management-API authentication: a user's password or an access token.
#[derive(SecurityScheme)]
pub enum UserAuth {
    /// HTTP Basic with username and password.
    Basic(UserBasic),
    /// Bearer access token.
    Bearer(UserBearer),
}

impl From<UserAuth> for UserCredentials {
    fn from(auth: UserAuth) -> Self {
        match auth {
            UserAuth::Basic(UserBasic(b)) => UserCredentials::Basic {
                username: b.username,
                password: b.password,
            },
            UserAuth::Bearer(UserBearer(b)) => UserCredentials::Bearer(b.token),
        }
    }
}

fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Combines the header and form credentials of a token-endpoint request.
pub fn client_credentials(
    auth: ClientAuth,
    header_present: bool,
    form_id: Option<String>,
    form_secret: Option<String>,
) -> ClientCredentials {
    let basic = match auth {
        ClientAuth::Basic(ClientBasic(b)) => {
            Some((form_decode(&b.username), form_decode(&b.password)))
        }
        ClientAuth::Form => None,
    };
    ClientCredentials {
        malformed_header: header_present && basic.is_none(),
        basic,
        form_id: form_id.filter(|s| !s.is_empty()),
        form_secret: form_secret.filter(|s| !s.is_empty()),
    }
}

/// A [`UserBearer`] that the spec also lists as the `oauth2` scheme with the `openid` scope
/// (see [`crate::docs::spec`]): for `/userinfo`, so Swagger UI's sign-in works there too.
pub struct OpenIdBearer(pub UserBearer);

impl<'a> ApiExtractor<'a> for OpenIdBearer {
    const TYPES: &'static [ApiExtractorType] = <UserBearer as ApiExtractor<'a>>::TYPES;
    type ParamType = <UserBearer as ApiExtractor<'a>>::ParamType;
    type ParamRawType = <UserBearer as ApiExtractor<'a>>::ParamRawType;

    fn register(registry: &mut Registry) {
        <UserBearer as ApiExtractor<'a>>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <UserBearer as ApiExtractor<'a>>::security_schemes();
        schemes.push("oauth2#openid");
        schemes
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        <UserBearer as ApiExtractor<'a>>::from_request(request, body, param_opts)
            .await
            .map(OpenIdBearer)
    }
}
