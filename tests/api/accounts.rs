//! Account hardening over real HTTP on every store (issue 8, items 4 and 8): the new-password
//! policy (NIST SP 800-63B §5.1.1.2) and usernames under the PRECIS UsernameCaseMapped profile
//! (RFC 8265), at registration, API sign-in and the HTML login form.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_oauth_error, each_store};

/// A password that passes every rule.
const GOOD: &str = "correct horse battery staple";

/// `POST /api/users` and the 400 `invalid_request` description it must answer.
async fn refused(app: &TestApp, username: &str, password: &str) -> String {
    let resp = app
        .post_user(&json!({"username": username, "password": password}))
        .await;
    let body = assert_oauth_error(resp, 400, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap().to_string();
    assert!(
        password.trim().is_empty() || !description.contains(password),
        "the description never repeats the password: {description}"
    );
    description
}

/// Registers `username` with `password`; the created user's JSON.
async fn register(app: &TestApp, username: &str, password: &str) -> Value {
    let resp = app
        .post_user(&json!({"username": username, "password": password}))
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "registering {username:?}"
    );
    resp.json().await.unwrap()
}

/// `GET /api/users/me` with HTTP Basic.
async fn me(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.http
        .get(app.url("/api/users/me"))
        .basic_auth(username, Some(password))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn common_breached_passwords_are_refused_in_any_case() {
    each_store(async |app: TestApp| {
        for password in ["password1", "Password1", "QWERTYUIOP", "iloveyou123"] {
            let why = refused(&app, "common-pw", password).await;
            assert!(why.contains("too common"), "{password}: {why}");
        }
        register(&app, "common-pw", GOOD).await;
    })
    .await;
}

#[tokio::test]
async fn a_password_equal_to_the_username_or_only_whitespace_is_refused() {
    each_store(async |app: TestApp| {
        for password in ["carol-smith", "Carol-Smith", "ＣＡＲＯＬ-ＳＭＩＴＨ"] {
            let why = refused(&app, "Carol-Smith", password).await;
            assert_eq!(why, "password must not be the username", "{password}");
        }
        let why = refused(&app, "carol-smith", "          \t  ").await;
        assert_eq!(why, "password must not be only whitespace");
        let why = refused(&app, "carol-smith", "short").await;
        assert!(why.contains("at least 8 characters"), "{why}");
    })
    .await;
}

#[tokio::test]
async fn a_64_character_password_is_accepted_and_signs_in() {
    each_store(async |app: TestApp| {
        let password = "Tr0ub4dor&3 is not as good as four random words, says xkcd #936!";
        assert_eq!(password.chars().count(), 64);
        register(&app, "long-pw", password).await;
        assert_eq!(me(&app, "long-pw", password).await.status(), StatusCode::OK);
        let mut wrong = password.to_string();
        wrong.pop();
        assert_eq!(
            me(&app, "long-pw", &wrong).await.status(),
            StatusCode::UNAUTHORIZED
        );
    })
    .await;
}

#[tokio::test]
async fn look_alikes_of_an_existing_name_are_409() {
    each_store(async |app: TestApp| {
        register(&app, "alice", GOOD).await;
        register(&app, "jos\u{e9}", GOOD).await; // NFC
        for look_alike in ["Alice", "ALICE", "ａｌｉｃｅ", "jose\u{301}", "JOSE\u{301}"] {
            let resp = app
                .post_user(&json!({"username": look_alike, "password": GOOD}))
                .await;
            assert_oauth_error(resp, 409, "conflict").await;
        }
    })
    .await;
}

#[tokio::test]
async fn names_the_profile_refuses_are_400() {
    each_store(async |app: TestApp| {
        for name in [
            "alice\u{200B}", // zero-width space
            "\u{202E}ecila", // right-to-left override
            "ali\u{200D}ce", // zero-width joiner out of context
            "alice\u{1}",    // control character
            "\u{FEFF}",      // nothing left but a byte-order mark
        ] {
            let why = refused(&app, name, GOOD).await;
            assert!(why.contains("username"), "{name:?}: {why}");
        }
    })
    .await;
}

#[tokio::test]
async fn any_case_or_width_of_the_name_signs_in_to_the_one_account() {
    each_store(async |app: TestApp| {
        let created = register(&app, "alice", GOOD).await;
        for typed in ["ALICE", "Alice", "ａｌｉｃｅ"] {
            let resp = me(&app, typed, GOOD).await;
            assert_eq!(resp.status(), StatusCode::OK, "{typed}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["id"], created["id"], "{typed}");
            assert_eq!(body["username"], "alice");
        }
        // The HTML login form applies the same profile (the helper asserts the 303 and cookie).
        let session = app
            .login(&TestUser {
                id: created["id"].as_str().unwrap().to_string(),
                username: "ALICE".into(),
                password: GOOD.into(),
            })
            .await;
        assert!(!session.is_empty());
        // A refused name is just a failed sign-in, not an error.
        let resp = me(&app, "alice\u{200B}", GOOD).await;
        assert_oauth_error(resp, 401, "invalid_grant").await;
    })
    .await;
}

#[tokio::test]
async fn the_display_form_keeps_the_registered_case() {
    each_store(async |app: TestApp| {
        let created = register(&app, "Ｄave-Jones", GOOD).await;
        assert_eq!(created["username"], "Dave-Jones", "width-mapped, case kept");
        let resp = me(&app, "dave-jones", GOOD).await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["username"], "Dave-Jones");
    })
    .await;
}
