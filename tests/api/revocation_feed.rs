//! The revocation feed over HTTP (`GET /oauth2/revocations`): every revocation path appears
//! in it, it answers 304 to its own strong `ETag`, its entries leave once the tokens they name
//! have expired, and the metadata advertises it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hallpass::crypto::sha256_b64;
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::helpers::{TestApp, TestClient, each_store};

/// The feed document.
pub async fn feed(app: &TestApp) -> Value {
    let resp = app
        .http
        .get(app.url("/oauth2/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The claims of a JWT, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn jti_of(token: &str) -> String {
    claims_of(token)["jti"].as_str().unwrap().to_string()
}

fn lists_jti(feed: &Value, jti: &str) -> bool {
    feed["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["jti"] == jti)
}

/// The cutoff of the rule naming exactly `sub` and `client_id` (either may be absent).
fn rule(feed: &Value, sub: Option<&str>, client_id: Option<&str>) -> Option<u64> {
    let d = |s: Option<&str>| s.map(|s| Value::String(sha256_b64(s.as_bytes())));
    feed["not_before"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r.get("sub_sha256").cloned() == d(sub)
                && r.get("client_id_sha256").cloned() == d(client_id)
        })
        .map(|r| r["cutoff"].as_u64().unwrap())
}

async fn code_flow(app: &TestApp, client: &TestClient, scope: &str) -> Value {
    let code = app.code_for(client, &[("scope", scope)]).await;
    let resp = app.redeem(client, &code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn the_metadata_advertises_the_feed_and_an_empty_feed_names_the_issuer() {
    let app = crate::helpers::spawn_app().await;
    let meta: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["hallpass_revocation_feed_endpoint"],
        app.url("/oauth2/revocations")
    );
    let empty = feed(&app).await;
    assert_eq!(empty["issuer"], app.address);
    assert_eq!(empty["revoked"], serde_json::json!([]));
    assert_eq!(empty["not_before"], serde_json::json!([]));
}

#[tokio::test]
async fn rfc_7009_revocation_of_an_access_or_refresh_token_lists_their_jtis() {
    each_store(async |app: TestApp| {
        let client = app.refreshing_client().await;
        let access = code_flow(&app, &client, "profile").await;
        let access = access["access_token"].as_str().unwrap();
        let with_refresh = code_flow(&app, &client, "profile offline_access").await;
        let bought = with_refresh["access_token"].as_str().unwrap();
        let refresh = with_refresh["refresh_token"].as_str().unwrap();

        for token in [access, refresh] {
            let resp = app
                .post_client_form("/oauth2/revoke", &client, &[("token", token)])
                .await;
            assert_eq!(resp.status(), StatusCode::OK);
        }

        let feed = feed(&app).await;
        assert!(lists_jti(&feed, &jti_of(access)), "{feed}");
        assert!(
            lists_jti(&feed, &jti_of(bought)),
            "a revoked refresh family lists the access tokens it issued: {feed}"
        );
        let exp = claims_of(access)["exp"].as_u64().unwrap();
        let entry = feed["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["jti"] == jti_of(access))
            .unwrap();
        assert_eq!(
            entry["exp"],
            exp + 30,
            "listed until it expires, plus the leeway"
        );
    })
    .await;
}

#[tokio::test]
async fn a_replayed_code_and_a_reused_refresh_token_list_what_they_bought() {
    each_store(async |app: TestApp| {
        let client = app.refreshing_client().await;
        let code = app
            .code_for(&client, &[("scope", "profile offline_access")])
            .await;
        let first: Value = app.redeem(&client, &code).await.json().await.unwrap();
        assert_eq!(
            app.redeem(&client, &code).await.status(),
            StatusCode::BAD_REQUEST
        );
        let feed_now = feed(&app).await;
        assert!(
            lists_jti(&feed_now, &jti_of(first["access_token"].as_str().unwrap())),
            "{feed_now}"
        );

        let tokens = code_flow(&app, &client, "profile offline_access").await;
        let old = tokens["refresh_token"].as_str().unwrap();
        let rotated: Value = app.refresh(&client, old, None).await.json().await.unwrap();
        app.clock.advance(app.state.config.refresh_grace + 1); // past the grace window
        let reused = app.refresh(&client, old, None).await;
        assert_eq!(reused.status(), StatusCode::BAD_REQUEST);
        let feed_now = feed(&app).await;
        for token in [&tokens["access_token"], &rotated["access_token"]] {
            assert!(
                lists_jti(&feed_now, &jti_of(token.as_str().unwrap())),
                "{feed_now}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn consent_withdrawal_client_deletion_and_sign_out_everywhere_publish_rules() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let _ = code_flow(&app, &client, "profile").await;
        let user = &client.owner;
        let now = app.state.now();

        let withdraw = app
            .as_user(
                Method::DELETE,
                format!("/api/consents/{}", client.client_id),
                user,
            )
            .send()
            .await
            .unwrap();
        assert!(withdraw.status().is_success(), "{}", withdraw.status());
        let signed_out = app
            .as_user(Method::POST, "/api/users/me/sessions/revoke", user)
            .send()
            .await
            .unwrap();
        assert_eq!(signed_out.status(), StatusCode::NO_CONTENT);
        let deleted = app
            .as_user(
                Method::DELETE,
                format!("/api/clients/{}", client.client_id),
                user,
            )
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success(), "{}", deleted.status());

        let feed = feed(&app).await;
        assert_eq!(
            rule(&feed, Some(&user.id), Some(&client.client_id)),
            Some(now),
            "consent withdrawn: {feed}"
        );
        assert_eq!(
            rule(&feed, Some(&user.id), None),
            Some(now),
            "sign out everywhere"
        );
        assert_eq!(
            rule(&feed, None, Some(&client.client_id)),
            Some(now),
            "client deleted"
        );
        assert!(
            !feed.to_string().contains(&user.id),
            "users appear only as digests"
        );
    })
    .await;
}

#[tokio::test]
async fn the_feed_answers_304_to_its_strong_etag_until_it_changes() {
    each_store(async |app: TestApp| {
        let get = |etag: Option<String>| {
            let mut req = app.http.get(app.url("/oauth2/revocations"));
            if let Some(e) = etag {
                req = req.header(header::IF_NONE_MATCH, e);
            }
            req.send()
        };
        let first = get(None).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
        assert!(
            first.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("max-age="),
        );

        let same = get(Some(etag.clone())).await.unwrap();
        assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(same.headers()[header::ETAG], etag.as_str());

        let client = app.confidential_client().await;
        let token = code_flow(&app, &client, "profile").await;
        let _ = app
            .post_client_form(
                "/oauth2/revoke",
                &client,
                &[("token", token["access_token"].as_str().unwrap())],
            )
            .await;
        let changed = get(Some(etag.clone())).await.unwrap();
        assert_eq!(changed.status(), StatusCode::OK);
        assert_ne!(changed.headers()[header::ETAG], etag.as_str());
    })
    .await;
}

#[tokio::test]
async fn entries_leave_the_feed_once_the_tokens_they_name_have_expired() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let token = code_flow(&app, &client, "profile").await;
        let token = token["access_token"].as_str().unwrap();
        let _ = app
            .post_client_form("/oauth2/revoke", &client, &[("token", token)])
            .await;
        let _ = app
            .as_user(
                Method::DELETE,
                format!("/api/consents/{}", client.client_id),
                &client.owner,
            )
            .send()
            .await
            .unwrap();
        let ttl = app.state.config.access_token_ttl;

        app.clock.advance(ttl + 29);
        let still = feed(&app).await;
        assert!(lists_jti(&still, &jti_of(token)), "{still}");
        assert_eq!(still["not_before"].as_array().unwrap().len(), 1);

        app.clock.advance(2);
        let gone = feed(&app).await;
        assert_eq!(gone["revoked"], serde_json::json!([]), "{gone}");
        assert_eq!(gone["not_before"], serde_json::json!([]), "{gone}");
    })
    .await;
}

/// The feed is public: within `CACHE_FOR` it is served from the instance's copy, so a flood
/// of requests does not read the store each time; a revocation made here clears the copy.
#[tokio::test]
async fn the_feed_is_served_from_a_short_lived_copy_that_a_local_revocation_clears() {
    let app = crate::helpers::spawn_app().await;
    let started = std::time::Instant::now();
    let before = feed(&app).await;
    // Written behind the feed's back (as another instance would): not in the copy yet.
    let until = app.state.now() + 600;
    app.state
        .store
        .expiring_add(
            hallpass::store::schema::REVOCATIONS,
            "j from-elsewhere",
            until,
            app.state.now(),
        )
        .await
        .unwrap();
    let cached = feed(&app).await;
    if started.elapsed() < hallpass::oauth::revocation_feed::CACHE_FOR {
        assert_eq!(cached, before, "served from the copy");
        assert!(!lists_jti(&cached, "from-elsewhere"));
    }

    hallpass::oauth::revocation_feed::revoke_jti(&app.state, "from-here", until, "a-client")
        .await
        .unwrap();
    let fresh = feed(&app).await;

    assert!(
        lists_jti(&fresh, "from-here"),
        "a local revocation clears the copy"
    );
    assert!(lists_jti(&fresh, "from-elsewhere"));
}

/// One client cannot grow the feed without bound: past `MAX_JTIS_PER_CLIENT` revoked `jti`s
/// of its tokens, a revocation becomes one rule refusing every token of the client issued
/// until then (fail closed), and other clients' `jti`s still enter as `jti`s.
#[tokio::test]
async fn past_its_share_a_clients_revocations_become_one_client_rule() {
    use hallpass::oauth::revocation_feed::{MAX_JTIS_PER_CLIENT, revoke_jti};
    let app = crate::helpers::spawn_app().await;
    let until = app.state.now() + 600;
    for i in 0..MAX_JTIS_PER_CLIENT {
        revoke_jti(&app.state, &format!("busy-{i}"), until, "busy")
            .await
            .unwrap();
    }
    revoke_jti(&app.state, "busy-one-too-many", until, "busy")
        .await
        .unwrap();
    revoke_jti(&app.state, "quiet-1", until, "quiet")
        .await
        .unwrap();

    let f = feed(&app).await;
    assert_eq!(
        f["revoked"].as_array().unwrap().len() as i64,
        MAX_JTIS_PER_CLIENT + 1,
        "the busy client's share and the quiet client's one"
    );
    assert!(!lists_jti(&f, "busy-one-too-many"));
    assert!(lists_jti(&f, "quiet-1"));
    assert_eq!(rule(&f, None, Some("busy")), Some(app.state.now()));
    assert_eq!(rule(&f, None, Some("quiet")), None);
}
