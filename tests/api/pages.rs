//! The pages a person expects: the home page at `/`, landing there after a direct sign-in,
//! the sign-in page naming the application that asks, and "Not you?" on the consent page.

use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{TestApp, TestUser, hidden_input, location, set_cookie, spawn_app};

/// Posts the login form with `return_to` (or none) and returns the response.
async fn sign_in(app: &TestApp, user: &TestUser, return_to: Option<&str>) -> reqwest::Response {
    let page = app.http.get(app.url("/login")).send().await.unwrap();
    let csrf_cookie = set_cookie(&page, "hallpass_csrf").unwrap();
    let csrf = hidden_input(&page.text().await.unwrap(), "csrf").unwrap();
    let mut form = vec![
        ("username", user.username.as_str()),
        ("password", user.password.as_str()),
        ("csrf", &csrf),
    ];
    if let Some(r) = return_to {
        form.push(("return_to", r));
    }
    app.http
        .post(app.url("/login"))
        .header(header::COOKIE, csrf_cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_home_page_is_html_with_links_and_the_sign_in_state_while_the_api_still_answers() {
    let app = spawn_app().await;
    let user = app.user().await;
    let session = app.login(&user).await;

    let anonymous = app.http.get(app.url("/")).send().await.unwrap();
    let signed_in = app
        .http
        .get(app.url("/"))
        .header(header::COOKIE, &session)
        .send()
        .await
        .unwrap();

    assert_eq!(anonymous.status(), StatusCode::OK);
    assert!(
        anonymous.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = anonymous.text().await.unwrap();
    assert!(
        html.contains(r#"href="/docs""#) && html.contains(r#"href="/login""#),
        "{html}"
    );
    let html = signed_in.text().await.unwrap();
    assert!(html.contains(&format!("Signed in as <strong>{}</strong>", user.username)));
    assert!(html.contains(r#"action="/logout""#));
    assert_eq!(
        app.get_status("/.well-known/oauth-authorization-server")
            .await,
        StatusCode::OK
    );
    assert_eq!(app.get_status("/no/such/path").await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_in_with_no_pending_request_lands_on_the_home_page() {
    let app = spawn_app().await;
    let user = app.user().await;

    let without = sign_in(&app, &user, None).await;
    let offsite = sign_in(&app, &user, Some("https://evil.example/")).await;

    assert_eq!(without.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&without), "/");
    assert_eq!(location(&offsite), "/");
}

#[tokio::test]
async fn the_sign_in_page_names_the_application_that_asks_escaped() {
    let app = spawn_app().await;
    let client = app
        .client_with(json!({
            "client_name": "<Beer & Co>",
            "redirect_uris": ["https://app.example/callback"],
        }))
        .await;
    let query = app.authorize_query(&client, &[]);

    let page = app.get_authorize(&query, None).await;
    let html = page.text().await.unwrap();
    let return_to = hidden_input(&html, "return_to").unwrap();
    let direct = app
        .http
        .get(app.url("/login"))
        .query(&[("return_to", &return_to)])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let named = "continue to <strong>&lt;Beer &amp; Co&gt;</strong>";
    assert!(html.contains(named), "{html}");
    assert!(direct.contains(named), "{direct}");
    let plain = app.http.get(app.url("/login")).send().await.unwrap();
    assert!(!plain.text().await.unwrap().contains("continue to"));
}

#[tokio::test]
async fn not_you_signs_out_and_returns_to_the_same_request_for_the_other_account() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;
    let other = app.user().await;
    let query = app.authorize_query(&client, &[("scope", "beers:read")]);
    let session = app.login(&client.owner).await;
    let consent = app
        .get_authorize(&query, Some(&session))
        .await
        .text()
        .await
        .unwrap();
    let back = hidden_input(&consent, "return_to").expect("Not you? carries the request");
    assert!(back.starts_with("/oauth2/authorize?"), "{back}");

    let out = app
        .http
        .post(app.url("/logout"))
        .header(header::COOKIE, &session)
        .header(header::ORIGIN, &app.address)
        .form(&[("return_to", &back)])
        .send()
        .await
        .unwrap();

    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out), back);
    assert_eq!(
        set_cookie(&out, "hallpass_session").as_deref(),
        Some("hallpass_session=")
    );
    let still = app.get_authorize(&query, Some(&session)).await;
    assert_eq!(still.status(), StatusCode::OK);
    assert!(
        hidden_input(&still.text().await.unwrap(), "txn").is_none(),
        "the old session is over: the sign-in page, not consent"
    );
    let signed_in = sign_in(&app, &other, Some(&back)).await;
    assert_eq!(location(&signed_in), back);
    let cookie = set_cookie(&signed_in, "hallpass_session").unwrap();
    let page = app
        .http
        .get(app.url(&back))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("account <strong>{}</strong>", other.username)),
        "{page}"
    );
}

#[tokio::test]
async fn a_cross_site_not_you_post_signs_nobody_out() {
    let app = spawn_app().await;
    let user = app.user().await;
    let session = app.login(&user).await;

    let foreign = app
        .http
        .post(app.url("/logout"))
        .header(header::COOKIE, &session)
        .header("sec-fetch-site", "cross-site")
        .form(&[("return_to", "/oauth2/authorize?client_id=x")])
        .send()
        .await
        .unwrap();

    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&foreign, "hallpass_session").is_none());
}
