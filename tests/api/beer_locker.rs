//! The beer locker as a separate resource server: Hallpass and the beer locker each on port
//! 0 (in-process, and once as a real child process of the `beer-locker` binary); users get
//! tokens through the code flow and manage beers that only they can see; bad tokens, missing
//! scopes and bad input are refused with the right 4xx; a key rotation at Hallpass needs no
//! restart of the beer locker.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Stdio},
    sync::Arc,
};

use hallpass::{
    beer_locker::{BeerLockerConfig, BeerLockerServer, MAX_BEERS},
    config::SigningAlg,
    keys::{self, KeySet, SigningKey},
    store::{Store, memory::MemoryStore, redis::RedisStore},
    time::Clock,
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, TestClient, backends, spawn_app, spawn_app_on},
    verify::kid_of,
};

/// A running beer locker and a client for it.
struct Locker {
    /// `http://127.0.0.1:<port>`, also the resource identifier.
    address: String,
    http: reqwest::Client,
}

/// A beer locker in this process trusting `app`, on `backend`, on the app's clock.
async fn spawn_locker(app: &TestApp, backend: &Backend) -> Locker {
    let store: Arc<dyn Store> = match backend {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Redis(url) => {
            let prefix = format!("beer-locker-test:{}:", hallpass::crypto::random_id());
            Arc::new(RedisStore::new(url, &prefix).unwrap())
        }
    };
    let clock: Arc<dyn Clock> = app.clock.clone();
    let server = BeerLockerServer::bind(&BeerLockerConfig::new(&app.address), store, clock)
        .await
        .expect("the beer locker binds");
    let address = format!("http://{}", server.local_addr());
    tokio::spawn(server.run_until_stopped());
    Locker {
        address,
        http: reqwest::Client::new(),
    }
}

/// The `beer-locker` binary as a child process; killed when dropped.
struct LockerProcess {
    child: Child,
    locker: Locker,
}

impl Drop for LockerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `beer-locker` binary on port 0 for `issuer` and reads its port from the
/// `listening on …` line. Uses Redis (under a fresh prefix) when `REDIS_URL` is set.
async fn spawn_locker_process(issuer: &str) -> LockerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_beer-locker"));
    cmd.args(["--bind", "127.0.0.1:0"])
        .env("BEER_LOCKER_ISSUER", issuer)
        .env_remove("BEER_LOCKER_AUDIENCE")
        .env_remove("BEER_LOCKER_PUBLIC_URL")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => {
            cmd.env("REDIS_URL", url).env(
                "BEER_LOCKER_REDIS_PREFIX",
                format!("beer-locker-test:{}:", hallpass::crypto::random_id()),
            );
        }
        None => {
            cmd.env_remove("REDIS_URL");
        }
    }
    let mut child = cmd.spawn().expect("the beer-locker binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let mut err = String::new();
        let _ = child.kill();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("beer-locker printed {line:?}; stderr: {err}");
    };
    let locker = Locker {
        address: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };
    LockerProcess { child, locker }
}

impl Locker {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post_beer(&self, token: &str, beer: &Value) -> reqwest::Response {
        self.send(reqwest::Method::POST, "/api/beers", Some(token), Some(beer))
            .await
    }

