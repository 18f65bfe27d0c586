//! Client leases (issue 12) and the rate limit: a lease lets a client that authenticated
//! moments ago authenticate again on the same instance without a store round trip, but a
//! wrong secret ends it there, so a lockout reached through another instance holds. (That a
//! rotation or deletion is refused everywhere once it answered is
//! `users_and_clients::a_rotated_secret_or_a_deleted_client_is_refused_at_once_by_every_instance`.)

use std::time::Duration;

use hallpass::{config::Config, time::Clock};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestClient, backends, spawn_app_on, spawn_app_with_store};
use hallpass::store::schema;

/// Two instances on one store, their clocks set alike, and a client-credentials client.
async fn two_instances(backend: Backend, tweak: fn(&mut Config)) -> (TestApp, TestApp, TestClient) {
    let a = spawn_app_on(backend, tweak).await;
    let b = spawn_app_with_store(a.state.store.clone(), tweak).await;
    let (ta, tb) = (a.clock.now(), b.clock.now());
    if ta > tb {
        b.clock.advance(ta - tb);
    } else {
        a.clock.advance(tb - ta);
    }
    let client = a
        .client_with(json!({"client_name": "Leased", "grant_types": ["client_credentials"]}))
        .await;
    (a, b, client)
}

async fn token_status(app: &TestApp, client: &TestClient, secret: &str) -> StatusCode {
    app.post_token(
        &[("grant_type", "client_credentials")],
        Some((&client.client_id, secret)),
    )
    .await
    .status()
}

/// [`two_instances`] with 2-second leases (the ceiling raised to match), and `b` holding a
/// lease on the client: it has just issued it a token. Returns the client's secret too.
async fn leased_on_b(backend: Backend) -> (TestApp, TestApp, TestClient, String) {
    let (a, b, client) = two_instances(backend, |c| {
        c.client_lease_ceiling = Duration::from_secs(2);
        c.client_lease = Duration::from_secs(2);
    })
    .await;
    let secret = client.client_secret.clone().unwrap();
    assert_eq!(token_status(&b, &client, &secret).await, StatusCode::OK);
    assert!(!b.state.client_leases.is_empty(), "b holds a lease");
    (a, b, client, secret)
}

/// Locks `client` out by guessing on `app` (threshold 2).
async fn lock_out(app: &TestApp, client: &TestClient) {
    for _ in 0..2 {
        assert_eq!(
            token_status(app, client, "guess").await,
            StatusCode::UNAUTHORIZED
        );
    }
    let secret = client.client_secret.as_deref().unwrap();
    assert_eq!(
        token_status(app, client, secret).await,
        StatusCode::TOO_MANY_REQUESTS,
        "locked out"
    );
}

#[tokio::test]
async fn a_wrong_secret_ends_the_lease_so_a_lockout_from_another_instance_holds() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (a, b, client) = two_instances(backend, |c| {
            c.client_lease_ceiling = Duration::from_secs(30);
            c.client_lease = Duration::from_secs(30);
            c.rate_limits.client_auth = 2;
        })
        .await;
        let secret = client.client_secret.clone().unwrap();
        assert_eq!(token_status(&b, &client, &secret).await, StatusCode::OK);
        lock_out(&a, &client).await;
        // b's lease, taken before the lockout, still accepts the right secret (the limit the
        // lease's documentation states)...
        assert_eq!(token_status(&b, &client, &secret).await, StatusCode::OK);
        // ...until a wrong one arrives: that one meets the lockout through the store, and so
        // does every attempt after it.
        assert_eq!(
            token_status(&b, &client, "guess").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert!(b.state.client_leases.is_empty());
        assert_eq!(
            token_status(&b, &client, &secret).await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // Once the lockout is over, the right secret works again (and takes a lease).
        b.clock.advance(1);
        assert_eq!(token_status(&b, &client, &secret).await, StatusCode::OK);
        assert_eq!(b.state.client_leases.len(), 1);
    }
}

#[tokio::test]
async fn with_leases_off_a_lockout_stops_the_right_secret_on_every_instance_at_once() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (a, b, client) = two_instances(backend, |c| {
            c.client_lease = Duration::ZERO;
            c.rate_limits.client_auth = 2;
        })
        .await;
        let secret = client.client_secret.clone().unwrap();
        assert_eq!(token_status(&b, &client, &secret).await, StatusCode::OK);
        assert!(b.state.client_leases.is_empty());
        lock_out(&a, &client).await;
        assert_eq!(
            token_status(&b, &client, &secret).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}

/// A leased instance may issue tokens to a client while its deletion waits out the leases;
/// the deletion records its token cut-off again once the wait is over, so those tokens are
/// refused too once it has answered.
#[tokio::test]
async fn tokens_a_lease_issued_while_the_client_was_being_deleted_are_refused() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (a, b, client, secret) = leased_on_b(backend).await;

        let deleting = tokio::spawn({
            let a = a.remote.clone();
            let client = client.clone();
            async move { a.delete_client(&client).await.status() }
        });
        // Once the record is gone, the deletion is waiting out the leases.
        let key = schema::client(&client.client_id);
        while a.state.store.get(&key).await.unwrap().is_some() {
            tokio::task::yield_now().await;
        }
        // A second later (after the first cut-off), b's lease still issues a token.
        a.clock.advance(1);
        b.clock.advance(1);
        let resp = b
            .post_token(
                &[("grant_type", "client_credentials")],
                Some((&client.client_id, &secret)),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let token = resp.json::<serde_json::Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(deleting.await.unwrap(), StatusCode::NO_CONTENT);

        for app in [&a, &b] {
            let checked =
                hallpass::oauth::revocation::check_issued_access_token(&app.state, &token).await;
            assert!(checked.is_err(), "the token is refused: {checked:?}");
        }
        assert_eq!(
            token_status(&b, &client, &secret).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// A caller that hangs up while its deletion waits out the leases does not cut the deletion
/// short: it still drops the client from its owner's list, and a retry is refused only once
/// the leases are over.
#[tokio::test]
async fn a_deletion_whose_caller_hangs_up_still_finishes() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (a, b, client, secret) = leased_on_b(backend).await;

        let hung_up = a
            .as_user(
                reqwest::Method::DELETE,
                format!("/api/clients/{}", client.client_id),
                &client.owner,
            )
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(hung_up.is_err(), "the caller gave up during the wait");
        assert_eq!(
            a.delete_client(&client).await.status(),
            StatusCode::NOT_FOUND,
            "the retry answers once the first deletion's wait is over"
        );
        assert_eq!(
            token_status(&b, &client, &secret).await,
            StatusCode::UNAUTHORIZED
        );
        // The first deletion's remaining step (the owner's list) finishes without its caller.
        let owned = schema::owner_clients(&client.owner.id);
        let emptied = tokio::time::timeout(Duration::from_secs(30), async {
            while !a.state.store.set_members(&owned).await.unwrap().is_empty() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(emptied.is_ok(), "the client left its owner's list");
    }
}
