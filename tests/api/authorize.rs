//! The authorization endpoint and the browser pages: error page versus redirect, login,
//! consent, and the protections of each form.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{
    TestApp, each_store, hidden_input, location, pkce_pair, query_params, set_cookie,
    set_cookie_line, spawn_app,
};

fn assert_error_page(resp: &reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers().get(header::LOCATION).is_none(),
        "an error page never redirects"
    );
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// Asserts the error response of a client the user never approved (RFC 9700 §4.11.2): no
/// redirect, but a page whose link to the client carries `error`, `state` and `iss`.
async fn assert_error_link(
    app: &TestApp,
    resp: reqwest::Response,
    redirect_uri: &str,
    error: &str,
) {
    let to = crate::hardening_flows::error_link(resp).await;
    assert!(to.starts_with(redirect_uri), "{to}");
    let p = query_params(&to);
    assert_eq!(p.get("error").map(String::as_str), Some(error), "{to}");
    assert_eq!(
        p.get("state").map(String::as_str),
        Some("xyz-state"),
        "{to}"
    );
    assert_eq!(p.get("iss"), Some(&app.address), "{to}");
}

/// Asserts a redirect to the client carrying `error`, `state` and `iss`.
fn assert_error_redirect(app: &TestApp, resp: &reqwest::Response, redirect_uri: &str, error: &str) {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let to = location(resp);
    assert!(to.starts_with(redirect_uri), "{to}");
    let p = query_params(&to);
    assert_eq!(p.get("error").map(String::as_str), Some(error), "{to}");
    assert!(p.contains_key("error_description"), "{to}");
    assert_eq!(
        p.get("state").map(String::as_str),
        Some("xyz-state"),
        "{to}"
    );
    assert_eq!(p.get("iss"), Some(&app.address), "{to}");
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let app = spawn_app().await;
    let resp = app
        .get_authorize(
            "response_type=code&client_id=nope&redirect_uri=https%3A%2F%2Fevil.example%2F",
            None,
        )
        .await;
    assert_error_page(&resp);
}

#[tokio::test]
async fn unregistered_or_near_miss_redirect_uri_gets_an_error_page() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        for uri in [
            "https://evil.example/callback",
            "https://app.example/callback/",
            "https://app.example/callback?x=1",
            "https://APP.example/callback",
            "http://app.example/callback",
        ] {
            let q = format!(
                "response_type=code&client_id={}&redirect_uri={}",
                client.client_id,
                urlencode(uri)
            );
            let resp = app.get_authorize(&q, None).await;
            assert_error_page(&resp);
        }
    })
    .await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn missing_client_id_or_repeated_redirect_uri_gets_an_error_page() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;
    assert_error_page(&app.get_authorize("response_type=code", None).await);
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={u}&redirect_uri={u}",
        client.client_id,
        u = urlencode(&client.redirect_uri)
    );
    assert_error_page(&app.get_authorize(&q, None).await);
}

#[tokio::test]
async fn redirect_uri_may_be_omitted_only_when_exactly_one_is_registered() {
    let app = spawn_app().await;
    let one = app.confidential_client().await;
    let resp = app
        .get_authorize(
            &format!("response_type=code&client_id={}", one.client_id),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK, "login page");

    let two = app
        .client_with(json!({"client_name": "Two", "redirect_uris": ["https://a.example/cb", "https://b.example/cb"]}))
        .await;
    let resp = app
        .get_authorize(
            &format!("response_type=code&client_id={}", two.client_id),
            None,
        )
        .await;
    assert_error_page(&resp);
}

#[tokio::test]
async fn other_errors_redirect_back_with_error_state_and_iss() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let public = app.public_client().await;
        let cases: Vec<(String, &str, &str)> = vec![
            (
                app.authorize_query(&client, &[])
                    .replace("response_type=code", "response_type=token"),
                "unsupported_response_type",
                "",
            ),
            (
                app.authorize_query(&client, &[])
                    .replace("response_type=code&", ""),
                "invalid_request",
                "",
            ),
            (
                app.authorize_query(&client, &[("scope", "admin")]),
                "invalid_scope",
                "",
            ),
            (
                app.authorize_query(
                    &client,
                    &[
                        ("code_challenge", &pkce_pair().1),
                        ("code_challenge_method", "plain"),
                    ],
                ),
                "invalid_request",
                "",
            ),
            (
                app.authorize_query(&client, &[("code_challenge", &pkce_pair().1)]),
                "invalid_request",
                "",
            ),
            (
                app.authorize_query(
                    &client,
                    &[
                        ("code_challenge", "short"),
                        ("code_challenge_method", "S256"),
                    ],
                ),
                "invalid_request",
                "",
            ),
            (
                app.authorize_query(&client, &[("scope", "openid"), ("scope", "profile")]),
                "invalid_request",
                "",
            ),
            (
                app.authorize_query(&public, &[]),
                "invalid_request",
                "public",
            ),
        ];
        for (query, error, which) in cases {
            let redirect = if which == "public" {
                &public.redirect_uri
            } else {
                &client.redirect_uri
            };
            let resp = app.get_authorize(&query, None).await;
            assert_error_link(&app, resp, redirect, error).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_without_the_code_grant_gets_unauthorized_client() {
    let app = spawn_app().await;
    let client = app
        .client_with(json!({
            "client_name": "Machine",
            "redirect_uris": ["https://m.example/cb"],
            "grant_types": ["client_credentials"],
        }))
        .await;
    let resp = app
        .get_authorize(&app.authorize_query(&client, &[]), None)
        .await;
    assert_error_link(&app, resp, &client.redirect_uri, "unauthorized_client").await;
}

#[tokio::test]
async fn without_a_session_the_authorize_endpoint_shows_the_login_form_with_security_headers() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;

    let resp = app
        .get_authorize(&app.authorize_query(&client, &[]), None)
        .await;

    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let csrf_line = set_cookie_line(&resp, "hallpass_csrf").unwrap();
    assert!(
        csrf_line.contains("HttpOnly") && csrf_line.contains("SameSite=Strict"),
        "{csrf_line}"
    );
    let html = resp.text().await.unwrap();
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));
    let return_to = hidden_input(&html, "return_to").unwrap();
    assert!(return_to.starts_with("/oauth2/authorize?"), "{return_to}");
}

