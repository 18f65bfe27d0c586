//! Swagger UI at `/docs`, signing in with OAuth 2.0, and the served spec.
//!
//! poem-openapi's own Swagger page calls no `initOAuth` and inlines everything, so both
//! binaries serve this page instead, built from the same Swagger UI bundle and stylesheet
//! that poem-openapi embeds (taken out of its page, byte for byte: nothing is fetched from a
//! CDN):
//!
//! - `/docs/`: the page, with no inline script;
//! - `/docs/swagger-ui-bundle.js`, `/docs/swagger-ui.css`: Swagger UI;
//! - `/docs/docs.js`: the start-up script. It loads `/openapi.json` and calls `initOAuth`
//!   with the docs client (PKCE S256, no secret), its scopes and the documented API's
//!   `resource` (RFC 8707, as an additional authorization-request parameter), so Authorize →
//!   sign in → consent needs no client id typed in and the token is for this API;
//! - `/docs/oauth2-redirect.html` (+ `.js`): Swagger UI's standard OAuth 2.0 redirect page,
//!   the docs client's redirect URI.
//!
//! Every script is a file of this origin, so the policy is `script-src 'self'`: no inline or
//! remote script, no `eval`, no frames, objects, fonts or form targets. Styles may be inline
//! (Swagger UI sets `style` attributes); images come only from here and `data:`; "Try it out"
//! and the token request go only to this origin and the authorization server's.
//! `frame-ancestors 'none'` and `X-Frame-Options: DENY` keep the pages out of frames.
//! [`spec`] makes the served document.

pub mod spec;

use poem::{
    Endpoint, EndpointExt, IntoResponse, Response, Route, endpoint::make_sync, http::header,
    middleware::SetHeader, web::Html,
};

/// What the docs page signs in with.
#[derive(Debug, Clone)]
pub struct DocsOAuth {
    /// The public client Swagger UI uses; `None`: Authorize asks for one.
    pub client_id: Option<String>,
    /// The scopes selected in the Authorize dialog.
    pub scopes: Vec<String>,
    /// The exact redirect URI registered for the client: `<base>/docs/oauth2-redirect.html`.
    pub redirect_url: String,
    /// The resource indicator (RFC 8707) the authorization request carries: the documented
    /// API's identifier, so the token's `aud` is this API. `None`: the server's default.
    pub resource: Option<String>,
}

/// The redirect page's path under the docs' base URL.
pub const REDIRECT_PATH: &str = "/docs/oauth2-redirect.html";

const INDEX_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <title>API documentation</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
"#;

const REDIRECT_HTML: &str = r#"<!doctype html>
<html lang="en-US">
<head>
    <meta charset="utf-8">
    <title>Swagger UI: OAuth2 Redirect</title>
</head>
<body>
<script src="/docs/oauth2-redirect.js"></script>
</body>
</html>
"#;

/// Swagger UI's standard `oauth2-redirect.html` script (as poem-openapi ships it), as a file.
const REDIRECT_JS: &str = include_str!("oauth2-redirect.js");

/// The part of `html` between `open` and the next `close`.
fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    html.find(open)
        .map(|i| &html[i + open.len()..])
        .and_then(|rest| rest.find(close).map(|j| &rest[..j]))
        .unwrap_or_default()
}

/// Swagger UI's bundle and stylesheet, out of poem-openapi's page (`swagger_ui_html()`).
pub fn swagger_assets(poem_swagger_html: &str) -> (String, String) {
    let js = between(poem_swagger_html, "<script charset=\"UTF-8\">", "</script>");
    let css = between(poem_swagger_html, "<style charset=\"UTF-8\">", "</style>");
    (js.to_string(), css.to_string())
}

/// The start-up script: Swagger UI on `/openapi.json`, with `initOAuth` for `oauth`.
pub fn init_js(oauth: &DocsOAuth) -> String {
    let config = serde_json::json!({
        "url": "/openapi.json",
        "oauth2RedirectUrl": oauth.redirect_url,
        "clientId": oauth.client_id,
        "scopes": oauth.scopes,
        "params": oauth.resource.as_ref().map(|r| serde_json::json!({"resource": r})),
    });
    format!(
        r##""use strict";
const config = {config};
const ui = SwaggerUIBundle({{
    url: config.url,
    dom_id: "#ui",
    deepLinking: true,
    oauth2RedirectUrl: config.oauth2RedirectUrl,
}});
ui.initOAuth({{
    clientId: config.clientId || "",
    scopes: config.scopes,
    usePkceWithAuthorizationCodeGrant: true,
    additionalQueryStringParams: config.params || {{}},
}});
window.ui = ui;
"##
    )
}

