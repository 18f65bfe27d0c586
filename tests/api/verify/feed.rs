//! `hallpass::verify` and the revocation feed of a real Hallpass: listed `jti`s and tokens
//! under a "not before" rule are refused, others accepted, and an unreachable feed leaves
//! the verifier on its last copy, which its status reports.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use hallpass::{time::Clock, verify::VerifyError};
use poem::{
    Request, Response, Route, Server,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
};
use reqwest::Method;

use super::{hallpass_token, hallpass_verifier};
use crate::helpers::{TestApp, spawn_app};

async fn revoke(app: &TestApp, client: &crate::helpers::TestClient, token: &str) {
    let resp = app
        .post_client_form("/oauth2/revoke", client, &[("token", token)])
        .await;
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn a_verifier_refuses_revoked_jtis_and_tokens_under_a_rule_and_accepts_the_others() {
    let app = spawn_app().await;
    let verifier = hallpass_verifier(&app);
    let (revoked, a) = hallpass_token(&app, "profile").await;
    let (withdrawn, b) = hallpass_token(&app, "profile").await;
    let (fine, _) = hallpass_token(&app, "profile").await;
    verifier.verify(&revoked).await.unwrap();

    revoke(&app, &a, &revoked).await;
    let withdraw = app
        .as_user(
            Method::DELETE,
            format!("/api/consents/{}", b.client_id),
            &b.owner,
        )
        .send()
        .await
        .unwrap();
    assert!(withdraw.status().is_success());
    let status = verifier.poll_revocations().await.unwrap();

    assert!(status.is_current(), "{status:?}");
    assert_eq!((status.revoked_tokens, status.rules), (1, 1), "{status:?}");
    assert_eq!(verifier.verify(&revoked).await, Err(VerifyError::Revoked));
    assert_eq!(verifier.verify(&withdrawn).await, Err(VerifyError::Revoked));
    assert!(verifier.verify(&fine).await.is_ok());
    app.clock.advance(1);
    let code = app.code_for(&b, &[("scope", "profile")]).await;
    let body: serde_json::Value = app.redeem(&b, &code).await.json().await.unwrap();
    let later = body["access_token"].as_str().unwrap();
    assert!(
        verifier.verify(later).await.is_ok(),
        "a token issued after the withdrawal is not covered"
    );
}

/// A proxy in front of the feed that the test can make fail.
async fn failing_proxy(target: String, failing: Arc<AtomicBool>) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let http = reqwest::Client::new();
    let endpoint = poem::endpoint::make(move |req: Request| {
        let (target, failing, http) = (target.clone(), failing.clone(), http.clone());
        async move {
            if failing.load(Ordering::SeqCst) {
                return Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .finish();
            }
            let mut upstream = http.get(&target);
            if let Some(v) = req.headers().get("if-none-match") {
                upstream = upstream.header("if-none-match", v.to_str().unwrap());
            }
            let resp = upstream.send().await.unwrap();
            let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
            let etag = resp
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_string());
            let body = resp.bytes().await.unwrap();
            let mut out = Response::builder().status(status);
            if let Some(e) = etag {
                out = out.header("etag", e);
            }
            out.body(body.to_vec())
        }
    });
    tokio::spawn(Server::new_with_acceptor(acceptor).run(Route::new().at("/feed", endpoint)));
    format!("http://127.0.0.1:{port}/feed")
}

#[tokio::test]
async fn an_unreachable_feed_keeps_the_last_copy_and_the_status_says_so() {
    let app = spawn_app().await;
    let failing = Arc::new(AtomicBool::new(false));
    let feed = failing_proxy(app.url("/oauth2/revocations"), failing.clone()).await;
    let clock: Arc<dyn Clock> = app.clock.clone();
    let verifier = hallpass::verify::Verifier::builder(&app.address, &app.address)
        .clock(clock)
        .revocation_feed(&feed)
        .build()
        .unwrap();
    let (revoked, client) = hallpass_token(&app, "profile").await;
    let (fine, _) = hallpass_token(&app, "profile").await;
    revoke(&app, &client, &revoked).await;
    assert!(verifier.poll_revocations().await.unwrap().is_current());
    let unchanged = verifier.poll_revocations().await.unwrap();
    assert!(
        unchanged.is_current(),
        "a 304 keeps the copy: {unchanged:?}"
    );
    assert_eq!(unchanged.revoked_tokens, 1);

    failing.store(true, Ordering::SeqCst);
    let status = verifier.poll_revocations().await.unwrap();

    assert!(!status.is_current(), "{status:?}");
    assert_eq!(status.consecutive_failures, 1);
    assert!(status.last_success.is_some() && status.last_error.is_some());
    assert_eq!(status.url.as_deref(), Some(feed.as_str()));
    assert_eq!(verifier.verify(&revoked).await, Err(VerifyError::Revoked));
    assert!(verifier.verify(&fine).await.is_ok());

    failing.store(false, Ordering::SeqCst);
    assert!(verifier.poll_revocations().await.unwrap().is_current());
}

#[tokio::test]
async fn a_verifier_of_an_issuer_without_a_feed_says_so_and_verifies_as_before() {
    let (server, key, clock, verifier) = super::setup().await;
    let token = super::mint(&key, &server.claims(clock.now()));
    assert!(verifier.verify(&token).await.is_ok());
    let status = verifier.revocation_status().unwrap();
    assert!(status.not_advertised, "{status:?}");
}
