//! Refresh tokens: rotation, the grace window, reuse detection, lifetimes, scope narrowing.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, assert_oauth_error, each_store, spawn_app, spawn_app_on};

#[tokio::test]
async fn offline_access_yields_a_refresh_token_that_rotates_on_every_use() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let first = app
            .tokens_with_refresh(&c, "offline_access beers:read")
            .await;
        let rt1 = first["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string();

        let second: Value = app.refresh(&c, &rt1, None).await.json().await.unwrap();
        let rt2 = second["refresh_token"].as_str().unwrap().to_string();
        assert_ne!(rt2, rt1);
        assert_eq!(second["scope"], "beers:read offline_access");
        assert_eq!(second["token_type"], "Bearer");
        assert!(second.get("id_token").is_none());
        assert_eq!(
            app.me_status(second["access_token"].as_str().unwrap())
                .await,
            200
        );

        let third: Value = app.refresh(&c, &rt2, None).await.json().await.unwrap();
        assert_ne!(third["refresh_token"], second["refresh_token"]);
    })
    .await;
}

#[tokio::test]
async fn no_refresh_token_without_offline_access_or_without_the_grant() {
    let app = spawn_app().await;
    let c = app.refreshing_client().await;
    let plain = app.tokens_with_refresh(&c, "beers:read").await;
    assert!(plain.get("refresh_token").is_none());
    // A client without the refresh_token grant is not offered offline_access at all, so the
    // consent page never promises what the token response would not deliver.
    let no_grant = app.confidential_client().await;
    let resp = app
        .get_authorize(
            &app.authorize_query(&no_grant, &[("scope", "offline_access")]),
            None,
        )
        .await;
    assert_eq!(
        crate::helpers::query_params(&crate::hardening_flows::error_link(resp).await)["error"],
        "invalid_scope"
    );
    let refused = app.refresh(&no_grant, "anything.here", None).await;
    assert_oauth_error(refused, 400, "unauthorized_client").await;
    let explicit = app
        .post_client(
            &no_grant.owner,
            &serde_json::json!({"client_name": "X", "redirect_uris": ["https://x.example/cb"], "scope": "offline_access"}),
        )
        .await;
    assert_oauth_error(explicit, 400, "invalid_client_metadata").await;
}

/// Two tabs or a retried request: every parallel refresh succeeds with the same successor.
#[tokio::test]
async fn twenty_parallel_refreshes_of_one_token_all_get_the_same_successor() {
    each_store(async |app: TestApp| {
        let app = Arc::new(app);
        let c = app.refreshing_client().await;
        let rt = app.refresh_token_for(&c, "offline_access").await;

        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (app, c, rt) = (app.clone(), c.clone(), rt.clone());
                tokio::spawn(async move {
                    let resp = app.refresh(&c, &rt, None).await;
                    let status = resp.status();
                    let body: Value = resp.json().await.unwrap();
                    (status, body)
                })
            })
            .collect();
        let mut successors = Vec::new();
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            successors.push(body["refresh_token"].as_str().unwrap().to_string());
        }
        successors.dedup();
        assert_eq!(successors.len(), 1, "one successor: {successors:?}");
        let next = app.refresh(&c, &successors[0], None).await;
        assert_eq!(next.status(), StatusCode::OK, "the successor works");
    })
    .await;
}