    /// Adds a beer and returns it.
    async fn add_beer(&self, token: &str, beer: &Value) -> Value {
        let resp = self.post_beer(token, beer).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// The caller's beers.
    async fn beers(&self, token: &str) -> Vec<Value> {
        let resp = self.get("/api/beers", token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    fn metadata_url(&self) -> String {
        self.url("/.well-known/oauth-protected-resource")
    }
}

/// A token for a new user (the owner of a new client) through the code flow.
async fn user_token(app: &TestApp, scope: &str) -> (String, TestClient) {
    let client = app.confidential_client().await;
    let token = token_for(app, &client, scope).await;
    (token, client)
}

/// Another token for `client`'s owner through the code flow.
async fn token_for(app: &TestApp, client: &TestClient, scope: &str) -> String {
    let code = app.code_for(client, &[("scope", scope)]).await;
    let resp = app.redeem(client, &code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Asserts a 401/403 bearer refusal and returns the `WWW-Authenticate` value.
async fn assert_refused(
    resp: reqwest::Response,
    status: u16,
    code: &str,
    locker: &Locker,
) -> String {
    let got = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{}\"", locker.metadata_url())),
        "{challenge}"
    );
    challenge
}

const ORVAL: &str = r#"{"name": "Orval", "type": "trappist", "quantity": 6}"#;

fn orval() -> Value {
    serde_json::from_str(ORVAL).unwrap()
}

#[tokio::test]
async fn a_user_manages_beers_with_a_token_from_the_code_flow() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let app = spawn_app().await;
        let locker = spawn_locker(&app, &backend).await;
        let (token, _) = user_token(&app, "beers:read beers:write").await;

        let resp = locker.post_beer(&token, &orval()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        let beer: Value = resp.json().await.unwrap();
        let id = beer["id"].as_str().unwrap().to_string();
        assert_eq!(location, locker.url(&format!("/api/beers/{id}")));
        assert_eq!(
            (
                beer["name"].as_str(),
                beer["type"].as_str(),
                beer["quantity"].as_u64()
            ),
            (Some("Orval"), Some("trappist"), Some(6))
        );
        let stout = locker
            .add_beer(
                &token,
                &json!({"name": "Guinness", "type": "stout", "quantity": 2}),
            )
            .await;

        assert_eq!(
            locker.beers(&token).await,
            vec![beer.clone(), stout.clone()]
        );
        let resp = locker.get(&format!("/api/beers/{id}"), &token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.unwrap(), beer);

        let path = format!("/api/beers/{id}");
        let resp = locker
            .send(
                reqwest::Method::PUT,
                &path,
                Some(&token),
                Some(&json!({"name": "Orval", "type": "trappist", "quantity": 5})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let updated: Value = resp.json().await.unwrap();
        assert_eq!(updated["quantity"], 5);
        assert_eq!(updated["id"], beer["id"]);

        let resp = locker
            .send(reqwest::Method::DELETE, &path, Some(&token), None)
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            locker.get(&path, &token).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(locker.beers(&token).await, vec![stout]);
    }
}

#[tokio::test]
async fn a_second_user_can_neither_see_nor_touch_the_first_users_beers() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let app = spawn_app().await;
        let locker = spawn_locker(&app, &backend).await;
        let (alice, _) = user_token(&app, "beers:read beers:write").await;
        let (bob, _) = user_token(&app, "beers:read beers:write").await;
        let beer = locker.add_beer(&alice, &orval()).await;
        let path = format!("/api/beers/{}", beer["id"].as_str().unwrap());

        assert_eq!(locker.beers(&bob).await, Vec::<Value>::new());
        let get = locker.get(&path, &bob).await;
        let put = locker
            .send(
                reqwest::Method::PUT,
                &path,
                Some(&bob),
                Some(&json!({"name": "Mine", "type": "ale", "quantity": 0})),
            )
            .await;
        let delete = locker
            .send(reqwest::Method::DELETE, &path, Some(&bob), None)
            .await;

        for resp in [get, put, delete] {
            assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "someone else's beer looks like no beer"
            );
            assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
        }
        assert_eq!(locker.beers(&alice).await, vec![beer]);
    }
}

#[tokio::test]
async fn the_beer_locker_binary_runs_as_its_own_process_and_trusts_only_the_jwks() {
    let app = spawn_app().await;
    let process = spawn_locker_process(&app.address).await;
    let locker = &process.locker;
    let (token, _) = user_token(&app, "beers:read beers:write").await;

    let beer = locker.add_beer(&token, &orval()).await;
    let listed = locker.beers(&token).await;
    let anonymous = locker
        .send(reqwest::Method::GET, "/api/beers", None, None)
        .await;
    let foreign = {
        let other = spawn_app().await;
        let (theirs, _) = user_token(&other, "beers:read beers:write").await;
        locker.get("/api/beers", &theirs).await
    };
    let metadata: Value = locker
        .http
        .get(locker.metadata_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(listed, vec![beer]);
    let challenge = assert_refused(anonymous, 401, "invalid_token", locker).await;
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}\"", locker.metadata_url())
    );
    let challenge = assert_refused(foreign, 401, "invalid_token", locker).await;
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(metadata["resource"], locker.address);
    assert_eq!(metadata["authorization_servers"], json!([app.address]));
}

