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
