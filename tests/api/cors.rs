//! CORS as draft-ietf-oauth-browser-based-apps asks, over real HTTP: metadata and JWKS for
//! any origin; token, revocation and UserInfo for the origins the client allows, refused
//! before a code is consumed or a refresh token rotated; no CORS on the authorization
//! endpoint or introspection; the beer locker's origin list. Also `Allow` on every 405.

use std::sync::Arc;

use hallpass::{
    beer_locker::{BeerLockerConfig, BeerLockerServer},
    store::memory::MemoryStore,
    time::Clock,
};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestClient, assert_oauth_error, pkce_pair, spawn_app};

/// The origin of the public test client's redirect URI (`http://127.0.0.1:8765/callback`).
const SPA: &str = "http://127.0.0.1:8765";
const EVIL: &str = "https://evil.example";

fn h(resp: &reqwest::Response, name: header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn varies_on_origin(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("origin"))
        })
}

async fn preflight(
    app_url: &str,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .request(Method::OPTIONS, format!("{app_url}{path}"))
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method);
    if !headers.is_empty() {
        req = req.header(header::ACCESS_CONTROL_REQUEST_HEADERS, headers);
    }
    req.send().await.unwrap()
}

/// A code for the public client, and its verifier.
async fn public_code(app: &TestApp, client: &TestClient, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let code = app
        .code_for(
            client,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("scope", scope),
            ],
        )
        .await;
    (code, verifier)
}

