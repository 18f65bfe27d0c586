//! RFC 7009 revocation and RFC 7662 introspection.

use hallpass::token::{ACCESS_TOKEN_TYP, AccessClaims, sign};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_oauth_error, each_store, spawn_app};

async fn access_token(app: &TestApp) -> (crate::helpers::TestClient, String) {
    let c = app.confidential_client().await;
    let code = app.code_for(&c, &[("scope", "beers:read")]).await;
    let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
    (c, body["access_token"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn an_active_access_token_introspects_with_its_claims() {
    each_store(async |app: TestApp| {
        let (c, token) = access_token(&app).await;
        let i = app.introspect(&c, &token).await;
        assert_eq!(i["active"], true);
        assert_eq!(i["token_type"], "access_token");
        assert_eq!(i["scope"], "beers:read");
        assert_eq!(i["client_id"], c.client_id);
        assert_eq!(i["sub"], c.owner.id);
        assert_eq!(i["username"], c.owner.username);
        assert_eq!(i["iss"], app.address);
        assert!(i["exp"].as_u64().unwrap() > app.state.now());
    })
    .await;
}

#[tokio::test]
async fn an_active_refresh_token_introspects_for_its_own_client_only() {
    let app = spawn_app().await;
    let c = app.refreshing_client().await;
    let rt = app.refresh_token_for(&c, "offline_access").await;
    let i = app.introspect(&c, &rt).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["token_type"], "refresh_token");
    let stranger = app.confidential_client().await;
    assert_eq!(
        app.introspect(&stranger, &rt).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn expired_revoked_tampered_foreign_none_hs256_and_garbage_tokens_are_exactly_inactive() {
    let app = spawn_app().await;
    let (c, token) = access_token(&app).await;
    let key = app.state.signing_key().unwrap();
    let now = app.state.now();
    let claims = |iss: &str| AccessClaims {
        iss: iss.into(),
        sub: c.owner.id.clone(),
        aud: vec![app.address.clone()],
        client_id: c.client_id.clone(),
        scope: "beers:read".into(),
        iat: now,
        exp: now + 600,
        jti: "forged".into(),
        auth_time: Some(now),
    };
    let b64 = |v: &Value| hallpass::crypto::b64(v.to_string().as_bytes());
    let body = b64(&serde_json::to_value(claims(&app.address)).unwrap());

    let foreign = sign(&key, ACCESS_TOKEN_TYP, &claims("https://evil.example")).unwrap();
    let (other_key, _) =
        hallpass::keys::SigningKey::generate(hallpass::config::SigningAlg::ES256, now, now)
            .unwrap();
    let unknown_key = sign(&other_key, ACCESS_TOKEN_TYP, &claims(&app.address)).unwrap();
    let alg_none = format!(
        "{}.{body}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": key.kid}))
    );
    // HS256 "signed" with our public key, the classic algorithm-confusion attack.
    let hs_header = b64(&json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}));
    let public = key.jwk().to_string();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes()),
        format!("{hs_header}.{body}").as_bytes(),
    );
    let hs256 = format!("{hs_header}.{body}.{}", hallpass::crypto::b64(mac.as_ref()));
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let wrong_payload = {
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{body}.{}", parts[0], parts[2])
    };

    for bad in [
        foreign,
        unknown_key,
        alg_none,
        hs256,
        tampered,
        wrong_payload,
        "garbage".into(),
        "a.b.c".into(),
        "".into(),
    ] {
        if bad.is_empty() {
            let resp = app
                .post_client_form("/oauth2/introspect", &c, &[("token", "")])
                .await;
            assert_oauth_error(resp, 400, "invalid_request").await;
            continue;
        }
        assert_eq!(
            app.introspect(&c, &bad).await,
            json!({"active": false}),
            "{bad}"
        );
    }

    let revoke = app
        .post_client_form(
            "/oauth2/revoke",
            &c,
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(revoke.status(), StatusCode::OK);
    assert_eq!(
        app.introspect(&c, &token).await,
        json!({"active": false}),
        "revoked"
    );

    let (c2, token2) = access_token(&app).await;
    app.clock.advance(600 + 31);
    assert_eq!(
        app.introspect(&c2, &token2).await,
        json!({"active": false}),
        "expired"
    );
}

