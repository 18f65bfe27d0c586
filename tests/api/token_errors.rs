//! RFC 6749 §5.2 error shapes at the token endpoint, for every mistake a client can make.

use reqwest::{StatusCode, header};

use crate::helpers::{TestApp, assert_oauth_error, each_store, pkce_pair, spawn_app};

#[tokio::test]
async fn missing_grant_type_is_invalid_request_and_unknown_is_unsupported_grant_type() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let basic = Some((c.client_id.as_str(), c.client_secret.as_deref().unwrap()));
    assert_oauth_error(
        app.post_token(&[("code", "x")], basic).await,
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        app.post_token(&[("grant_type", "password")], basic).await,
        400,
        "unsupported_grant_type",
    )
    .await;
    assert_oauth_error(
        app.post_token(&[("grant_type", "")], basic).await,
        400,
        "unsupported_grant_type",
    )
    .await;
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let resp = app
        .http
        .post(app.url("/oauth2/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("grant_type=authorization_code&code=a&code=b")
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn malformed_non_utf8_json_and_empty_bodies_get_4xx_in_the_rfc_shape() {
    let app = spawn_app().await;
    let form = |body: Vec<u8>, ct: &str| {
        app.http
            .post(app.url("/oauth2/token"))
            .header(header::CONTENT_TYPE, ct.to_string())
            .body(body)
            .send()
    };
    let ct = "application/x-www-form-urlencoded";
    assert_oauth_error(
        form(b"%%%zz&&==".to_vec(), ct).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        form(vec![0xff, 0xfe, b'=', 0x80], ct).await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(form(Vec::new(), ct).await.unwrap(), 400, "invalid_request").await;
    assert_oauth_error(
        form(
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            "application/json",
        )
        .await
        .unwrap(),
        415,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        form(b"grant_type=x".to_vec(), "text/plain").await.unwrap(),
        415,
        "invalid_request",
    )
    .await;
    let no_ct = app
        .http
        .post(app.url("/oauth2/token"))
        .body("grant_type=x")
        .send()
        .await
        .unwrap();
    assert!(no_ct.status().is_client_error());
    assert_oauth_error(no_ct, 415, "invalid_request").await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_whether_sized_or_chunked() {
    let app = spawn_app().await;
    let big = format!("grant_type=authorization_code&code={}", "a".repeat(70_000));
    let sized = app
        .http
        .post(app.url("/oauth2/token"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_oauth_error(sized, 413, "invalid_request").await;

    // Chunked: no Content-Length, so the limit must be enforced while reading.
    let host = app.address.trim_start_matches("http://").to_string();
    let mut raw = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in big.as_bytes().chunks(8192) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = crate::helpers::raw_http(&host, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"error\":\"invalid_request\""), "{answer}");
}

#[tokio::test]
async fn wrong_basic_secret_is_401_invalid_client_with_www_authenticate() {
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let code = app.code_for(&c, &[]).await;
        let resp = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &c.redirect_uri),
                ],
                Some((&c.client_id, "wrong-secret")),
            )
            .await;
        let www = resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert_oauth_error(resp, 401, "invalid_client").await;
        assert!(www.starts_with("Basic realm="), "{www}");
        // The failed attempt did not consume the code.
        assert_eq!(app.redeem(&c, &code).await.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn unknown_client_missing_credentials_and_malformed_authorization_are_invalid_client() {
    let app = spawn_app().await;
    let form = [("grant_type", "client_credentials")];
    assert_oauth_error(
        app.post_token(&form, Some(("nobody", "x"))).await,
        401,
        "invalid_client",
    )
    .await;
    assert_oauth_error(app.post_token(&form, None).await, 401, "invalid_client").await;
    let resp = app
        .http
        .post(app.url("/oauth2/token"))
        .header(header::AUTHORIZATION, "Basic !!!not-base64")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 401, "invalid_client").await;
}

#[tokio::test]
async fn using_two_authentication_methods_is_invalid_request() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let secret = c.client_secret.clone().unwrap();
    let resp = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &c.client_id),
                ("client_secret", &secret),
            ],
            Some((&c.client_id, &secret)),
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_client_must_use_the_method_it_registered() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let code = app.code_for(&c, &[]).await;
    let secret = c.client_secret.clone().unwrap();
    let post = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &c.redirect_uri),
                ("client_id", &c.client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_oauth_error(post, 401, "invalid_client").await;
    let bare = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &c.client_id),
            ],
            None,
        )
        .await;
    assert_oauth_error(bare, 401, "invalid_client").await;
}

#[tokio::test]
async fn a_code_issued_to_another_client_is_invalid_grant() {
    each_store(async |app: TestApp| {
        let victim = app.confidential_client().await;
        let attacker = app.confidential_client().await;
        let code = app.code_for(&victim, &[]).await;
        let resp = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &victim.redirect_uri),
                ],
                Some((
                    &attacker.client_id,
                    attacker.client_secret.as_deref().unwrap(),
                )),
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    })
    .await;
}