#[tokio::test]
async fn login_sets_a_signed_httponly_lax_session_cookie_and_303s_back_to_the_request() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[]);
        let page = app.get_authorize(&query, None).await;
        let csrf_cookie = set_cookie(&page, "hallpass_csrf").unwrap();
        let html = page.text().await.unwrap();
        let (csrf, return_to) = (
            hidden_input(&html, "csrf").unwrap(),
            hidden_input(&html, "return_to").unwrap(),
        );

        let resp = app
            .http
            .post(app.url("/login"))
            .header(header::COOKIE, &csrf_cookie)
            .form(&[
                ("username", client.owner.username.as_str()),
                ("password", &client.owner.password),
                ("csrf", &csrf),
                ("return_to", &return_to),
            ])
            .send()
            .await
            .unwrap();

        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "303, never 307");
        assert_eq!(location(&resp), return_to);
        let line = set_cookie_line(&resp, "hallpass_session").unwrap();
        assert!(
            line.contains("HttpOnly") && line.contains("SameSite=Lax") && line.contains("Path=/"),
            "{line}"
        );
        assert!(!line.contains("Secure"), "the test issuer is http");
        let session = set_cookie(&resp, "hallpass_session").unwrap();
        let consent = app.get_authorize(&query, Some(&session)).await;
        assert_eq!(consent.status(), StatusCode::OK);
        let html = consent.text().await.unwrap();
        assert!(html.contains("Beer App") && html.contains(&client.owner.username));
        assert!(
            html.contains("name=\"decision\" value=\"allow\"")
                && html.contains("name=\"decision\" value=\"deny\"")
        );
        assert!(
            html.contains("See the beers in your beer locker"),
            "scope descriptions are shown"
        );
    })
    .await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_show_the_same_generic_message() {
    let app = spawn_app().await;
    let user = app.user().await;
    let mut bodies = Vec::new();
    for (name, pw) in [
        (user.username.as_str(), "wrong password"),
        ("nobody-here", "wrong password"),
    ] {
        let page = app.http.get(app.url("/login")).send().await.unwrap();
        let cookie = set_cookie(&page, "hallpass_csrf").unwrap();
        let csrf = hidden_input(&page.text().await.unwrap(), "csrf").unwrap();
        let resp = app
            .http
            .post(app.url("/login"))
            .header(header::COOKIE, cookie)
            .form(&[
                ("username", name),
                ("password", pw),
                ("csrf", &csrf),
                ("return_to", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie(&resp, "hallpass_session").is_none());
        let html = resp.text().await.unwrap();
        assert!(html.contains("Wrong username or password."));
        bodies.push(html.replace(name, ""));
    }
    let strip = |s: &str| s.split("name=\"csrf\"").next().unwrap().to_string();
    assert_eq!(
        strip(&bodies[0]),
        strip(&bodies[1]),
        "the two failures look the same"
    );
}

#[tokio::test]
async fn login_without_the_csrf_cookie_is_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    let resp = app
        .http
        .post(app.url("/login"))
        .form(&[
            ("username", user.username.as_str()),
            ("password", &user.password),
            ("csrf", "forged"),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(&resp, "hallpass_session").is_none());
}

#[tokio::test]
async fn login_never_redirects_off_site() {
    let app = spawn_app().await;
    let user = app.user().await;
    let page = app
        .http
        .get(app.url("/login?return_to=https://evil.example/"))
        .send()
        .await
        .unwrap();
    let cookie = set_cookie(&page, "hallpass_csrf").unwrap();
    let html = page.text().await.unwrap();
    assert_eq!(hidden_input(&html, "return_to").unwrap(), "/");
    let csrf = hidden_input(&html, "csrf").unwrap();
    for target in [
        "https://evil.example/",
        "//evil.example/",
        "/oauth2/authorize?\\evil",
    ] {
        let resp = app
            .http
            .post(app.url("/login"))
            .header(header::COOKIE, &cookie)
            .form(&[
                ("username", user.username.as_str()),
                ("password", &user.password),
                ("csrf", &csrf),
                ("return_to", target),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(location(&resp), "/", "return_to {target}");
    }
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[]);
        let session = app.login(&client.owner).await;
        let txn = app.consent_txn(&query, &session).await;

        let resp = app.post_consent(&session, &txn, "deny").await;

        assert_error_redirect(&app, &resp, &client.redirect_uri, "access_denied");
        assert!(!query_params(&location(&resp)).contains_key("code"));
    })
    .await;
}

#[tokio::test]
async fn a_consent_form_is_single_use() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[]);
        let session = app.login(&client.owner).await;
        let txn = app.consent_txn(&query, &session).await;
        assert_eq!(
            app.post_consent(&session, &txn, "allow").await.status(),
            StatusCode::SEE_OTHER
        );

        let replay = app.post_consent(&session, &txn, "allow").await;

        assert_error_page(&replay);
    })
    .await;
}