#[tokio::test]
async fn a_revoked_access_token_is_refused_by_the_api() {
    each_store(async |app: TestApp| {
        let (c, token) = access_token(&app).await;
        assert_eq!(app.me_status(&token).await, 200);
        let resp = app
            .post_client_form("/oauth2/revoke", &c, &[("token", &token)])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(app.me_status(&token).await, 401);
    })
    .await;
}

#[tokio::test]
async fn revoking_a_refresh_token_kills_its_family() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let tokens = app.tokens_with_refresh(&c, "offline_access").await;
        let rt = tokens["refresh_token"].as_str().unwrap();
        let resp = app
            .post_client_form(
                "/oauth2/revoke",
                &c,
                &[("token", rt), ("token_type_hint", "refresh_token")],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_oauth_error(app.refresh(&c, rt, None).await, 400, "invalid_grant").await;
        assert_eq!(
            app.me_status(tokens["access_token"].as_str().unwrap())
                .await,
            401
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_tokens_answer_200_and_another_clients_token_is_not_revoked() {
    each_store(async |app: TestApp| {
        let (_, token) = access_token(&app).await;
        let stranger = app.confidential_client().await;
        for t in [token.as_str(), "unknown-token", "a.b.c"] {
            let resp = app
                .post_client_form(
                    "/oauth2/revoke",
                    &stranger,
                    &[("token", t), ("token_type_hint", "bogus_hint")],
                )
                .await;
            assert_eq!(resp.status(), StatusCode::OK, "{t}");
        }
        assert_eq!(app.me_status(&token).await, 200, "still active");
    })
    .await;
}

#[tokio::test]
async fn revocation_and_introspection_require_client_authentication() {
    let app = spawn_app().await;
    let (c, token) = access_token(&app).await;
    for path in ["/oauth2/revoke", "/oauth2/introspect"] {
        let none = app
            .http
            .post(app.url(path))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_oauth_error(none, 401, "invalid_client").await;
        let wrong = app
            .http
            .post(app.url(path))
            .basic_auth(&c.client_id, Some("wrong"))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_oauth_error(wrong, 401, "invalid_client").await;
        let missing = app.post_client_form(path, &c, &[]).await;
        assert_oauth_error(missing, 400, "invalid_request").await;
        let json = app
            .http
            .post(app.url(path))
            .basic_auth(&c.client_id, c.client_secret.as_deref())
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap();
        assert_oauth_error(json, 415, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_public_client_may_revoke_its_tokens_but_not_introspect() {
    let app = spawn_app().await;
    let c = app
        .client_with(json!({
            "client_name": "SPA",
            "redirect_uris": ["http://localhost:5173/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await;
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let code = app
        .code_for(
            &c,
            &[
                ("scope", "offline_access"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let body: Value = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &c.redirect_uri),
                ("client_id", &c.client_id),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let rt = body["refresh_token"].as_str().unwrap();
    let introspect = app
        .http
        .post(app.url("/oauth2/introspect"))
        .form(&[("token", rt), ("client_id", &c.client_id)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(introspect, 401, "invalid_client").await;
    let revoke = app
        .http
        .post(app.url("/oauth2/revoke"))
        .form(&[("token", rt), ("client_id", &c.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), StatusCode::OK);
    let refresh = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &c.client_id),
            ],
            None,
        )
        .await;
    assert_oauth_error(refresh, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_stranger_client_learns_nothing_but_a_client_of_the_same_owner_may_introspect() {
    each_store(async |app: TestApp| {
        let (c, token) = access_token(&app).await;
        let stranger = app.confidential_client().await;
        assert_eq!(
            app.introspect(&stranger, &token).await,
            json!({"active": false})
        );

        let sibling_resp = app
            .post_client(
                &c.owner,
                &json!({"client_name": "My API", "grant_types": ["client_credentials"]}),
            )
            .await;
        let sibling: Value = sibling_resp.json().await.unwrap();
        let sibling = crate::helpers::TestClient {
            client_id: sibling["client_id"].as_str().unwrap().to_string(),
            client_secret: sibling["client_secret"].as_str().map(str::to_string),
            redirect_uri: String::new(),
            owner: c.owner.clone(),
        };
        let i = app.introspect(&sibling, &token).await;
        assert_eq!(i["active"], true);
        assert_eq!(i["client_id"], c.client_id);
    })
    .await;
}
