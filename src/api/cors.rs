//! Hallpass's CORS policy (draft-ietf-oauth-browser-based-apps §6), as one middleware in
//! front of the router:
//!
//! - Metadata (`/.well-known/oauth-authorization-server`, `/.well-known/openid-configuration`)
//!   and the JWKS: any origin, `Access-Control-Allow-Origin: *`.
//! - Token, revocation and UserInfo: the origins the request's client allows
//!   ([`crate::oauth::cors`]). The request's `Origin` goes to the handler as a
//!   [`RequestOrigin`]; the handler checks it against the client right after identifying it
//!   and before the grant runs, and only a request that passed gets
//!   `Access-Control-Allow-Origin: <origin>`. A preflight carries no body, so no client: it
//!   is answered for any well-formed origin (https, or http on a loopback host) and the
//!   decision is made on the actual request, which a form POST sends without preflight anyway.
//! - Introspection gets no CORS: browser apps should not introspect (the BCP's §6.1), it is for
//!   confidential clients, and its answers stay unreadable to pages.
//! - Everything else, the authorization endpoint and the HTML pages above all, never sends
//!   CORS headers.
//!
//! A request whose `Origin` is the issuer's own (Swagger UI at `/docs`) is same-origin and not
//! checked. Answers whose CORS headers depend on the origin carry `Vary: Origin`.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::{
    config::Config,
    http::cors::{Preflight, allow, is_preflight, origin, vary_origin},
    oauth::cors::RequestOrigin,
};

/// Paths any origin may read.
pub const PUBLIC_PATHS: &[&str] = &[
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
];

const PUBLIC: Preflight = Preflight {
    methods: "GET",
    headers: "",
    max_age: 86_400,
};
/// `X-Requested-With`: Swagger UI sends it with its token request (which makes that form
/// POST preflighted); it carries nothing the server reads.
const CLIENT_POST: Preflight = Preflight {
    methods: "POST",
    headers: "Authorization, Content-Type, X-Requested-With",
    max_age: 600,
};
const USERINFO: Preflight = Preflight {
    methods: "GET, POST",
    headers: "Authorization, Content-Type, X-Requested-With",
    max_age: 600,
};

/// The preflight answer of a path whose readers depend on its client.
fn per_client(path: &str) -> Option<Preflight> {
    match path {
        "/oauth2/token" | "/oauth2/revoke" => Some(CLIENT_POST),
        "/userinfo" => Some(USERINFO),
        _ => None,
    }
}

/// The [`RequestOrigin`] of a cross-origin request to a per-client path, for the handler.
pub fn request_origin(req: &Request) -> Option<RequestOrigin> {
    req.extensions().get::<RequestOrigin>().cloned()
}

/// The middleware; see the module docs.
pub struct Cors {
    own_origin: Option<String>,
}

impl Cors {
    /// For the server configured by `config` (its own origin is the issuer's).
    pub fn new(config: &Config) -> Self {
        Self {
            own_origin: url::Url::parse(&config.issuer)
                .ok()
                .and_then(|u| crate::uri::origin_of(&u)),
        }
    }
}

impl<E: Endpoint> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CorsEndpoint {
            inner: ep,
            own_origin: self.own_origin.clone(),
        }
    }
}

/// See [`Cors`].
pub struct CorsEndpoint<E> {
    inner: E,
    own_origin: Option<String>,
}

async fn answer<E: Endpoint>(ep: &E, req: Request) -> Response {
    match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_string();
        if PUBLIC_PATHS.contains(&path.as_str()) {
            if is_preflight(&req) {
                return Ok(PUBLIC.answer(PUBLIC.allows_method(&req).then_some("*"), false));
            }
            let mut resp = answer(&self.inner, req).await;
            allow(&mut resp, "*");
            return Ok(resp);
        }
        let Some(preflight) = per_client(&path) else {
            return Ok(answer(&self.inner, req).await);
        };
        let cross = origin(&req)
            .filter(|o| Some(*o) != self.own_origin.as_deref())
            .map(str::to_string);
        if is_preflight(&req) {
            let ok = cross
                .as_deref()
                .filter(|o| crate::uri::check_origin(o).is_ok() && preflight.allows_method(&req));
            return Ok(preflight.answer(ok, true));
        }
        let Some(cross) = cross else {
            let mut resp = answer(&self.inner, req).await;
            vary_origin(&mut resp);
            return Ok(resp);
        };
        let gate = RequestOrigin::new(cross.clone());
        req.extensions_mut().insert(gate.clone());
        let mut resp = answer(&self.inner, req).await;
        if gate.is_allowed() {
            allow(&mut resp, &cross);
        }
        vary_origin(&mut resp);
        Ok(resp)
    }
}