#[tokio::test]
async fn a_request_without_a_token_gets_401_pointing_to_the_protected_resource_metadata() {
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;

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
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;
    let (valid, client) = user_token(&app, "beers:read beers:write").await;
    let key = app.state.signing_key().unwrap();
    let now = app.state.now();
    let claims = |patch: Value| {
        let mut c = json!({
            "iss": app.address, "sub": client.owner.id, "aud": app.address, "client_id": client.client_id,
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
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;
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

#[tokio::test]
async fn bad_beer_input_gets_a_4xx_and_never_a_5xx() {
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;
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
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;
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
        let app = spawn_app().await;
        let locker = Arc::new(spawn_locker(&app, &backend).await);
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
    let app = spawn_app().await;
    let locker = spawn_locker(&app, &Backend::Memory).await;

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
    for (path, method) in [
        ("/api/beers", "get"),
        ("/api/beers", "post"),
        ("/api/beers/{beer_id}", "get"),
        ("/api/beers/{beer_id}", "put"),
        ("/api/beers/{beer_id}", "delete"),
    ] {
        let op = &spec["paths"][path][method];
        assert_eq!(
            op["security"],
            json!([{"bearerAccessToken": []}]),
            "{method} {path}"
        );
    }
    assert!(spec["paths"]["/.well-known/oauth-protected-resource"]["get"]["security"].is_null());
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn after_a_scheduled_key_rotation_at_hallpass_old_and_new_tokens_keep_working() {
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    let app = spawn_app_on(Backend::Memory, |c| c.keys_dir = dir.clone()).await;
    let (ttl, max_age) = (
        app.state.config.access_token_ttl,
        app.state.config.jwks_max_age,
    );
    KeySet::load_or_generate(&dir, SigningAlg::ES256, app.state.now() - 100).unwrap();
    app.state.reload_keys().unwrap();
    let locker = spawn_locker(&app, &Backend::Memory).await;
    let (token_a, client) = user_token(&app, "beers:read beers:write").await;
    let beer = locker.add_beer(&token_a, &orval()).await;

    // B is published now and signs after one max-age: the beer locker's cache gets it in time.
    let b = keys::rotate(&dir, SigningAlg::ES256, app.state.now(), max_age + 70, ttl)
        .unwrap()
        .kid;
    app.state.reload_keys().unwrap();
    app.clock.advance(max_age + 70);
    let token_b = token_for(&app, &client, "beers:read beers:write").await;

    assert_eq!(kid_of(&token_b), b);
    assert_ne!(kid_of(&token_a), b);
    assert_eq!(
        locker.beers(&token_b).await,
        vec![beer.clone()],
        "new key accepted without a restart"
    );
    assert_eq!(
        locker.beers(&token_a).await,
        vec![beer],
        "the retiring key still verifies"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_key_hallpass_starts_signing_with_at_once_is_fetched_on_its_first_token() {
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    let app = spawn_app_on(Backend::Memory, |c| c.keys_dir = dir.clone()).await;
    let now = app.state.now();
    let (set, _) = KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 100).unwrap();
    let a = set.active(now).unwrap().kid.clone();
    app.state.reload_keys().unwrap();
    let locker = spawn_locker(&app, &Backend::Memory).await;
    let (token_a, client) = user_token(&app, "beers:read beers:write").await;
    let beer = locker.add_beer(&token_a, &orval()).await;

    // Emergency rotation: C signs at once and A is retired, long before the cache expires.
    let (c, der) = SigningKey::generate(SigningAlg::ES256, now - 5, now - 5).unwrap();
    c.write(&dir, &der).unwrap();
    keys::retire(&dir, &a, now, false).unwrap();
    app.state.reload_keys().unwrap();
    app.clock
        .advance(hallpass::verify::DEFAULT_MIN_REFRESH_INTERVAL.as_secs());
    let token_c = token_for(&app, &client, "beers:read beers:write").await;

    assert_eq!(kid_of(&token_c), c.kid);
    assert_eq!(
        locker.beers(&token_c).await,
        vec![beer],
        "the unknown kid made the beer locker refetch"
    );
    let resp = locker.get("/api/beers", &token_a).await;
    let challenge = assert_refused(resp, 401, "invalid_token", &locker).await;
    assert!(
        challenge.contains("does not publish"),
        "A left the JWKS: {challenge}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
