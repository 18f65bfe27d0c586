//! Sessions, sign-out and cookies (issue 8, items 7, 10, 11 and 12): a saved cookie dies at
//! sign-out; sign-out everywhere; tokens older than a consent withdrawal or a client deletion
//! are refused; client records change by compare-and-swap; the login CSRF token is bound to
//! a keyed MAC; `__Host-` cookies and HSTS on an https issuer.

use std::collections::HashSet;

use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::helpers::{
    Backend, TestApp, TestClient, TestUser, assert_oauth_error, backends, each_store, hidden_input,
    set_cookie, set_cookie_line, spawn_app, spawn_app_on, spawn_app_with_store,
};

/// The client's owner withdraws the consent given to it (`DELETE /api/consents/{id}`).
async fn withdraw_consent(app: &TestApp, client: &TestClient) {
    let resp = app
        .as_user(
            Method::DELETE,
            format!("/api/consents/{}", client.client_id),
            &client.owner,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

/// Whether `session` still signs its user in: the authorize request shows the consent page
/// (signed in) rather than the login form.
async fn signed_in(app: &TestApp, client: &TestClient, session: &str) -> bool {
    let query = app.authorize_query(client, &[]);
    let page = app.get_authorize(&query, Some(session)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    !html.contains("name=\"password\"")
}

async fn logout(app: &TestApp, session: &str) -> reqwest::Response {
    app.http
        .post(app.url("/logout"))
        .header(header::COOKIE, session)
        .header(header::ORIGIN, &app.address)
        .send()
        .await
        .unwrap()
}

/// An access token for `client` from its owner, scoped `openid`.
async fn token_for(app: &TestApp, client: &TestClient) -> String {
    let code = app.code_for(client, &[("scope", "openid")]).await;
    let resp = app.redeem(client, &code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

async fn userinfo_status(app: &TestApp, token: &str) -> u16 {
    let resp = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    resp.status().as_u16()
}

/// Whether `token` works everywhere Hallpass checks tokens, as seen by `introspector`; panics
/// when the endpoints disagree.
async fn token_works(app: &TestApp, introspector: &TestClient, token: &str) -> bool {
    let me = app.me_status(token).await;
    let info = userinfo_status(app, token).await;
    let active = app.introspect(introspector, token).await["active"] == true;
    match (me, info, active) {
        (200, 200, true) => true,
        (401, 401, false) => false,
        other => panic!("endpoints disagree: /api/users/me, /userinfo, active = {other:?}"),
    }
}

/// A second confidential client of `owner`, to introspect the tokens of the first.
async fn sibling_client(app: &TestApp, owner: &TestUser) -> TestClient {
    let resp = app
        .post_client(
            owner,
            &serde_json::json!({
                "client_name": "Resource Server",
                "redirect_uris": ["https://api.example/cb"],
            }),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let c: Value = resp.json().await.unwrap();
    TestClient {
        client_id: c["client_id"].as_str().unwrap().to_string(),
        client_secret: c["client_secret"].as_str().map(str::to_string),
        redirect_uri: "https://api.example/cb".into(),
        owner: owner.clone(),
    }
}

#[tokio::test]
async fn a_session_cookie_saved_before_logout_is_refused_afterwards() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let session = app.login(&client.owner).await;
        assert!(signed_in(&app, &client, &session).await);

        assert_eq!(logout(&app, &session).await.status(), StatusCode::OK);

        assert!(
            !signed_in(&app, &client, &session).await,
            "the saved cookie no longer signs in"
        );
        let other = app.login(&client.owner).await;
        assert!(
            signed_in(&app, &client, &other).await,
            "a new sign-in works"
        );
    })
    .await;
}

#[tokio::test]
async fn a_consent_form_posted_after_logout_is_refused_and_issues_no_code() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[]);
        let session = app.login(&client.owner).await;
        let txn = app.consent_txn(&query, &session).await;

        assert_eq!(logout(&app, &session).await.status(), StatusCode::OK);
        let resp = app.post_consent(&session, &txn, "allow").await;

        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(resp.headers().get(header::LOCATION).is_none());
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("not signed in any more")
        );
        // Signed in again, the user starts from the application: a new form works.
        let again = app.login(&client.owner).await;
        let fresh = app.consent_txn(&query, &again).await;
        assert_eq!(
            app.post_consent(&again, &fresh, "allow").await.status(),
            StatusCode::SEE_OTHER
        );
    })
    .await;
}