/// The Content-Security-Policy of `/docs`. `connect` lists the origins besides this one that
/// the page may call (the issuer, for the token request and "Try it out").
pub fn csp(connect: &[&str]) -> String {
    let origins: Vec<String> = connect
        .iter()
        .filter_map(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .collect();
    let connect = std::iter::once("'self'".to_string())
        .chain(origins)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src {connect}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'"
    )
}

/// The headers every `/docs` response gets.
pub fn headers(connect: &[&str]) -> SetHeader {
    SetHeader::new()
        .overriding("Content-Security-Policy", csp(connect))
        .overriding("X-Frame-Options", "DENY")
        .overriding("X-Content-Type-Options", "nosniff")
        .overriding(header::REFERRER_POLICY, "no-referrer")
}

fn file(body: String, content_type: &'static str) -> impl Endpoint + use<> {
    make_sync(move |_| {
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body.clone())
    })
}

/// The `/docs` routes (nest them at `/docs`), with their headers. `poem_swagger_html` is
/// poem-openapi's page, the source of the Swagger UI files; `connect` as in [`csp`].
pub fn routes(
    poem_swagger_html: &str,
    oauth: &DocsOAuth,
    connect: &[&str],
) -> impl Endpoint + use<> {
    let (js, css) = swagger_assets(poem_swagger_html);
    Route::new()
        .at(
            "/",
            make_sync(|_| Html(INDEX_HTML).into_response())
                .with(SetHeader::new().overriding(header::CACHE_CONTROL, "no-cache")),
        )
        .at("/swagger-ui-bundle.js", file(js, "text/javascript"))
        .at("/swagger-ui.css", file(css, "text/css"))
        .at("/docs.js", file(init_js(oauth), "text/javascript"))
        .at(
            "/oauth2-redirect.html",
            make_sync(|_| Html(REDIRECT_HTML).into_response()),
        )
        .at(
            "/oauth2-redirect.js",
            file(REDIRECT_JS.to_string(), "text/javascript"),
        )
        .with(headers(connect))
}

/// `/openapi.json` and `/openapi.yaml` on `route`, serving `spec`.
pub fn serve_spec(route: Route, spec: &spec::Spec) -> Route {
    route
        .at("/openapi.json", file(spec.json(), "application/json"))
        .at("/openapi.yaml", file(spec.yaml(), "application/yaml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_this_origins_scripts_and_forbids_framing() {
        let p = csp(&["https://auth.example.com/x"]);
        assert!(p.contains("script-src 'self';"), "{p}");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.starts_with("default-src 'none'"));
        assert!(
            p.contains("connect-src 'self' https://auth.example.com;"),
            "{p}"
        );
        assert!(!p.contains("unsafe-eval") && !p.contains("script-src 'unsafe-inline'"));
    }

    #[test]
    fn the_swagger_files_come_out_of_poem_openapis_page_whole() {
        let html = "<style charset=\"UTF-8\">a{}</style><script charset=\"UTF-8\">b()</script><script>c</script>";
        assert_eq!(swagger_assets(html), ("b()".to_string(), "a{}".to_string()));
    }

    #[test]
    fn the_start_up_script_signs_in_with_the_docs_client_and_pkce() {
        let js = init_js(&DocsOAuth {
            client_id: Some("hallpass-docs".into()),
            scopes: vec!["openid".into()],
            redirect_url: "https://as.example/docs/oauth2-redirect.html".into(),
            resource: Some("https://api.example".into()),
        });
        assert!(js.contains("\"clientId\":\"hallpass-docs\""), "{js}");
        assert!(
            js.contains("\"params\":{\"resource\":\"https://api.example\"}"),
            "{js}"
        );
        assert!(js.contains("usePkceWithAuthorizationCodeGrant: true"));
    }
}
