//! Cookie names and attributes, and `Strict-Transport-Security`: what the issuer's scheme
//! decides.
//!
//! With an https issuer, cookies are named with the `__Host-` prefix (RFC 6265bis §4.1.3.2:
//! `Secure`, `Path=/`, no `Domain`), so no sibling or parent domain can plant or overwrite
//! them, and every response carries `Strict-Transport-Security: max-age=31536000` (RFC 6797;
//! no `includeSubDomains`, which is the operator's decision for the whole domain). On an http
//! issuer (local development on loopback) browsers refuse `__Host-` cookies, so the plain
//! names stay and no HSTS is sent.

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::header};

use crate::config::Config;

/// The session cookie's name on an http issuer.
pub const SESSION_COOKIE: &str = "hallpass_session";
/// The login CSRF cookie's name on an http issuer.
pub const CSRF_COOKIE: &str = "hallpass_csrf";
/// The session cookie's name on an https issuer.
pub const HOST_SESSION_COOKIE: &str = "__Host-hallpass_session";
/// The login CSRF cookie's name on an https issuer.
pub const HOST_CSRF_COOKIE: &str = "__Host-hallpass_csrf";
/// The `Strict-Transport-Security` value sent when the issuer is https.
pub const HSTS: &str = "max-age=31536000";

fn https(config: &Config) -> bool {
    config.secure_cookies()
}

/// The session cookie's name for this deployment.
pub fn session_name(config: &Config) -> &'static str {
    if https(config) {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The login CSRF cookie's name for this deployment.
pub fn csrf_name(config: &Config) -> &'static str {
    if https(config) {
        HOST_CSRF_COOKIE
    } else {
        CSRF_COOKIE
    }
}

/// A `Set-Cookie` value: `HttpOnly`, the given `SameSite` and `Max-Age`; on https also
/// `Secure` and always `Path=/` (which `__Host-` requires), else the given path.
pub fn set_cookie(
    config: &Config,
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: u64,
) -> String {
    let (path, secure) = if https(config) {
        ("/", "; Secure")
    } else {
        (path, "")
    };
    format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    )
}

/// Whether every response gets `Strict-Transport-Security` ([`Hsts`]): when the issuer is https.
pub fn sends_hsts(config: &Config) -> bool {
    https(config)
}

/// Middleware adding `Strict-Transport-Security` to every response, errors included (an
/// error becomes its response here, so a 404 carries the header too). Mounted outermost
/// with `with_if(sends_hsts(config), Hsts)`.
pub struct Hsts;

impl<E: Endpoint> Middleware<E> for Hsts {
    type Output = HstsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HstsEndpoint(ep)
    }
}

/// See [`Hsts`].
pub struct HstsEndpoint<E>(E);

impl<E: Endpoint> Endpoint for HstsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut resp = match self.0.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static(HSTS),
        );
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(issuer: &str) -> Config {
        Config {
            issuer: issuer.into(),
            ..Config::default()
        }
    }

    #[test]
    fn https_issuers_get_host_prefixed_secure_root_cookies_and_hsts() {
        let c = config("https://as.example");
        assert_eq!(session_name(&c), "__Host-hallpass_session");
        assert_eq!(csrf_name(&c), "__Host-hallpass_csrf");
        let line = set_cookie(&c, csrf_name(&c), "v", "/login", "Strict", 60);
        assert_eq!(
            line,
            "__Host-hallpass_csrf=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(sends_hsts(&c));
    }

    #[test]
    fn http_issuers_keep_the_plain_names_and_send_no_hsts() {
        let c = config("http://127.0.0.1:8080");
        assert_eq!(session_name(&c), "hallpass_session");
        let line = set_cookie(&c, csrf_name(&c), "v", "/login", "Strict", 60);
        assert_eq!(
            line,
            "hallpass_csrf=v; Path=/login; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(!sends_hsts(&c));
    }
}
