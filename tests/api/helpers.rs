//! `spawn_app()` and the request helpers, personas and assertions every test uses.

#![allow(dead_code)]

use std::{future::Future, sync::Arc};

pub use crate::backends::{Backend, Cleanup, backends, cluster_backend};
use hallpass::{
    config::Config, state::AppState, store::Store, testing::TestServer, time::MockClock,
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

/// Runs `test` against a fresh app on every backend, naming the backend if it fails.
pub async fn each_store<F, Fut>(test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        test(spawn_app_on(backend, |_| {}).await).await;
    }
}

/// A Hallpass server reached over HTTP alone: its address and a client. Every request helper
/// and persona lives here, so a test drives an in-process [`TestApp`] (which derefs to it) and
/// a separate `hallpass` process (`tests/api/processes.rs`) the same way.
#[derive(Clone, Debug)]
pub struct Remote {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client that never follows redirects and keeps no cookies.
    pub http: reqwest::Client,
}

impl Remote {
    /// The server at `address`, with a client that never follows redirects.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }
}

/// A running server (the shared [`TestServer`], built like `main` builds it) and a client
/// ([`Remote`], whose `address` is also the issuer unless the test chose another).
pub struct TestApp {
    /// The address and the client, with the request helpers.
    pub remote: Remote,
    /// The server's state (store, keys, config).
    pub state: AppState,
    /// The server's clock; tests move it forward instead of sleeping.
    pub clock: Arc<MockClock>,
    /// Stops the server and removes its keys directory on drop.
    _server: TestServer,
    /// Puts a TTL on the test's Redis keys on drop (after the server stopped).
    pub _cleanup: Option<Arc<Cleanup>>,
}

/// A fresh app on the memory store.
pub async fn spawn_app() -> TestApp {
    spawn_app_on(Backend::Memory, |_| {}).await
}

/// A fresh app on `backend`, with `tweak` applied to the default test configuration.
pub async fn spawn_app_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (store, cleanup) = backend.store("hallpass-test");
    let mut app = spawn_app_with_store(store, tweak).await;
    app._cleanup = Some(Arc::new(cleanup));
    app
}

/// A fresh app on the given store.
pub async fn spawn_app_with_store(
    store: Arc<dyn Store>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let server = TestServer::spawn(store, tweak)
        .await
        .expect("the test server starts");
    TestApp {
        remote: Remote::new(server.address.clone()),
        state: server.state.clone(),
        clock: server.clock.clone(),
        _server: server,
        _cleanup: None,
    }
}

impl std::ops::Deref for TestApp {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

impl TestApp {
    /// Where `/metrics` listens when the test configured `metrics_bind`.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self._server.metrics_addr
    }
}

/// A registered user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub password: String,
}

/// A registered client, with its owner and (for confidential clients) its secret.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
    pub owner: TestUser,
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = hallpass::crypto::random_token() + "-extra.chars~";
    let challenge = hallpass::crypto::sha256_b64(verifier.as_bytes());
    (verifier, challenge)
}

/// Extracts the value of the hidden input `name` from a page.
pub fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(
        html[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'"),
    )
}

/// The cookie `name` set by a response, as a `name=value` pair.
pub fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