#[tokio::test]
async fn redirect_uri_must_match_the_authorization_request() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let basic = Some((c.client_id.as_str(), c.client_secret.as_deref().unwrap()));

    let code = app.code_for(&c, &[]).await;
    let other = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example/other"),
            ],
            basic,
        )
        .await;
    assert_oauth_error(other, 400, "invalid_grant").await;

    let code = app.code_for(&c, &[]).await;
    let missing = app
        .post_token(
            &[("grant_type", "authorization_code"), ("code", &code)],
            basic,
        )
        .await;
    assert_oauth_error(missing, 400, "invalid_request").await;
}

#[tokio::test]
async fn missing_code_and_garbage_code_are_refused() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let basic = Some((c.client_id.as_str(), c.client_secret.as_deref().unwrap()));
    assert_oauth_error(
        app.post_token(&[("grant_type", "authorization_code")], basic)
            .await,
        400,
        "invalid_request",
    )
    .await;
    let long = "x".repeat(5000);
    for code in ["garbage", long.as_str()] {
        let resp = app
            .post_token(
                &[("grant_type", "authorization_code"), ("code", code)],
                basic,
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_grant").await;
    }
}

#[tokio::test]
async fn pkce_verifier_must_match_and_be_present_exactly_when_a_challenge_was_sent() {
    each_store(async |app: TestApp| {
        let c = app.public_client().await;
        let (_, challenge) = pkce_pair();
        let pkce = [
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let redeem = async |code: &str, verifier: Option<&str>| {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", c.redirect_uri.as_str()),
                ("client_id", c.client_id.as_str()),
            ];
            if let Some(v) = verifier {
                form.push(("code_verifier", v));
            }
            app.post_token(&form, None).await
        };

        let code = app.code_for(&c, &pkce).await;
        let (wrong, _) = pkce_pair();
        assert_oauth_error(redeem(&code, Some(&wrong)).await, 400, "invalid_grant").await;

        let code = app.code_for(&c, &pkce).await;
        assert_oauth_error(redeem(&code, None).await, 400, "invalid_grant").await;
    })
    .await;
}

#[tokio::test]
async fn a_verifier_without_a_challenge_is_refused_as_a_downgrade() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let code = app.code_for(&c, &[]).await;
    let (verifier, _) = pkce_pair();
    let resp = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &c.redirect_uri),
                ("code_verifier", &verifier),
            ],
            Some((&c.client_id, c.client_secret.as_deref().unwrap())),
        )
        .await;
    assert_oauth_error(resp, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_code_expires_after_its_lifetime() {
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let code = app.code_for(&c, &[]).await;
        app.clock.advance(61);
        assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;
    })
    .await;
}

#[tokio::test]
async fn a_deleted_client_cannot_redeem_its_codes() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let code = app.code_for(&c, &[]).await;
    assert_eq!(app.delete_client(&c).await.status(), StatusCode::NO_CONTENT);
    assert_oauth_error(app.redeem(&c, &code).await, 401, "invalid_client").await;
}

#[tokio::test]
async fn client_credentials_issues_a_token_for_the_client_itself_within_its_scopes() {
    each_store(async |app: TestApp| {
        let c = app
            .client_with(serde_json::json!({
                "client_name": "Machine",
                "grant_types": ["client_credentials"],
                "scope": "beers:read",
            }))
            .await;
        let basic = Some((c.client_id.as_str(), c.client_secret.as_deref().unwrap()));
        let ok = app
            .post_token(&[("grant_type", "client_credentials")], basic)
            .await;
        assert_eq!(ok.status(), StatusCode::OK);
        let body: serde_json::Value = ok.json().await.unwrap();
        assert_eq!(body["scope"], "beers:read");
        assert!(body.get("refresh_token").is_none());
        let wide = app
            .post_token(
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "beers:write"),
                ],
                basic,
            )
            .await;
        assert_oauth_error(wide, 400, "invalid_scope").await;
        let code_grant = app
            .post_token(
                &[("grant_type", "authorization_code"), ("code", "x")],
                basic,
            )
            .await;
        assert_oauth_error(code_grant, 400, "unauthorized_client").await;
    })
    .await;
}

/// An HTTP/2 body has neither `Content-Length` nor `Transfer-Encoding`; the limit still holds.
#[tokio::test]
async fn a_body_without_any_length_header_is_still_limited() {
    let app = spawn_app().await;
    let client = poem::test::TestClient::new(hallpass::build_app(app.state.clone()));
    let big = format!("grant_type=authorization_code&code={}", "a".repeat(70_000));
    let resp = client
        .post("/oauth2/token")
        .content_type("application/x-www-form-urlencoded")
        .body(poem::Body::from_async_read(std::io::Cursor::new(
            big.into_bytes(),
        )))
        .send()
        .await;
    resp.assert_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
    resp.assert_header("cache-control", "no-store");
}

#[tokio::test]
async fn an_empty_scope_means_the_registered_scopes_not_a_token_for_nothing() {
    let app = spawn_app().await;
    let c = app
        .client_with(serde_json::json!({"client_name": "M", "grant_types": ["client_credentials"], "scope": "beers:read"}))
        .await;
    for scope in ["", " "] {
        let resp = app
            .post_token(
                &[("grant_type", "client_credentials"), ("scope", scope)],
                Some((&c.client_id, c.client_secret.as_deref().unwrap())),
            )
            .await;
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["scope"], "beers:read", "scope {scope:?}");
    }
}
