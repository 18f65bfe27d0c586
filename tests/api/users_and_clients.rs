//! The tutorial's user and client APIs: validation, ownership, secrets shown once.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, TestClient, assert_oauth_error, backends, each_store, spawn_app,
    spawn_app_on, spawn_app_with_store,
};

#[tokio::test]
async fn registering_a_user_returns_201_and_a_duplicate_username_409() {
    each_store(async |app: TestApp| {
        let body = json!({"username": "alice-registers", "password": "correct horse"});
        let created = app.post_user(&body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let user: Value = created.json().await.unwrap();
        assert_eq!(user["username"], "alice-registers");
        assert!(user.get("password").is_none() && user.get("password_hash").is_none());

        assert_oauth_error(app.post_user(&body).await, 409, "conflict").await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_create_exactly_one_user() {
    each_store(async |app: TestApp| {
        let app = std::sync::Arc::new(app);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    app.post_user(&json!({"username": "racer", "password": "correct horse"}))
                        .await
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "{statuses:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_registrations_get_400_invalid_request() {
    let app = spawn_app().await;
    let long = "x".repeat(65);
    let huge_password = "p".repeat(300);
    for body in [
        json!({"username": "bob", "password": ""}),
        json!({"username": "bob", "password": "short"}),
        json!({"username": "", "password": "long enough"}),
        json!({"username": long, "password": "long enough"}),
        json!({"username": "has space", "password": "long enough"}),
        json!({"username": "colon:name", "password": "long enough"}),
        json!({"username": "bob", "password": huge_password}),
        json!({"username": "bob"}),
        json!(["not", "an", "object"]),
        // A JSON string only: poem-openapi's own `String` would take `false` as "false".
        json!({"username": false, "password": "long enough"}),
        json!({"username": 42, "password": "long enough"}),
        json!({"username": "bob", "password": 1234567890}),
    ] {
        assert_oauth_error(app.post_user(&body).await, 400, "invalid_request").await;
    }
    let not_json = app
        .http
        .post(app.url("/api/users"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_oauth_error(not_json, 400, "invalid_request").await;
    let form = app
        .http
        .post(app.url("/api/users"))
        .form(&[("username", "bob")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(form, 415, "invalid_request").await;
}

#[tokio::test]
async fn closed_registration_answers_403() {
    let app = spawn_app_on(Backend::Memory, |c| c.registration_open = false).await;
    let resp = app
        .post_user(&json!({"username": "bob", "password": "long enough"}))
        .await;
    assert_oauth_error(resp, 403, "access_denied").await;
}

#[tokio::test]
async fn users_me_accepts_basic_and_refuses_bad_credentials_with_401() {
    each_store(async |app: TestApp| {
        let user = app.user().await;
        let me = app
            .as_user(reqwest::Method::GET, "/api/users/me", &user)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["id"], user.id);

        let wrong = app
            .http
            .get(app.url("/api/users/me"))
            .basic_auth(&user.username, Some("nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let www = wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            !www.contains("error=\"invalid_client\""),
            "RFC 6750 has no such Bearer error: {www}"
        );
        assert!(www.starts_with("Basic realm=\"hallpass\""), "{www}");
        // A wrong user password is wrong resource-owner credentials: RFC 6749 §5.2
        // `invalid_grant`, not `invalid_client` (no client is involved).
        let body: Value = wrong.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{body}");
        let none = app.http.get(app.url("/api/users/me")).send().await.unwrap();
        let www = none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            www.contains("Basic") && www.contains("Bearer realm=\"hallpass\""),
            "{www}"
        );
        assert!(
            !www.contains("error="),
            "no credentials, no error attribute (RFC 6750 §3.1): {www}"
        );
        assert_oauth_error(none, 401, "invalid_token").await;
        let garbage = app
            .http
            .get(app.url("/api/users/me"))
            .bearer_auth("not.a.jwt")
            .send()
            .await
            .unwrap();
        let www = garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(www.contains("error=\"invalid_token\""), "{www}");
        assert_oauth_error(garbage, 401, "invalid_token").await;
    })
    .await;
}

#[tokio::test]
async fn a_client_registration_returns_the_secret_once_and_listing_never_shows_it() {
    each_store(async |app: TestApp| {
        let user = app.user().await;
        let created = app
            .post_client(&user, &json!({"client_name": "Beer App", "redirect_uris": ["https://app.example/cb"], "scope": "beers:read"}))
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let c: Value = created.json().await.unwrap();
        assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
        assert_eq!(c["grant_types"], json!(["authorization_code"]));
        assert_eq!(c["scope"], "beers:read");
        assert_eq!(c["client_secret"].as_str().unwrap().len(), 43, "256 bits, base64url");

        let list: Value = app.as_user(reqwest::Method::GET, "/api/clients", &user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["client_id"], c["client_id"]);
        assert!(list[0].get("client_secret").is_none());
        let one: Value = app.as_user(reqwest::Method::GET, format!("/api/clients/{}", c["client_id"].as_str().unwrap()), &user)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(one.get("client_secret").is_none());
        assert_eq!(one["client_name"], "Beer App");
    })
    .await;
}

#[tokio::test]
async fn a_public_client_has_no_secret() {
    let app = spawn_app().await;
    let user = app.user().await;
    let c: Value = app
        .post_client(&user, &json!({"client_name": "CLI", "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert!(c.get("client_secret").is_none());
}

#[tokio::test]
async fn invalid_client_metadata_is_refused_with_400() {
    let app = spawn_app().await;
    let user = app.user().await;
    for not_strings in [
        json!({"client_name": true, "redirect_uris": ["https://app.example/cb"]}),
        json!({"client_name": "X", "redirect_uris": [7]}),
        json!({"client_name": "X", "redirect_uris": ["https://app.example/cb"], "scope": 1}),
    ] {
        let resp = app.post_client(&user, &not_strings).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{not_strings}");
    }
    let cases = [
        (
            json!({"client_name": "X", "redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["/relative"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"client_name": "X", "redirect_uris": []}),
            "invalid_redirect_uri",
        ),
        (json!({"client_name": "X"}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["https://a.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "X", "redirect_uris": ["https://a.example/cb"], "scope": "admin"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "X", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"client_name": "X", "redirect_uris": "https://a.example/cb"}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let resp = app.post_client(&user, &body).await;
        assert_oauth_error(resp, 400, code).await;
    }
}

#[tokio::test]
async fn another_user_gets_404_for_every_operation_on_my_client() {
    each_store(async |app: TestApp| {
        let mine = app.confidential_client().await;
        let mallory = app.user().await;
        let path = format!("/api/clients/{}", mine.client_id);
        let as_mallory = |req: reqwest::RequestBuilder| {
            req.basic_auth(&mallory.username, Some(&mallory.password))
                .send()
        };

        assert_oauth_error(
            as_mallory(app.http.get(app.url(&path))).await.unwrap(),
            404,
            "not_found",
        )
        .await;
        assert_oauth_error(
            as_mallory(app.http.delete(app.url(&path))).await.unwrap(),
            404,
            "not_found",
        )
        .await;
        let rotate = as_mallory(app.http.post(app.url(&format!("{path}/secret"))))
            .await
            .unwrap();
        assert_oauth_error(rotate, 404, "not_found").await;
        let list: Value = as_mallory(app.http.get(app.url("/api/clients")))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list, json!([]));
        // Still there for its owner.
        let own = app
            .as_user(reqwest::Method::GET, &path, &mine.owner)
            .send()
            .await
            .unwrap();
        assert_eq!(own.status(), StatusCode::OK);
    })
    .await;
}

/// Rotates `c`'s secret as its owner; the new secret.
async fn rotate_secret(app: &TestApp, c: &TestClient) -> String {
    let rotated: Value = app
        .rotate_secret(c)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    rotated["client_secret"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn rotating_the_secret_shows_the_new_one_once_and_the_old_one_stops_working() {
    each_store(async |app: TestApp| {
        let c = app
            .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
            .await;
        let old = c.client_secret.clone().unwrap();
        let new = &rotate_secret(&app, &c).await;
        assert_ne!(new, &old);

        let form = [("grant_type", "client_credentials")];
        assert_oauth_error(
            app.post_token(&form, Some((&c.client_id, &old))).await,
            401,
            "invalid_client",
        )
        .await;
        assert_eq!(
            app.post_token(&form, Some((&c.client_id, new)))
                .await
                .status(),
            StatusCode::OK
        );
    })
    .await;
}

/// A secret rotated or a client deleted through one instance is refused by every instance
/// once the rotation or deletion has answered, even by one that has just authenticated the
/// client with it and holds a lease on its record (`oauth::client_lease`). The leases here
/// last 2 s (the ceiling raised for the test), far longer than the test takes, so a change
/// that answered before they ran out would be caught. The instance that makes the changes has
/// leases off: it waits all the same, for the leases of the others.
#[tokio::test]
async fn a_rotated_secret_or_a_deleted_client_is_refused_at_once_by_every_instance() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let ceiling = |c: &mut hallpass::config::Config| {
            c.client_lease_ceiling = Duration::from_secs(2);
            c.client_lease = Duration::from_secs(2);
        };
        let a = spawn_app_on(backend, |c| {
            ceiling(c);
            c.client_lease = Duration::ZERO;
        })
        .await;
        let b = spawn_app_with_store(a.state.store.clone(), ceiling).await;
        let c = a
            .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
            .await;
        let old = c.client_secret.clone().unwrap();
        let form = [("grant_type", "client_credentials")];
        for app in [&a, &b] {
            for _ in 0..3 {
                let ok = app.post_token(&form, Some((&c.client_id, &old))).await;
                assert_eq!(ok.status(), StatusCode::OK);
            }
        }
        assert!(a.state.client_leases.is_empty(), "leases are off on a");
        assert_eq!(b.state.client_leases.len(), 1, "b holds a lease");
        let new = rotate_secret(&a, &c).await;
        for app in [&b.remote, &*a] {
            let refused = app.post_token(&form, Some((&c.client_id, &old))).await;
            assert_oauth_error(refused, 401, "invalid_client").await;
            let ok = app.post_token(&form, Some((&c.client_id, &new))).await;
            assert_eq!(ok.status(), StatusCode::OK);
        }
        assert_eq!(b.state.client_leases.len(), 1, "b leases the new record");
        assert_eq!(a.delete_client(&c).await.status(), StatusCode::NO_CONTENT);
        for app in [&b.remote, &*a] {
            let refused = app.post_token(&form, Some((&c.client_id, &new))).await;
            assert_oauth_error(refused, 401, "invalid_client").await;
        }
    }
}

#[tokio::test]
async fn deleting_a_client_removes_it_and_its_authorize_requests_get_the_error_page() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let path = format!("/api/clients/{}", c.client_id);
    let del = app
        .as_user(reqwest::Method::DELETE, &path, &c.owner)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again = app
        .as_user(reqwest::Method::DELETE, &path, &c.owner)
        .send()
        .await
        .unwrap();
    assert_oauth_error(again, 404, "not_found").await;
    let resp = app.get_authorize(&app.authorize_query(&c, &[]), None).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
}

/// A token manages the user's clients only when the user granted `hallpass:manage`: an app
/// allowed to read beers must not rotate the user's client secrets.
#[tokio::test]
async fn a_bearer_token_manages_clients_and_consents_only_with_the_manage_scope() {
    each_store(async |app: TestApp| {
        let victim = app.confidential_client().await;
        let code = app.code_for(&victim, &[("scope", "beers:read")]).await;
        let body: Value = app.redeem(&victim, &code).await.json().await.unwrap();
        let beers_token = body["access_token"].as_str().unwrap().to_string();
        let rotate = format!("/api/clients/{}/secret", victim.client_id);
        for (method, path) in [
            ("POST", rotate.as_str()),
            ("GET", "/api/clients"),
            ("GET", "/api/consents"),
            ("POST", "/api/clients"),
        ] {
            let req = app
                .http
                .request(method.parse().unwrap(), app.url(path))
                .bearer_auth(&beers_token);
            let req = if path == "/api/clients" && method == "POST" {
                req.json(&json!({"client_name": "X", "redirect_uris": ["https://x.example/cb"]}))
            } else {
                req
            };
            let resp = req.send().await.unwrap();
            let www = resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(
                www.starts_with("Bearer") && www.contains("error=\"insufficient_scope\""),
                "{www}"
            );
            assert!(www.contains("scope=\"hallpass:manage\""), "{www}");
            assert_oauth_error(resp, 403, "insufficient_scope").await;
        }
        assert_eq!(
            app.me_status(&beers_token).await,
            200,
            "any user token may read /api/users/me"
        );

        // Only first-party clients get hallpass:manage (tests/api/hardening_flows.rs).
        let console = app
            .post_client(
                &victim.owner,
                &json!({
                    "client_name": "Console",
                    "redirect_uris": ["https://console.example/cb"],
                    "scope": "hallpass:manage",
                }),
            )
            .await;
        assert_oauth_error(console, 400, "invalid_client_metadata").await;
    })
    .await;
}

#[tokio::test]
async fn the_manage_scope_is_not_in_a_clients_default_scopes() {
    let app = spawn_app().await;
    let user = app.user().await;
    let c: Value = app
        .post_client(
            &user,
            &json!({"client_name": "Default", "redirect_uris": ["https://d.example/cb"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let scope = c["scope"].as_str().unwrap();
    assert!(
        scope.contains("beers:read") && !scope.contains("hallpass:manage"),
        "{scope}"
    );
}

#[tokio::test]
async fn a_user_may_own_at_most_a_hundred_clients() {
    let app = spawn_app().await;
    let user = app.user().await;
    let body = json!({"client_name": "Many", "grant_types": ["client_credentials"]});
    for _ in 0..100 {
        assert_eq!(
            app.post_client(&user, &body).await.status(),
            StatusCode::CREATED
        );
    }
    assert_oauth_error(app.post_client(&user, &body).await, 409, "conflict").await;
}
