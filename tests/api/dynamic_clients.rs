//! Dynamic client registration (RFC 7591) and management (RFC 7592) at `/oauth2/register`,
//! as `HALLPASS_DYNAMIC_CLIENTS` allows: off by default, public clients only, or all.

use hallpass::{
    config::{Config, DynamicClients},
    time::Clock,
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestClient, assert_oauth_error, backends, hidden_input, location, pkce_pair,
    query_params, spawn_app, spawn_app_on,
};

fn public_only(config: &mut Config) {
    config.dynamic_clients = DynamicClients::Public;
}

fn all(config: &mut Config) {
    config.dynamic_clients = DynamicClients::All;
}

/// Runs `test` on every store with `tweak` applied to the configuration.
async fn each_store_with<F, Fut>(tweak: fn(&mut Config), test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        test(spawn_app_on(backend, tweak).await).await;
    }
}

async fn app_with(tweak: fn(&mut Config)) -> TestApp {
    spawn_app_on(crate::helpers::Backend::Memory, tweak).await
}

/// A public native client's registration.
fn native_client() -> Value {
    json!({
        "client_name": "My CLI",
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid offline_access beers:read",
    })
}

async fn register(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/register"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Registers `body` and returns the 201 answer.
async fn registered(app: &TestApp, body: &Value) -> Value {
    let resp = register(app, body).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let cache = resp.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cache.contains("no-store"), "{cache}");
    resp.json().await.unwrap()
}

