//! A token revoked at Hallpass is refused at the beer locker within its poll interval plus a
//! second: the locker polls every 200 ms here, and the test waits on the refusal, bounded.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::{app_for_locker, user_token};
use crate::helpers::Backend;

const POLL: Duration = Duration::from_millis(200);

#[tokio::test]
async fn a_token_revoked_at_hallpass_is_refused_at_the_beer_locker_within_the_poll_interval_plus_a_second()
 {
    let (app, slot) = app_for_locker(|_| {}).await;
    let locker = slot
        .start_with(&app, &Backend::Memory, |c| c.revocation_poll = POLL)
        .await;
    let locker = format!("{}/api/beers", locker.address);
    let (token, client) = user_token(&app, "beers:read").await;
    let (other, _) = user_token(&app, "beers:read").await;
    let http = reqwest::Client::new();
    let get = |t: &str| http.get(&locker).bearer_auth(t).send();
    assert_eq!(get(&token).await.unwrap().status(), StatusCode::OK);

    let revoked = app
        .post_client_form("/oauth2/revoke", &client, &[("token", &token)])
        .await;
    assert_eq!(revoked.status(), StatusCode::OK);
    let started = Instant::now();
    let refused = loop {
        let resp = get(&token).await.unwrap();
        if resp.status() != StatusCode::OK {
            break resp;
        }
        assert!(
            started.elapsed() < POLL + Duration::from_secs(1),
            "still accepted {:?} after the revocation",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let delay = started.elapsed();

    eprintln!("refused at the beer locker {delay:?} after the revocation");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "the token has been revoked");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(
        get(&other).await.unwrap().status(),
        StatusCode::OK,
        "other tokens still work"
    );
}