#[tokio::test]
async fn sign_out_everywhere_ends_every_earlier_session_of_the_user_only() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let stranger = app.confidential_client().await;
        let (first, second) = (
            app.login(&client.owner).await,
            app.login(&client.owner).await,
        );
        let theirs = app.login(&stranger.owner).await;

        let resp = app
            .as_user(Method::POST, "/api/users/me/sessions/revoke", &client.owner)
            .send()
            .await
            .unwrap();

        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(!signed_in(&app, &client, &first).await);
        assert!(!signed_in(&app, &client, &second).await);
        assert!(
            signed_in(&app, &stranger, &theirs).await,
            "another user's session is untouched"
        );
        app.clock.advance(1);
        let later = app.login(&client.owner).await;
        assert!(signed_in(&app, &client, &later).await);
    })
    .await;
}

#[tokio::test]
async fn sign_out_everywhere_needs_basic_or_a_manage_token() {
    let app = spawn_app().await;
    let client = app.confidential_client().await;
    let token = token_for(&app, &client).await;

    let resp = app
        .http
        .post(app.url("/api/users/me/sessions/revoke"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_token_from_before_consent_withdrawal_is_refused_and_a_new_one_works() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let rs = sibling_client(&app, &client.owner).await;
        let old = token_for(&app, &client).await;
        assert!(token_works(&app, &rs, &old).await);

        withdraw_consent(&app, &client).await;

        assert!(
            !token_works(&app, &rs, &old).await,
            "the old token is refused"
        );
        app.clock.advance(1);
        let new = token_for(&app, &client).await;
        assert!(
            token_works(&app, &rs, &new).await,
            "a token after re-consent works"
        );
        assert!(!token_works(&app, &rs, &old).await);
    })
    .await;
}

#[tokio::test]
async fn a_code_approved_before_consent_withdrawal_cannot_be_redeemed() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let code = app.code_for(&client, &[("scope", "openid")]).await;
        withdraw_consent(&app, &client).await;

        let resp = app.redeem(&client, &code).await;

        assert_oauth_error(resp, 400, "invalid_grant").await;
    })
    .await;
}

/// A code names its user under the issuing instance's session key (`oauth::code_hint`), so
/// the token endpoint reads the consent cut-off while it consumes the code. An instance with
/// another key cannot open the hint: it reads the cut-off afterwards, and still refuses a
/// code approved before the withdrawal.
#[tokio::test]
async fn another_instance_redeems_a_code_and_still_sees_a_consent_withdrawal() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (store, _cleanup) = backend.store("hallpass-test");
        let a = spawn_app_with_store(store.clone(), |_| {}).await;
        let b = spawn_app_with_store(store, |_| {}).await;
        let client = a.confidential_client().await;
        let code = a.code_for(&client, &[("scope", "openid")]).await;
        assert_eq!(
            hallpass::oauth::code_hint::user_hint(&a.state.session_key, &code).as_deref(),
            Some(client.owner.id.as_str()),
            "the code names its user under the issuer's key"
        );
        assert!(!code.contains(&client.owner.id), "and only sealed");
        assert_ne!(
            hallpass::oauth::code_hint::user_hint(&b.state.session_key, &code).as_deref(),
            Some(client.owner.id.as_str()),
            "the instances' session keys differ"
        );
        let resp = b.redeem(&client, &code).await;
        assert_eq!(resp.status(), StatusCode::OK, "redeemed elsewhere");
        let body: Value = resp.json().await.unwrap();
        assert!(body["id_token"].is_string());

        let code = a.code_for(&client, &[("scope", "openid")]).await;
        withdraw_consent(&a, &client).await;
        assert_oauth_error(b.redeem(&client, &code).await, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn a_token_of_a_deleted_client_is_refused_while_other_clients_tokens_work() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let rs = sibling_client(&app, &client.owner).await;
        let doomed = token_for(&app, &client).await;
        let kept = token_for(&app, &rs).await;
        assert!(token_works(&app, &rs, &doomed).await);

        let resp = app
            .as_user(
                Method::DELETE,
                format!("/api/clients/{}", client.client_id),
                &client.owner,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);

        assert!(!token_works(&app, &rs, &doomed).await);
        assert!(token_works(&app, &rs, &kept).await);
    })
    .await;
}