async fn redeem_public(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    verifier: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut req = app.http.post(app.url("/oauth2/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &client.redirect_uri),
        ("client_id", &client.client_id),
        ("code_verifier", verifier),
    ]);
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn metadata_and_jwks_are_readable_from_any_origin_with_a_star_and_preflights() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        let resp = app
            .http
            .get(app.url(path))
            .header(header::ORIGIN, EVIL)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(
            h(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some("*")
        );
        assert!(h(&resp, header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

        let pre = preflight(&app.address, path, EVIL, "GET", "").await;
        assert_eq!(pre.status(), StatusCode::NO_CONTENT, "{path}");
        assert_eq!(
            h(&pre, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
            Some("*")
        );
        assert_eq!(
            h(&pre, header::ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
            Some("GET")
        );
        assert!(h(&pre, header::ACCESS_CONTROL_MAX_AGE).is_some());
    }
}

#[tokio::test]
async fn token_endpoint_preflight_allows_post_with_authorization_and_varies_on_origin() {
    // Swagger UI's token request sends `X-Requested-With: XMLHttpRequest`: without it in the
    // allowed headers, Swagger UI on another origin (the beer locker's /docs) never gets its token.
    let app = spawn_app().await;

    let pre = preflight(
        &app.address,
        "/oauth2/token",
        SPA,
        "POST",
        "authorization,content-type,x-requested-with",
    )
    .await;

    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h(&pre, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert_eq!(
        h(&pre, header::ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
        Some("POST")
    );
    assert_eq!(
        h(&pre, header::ACCESS_CONTROL_ALLOW_HEADERS).as_deref(),
        Some("Authorization, Content-Type, X-Requested-With")
    );
    assert_eq!(
        h(&pre, header::ACCESS_CONTROL_MAX_AGE).as_deref(),
        Some("600")
    );
    assert!(varies_on_origin(&pre));
    assert!(h(&pre, header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

    let userinfo = preflight(&app.address, "/userinfo", SPA, "GET", "authorization").await;
    assert_eq!(userinfo.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h(&userinfo, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert_eq!(
        h(&userinfo, header::ACCESS_CONTROL_ALLOW_METHODS).as_deref(),
        Some("GET, POST")
    );
    let revoke = preflight(&app.address, "/oauth2/revoke", SPA, "POST", "").await;
    assert_eq!(
        h(&revoke, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
}

#[tokio::test]
async fn preflights_from_malformed_origins_or_for_other_methods_get_no_cors_headers() {
    let app = spawn_app().await;
    for (origin, method) in [
        ("null", "POST"),
        ("http://plain-http.example", "POST"),
        (SPA, "DELETE"),
    ] {
        let pre = preflight(&app.address, "/oauth2/token", origin, method, "").await;
        assert_eq!(pre.status(), StatusCode::NO_CONTENT);
        assert!(
            h(&pre, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{origin} {method}"
        );
        assert!(varies_on_origin(&pre));
    }
}

#[tokio::test]
async fn a_public_client_redeems_its_code_from_its_redirect_origin_and_the_answer_is_readable() {
    let app = spawn_app().await;
    let client = app.public_client().await;
    let (code, verifier) = public_code(&app, &client, "openid").await;

    let resp = redeem_public(&app, &client, &code, &verifier, Some(SPA)).await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        h(&resp, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert!(varies_on_origin(&resp));
    let body: Value = resp.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();

    let info = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .header(header::ORIGIN, SPA)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), StatusCode::OK);
    assert_eq!(
        h(&info, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert!(varies_on_origin(&info));

    let refused = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .header(header::ORIGIN, EVIL)
        .send()
        .await
        .unwrap();
    assert!(h(&refused, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let body = assert_oauth_error(refused, 400, "unauthorized_client").await;
    assert!(body.get("sub").is_none());
}

/// The form POST needs no preflight, so the refusal must come before the code is taken.
#[tokio::test]
async fn a_token_request_from_an_origin_the_client_does_not_allow_is_refused_and_the_code_survives()
{
    let app = spawn_app().await;
    let client = app.public_client().await;
    let (code, verifier) = public_code(&app, &client, "beers:read").await;

    let refused = redeem_public(&app, &client, &code, &verifier, Some(EVIL)).await;

    assert!(h(&refused, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(varies_on_origin(&refused));
    assert_oauth_error(refused, 400, "unauthorized_client").await;
    let server_side = redeem_public(&app, &client, &code, &verifier, None).await;
    assert_eq!(
        server_side.status(),
        StatusCode::OK,
        "the code was not consumed"
    );
    let body: Value = server_side.json().await.unwrap();
    assert_eq!(
        app.me_status(body["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn a_refresh_from_a_refused_origin_does_not_rotate_the_refresh_token() {
    let app = spawn_app().await;
    let client = app
        .client_with(json!({
            "client_name": "SPA",
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await;
    let (code, verifier) = public_code(&app, &client, "beers:read offline_access").await;
    let tokens: Value = redeem_public(&app, &client, &code, &verifier, Some(SPA))
        .await
        .json()
        .await
        .unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", client.client_id.as_str()),
    ];

    let refused = app
        .http
        .post(app.url("/oauth2/token"))
        .header(header::ORIGIN, EVIL)
        .form(&form)
        .send()
        .await
        .unwrap();

    assert_oauth_error(refused, 400, "unauthorized_client").await;
    let first = app.post_token(&form, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let rotated: Value = first.json().await.unwrap();
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    let successor = rotated["refresh_token"].as_str().unwrap();
    let next = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", successor),
                ("client_id", client.client_id.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(
        next.status(),
        StatusCode::OK,
        "the family is intact: the refused request was no reuse"
    );
}

#[tokio::test]
async fn a_confidential_client_allows_no_origin_by_default_but_those_it_lists() {
    let app = spawn_app().await;
    let plain = app.confidential_client().await;
    let listed = app
        .client_with(json!({
            "client_name": "BFF",
            "redirect_uris": ["https://app.example/callback"],
            "allowed_cors_origins": ["https://app.example", "http://localhost:3000"],
        }))
        .await;
    let form = [("token", "not-a-token")];
    let revoke = |c: &TestClient, origin: &'static str| {
        app.http
            .post(app.url("/oauth2/revoke"))
            .basic_auth(&c.client_id, c.client_secret.as_deref())
            .header(header::ORIGIN, origin)
            .form(&form)
            .send()
    };

    let refused = revoke(&plain, "https://app.example").await.unwrap();
    let allowed = revoke(&listed, "http://localhost:3000").await.unwrap();
    let other = revoke(&listed, EVIL).await.unwrap();

    assert!(h(&refused, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_oauth_error(refused, 400, "unauthorized_client").await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        h(&allowed, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("http://localhost:3000")
    );
    assert_oauth_error(other, 400, "unauthorized_client").await;
    let shown: Value = app
        .as_user(
            Method::GET,
            format!("/api/clients/{}", listed.client_id),
            &listed.owner,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["allowed_cors_origins"],
        json!(["http://localhost:3000", "https://app.example"])
    );
}

#[tokio::test]
async fn registration_refuses_origins_that_are_not_exact_https_or_loopback_origins() {
    let app = spawn_app().await;
    let owner = app.user().await;
    for bad in [
        "https://app.example/",
        "http://app.example",
        "https://app.example/cb",
        "*",
    ] {
        let resp = app
            .post_client(
                &owner,
                &json!({
                    "client_name": "SPA",
                    "redirect_uris": ["https://app.example/cb"],
                    "allowed_cors_origins": [bad],
                }),
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_client_metadata").await;
    }
}

#[tokio::test]
async fn the_authorization_endpoint_and_introspection_never_send_cors_headers() {
    let app = spawn_app().await;
    let client = app.public_client().await;
    let query = app.authorize_query(&client, &[]);
    let page = app
        .http
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .header(header::ORIGIN, SPA)
        .send()
        .await
        .unwrap();
    let pre = preflight(&app.address, "/oauth2/authorize", SPA, "GET", "").await;
    let intro = preflight(
        &app.address,
        "/oauth2/introspect",
        SPA,
        "POST",
        "authorization",
    )
    .await;

    assert!(h(&page, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(h(&pre, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(h(&intro, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn the_beer_locker_allows_its_listed_origins_and_any_origin_on_its_metadata() {
    let app = spawn_app().await;
    let clock: Arc<dyn Clock> = app.clock.clone();
    // This Hallpass registers no resource server, so its tokens are for its own identifier.
    let config = BeerLockerConfig {
        cors_origins: vec![SPA.to_string()],
        audience: Some(app.address.clone()),
        ..BeerLockerConfig::new(&app.address)
    };
    let server = BeerLockerServer::bind(&config, Arc::new(MemoryStore::new()), clock)
        .await
        .unwrap();
    let locker = format!("http://{}", server.local_addr());
    tokio::spawn(server.run_until_stopped());
    let client = app.confidential_client().await;
    let code = app.code_for(&client, &[("scope", "beers:read")]).await;
    let body: Value = app.redeem(&client, &code).await.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let http = reqwest::Client::new();
    let get = |origin: &'static str| {
        http.get(format!("{locker}/api/beers"))
            .bearer_auth(token)
            .header(header::ORIGIN, origin)
            .send()
    };

    let pre = preflight(
        &locker,
        "/api/beers",
        SPA,
        "POST",
        "authorization,content-type",
    )
    .await;
    let pre_evil = preflight(&locker, "/api/beers", EVIL, "GET", "authorization").await;
    let listed = get(SPA).await.unwrap();
    let other = get(EVIL).await.unwrap();
    let meta = http
        .get(format!("{locker}/.well-known/oauth-protected-resource"))
        .header(header::ORIGIN, EVIL)
        .send()
        .await
        .unwrap();

    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h(&pre, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert!(
        h(&pre, header::ACCESS_CONTROL_ALLOW_HEADERS)
            .unwrap()
            .contains("Authorization")
    );
    assert!(h(&pre_evil, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        h(&listed, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(SPA)
    );
    assert!(varies_on_origin(&listed));
    assert!(h(&other, header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert_eq!(
        h(&meta, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn every_405_names_the_allowed_methods() {
    let app = spawn_app().await;
    for (method, path, allow, json) in [
        (Method::GET, "/oauth2/token", "POST", true),
        (Method::DELETE, "/.well-known/jwks.json", "GET, HEAD", true),
        (
            Method::PUT,
            "/api/clients/some-id",
            "DELETE, GET, HEAD",
            true,
        ),
        (Method::PUT, "/login", "GET, HEAD, POST", false),
        (
            Method::DELETE,
            "/oauth2/authorize",
            "GET, HEAD, POST",
            false,
        ),
        (Method::POST, "/", "GET, HEAD", false),
    ] {
        let resp = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            h(&resp, header::ALLOW).as_deref(),
            Some(allow),
            "{method} {path}"
        );
        if json {
            let body: Value = resp.json().await.unwrap();
            assert!(body["error"].is_string(), "{method} {path}: {body}");
        }
    }
}