/// A request to the client's configuration endpoint with `token` as Bearer.
fn configuration(
    app: &TestApp,
    method: reqwest::Method,
    client: &Value,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    let uri = client["registration_client_uri"].as_str().unwrap();
    let req = app.http.request(method, uri);
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

fn token_of(client: &Value) -> &str {
    client["registration_access_token"].as_str().unwrap()
}

async fn metadata(app: &TestApp, path: &str) -> Value {
    app.http
        .get(app.url(path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn registration_is_off_by_default_answers_404_and_is_not_advertised() {
    let app = spawn_app().await;

    let resp = register(&app, &native_client()).await;

    assert_oauth_error(resp, 404, "not_found").await;
    let read = app
        .http
        .get(app.url("/oauth2/register/dyn.x"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_oauth_error(read, 404, "not_found").await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = metadata(&app, path).await;
        assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    }
}

#[tokio::test]
async fn the_metadata_advertises_the_registration_endpoint_when_enabled() {
    let app = app_with(public_only).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = metadata(&app, path).await;
        assert_eq!(
            doc["registration_endpoint"],
            app.url("/oauth2/register"),
            "{doc}"
        );
    }
}

#[tokio::test]
async fn a_registration_answers_201_with_the_client_its_token_and_its_configuration_uri() {
    let app = app_with(public_only).await;

    let c = registered(&app, &native_client()).await;

    let id = c["client_id"].as_str().unwrap();
    assert!(id.starts_with("dyn."), "{c}");
    assert!(c.get("client_secret").is_none(), "{c}");
    assert!(c.get("client_secret_expires_at").is_none(), "{c}");
    assert!(c["client_id_issued_at"].as_u64().unwrap() > 0);
    assert!(token_of(&c).len() >= 43, "{c}");
    assert_eq!(
        c["registration_client_uri"],
        app.url(&format!("/oauth2/register/{id}"))
    );
    assert_eq!(c["client_name"], "My CLI");
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(
        c["redirect_uris"],
        json!(["http://127.0.0.1:8765/callback"])
    );
    assert_eq!(
        c["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(c["response_types"], json!(["code"]));
    assert_eq!(c["scope"], "beers:read offline_access openid");
}

#[tokio::test]
async fn public_mode_refuses_confidential_clients_and_all_mode_gives_them_a_secret() {
    let public = app_with(public_only).await;
    for method in [
        None,
        Some("client_secret_basic"),
        Some("client_secret_post"),
    ] {
        let mut body = json!({
            "client_name": "Server app",
            "redirect_uris": ["https://app.example/cb"],
        });
        if let Some(m) = method {
            body["token_endpoint_auth_method"] = json!(m);
        }
        let resp = register(&public, &body).await;
        assert_oauth_error(resp, 400, "invalid_client_metadata").await;
    }

    let all = app_with(all).await;
    let c = registered(
        &all,
        &json!({
            "client_name": "Server app",
            "redirect_uris": ["https://app.example/cb"],
        }),
    )
    .await;

    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    assert!(c["client_secret"].as_str().unwrap().len() >= 43, "{c}");
    assert_eq!(c["client_secret_expires_at"], 0);
    let tokens = all
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((
                c["client_id"].as_str().unwrap(),
                c["client_secret"].as_str().unwrap(),
            )),
        )
        .await;
    // No client_credentials grant registered: the secret authenticates, the grant is refused.
    assert_oauth_error(tokens, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn unknown_metadata_is_ignored_and_invalid_metadata_gets_the_rfc_7591_errors() {
    let app = app_with(public_only).await;
    let mut with_extras = native_client();
    with_extras["logo_uri"] = json!("https://app.example/logo.png");
    with_extras["contacts"] = json!(["ops@app.example"]);
    with_extras["software_statement"] = json!({"nested": [1, 2]});
    registered(&app, &with_extras).await;

    let cases = [
        (
            json!({"client_name": 5, "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": "http://127.0.0.1/cb", "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
        (
            json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none", "scope": "hallpass:manage"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "x", "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "x", "redirect_uris": ["http://app.example/cb"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "x", "redirect_uris": ["javascript:alert(1)"], "token_endpoint_auth_method": "none"}),
            "invalid_redirect_uri",
        ),
    ];
    for (body, code) in cases {
        let resp = register(&app, &body).await;
        assert_oauth_error(resp, 400, code).await;
    }
    let not_json = app
        .http
        .post(app.url("/oauth2/register"))
        .header(header::CONTENT_TYPE, "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_oauth_error(not_json, 400, "invalid_client_metadata").await;
    let form = app
        .http
        .post(app.url("/oauth2/register"))
        .form(&[("client_name", "x")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(form, 415, "invalid_request").await;
}

#[tokio::test]
async fn an_oversized_registration_body_gets_413_before_it_is_read() {
    let app = app_with(public_only).await;
    let mut body = native_client();
    body["padding"] = json!("x".repeat(app.state.config.max_body_bytes));

    let resp = register(&app, &body).await;

    assert_oauth_error(resp, 413, "invalid_request").await;
}

#[tokio::test]
async fn a_private_use_scheme_is_registered_for_a_public_client_but_not_a_confidential_one() {
    let app = app_with(all).await;
    let mut native = native_client();
    native["redirect_uris"] = json!(["com.example.app:/oauth2redirect"]);
    registered(&app, &native).await;

    native["token_endpoint_auth_method"] = json!("client_secret_basic");
    let resp = register(&app, &native).await;

    assert_oauth_error(resp, 400, "invalid_redirect_uri").await;
}

#[tokio::test]
async fn a_registered_client_signs_a_user_in_with_pkce_on_any_loopback_port() {
    each_store_with(public_only, async |app: TestApp| {
        let c = registered(&app, &native_client()).await;
        let client = TestClient {
            client_id: c["client_id"].as_str().unwrap().to_string(),
            client_secret: None,
            redirect_uri: "http://127.0.0.1:49152/callback".into(),
            owner: app.user().await,
        };
        let (verifier, challenge) = pkce_pair();
        let query = app.authorize_query(
            &client,
            &[
                ("scope", "openid beers:read"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let session = app.login(&client.owner).await;

        let page = app.get_authorize(&query, Some(&session)).await;

        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("Unverified application"), "{html}");
        let txn = hidden_input(&html, "txn").unwrap();
        let resp = app.post_consent(&session, &txn, "allow").await;
        let to = location(&resp);
        assert!(to.starts_with("http://127.0.0.1:49152/callback?"), "{to}");
        let code = query_params(&to)["code"].clone();
        let tokens = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &client.redirect_uri),
                    ("client_id", &client.client_id),
                    ("code_verifier", &verifier),
                ],
                None,
            )
            .await;
        assert_eq!(tokens.status(), StatusCode::OK);
        let body: Value = tokens.json().await.unwrap();
        assert_eq!(
            app.me_status(body["access_token"].as_str().unwrap()).await,
            200
        );
    })
    .await;
}

#[tokio::test]
async fn a_registered_client_must_use_pkce_and_is_never_granted_the_manage_scope() {
    let app = app_with(public_only).await;
    let c = registered(&app, &native_client()).await;
    let client = TestClient {
        client_id: c["client_id"].as_str().unwrap().to_string(),
        client_secret: None,
        redirect_uri: "http://127.0.0.1:8765/callback".into(),
        owner: app.user().await,
    };
    let session = app.login(&client.owner).await;
    let (_, challenge) = pkce_pair();

    let no_pkce = app
        .get_authorize(&app.authorize_query(&client, &[]), Some(&session))
        .await;
    let manage = app
        .get_authorize(
            &app.authorize_query(
                &client,
                &[
                    ("scope", "hallpass:manage"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            ),
            Some(&session),
        )
        .await;

    for resp in [no_pkce, manage] {
        // An unapproved client's errors are a page with a link, never a silent redirect.
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get(header::LOCATION).is_none());
    }
}

#[tokio::test]
async fn the_registration_token_reads_updates_and_deletes_the_client() {
    each_store_with(public_only, async |app: TestApp| {
        let c = registered(&app, &native_client()).await;
        let token = token_of(&c).to_string();

        let read = configuration(&app, reqwest::Method::GET, &c, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK);
        let got: Value = read.json().await.unwrap();
        assert_eq!(got["client_id"], c["client_id"]);
        assert_eq!(got["registration_access_token"], token);
        assert_eq!(got["client_name"], "My CLI");

        let mut replacement = json!({
            "client_id": c["client_id"],
            "client_name": "My CLI 2",
            "redirect_uris": ["http://[::1]:8765/cb"],
            "token_endpoint_auth_method": "none",
        });
        let updated = configuration(&app, reqwest::Method::PUT, &c, Some(&token))
            .json(&replacement)
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), StatusCode::OK);
        let u: Value = updated.json().await.unwrap();
        assert_eq!(u["client_name"], "My CLI 2");
        assert_eq!(u["redirect_uris"], json!(["http://[::1]:8765/cb"]));
        // Replaced, not merged: the omitted grant types are back to the default.
        assert_eq!(u["grant_types"], json!(["authorization_code"]));
        assert_eq!(u["client_id_issued_at"], c["client_id_issued_at"]);

        replacement["client_id"] = json!("dyn.someone-else");
        let wrong_id = configuration(&app, reqwest::Method::PUT, &c, Some(&token))
            .json(&replacement)
            .send()
            .await
            .unwrap();
        assert_oauth_error(wrong_id, 400, "invalid_client_metadata").await;
        replacement["client_id"] = c["client_id"].clone();
        replacement["token_endpoint_auth_method"] = json!("client_secret_basic");
        let confidential = configuration(&app, reqwest::Method::PUT, &c, Some(&token))
            .json(&replacement)
            .send()
            .await
            .unwrap();
        assert_oauth_error(confidential, 400, "invalid_client_metadata").await;

        let deleted = configuration(&app, reqwest::Method::DELETE, &c, Some(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = configuration(&app, reqwest::Method::GET, &c, Some(&token))
            .send()
            .await
            .unwrap();
        assert_oauth_error(gone, 401, "invalid_token").await;
        let authorize = app
            .get_authorize(
                &format!(
                    "response_type=code&client_id={}",
                    c["client_id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(authorize.status(), StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn a_wrong_missing_or_other_clients_registration_token_gets_401() {
    let app = app_with(public_only).await;
    let c = registered(&app, &native_client()).await;
    let other = registered(&app, &native_client()).await;

    for (method, token) in [
        (reqwest::Method::GET, Some("wrong")),
        (reqwest::Method::GET, None),
        (reqwest::Method::GET, Some(token_of(&other))),
        (reqwest::Method::DELETE, Some(token_of(&other))),
        (reqwest::Method::DELETE, None),
    ] {
        let resp = configuration(&app, method.clone(), &c, token)
            .send()
            .await
            .unwrap();
        let www = resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(www.starts_with("Bearer"), "{method} {token:?}: {www}");
        assert_oauth_error(resp, 401, "invalid_token").await;
    }
    let put = configuration(&app, reqwest::Method::PUT, &c, Some("wrong"))
        .json(&json!({"client_id": c["client_id"], "client_name": "Mine now"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(put, 401, "invalid_token").await;
    // An unknown client id is the same 401 (RFC 7592 §2.1), as is a user-owned client.
    let owned = app.public_client().await;
    for id in ["dyn.unknown", owned.client_id.as_str()] {
        let resp = app
            .http
            .get(app.url(&format!("/oauth2/register/{id}")))
            .bearer_auth(token_of(&c))
            .send()
            .await
            .unwrap();
        assert_oauth_error(resp, 401, "invalid_token").await;
    }
    let still = configuration(&app, reqwest::Method::GET, &c, Some(token_of(&c)))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_registered_client_refuses_the_tokens_it_was_issued() {
    let app = app_with(public_only).await;
    let c = registered(&app, &native_client()).await;
    let client = TestClient {
        client_id: c["client_id"].as_str().unwrap().to_string(),
        client_secret: None,
        redirect_uri: "http://127.0.0.1:8765/callback".into(),
        owner: app.user().await,
    };
    let (verifier, challenge) = pkce_pair();
    let query = app.authorize_query(
        &client,
        &[
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let code = query_params(&app.approve(&client.owner, &query).await)["code"].clone();
    let tokens: Value = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &client.redirect_uri),
                ("client_id", &client.client_id),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.me_status(access).await, 200);

    let deleted = configuration(&app, reqwest::Method::DELETE, &c, Some(token_of(&c)))
        .send()
        .await
        .unwrap();

    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(access).await, 401);
}

#[tokio::test]
async fn a_registered_client_has_no_owner_in_the_management_api() {
    let app = app_with(public_only).await;
    let c = registered(&app, &native_client()).await;
    let id = c["client_id"].as_str().unwrap();
    let user = app.user().await;

    let list: Value = app
        .as_user(reqwest::Method::GET, "/api/clients", &user)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let resp = app
            .as_user(method, format!("/api/clients/{id}"), &user)
            .send()
            .await
            .unwrap();
        assert_oauth_error(resp, 404, "not_found").await;
    }
    let rotate = app
        .as_user(
            reqwest::Method::POST,
            format!("/api/clients/{id}/secret"),
            &user,
        )
        .send()
        .await
        .unwrap();
    assert_oauth_error(rotate, 404, "not_found").await;
}

#[tokio::test]
async fn registrations_are_rate_limited_per_ip_with_429_and_retry_after() {
    fn limited(config: &mut Config) {
        config.dynamic_clients = DynamicClients::Public;
        config.rate_limits.registration = 2;
    }
    let app = app_with(limited).await;
    let now = app.clock.now();
    app.clock.advance(900 - now % 900);
    registered(&app, &native_client()).await;
    registered(&app, &native_client()).await;

    let resp = register(&app, &native_client()).await;

    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = resp.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .to_string();
    assert!(retry.parse::<u64>().unwrap() >= 1, "{retry}");
    assert_oauth_error(resp, 429, "temporarily_unavailable").await;
    // Client registrations are counted apart from user registrations.
    app.user().await;
    app.clock.advance(2);
    registered(&app, &native_client()).await;
}