/// Whether `secret` authenticates `client_id` (introspection answers 200 only to a client
/// that authenticated).
async fn authenticates(app: &TestApp, client_id: &str, secret: &str) -> bool {
    let resp = app
        .http
        .post(app.url("/oauth2/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    resp.status() == StatusCode::OK
}

/// Ten parallel rotations: each answers 200 with a secret or 409. Only the secret of the last
/// rotation to commit works; every other 200 was true when answered and was replaced by a
/// later 200 (the rotations that raced a winner changed nothing and said 409). HTTP Basic's
/// argon2 spreads the requests out, so most commit one after another; the lost update itself
/// is forced and refused in `oauth::client_update`'s unit tests.
#[tokio::test]
async fn parallel_rotations_answer_200_or_409_and_exactly_the_last_secret_works() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let mut tasks = JoinSet::new();
        for _ in 0..10 {
            let req = app.rotate_secret(&client);
            tasks.spawn(async move { req.send().await.unwrap() });
        }
        let mut secrets = Vec::new();
        let mut conflicts = 0;
        while let Some(resp) = tasks.join_next().await {
            let resp = resp.unwrap();
            match resp.status() {
                StatusCode::OK => {
                    let body: Value = resp.json().await.unwrap();
                    secrets.push(body["client_secret"].as_str().unwrap().to_string());
                }
                StatusCode::CONFLICT => conflicts += 1,
                other => panic!("unexpected status {other}"),
            }
        }

        assert!(!secrets.is_empty(), "at least one rotation wins");
        assert_eq!(secrets.len() + conflicts, 10);
        assert_eq!(secrets.iter().collect::<HashSet<_>>().len(), secrets.len());
        let mut working = 0;
        for s in &secrets {
            if authenticates(&app, &client.client_id, s).await {
                working += 1;
            }
        }
        assert_eq!(working, 1, "of {} answered secrets", secrets.len());
        let original = client.client_secret.as_deref().unwrap();
        assert!(!authenticates(&app, &client.client_id, original).await);
    })
    .await;
}

/// A rotation racing a delete: when the delete says 204 the client is gone and no secret,
/// rotated or not, authenticates it.
#[tokio::test]
async fn a_rotation_racing_a_delete_never_leaves_a_deleted_client_that_authenticates() {
    each_store(async |app: TestApp| {
        for _ in 0..10 {
            let client = app.confidential_client().await;
            let del = app.as_user(
                Method::DELETE,
                format!("/api/clients/{}", client.client_id),
                &client.owner,
            );
            let rot = app.rotate_secret(&client);
            let (deleted, rotated) = tokio::join!(
                tokio::spawn(async move { del.send().await.unwrap() }),
                tokio::spawn(async move { rot.send().await.unwrap() }),
            );
            let (deleted, rotated) = (deleted.unwrap(), rotated.unwrap());
            assert_eq!(
                deleted.status(),
                StatusCode::NO_CONTENT,
                "nothing else deletes it"
            );
            let mut secrets = vec![client.client_secret.clone().unwrap()];
            match rotated.status() {
                StatusCode::OK => {
                    let body: Value = rotated.json().await.unwrap();
                    secrets.push(body["client_secret"].as_str().unwrap().to_string());
                }
                StatusCode::CONFLICT | StatusCode::NOT_FOUND => {}
                other => panic!("unexpected rotation status {other}"),
            }
            for s in &secrets {
                assert!(!authenticates(&app, &client.client_id, s).await);
            }
            let get = app
                .as_user(
                    Method::GET,
                    format!("/api/clients/{}", client.client_id),
                    &client.owner,
                )
                .send()
                .await
                .unwrap();
            assert_eq!(get.status(), StatusCode::NOT_FOUND);
        }
    })
    .await;
}