/// The full `Set-Cookie` line for `name`.
pub fn set_cookie_line(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// The `Location` header.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The query parameters of a URL.
pub fn query_params(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// Asserts an RFC 6749 §5.2 error response and returns its body.
pub async fn assert_oauth_error(resp: reqwest::Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let cache = resp
        .headers()
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let www = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
    let body: Value = resp.json().await.expect("an error body is JSON");
    assert_eq!(got, status, "status; body {body}");
    assert_eq!(body["error"], code, "error code; body {body}");
    assert!(
        body["error_description"].is_string(),
        "error_description; body {body}"
    );
    assert!(cache.contains("no-store"), "Cache-Control: {cache}");
    if status == 401 {
        assert!(www.is_some(), "a 401 carries WWW-Authenticate");
    }
    body
}

impl Remote {
    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// `POST /api/users` with a JSON body.
    pub async fn post_user(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/users"))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a user with a random name.
    pub async fn user(&self) -> TestUser {
        let username = format!("user-{}", hallpass::crypto::random_id());
        let password = "correct horse battery".to_string();
        let resp = self
            .post_user(&json!({"username": username, "password": password}))
            .await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        TestUser {
            id: body["id"].as_str().unwrap().to_string(),
            username,
            password,
        }
    }

    /// `POST /api/clients` as `user` with HTTP Basic.
    pub async fn post_client(&self, user: &TestUser, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/api/clients"))
            .basic_auth(&user.username, Some(&user.password))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers a client for a new user with the given registration body.
    pub async fn client_with(&self, body: Value) -> TestClient {
        let owner = self.user().await;
        let resp = self.post_client(&owner, &body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let c: Value = resp.json().await.unwrap();
        TestClient {
            client_id: c["client_id"].as_str().unwrap().to_string(),
            client_secret: c["client_secret"].as_str().map(str::to_string),
            redirect_uri: c["redirect_uris"][0]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            owner,
        }
    }

    /// A confidential client (`client_secret_basic`) with one https redirect URI.
    pub async fn confidential_client(&self) -> TestClient {
        self.client_with(json!({
            "client_name": "Beer App",
            "redirect_uris": ["https://app.example/callback"],
        }))
        .await
    }

    /// A public client (`none`) with a loopback redirect URI.
    pub async fn public_client(&self) -> TestClient {
        self.client_with(json!({
            "client_name": "Beer CLI",
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .await
    }

    /// `GET /oauth2/authorize?<query>` with an optional cookie.
    pub async fn get_authorize(&self, query: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .get(self.url(&format!("/oauth2/authorize?{query}")));
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.send().await.unwrap()
    }

    /// Signs in through the login form and returns the session cookie (`name=value`).
    pub async fn login(&self, user: &TestUser) -> String {
        let page = self.http.get(self.url("/login")).send().await.unwrap();
        let csrf_cookie =
            set_cookie(&page, "hallpass_csrf").expect("the login page sets a CSRF cookie");
        let html = page.text().await.unwrap();
        let csrf = hidden_input(&html, "csrf").expect("the login form has a csrf field");
        let resp = self
            .http
            .post(self.url("/login"))
            .header(header::COOKIE, csrf_cookie)
            .form(&[
                ("username", user.username.as_str()),
                ("password", user.password.as_str()),
                ("csrf", &csrf),
                ("return_to", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        set_cookie(&resp, "hallpass_session").expect("login sets the session cookie")
    }

    /// Opens the consent page for `query` with `session` and returns the sealed `txn`.
    pub async fn consent_txn(&self, query: &str, session: &str) -> String {
        let resp = self.get_authorize(query, Some(session)).await;
        assert_eq!(resp.status(), StatusCode::OK, "consent page");
        let html = resp.text().await.unwrap();
        hidden_input(&html, "txn").expect("the consent page has a txn field")
    }

    /// Posts a consent decision.
    pub async fn post_consent(
        &self,
        session: &str,
        txn: &str,
        decision: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/oauth2/authorize"))
            .header(header::COOKIE, session)
            .form(&[("txn", txn), ("decision", decision)])
            .send()
            .await
            .unwrap()
    }

    /// The standard authorize query for `client`, with extra parameters.
    pub fn authorize_query(&self, client: &TestClient, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code");
        q.append_pair("client_id", &client.client_id);
        q.append_pair("redirect_uri", &client.redirect_uri);
        q.append_pair("state", "xyz-state");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        q.finish()
    }

    /// Runs the browser part as `user`: login, consent (allow). Returns the redirect URL.
    /// When the user already granted every requested scope, there is no consent page and the
    /// authorize request redirects at once.
    pub async fn approve(&self, user: &TestUser, query: &str) -> String {
        let session = self.login(user).await;
        let page = self.get_authorize(query, Some(&session)).await;
        if page.status() == StatusCode::SEE_OTHER {
            return location(&page);
        }
        assert_eq!(page.status(), StatusCode::OK, "consent page");
        let txn = hidden_input(&page.text().await.unwrap(), "txn")
            .expect("the consent page has a txn field");
        let resp = self.post_consent(&session, &txn, "allow").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        location(&resp)
    }

    /// Gets a code for `client` from its owner with `extra` authorize parameters.
    pub async fn code_for(&self, client: &TestClient, extra: &[(&str, &str)]) -> String {
        let query = self.authorize_query(client, extra);
        let redirect = self.approve(&client.owner, &query).await;
        query_params(&redirect)
            .get("code")
            .cloned()
            .expect("the redirect carries a code")
    }

    /// `POST /oauth2/token` with a form and optional HTTP Basic credentials.
    pub async fn post_token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url("/oauth2/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send().await.unwrap()
    }

    /// Redeems `code` for a confidential client with HTTP Basic.
    pub async fn redeem(&self, client: &TestClient, code: &str) -> reqwest::Response {
        self.post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &client.redirect_uri),
            ],
            Some((
                &client.client_id,
                client.client_secret.as_deref().unwrap_or_default(),
            )),
        )
        .await
    }

    /// The JWKS, fetched over HTTP.
    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Sends raw bytes to `host` (`127.0.0.1:port`) and returns everything the server answers.
pub async fn raw_http(host: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    // The server may answer and close before reading everything; a write error is fine then.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

impl Remote {
    /// A client allowed to use refresh tokens, with its owner.
    pub async fn refreshing_client(&self) -> TestClient {
        self.client_with(json!({
            "client_name": "Offline App",
            "redirect_uris": ["https://offline.example/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        }))
        .await
    }

    /// Runs the code flow with `offline_access` and returns the token response.
    pub async fn tokens_with_refresh(&self, client: &TestClient, scope: &str) -> Value {
        let code = self.code_for(client, &[("scope", scope)]).await;
        let resp = self.redeem(client, &code).await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// Runs the code flow with `scope` (which must include `offline_access`) and returns
    /// the refresh token.
    pub async fn refresh_token_for(&self, client: &TestClient, scope: &str) -> String {
        let body = self.tokens_with_refresh(client, scope).await;
        body["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_string()
    }

    /// A request to `path` as `user`, with HTTP Basic.
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: impl AsRef<str>,
        user: &TestUser,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path.as_ref()))
            .basic_auth(&user.username, Some(&user.password))
    }

    /// `POST /api/clients/{id}/secret` as the client's owner, not yet sent.
    pub fn rotate_secret(&self, client: &TestClient) -> reqwest::RequestBuilder {
        self.as_user(
            reqwest::Method::POST,
            format!("/api/clients/{}/secret", client.client_id),
            &client.owner,
        )
    }

    /// `DELETE /api/clients/{id}` as the client's owner.
    pub async fn delete_client(&self, client: &TestClient) -> reqwest::Response {
        self.as_user(
            reqwest::Method::DELETE,
            format!("/api/clients/{}", client.client_id),
            &client.owner,
        )
        .send()
        .await
        .unwrap()
    }

    /// The status of `GET path`.
    pub async fn get_status(&self, path: &str) -> StatusCode {
        self.http.get(self.url(path)).send().await.unwrap().status()
    }

    /// `grant_type=refresh_token` with HTTP Basic.
    pub async fn refresh(
        &self,
        client: &TestClient,
        token: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        self.post_token(
            &form,
            Some((
                &client.client_id,
                client.client_secret.as_deref().unwrap_or_default(),
            )),
        )
        .await
    }

    /// `POST` to `/oauth2/introspect` or `/oauth2/revoke` with HTTP Basic as `client`.
    pub async fn post_client_form(
        &self,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .basic_auth(&client.client_id, client.client_secret.as_deref())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Introspects `token` as `client` and returns the JSON answer.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> Value {
        let resp = self
            .post_client_form("/oauth2/introspect", client, &[("token", token)])
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }

    /// `GET /api/users/me` with a bearer token; the status.
    pub async fn me_status(&self, token: &str) -> u16 {
        self.http
            .get(self.url("/api/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
