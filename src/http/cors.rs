//! CORS building blocks (the Fetch standard's CORS protocol) shared by Hallpass and any
//! resource server built on the verifier: recognizing a preflight, answering it, and marking
//! an actual response as readable by an origin. No credentials are ever allowed
//! (`Access-Control-Allow-Credentials` is never sent): bearer tokens travel in headers the
//! page sets itself, never in cookies.
//!
//! [`StaticCors`] is a middleware for a fixed list of origins, what a resource server such as
//! the beer locker needs; Hallpass's per-client policy is in `api::cors`.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, Method, StatusCode, header},
};

/// Whether `req` is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(req: &Request) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(header::ORIGIN)
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The request's `Origin`, when it is valid UTF-8.
pub fn origin(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// What a preflight is answered with for one kind of resource.
#[derive(Debug, Clone, Copy)]
pub struct Preflight {
    /// `Access-Control-Allow-Methods`, such as `"GET, POST"`.
    pub methods: &'static str,
    /// `Access-Control-Allow-Headers`, such as `"Authorization, Content-Type"` (may be empty).
    pub headers: &'static str,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: u32,
}

impl Preflight {
    /// Whether the preflight's `Access-Control-Request-Method` is one of [`Self::methods`].
    pub fn allows_method(&self, req: &Request) -> bool {
        let asked = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        self.methods.split(',').any(|m| m.trim() == asked)
    }

    /// The 204 answer: with the CORS headers when `allow_origin` is `Some` (`*` or the
    /// origin), without any when `None`, so the browser refuses the actual request.
    /// `vary` adds `Vary: Origin` (needed whenever the answer depends on the origin).
    pub fn answer(&self, allow_origin: Option<&str>, vary: bool) -> Response {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Some(origin) = allow_origin {
            allow(&mut resp, origin);
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(self.methods),
            );
            if !self.headers.is_empty() {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(self.headers),
                );
            }
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from(self.max_age),
            );
        }
        if vary {
            vary_origin(&mut resp);
        }
        resp
    }
}

/// Sets `Access-Control-Allow-Origin` (and exposes `WWW-Authenticate` and `Retry-After`, so
/// the page can read why it was refused).
pub fn allow(resp: &mut Response, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, Retry-After"),
        );
    }
}

/// Adds `Origin` to `Vary` (once).
pub fn vary_origin(resp: &mut Response) {
    let present = resp
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("origin"));
    if !present {
        resp.headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// CORS for a fixed list of origins: paths in `public` are readable by any origin
/// (`Access-Control-Allow-Origin: *`, such as RFC 9728 metadata); every other path by the
/// listed origins only, with `Vary: Origin`. Preflights are answered here, before routing.
#[derive(Debug, Clone)]
pub struct StaticCors {
    /// Exact origins (`https://app.example`).
    pub origins: Arc<[String]>,
    /// Paths any origin may read.
    pub public: &'static [&'static str],
    /// The preflight answer of the public paths.
    pub public_preflight: Preflight,
    /// The preflight answer of the other paths.
    pub preflight: Preflight,
}

impl<E: Endpoint> Middleware<E> for StaticCors {
    type Output = StaticCorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        StaticCorsEndpoint {
            inner: ep,
            cors: self.clone(),
        }
    }
}

/// See [`StaticCors`].
pub struct StaticCorsEndpoint<E> {
    inner: E,
    cors: StaticCors,
}

impl<E: Endpoint> Endpoint for StaticCorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let public = self.cors.public.contains(&req.uri().path());
        let listed = origin(&req)
            .filter(|o| self.cors.origins.iter().any(|a| a == o))
            .map(str::to_string);
        if is_preflight(&req) {
            return Ok(if public {
                let p = self.cors.public_preflight;
                p.answer(p.allows_method(&req).then_some("*"), false)
            } else {
                let p = self.cors.preflight;
                let ok = listed.as_deref().filter(|_| p.allows_method(&req));
                p.answer(ok, true)
            });
        }
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if public {
            allow(&mut resp, "*");
        } else {
            if let Some(o) = listed {
                allow(&mut resp, &o);
            }
            vary_origin(&mut resp);
        }
        Ok(resp)
    }
}