#[tokio::test]
async fn a_rotated_token_replayed_after_the_grace_window_revokes_the_whole_family() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let rt1 = app.refresh_token_for(&c, "offline_access").await;
        let second: Value = app.refresh(&c, &rt1, None).await.json().await.unwrap();
        let rt2 = second["refresh_token"].as_str().unwrap().to_string();
        let access2 = second["access_token"].as_str().unwrap().to_string();

        app.clock.advance(31);
        let replay = app.refresh(&c, &rt1, None).await;

        assert_oauth_error(replay, 400, "invalid_grant").await;
        assert_oauth_error(app.refresh(&c, &rt2, None).await, 400, "invalid_grant").await;
        assert_eq!(
            app.me_status(&access2).await,
            401,
            "access tokens of the family are revoked too"
        );
    })
    .await;
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_successor() {
    let app = spawn_app().await;
    let c = app.refreshing_client().await;
    let rt1 = app.refresh_token_for(&c, "offline_access").await;
    let a: Value = app.refresh(&c, &rt1, None).await.json().await.unwrap();
    app.clock.advance(29);
    let b: Value = app.refresh(&c, &rt1, None).await.json().await.unwrap();
    assert_eq!(a["refresh_token"], b["refresh_token"]);
    assert_ne!(
        a["access_token"], b["access_token"],
        "each answer carries a fresh access token"
    );
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let app = spawn_app().await;
    let c = app.refreshing_client().await;
    let rt = app.refresh_token_for(&c, "offline_access beers:read").await;
    let wide = app.refresh(&c, &rt, Some("beers:read beers:write")).await;
    assert_oauth_error(wide, 400, "invalid_scope").await;
    let narrow: Value = app
        .refresh(&c, &rt, Some("beers:read"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(narrow["scope"], "beers:read");
    // The family keeps what was granted: the next refresh may ask for all of it again.
    let rt2 = narrow["refresh_token"].as_str().unwrap();
    let again: Value = app.refresh(&c, rt2, None).await.json().await.unwrap();
    assert_eq!(again["scope"], "beers:read offline_access");
}

#[tokio::test]
async fn another_clients_refresh_token_and_garbage_are_invalid_grant() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let other = app.refreshing_client().await;
        let rt = app.refresh_token_for(&c, "offline_access").await;
        assert_oauth_error(app.refresh(&other, &rt, None).await, 400, "invalid_grant").await;
        assert_eq!(
            app.refresh(&c, &rt, None).await.status(),
            StatusCode::OK,
            "not revoked by the stranger"
        );
        for junk in ["garbage", "a.b", "no-dot", ".", "x.\u{e9}"] {
            assert_oauth_error(app.refresh(&c, junk, None).await, 400, "invalid_grant").await;
        }
        let missing = app
            .post_token(
                &[("grant_type", "refresh_token")],
                Some((&c.client_id, c.client_secret.as_deref().unwrap())),
            )
            .await;
        assert_oauth_error(missing, 400, "invalid_request").await;
    })
    .await;
}

#[tokio::test]
async fn idle_and_absolute_lifetimes_end_a_family() {
    let app = spawn_app_on(Backend::Memory, |cfg| {
        cfg.refresh_idle_ttl = 1_000;
        cfg.refresh_absolute_ttl = 2_500;
    })
    .await;
    let c = app.refreshing_client().await;
    let rt = app.refresh_token_for(&c, "offline_access").await;
    app.clock.advance(1_001);
    assert_oauth_error(app.refresh(&c, &rt, None).await, 400, "invalid_grant").await;

    let mut rt = app.refresh_token_for(&c, "offline_access").await;
    for _ in 0..3 {
        app.clock.advance(800);
        let body: Value = app.refresh(&c, &rt, None).await.json().await.unwrap();
        rt = body["refresh_token"]
            .as_str()
            .expect("within both lifetimes")
            .to_string();
    }
    app.clock.advance(200);
    assert_oauth_error(app.refresh(&c, &rt, None).await, 400, "invalid_grant").await;
}

/// Knowing a family id (the part before the dot) is not enough to learn or break anything.
#[tokio::test]
async fn a_wrong_secret_for_a_real_family_neither_reveals_nor_revokes_it() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let rt = app.refresh_token_for(&c, "offline_access beers:read").await;
        let family = rt.split('.').next().unwrap();
        let forged = format!("{family}.{}", hallpass::crypto::random_token());

        let resp = app.refresh(&c, &forged, Some("beers:write")).await;
        let body = assert_oauth_error(resp, 400, "invalid_grant").await;
        assert!(
            !body["error_description"]
                .as_str()
                .unwrap()
                .contains("beers:read"),
            "{body}"
        );

        assert_eq!(
            app.refresh(&c, &rt, None).await.status(),
            StatusCode::OK,
            "the family lives on"
        );
    })
    .await;
}

#[tokio::test]
async fn a_token_several_generations_old_is_recognised_as_reuse() {
    let app = spawn_app().await;
    let c = app.refreshing_client().await;
    let rt1 = app.refresh_token_for(&c, "offline_access").await;
    let rt2 = app
        .refresh(&c, &rt1, None)
        .await
        .json::<Value>()
        .await
        .unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let rt3 = app
        .refresh(&c, &rt2, None)
        .await
        .json::<Value>()
        .await
        .unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();

    assert_oauth_error(app.refresh(&c, &rt1, None).await, 400, "invalid_grant").await;

    assert_oauth_error(app.refresh(&c, &rt3, None).await, 400, "invalid_grant").await;
}