#[tokio::test]
async fn a_forged_altered_or_foreign_consent_form_is_refused() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[]);
        let session = app.login(&client.owner).await;
        let txn = app.consent_txn(&query, &session).await;

        assert_error_page(&app.post_consent(&session, "forged.value", "allow").await);
        let mut altered = txn.clone();
        altered.replace_range(5..6, if &txn[5..6] == "A" { "B" } else { "A" });
        assert_error_page(&app.post_consent(&session, &altered, "allow").await);
        let mallory = app.user().await;
        let other_session = app.login(&mallory).await;
        assert_error_page(&app.post_consent(&other_session, &txn, "allow").await);
        let no_session = app
            .http
            .post(app.url("/oauth2/authorize"))
            .form(&[("txn", txn.as_str()), ("decision", "allow")])
            .send()
            .await
            .unwrap();
        assert_error_page(&no_session);
        assert_error_page(&app.post_consent(&session, &txn, "maybe").await);
        // After all that, the genuine form still works once.
        assert_eq!(
            app.post_consent(&session, &txn, "allow").await.status(),
            StatusCode::SEE_OTHER
        );
    })
    .await;
}

#[tokio::test]
async fn an_expired_consent_form_or_session_is_refused() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;
    let query = app.authorize_query(&client, &[]);
    let session = app.login(&client.owner).await;
    let txn = app.consent_txn(&query, &session).await;

    app.clock.advance(601);
    assert_error_page(&app.post_consent(&session, &txn, "allow").await);

    app.clock.advance(28_800);
    let resp = app.get_authorize(&query, Some(&session)).await;
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("name=\"password\""),
        "an expired session shows the login form again"
    );
}

#[tokio::test]
async fn prompt_none_without_a_session_redirects_with_login_required() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;
    let resp = app
        .get_authorize(&app.authorize_query(&client, &[("prompt", "none")]), None)
        .await;
    assert_error_link(&app, resp, &client.redirect_uri, "login_required").await;
}

#[tokio::test]
async fn the_consent_page_escapes_the_client_name() {
    let app = spawn_app().await;
    let client = app
        .client_with(json!({"client_name": "<script>alert(1)</script>", "redirect_uris": ["https://x.example/cb"]}))
        .await;
    let session = app.login(&client.owner).await;
    let html = app
        .get_authorize(&app.authorize_query(&client, &[]), Some(&session))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[tokio::test]
async fn a_redirect_uri_with_a_query_keeps_it_and_adds_the_code() {
    let app = spawn_app().await;
    let client = app
        .client_with(
            json!({"client_name": "Q", "redirect_uris": ["https://q.example/cb?tenant=7"]}),
        )
        .await;
    let redirect = app
        .approve(&client.owner, &app.authorize_query(&client, &[]))
        .await;
    let p = query_params(&redirect);
    assert_eq!(p["tenant"], "7");
    assert!(p.contains_key("code"));
}

#[tokio::test]
async fn logout_needs_a_same_origin_post_and_then_clears_the_session() {
    let app = spawn_app().await;
    let user = app.user().await;
    let session = app.login(&user).await;

    let get = app
        .http
        .get(app.url("/logout"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert!(
        set_cookie(&get, "hallpass_session").is_none(),
        "a GET signs nobody out"
    );
    let foreign = app
        .http
        .post(app.url("/logout"))
        .header(header::COOKIE, &session)
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&foreign, "hallpass_session").is_none());

    let own = app
        .http
        .post(app.url("/logout"))
        .header(header::COOKIE, &session)
        .header(header::ORIGIN, &app.address)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let line = set_cookie_line(&own, "hallpass_session").unwrap();
    assert!(
        line.starts_with("hallpass_session=;") && line.contains("Max-Age=0"),
        "{line}"
    );
}
