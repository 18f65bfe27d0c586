//! What the beer locker refuses: no token (401 pointing at the RFC 9728 metadata), bad
//! tokens (401 `invalid_token`), missing scopes (403 `insufficient_scope`).

use super::*;

#[tokio::test]
async fn a_request_without_a_token_gets_401_pointing_to_the_protected_resource_metadata() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;

    let resp = locker
        .send(reqwest::Method::POST, "/api/beers", None, Some(&orval()))
        .await;
    let basic = locker
        .http
        .get(locker.url("/api/beers"))
        .basic_auth("alice", Some("pw"))
        .send()
        .await
        .unwrap();
    let metadata = locker.http.get(locker.metadata_url()).send().await.unwrap();

    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    let challenge = assert_refused(resp, 401, "invalid_token", &locker).await;
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}\"", locker.metadata_url()),
        "RFC 6750 §3.1: no error code without credentials"
    );
    assert_refused(basic, 401, "invalid_token", &locker).await;
    assert_eq!(metadata.status(), StatusCode::OK);
    assert!(
        metadata.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    let doc: Value = metadata.json().await.unwrap();
    assert_eq!(
        doc,
        json!({
            "resource": locker.address,
            "authorization_servers": [app.address],
            "scopes_supported": ["beers:read", "beers:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Beer Locker",
            "resource_documentation": locker.url("/docs"),
        })
    );
}

#[tokio::test]
async fn expired_tampered_foreign_issuer_and_wrong_audience_tokens_get_401_invalid_token() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;
    let (valid, client) = user_token(&app, "beers:read beers:write").await;
    let key = app.state.signing_key().unwrap();
    let now = app.state.now();
    let claims = |patch: Value| {
        let mut c = json!({
            "iss": app.address, "sub": client.owner.id, "aud": locker.address, "client_id": client.client_id,
            "scope": "beers:read beers:write", "iat": now, "exp": now + 600, "jti": hallpass::crypto::random_id(),
        });
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let expired = hallpass::token::sign(
        &key,
        "at+jwt",
        &claims(json!({"iat": now - 720, "exp": now - 120})),
    )
    .unwrap();
    let wrong_audience = hallpass::token::sign(
        &key,
        "at+jwt",
        &claims(json!({"aud": "https://other-api.example"})),
    )
    .unwrap();
    let foreign_iss = hallpass::token::sign(
        &key,
        "at+jwt",
        &claims(json!({"iss": "https://evil.example"})),
    )
    .unwrap();
    let (foreign_key, _) = SigningKey::generate(SigningAlg::ES256, now, now).unwrap();
    let foreign_key_token =
        hallpass::token::sign(&foreign_key, "at+jwt", &claims(json!({}))).unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    let payload =
        serde_json::to_vec(&claims(json!({"scope": "beers:read beers:write admin"}))).unwrap();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        hallpass::crypto::b64(&payload),
        parts[2]
    );
    let id_token_typed = hallpass::token::sign(&key, "JWT", &claims(json!({}))).unwrap();

    let cases = [
        ("expired", expired, "expired"),
        ("wrong audience", wrong_audience, "another audience"),
        ("foreign issuer", foreign_iss, "another issuer"),
        (
            "foreign key",
            foreign_key_token,
            "key the issuer does not publish",
        ),
        ("tampered", tampered, "signature"),
        ("not an access token", id_token_typed, "not an access token"),
        ("garbage", "not-a-jwt".to_string(), "malformed"),
    ];
    for (what, token, says) in cases {
        let resp = locker.get("/api/beers", &token).await;
        let challenge = assert_refused(resp, 401, "invalid_token", &locker).await;
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(challenge.contains(says), "{what}: {challenge}");
    }
    assert_eq!(
        locker.get("/api/beers", &valid).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_without_the_needed_scope_gets_403_insufficient_scope() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;
    let (reader, _) = user_token(&app, "beers:read").await;
    let (writer, _) = user_token(&app, "beers:write").await;

    let write_with_reader = locker.post_beer(&reader, &json!({"bad": "body"})).await;
    let read_with_writer = locker.get("/api/beers", &writer).await;

    let challenge = assert_refused(write_with_reader, 403, "insufficient_scope", &locker).await;
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"beers:write\""),
        "scope is checked before the body: {challenge}"
    );
    let challenge = assert_refused(read_with_writer, 403, "insufficient_scope", &locker).await;
    assert!(challenge.contains("scope=\"beers:read\""), "{challenge}");
    assert_eq!(
        locker.get("/api/beers", &reader).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        locker.post_beer(&writer, &orval()).await.status(),
        StatusCode::CREATED
    );
}

/// RFC 8707: each token is for one audience, so neither server takes the other's tokens.
#[tokio::test]
async fn beer_locker_tokens_are_refused_by_hallpass_and_hallpass_tokens_by_the_beer_locker() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;
    let (beers, client) = user_token(&app, "beers:read").await;
    let hallpass = token_for(&app, &client, "openid profile").await;
    let code = app
        .code_for(
            &client,
            &[("scope", "beers:read"), ("resource", &locker.address)],
        )
        .await;
    let explicit: Value = app.redeem(&client, &code).await.json().await.unwrap();
    let explicit = explicit["access_token"].as_str().unwrap();
    let docs_js = locker
        .http
        .get(locker.url("/docs/docs.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert_eq!(app.me_status(&beers).await, 401);
    assert_eq!(app.me_status(explicit).await, 401);
    assert_eq!(app.me_status(&hallpass).await, 200);
    assert_eq!(
        locker.get("/api/beers", explicit).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        locker.get("/api/beers", &beers).await.status(),
        StatusCode::OK
    );
    let resp = locker.get("/api/beers", &hallpass).await;
    let challenge = assert_refused(resp, 401, "invalid_token", &locker).await;
    assert!(challenge.contains("another audience"), "{challenge}");
    // Swagger UI on the beer locker asks Hallpass for tokens for this very resource.
    assert!(
        docs_js.contains(&format!("\"resource\":\"{}\"", locker.address)),
        "{docs_js}"
    );
}