async fn post_login(app: &TestApp, user: &TestUser, cookie: &str, csrf: &str) -> reqwest::Response {
    app.http
        .post(app.url("/login"))
        .header(header::COOKIE, cookie)
        .form(&[
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
            ("csrf", csrf),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap()
}

/// Login CSRF: an attacker who plants a cookie of their choice cannot make the form field
/// that goes with it, so the victim is not signed in to the attacker's account.
#[tokio::test]
async fn a_planted_csrf_cookie_and_matching_field_are_refused() {
    let app = spawn_app().await;
    let attacker = app.user().await;

    let planted = post_login(&app, &attacker, "hallpass_csrf=x", "x").await;
    assert_eq!(planted.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookie(&planted, "hallpass_session").is_none());

    let page = app.http.get(app.url("/login")).send().await.unwrap();
    let cookie = set_cookie(&page, "hallpass_csrf").unwrap();
    let field = hidden_input(&page.text().await.unwrap(), "csrf").unwrap();
    let value = cookie.split_once('=').unwrap().1.to_string();
    assert_ne!(field, value, "the field is not the cookie's value");
    let echoed = post_login(&app, &attacker, &cookie, &value).await;
    assert_eq!(echoed.status(), StatusCode::BAD_REQUEST);
    let genuine = post_login(&app, &attacker, &cookie, &field).await;
    assert_eq!(genuine.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_https_issuer_gets_host_prefixed_cookies_and_hsts_on_every_response() {
    let app = spawn_app_on(Backend::Memory, |c| {
        c.issuer = "https://as.example".into();
    })
    .await;
    let client = app.confidential_client().await;
    let user = client.owner.clone();

    let page = app.http.get(app.url("/login")).send().await.unwrap();
    let csrf_line = set_cookie_line(&page, "__Host-hallpass_csrf").unwrap();
    assert!(
        csrf_line.contains("Path=/;")
            && csrf_line.contains("Secure")
            && !csrf_line.contains("Domain"),
        "{csrf_line}"
    );
    assert!(set_cookie(&page, "hallpass_csrf").is_none());
    assert_eq!(
        page.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookie = set_cookie(&page, "__Host-hallpass_csrf").unwrap();
    let field = hidden_input(&page.text().await.unwrap(), "csrf").unwrap();

    let resp = post_login(&app, &user, &cookie, &field).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let line = set_cookie_line(&resp, "__Host-hallpass_session").unwrap();
    assert!(
        line.contains("Path=/;") && line.contains("Secure") && !line.contains("Domain"),
        "{line}"
    );
    let session = set_cookie(&resp, "__Host-hallpass_session").unwrap();
    assert!(
        signed_in(&app, &client, &session).await,
        "the __Host- cookie signs in"
    );
    let plain = session.replacen("__Host-", "", 1);
    assert!(
        !signed_in(&app, &client, &plain).await,
        "the unprefixed name is not read"
    );

    for path in [
        "/.well-known/oauth-authorization-server",
        "/api/users/me",
        "/nowhere",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            resp.headers()["strict-transport-security"],
            "max-age=31536000",
            "{path}"
        );
    }
}

#[tokio::test]
async fn an_http_issuer_keeps_plain_cookie_names_and_sends_no_hsts() {
    let app = spawn_app().await;

    let page = app.http.get(app.url("/login")).send().await.unwrap();

    assert!(set_cookie(&page, "hallpass_csrf").is_some());
    assert!(!page.headers().contains_key("strict-transport-security"));
}
