//! Input and limits: bad beers get a 4xx and never a 5xx, lockers are bounded, concurrent
//! additions lose nothing; and the beer locker's own OpenAPI spec and Swagger UI.

use super::*;

#[tokio::test]
async fn bad_beer_input_gets_a_4xx_and_never_a_5xx() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;
    let (token, _) = user_token(&app, "beers:read beers:write").await;
    let beer = locker.add_beer(&token, &orval()).await;
    let beer_path = format!("/api/beers/{}", beer["id"].as_str().unwrap());
    let json_ct = "application/json";
    let long = "x".repeat(101);
    let long_id = format!("/api/beers/{}", "a".repeat(500));
    let huge = format!(
        r#"{{"name": "{}", "type": "ale", "quantity": 1}}"#,
        "x".repeat(20_000)
    );
    let cases: Vec<(&str, &str, &str, String, &str, u16)> = vec![
        (
            "POST",
            "/api/beers",
            json_ct,
            "{}".into(),
            "missing fields",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "", "type": "ale", "quantity": 1}"#.into(),
            "empty name",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "   ", "type": "ale", "quantity": 1}"#.into(),
            "blank name",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            format!(r#"{{"name": "{long}", "type": "ale", "quantity": 1}}"#),
            "long name",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a\u0007b", "type": "ale", "quantity": 1}"#.into(),
            "control character",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "Orval", "type": false, "quantity": 6}"#.into(),
            "a boolean where a string belongs",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": 12, "type": "ale", "quantity": 6}"#.into(),
            "a number where a string belongs",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": -1}"#.into(),
            "negative quantity",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": 10001}"#.into(),
            "quantity too big",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": 99999999999999999999}"#.into(),
            "quantity overflow",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": 1.5}"#.into(),
            "fractional quantity",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": "6"}"#.into(),
            "quantity as text",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            r#"{"name": "a", "type": "ale", "quantity": 1, "owner": "x"}"#.into(),
            "unknown field",
            400,
        ),
        (
            "POST",
            "/api/beers",
            json_ct,
            "not json".into(),
            "not JSON",
            400,
        ),
        ("POST", "/api/beers", json_ct, "[]".into(), "an array", 400),
        ("POST", "/api/beers", json_ct, "".into(), "empty body", 400),
        (
            "POST",
            "/api/beers",
            "text/plain",
            ORVAL.into(),
            "wrong content type",
            415,
        ),
        ("POST", "/api/beers", json_ct, huge, "oversized body", 413),
        (
            "PUT",
            &beer_path,
            json_ct,
            r#"{"quantity": 3}"#.into(),
            "partial replacement",
            400,
        ),
        (
            "PUT",
            "/api/beers/no-such-beer",
            json_ct,
            ORVAL.into(),
            "unknown beer",
            404,
        ),
        (
            "GET",
            "/api/beers/..%2F..%2Fetc",
            json_ct,
            "".into(),
            "path tricks",
            404,
        ),
        ("GET", &long_id, json_ct, "".into(), "long id", 404),
        (
            "DELETE",
            "/api/beers/%00",
            json_ct,
            "".into(),
            "NUL id",
            404,
        ),
        (
            "GET",
            "/api/nothing-here",
            json_ct,
            "".into(),
            "unknown route",
            404,
        ),
        (
            "PATCH",
            "/api/beers",
            json_ct,
            ORVAL.into(),
            "unsupported method",
            405,
        ),
    ];

    for (method, path, content_type, body, what, status) in cases {
        let resp = locker
            .http
            .request(method.parse().unwrap(), locker.url(path))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let error: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: the error body is JSON: {e}"));
        assert_eq!(got, status, "{what}: {error}");
        assert!(
            error["error"].is_string() && error["error_description"].is_string(),
            "{what}: {error}"
        );
    }
    assert_eq!(locker.beers(&token).await, vec![beer], "nothing changed");
}

#[tokio::test]
async fn a_locker_holds_a_bounded_number_of_beers() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;
    let (token, _) = user_token(&app, "beers:read beers:write").await;
    for _ in 0..MAX_BEERS {
        locker.add_beer(&token, &orval()).await;
    }

    let resp = locker.post_beer(&token, &orval()).await;

    assert_eq!(resp.status(), StatusCode::CONFLICT);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "conflict");
    assert_eq!(locker.beers(&token).await.len(), MAX_BEERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_additions_to_one_locker_lose_no_beer() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (app, locker) = app_and_locker(&backend).await;
        let locker = Arc::new(locker);
        let (token, _) = user_token(&app, "beers:read beers:write").await;

        let tasks: Vec<_> = (0..25)
            .map(|i| {
                let (locker, token) = (locker.clone(), token.clone());
                tokio::spawn(async move {
                    locker
                        .add_beer(
                            &token,
                            &json!({"name": format!("beer {i}"), "type": "ale", "quantity": i}),
                        )
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }

        assert_eq!(locker.beers(&token).await.len(), 25);
    }
}

#[tokio::test]
async fn the_beer_locker_serves_its_own_openapi_spec_and_swagger_ui() {
    let (app, locker) = app_and_locker(&Backend::Memory).await;

    let spec: Value = locker
        .http
        .get(locker.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let docs = locker.http.get(locker.url("/docs")).send().await.unwrap();

    assert_eq!(spec["info"]["title"], "Beer Locker");
    assert_eq!(spec["servers"][0]["url"], locker.address);
    assert_eq!(
        spec["components"]["securitySchemes"]["bearerAccessToken"],
        json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
               "description": "An RFC 9068 JWT access token from the authorization server, verified offline against its JWKS."})
    );
    let flow = &spec["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"];
    assert_eq!(flow["authorizationUrl"], app.url("/oauth2/authorize"));
    assert_eq!(flow["tokenUrl"], app.url("/oauth2/token"));
    assert!(flow["scopes"]["beers:read"].is_string() && flow["scopes"]["beers:write"].is_string());
    for (path, method, scope) in [
        ("/api/beers", "get", "beers:read"),
        ("/api/beers", "post", "beers:write"),
        ("/api/beers/{beer_id}", "get", "beers:read"),
        ("/api/beers/{beer_id}", "put", "beers:write"),
        ("/api/beers/{beer_id}", "delete", "beers:write"),
    ] {
        let op = &spec["paths"][path][method];
        assert_eq!(
            op["security"],
            json!([{"bearerAccessToken": []}, {"oauth2": [scope]}]),
            "{method} {path}"
        );
    }
    assert!(spec["paths"]["/.well-known/oauth-protected-resource"]["get"]["security"].is_null());
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}
