//! Client ID Metadata Documents: a `client_id` that is a URL is fetched from a local document
//! server (allowlisted, as only a development setting allows), validated, cached by its HTTP
//! headers, and refused with a clear answer when unusable, never redirecting to a redirect
//! URI it names.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use hallpass::oauth::cimd::{AllowHosts, CimdSettings};
use poem::{
    Body, Response,
    listener::{Acceptor, Listener, TcpListener},
};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_oauth_error, backends, hidden_input, location, pkce_pair,
    query_params, spawn_app, spawn_app_on,
};

/// One canned answer of the document server.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Streamed without `Content-Length`.
    chunked: bool,
    /// Milliseconds to wait before answering.
    delay_ms: u64,
}

/// A local HTTP server of metadata documents that counts the requests per path.
#[derive(Clone, Default)]
struct DocServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Canned>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl DocServer {
    async fn start() -> DocServer {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let docs = DocServer {
            port,
            ..DocServer::default()
        };
        let d = docs.clone();
        let ep = poem::endpoint::make(move |req: poem::Request| {
            let d = d.clone();
            async move {
                let delay = d
                    .routes
                    .lock()
                    .unwrap()
                    .get(req.uri().path())
                    .map(|c| c.delay_ms);
                if let Some(ms) = delay.filter(|ms| *ms > 0) {
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
                d.answer(req.uri().path())
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(ep));
        docs
    }

    fn answer(&self, path: &str) -> Response {
        *self.hits.lock().unwrap().entry(path.into()).or_default() += 1;
        let Some(c) = self.routes.lock().unwrap().get(path).cloned() else {
            return Response::builder().status(StatusCode::NOT_FOUND).finish();
        };
        let mut resp = Response::builder().status(StatusCode::from_u16(c.status).unwrap());
        for (k, v) in &c.headers {
            resp = resp.header(*k, v.as_str());
        }
        if c.chunked {
            resp.body(Body::from_async_read(std::io::Cursor::new(c.body)))
        } else {
            resp.body(c.body)
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(&self, path: &str, canned: Canned) {
        self.routes.lock().unwrap().insert(path.into(), canned);
    }

    /// Serves `doc` as JSON at `path`, fresh for `max_age` seconds.
    fn serve_json(&self, path: &str, doc: &Value, max_age: u64) {
        self.serve(
            path,
            Canned {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".into()),
                    ("cache-control", format!("max-age={max_age}")),
                ],
                body: serde_json::to_vec(doc).unwrap(),
                chunked: false,
                delay_ms: 0,
            },
        );
    }

    /// A valid document at `path` whose client_id is its URL.
    fn serve_client(&self, path: &str, redirect_uri: &str) -> String {
        let id = self.url(path);
        self.serve_json(
            path,
            &json!({
                "client_id": id,
                "client_name": "Example MCP Client",
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }),
            600,
        );
        id
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn enabled(allow: Option<&DocServer>) -> CimdSettings {
    CimdSettings {
        enabled: true,
        allow_hosts: match allow {
            Some(d) => AllowHosts::parse(&format!("127.0.0.1:{}", d.port)).unwrap(),
            None => AllowHosts::default(),
        },
        ..CimdSettings::default()
    }
}

/// An app on `backend` that fetches documents and allows the document server.
async fn app_for(backend: Backend, docs: &DocServer) -> TestApp {
    let settings = enabled(Some(docs));
    spawn_app_on(backend, move |c| c.cimd = settings).await
}

fn authorize_query(client_id: &str, redirect_uri: &str, challenge: &str) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code");
    q.append_pair("client_id", client_id);
    q.append_pair("redirect_uri", redirect_uri);
    q.append_pair("state", "s1");
    q.append_pair("scope", "beers:read");
    q.append_pair("code_challenge", challenge);
    q.append_pair("code_challenge_method", "S256");
    q.finish()
}

/// Asserts the authorization request gets the HTML error page (never a redirect) and
/// returns its text.
async fn assert_error_page(app: &TestApp, query: &str) -> String {
    let resp = app.get_authorize(query, None).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "error page expected"
    );
    assert!(resp.headers().get(header::LOCATION).is_none());
    resp.text().await.unwrap()
}

#[tokio::test]
async fn a_url_client_id_runs_the_code_flow_with_pkce_and_no_secret() {
    let docs = DocServer::start().await;
    let redirect = "https://app.example/callback";
    let client_id = docs.serve_client("/client.json", redirect);
    for backend in backends() {
        let app = app_for(backend, &docs).await;
        let before = docs.hits("/client.json");
        let user = app.user().await;
        let session = app.login(&user).await;
        let (verifier, challenge) = pkce_pair();
        let query = authorize_query(&client_id, redirect, &challenge);

        let page = app.get_authorize(&query, Some(&session)).await;

        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("Example MCP Client"), "{html}");
        assert!(
            html.contains("Unverified application from 127.0.0.1"),
            "{html}"
        );
        assert!(!html.contains("runs on your device"), "{html}");
        let txn = hidden_input(&html, "txn").unwrap();
        let resp = app.post_consent(&session, &txn, "allow").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = location(&resp);
        assert!(to.starts_with(redirect), "{to}");
        let code = query_params(&to)["code"].clone();
        let token = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                ],
                None,
            )
            .await;
        assert_eq!(token.status(), StatusCode::OK);
        let body: Value = token.json().await.unwrap();
        assert!(body["access_token"].is_string());
        assert!(body["refresh_token"].is_string() || body["refresh_token"].is_null());
        // One fetch for the whole flow: authorize, consent and token used the cache.
        assert_eq!(docs.hits("/client.json") - before, 1);
    }
}

/// The document's max-age (600 s) keeps it cached: a second flow does not fetch it, and
/// one after the max-age does.
#[tokio::test]
async fn a_document_is_fetched_again_only_after_its_max_age() {
    let docs = DocServer::start().await;
    let redirect = "https://app.example/callback";
    let client_id = docs.serve_client("/cached.json", redirect);
    for backend in backends() {
        let app = app_for(backend, &docs).await;
        let before = docs.hits("/cached.json");
        let (_, challenge) = pkce_pair();
        let query = authorize_query(&client_id, redirect, &challenge);
        // Signed out, a valid request shows the login form.
        let signed_out = |resp: reqwest::Response| assert_eq!(resp.status(), StatusCode::OK);

        signed_out(app.get_authorize(&query, None).await);
        signed_out(app.get_authorize(&query, None).await);
        app.clock.advance(599);
        signed_out(app.get_authorize(&query, None).await);
        assert_eq!(docs.hits("/cached.json") - before, 1);

        app.clock.advance(2);
        signed_out(app.get_authorize(&query, None).await);
        assert_eq!(docs.hits("/cached.json") - before, 2);
    }
}

#[tokio::test]
async fn the_consent_page_warns_when_every_redirect_uri_is_loopback() {
    let docs = DocServer::start().await;
    let client_id = docs.serve_client("/cli.json", "http://127.0.0.1/callback");
    let app = app_for(Backend::Memory, &docs).await;
    let user = app.user().await;
    let session = app.login(&user).await;
    let (_, challenge) = pkce_pair();
    // Loopback redirects match on any port (RFC 8252 §7.3).
    let query = authorize_query(&client_id, "http://127.0.0.1:49152/callback", &challenge);

    let html = app
        .get_authorize(&query, Some(&session))
        .await
        .text()
        .await
        .unwrap();

    assert!(html.contains("runs on your device"), "{html}");
    assert!(html.contains("Unverified application from 127.0.0.1"));
}

#[tokio::test]
async fn a_document_whose_client_id_differs_from_its_url_is_refused() {
    let docs = DocServer::start().await;
    let url = docs.url("/other.json");
    docs.serve_json(
        "/other.json",
        &json!({
            "client_id": docs.url("/something-else.json"),
            "redirect_uris": ["https://app.example/callback"],
        }),
        600,
    );
    let app = app_for(Backend::Memory, &docs).await;

    let page = assert_error_page(
        &app,
        &authorize_query(&url, "https://app.example/callback", "x"),
    )
    .await;

    assert!(page.contains("not exactly the URL"), "{page}");
}

#[tokio::test]
async fn a_redirect_uri_the_document_does_not_list_gets_the_error_page() {
    let docs = DocServer::start().await;
    let client_id = docs.serve_client("/client.json", "https://app.example/callback");
    let app = app_for(Backend::Memory, &docs).await;

    let page = assert_error_page(
        &app,
        &authorize_query(&client_id, "https://evil.example/callback", "x"),
    )
    .await;

    assert!(page.contains("redirect URI is not registered"), "{page}");
}

#[tokio::test]
async fn a_redirect_from_the_document_url_is_not_followed() {
    let docs = DocServer::start().await;
    let target = docs.serve_client("/real.json", "https://app.example/callback");
    docs.serve(
        "/moved.json",
        Canned {
            status: 302,
            headers: vec![("location", target)],
            body: vec![],
            chunked: false,
            delay_ms: 0,
        },
    );
    let app = app_for(Backend::Memory, &docs).await;

    let page = assert_error_page(
        &app,
        &authorize_query(
            &docs.url("/moved.json"),
            "https://app.example/callback",
            "x",
        ),
    )
    .await;

    assert!(page.contains("redirects are not followed"), "{page}");
    assert_eq!(docs.hits("/real.json"), 0);
}

/// The limit holds on the bytes read, not on `Content-Length`: both the declared and the
/// streamed oversized document are refused.
#[tokio::test]
async fn a_document_over_the_size_limit_is_refused_even_without_content_length() {
    let docs = DocServer::start().await;
    let app = app_for(Backend::Memory, &docs).await;
    for (path, chunked) in [("/big.json", false), ("/streamed.json", true)] {
        let url = docs.url(path);
        let doc = json!({
            "client_id": url,
            "redirect_uris": ["https://app.example/callback"],
            "padding": "x".repeat(6000),
        });
        docs.serve(
            path,
            Canned {
                status: 200,
                headers: vec![("content-type", "application/json".into())],
                body: serde_json::to_vec(&doc).unwrap(),
                chunked,
                delay_ms: 0,
            },
        );

        let page = assert_error_page(
            &app,
            &authorize_query(&url, "https://app.example/callback", "x"),
        )
        .await;

        assert!(page.contains("larger than 5120 bytes"), "{path}: {page}");
    }
}

#[tokio::test]
async fn plain_http_and_non_public_addresses_are_refused_without_the_allowlist() {
    let docs = DocServer::start().await;
    let http_id = docs.serve_client("/client.json", "https://app.example/callback");
    let settings = enabled(None);
    let app = spawn_app_on(Backend::Memory, move |c| c.cimd = settings).await;
    let port = docs.port;
    let cases = [
        (http_id.clone(), "https URL"),
        (
            format!("https://127.0.0.1:{port}/client.json"),
            "non-public",
        ),
        (format!("https://[::1]:{port}/client.json"), "non-public"),
        (
            format!("https://[::ffff:127.0.0.1]:{port}/client.json"),
            "non-public",
        ),
        (format!("https://10.1.2.3:{port}/client.json"), "non-public"),
        (
            "https://169.254.169.254/latest/client.json".to_string(),
            "non-public",
        ),
        // A name that resolves to loopback: refused by the resolver, before any connection.
        (
            format!("https://localhost:{port}/client.json"),
            "non-public",
        ),
    ];

    for (client_id, why) in cases {
        let page = assert_error_page(
            &app,
            &authorize_query(&client_id, "https://app.example/callback", "x"),
        )
        .await;
        assert!(page.contains(why), "{client_id}: {page}");
    }

    assert_eq!(docs.hits("/client.json"), 0);
}

/// A failure is remembered briefly, so repeating a bad id does not repeat the fetch.
#[tokio::test]
async fn an_unusable_document_is_cached_briefly() {
    let docs = DocServer::start().await;
    let app = app_for(Backend::Memory, &docs).await;
    let query = authorize_query(&docs.url("/missing.json"), "https://app.example/cb", "x");

    for _ in 0..5 {
        let page = assert_error_page(&app, &query).await;
        assert!(page.contains("HTTP 404"), "{page}");
    }
    assert_eq!(docs.hits("/missing.json"), 1);
    app.clock.advance(31);
    assert_error_page(&app, &query).await;
    assert_eq!(docs.hits("/missing.json"), 2);
}

#[tokio::test]
async fn documents_needing_a_secret_or_other_grants_are_refused_with_a_reason() {
    let docs = DocServer::start().await;
    let app = app_for(Backend::Memory, &docs).await;
    let cases = [
        (
            json!({"token_endpoint_auth_method": "client_secret_basic"}),
            "shared secret",
        ),
        (json!({"client_secret": "s3cret"}), "client_secret"),
        (
            json!({"grant_types": ["client_credentials"]}),
            "not allowed",
        ),
        (json!({"redirect_uris": []}), "no redirect_uris"),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "must use https",
        ),
    ];
    for (i, (extra, why)) in cases.into_iter().enumerate() {
        let path = format!("/bad{i}.json");
        let url = docs.url(&path);
        let mut doc = json!({
            "client_id": url,
            "redirect_uris": ["https://app.example/callback"],
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        docs.serve_json(&path, &doc, 600);

        let page = assert_error_page(
            &app,
            &authorize_query(&url, "https://app.example/callback", "x"),
        )
        .await;

        assert!(page.contains(why), "{path}: {page}");
    }
}

#[tokio::test]
async fn the_token_endpoint_answers_invalid_client_for_an_unusable_document_or_a_secret() {
    let docs = DocServer::start().await;
    let good = docs.serve_client("/client.json", "https://app.example/callback");
    let app = app_for(Backend::Memory, &docs).await;
    let form = |id: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", "nope".to_string()),
            ("client_id", id.to_string()),
        ]
    };
    let send = |f: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_token(&f, None).await
        }
    };

    let missing = send(form(&docs.url("/missing.json"))).await;
    let body = assert_oauth_error(missing, 401, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("HTTP 404")
    );

    let mut with_secret = form(&good);
    with_secret.push(("client_secret", "guess".into()));
    let body = assert_oauth_error(send(with_secret).await, 401, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("without a secret")
    );

    // A usable document with a bad code gets past client authentication.
    assert_oauth_error(send(form(&good)).await, 400, "invalid_grant").await;
}

#[tokio::test]
async fn the_metadata_advertises_client_id_metadata_documents_only_when_on() {
    let docs = DocServer::start().await;
    let on = app_for(Backend::Memory, &docs).await;
    let off = spawn_app().await;
    for (app, expected) in [(&on, true), (&off, false)] {
        for path in [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            let meta: Value = app
                .http
                .get(app.url(path))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                meta["client_id_metadata_document_supported"], expected,
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn url_client_ids_are_unknown_clients_when_the_setting_is_off() {
    let docs = DocServer::start().await;
    let client_id = docs.serve_client("/client.json", "https://app.example/callback");
    let app = spawn_app().await;

    let page = assert_error_page(
        &app,
        &authorize_query(&client_id, "https://app.example/callback", "x"),
    )
    .await;

    assert!(page.contains("not registered"), "{page}");
    assert_eq!(docs.hits("/client.json"), 0);
}

/// Concurrent first uses of one URL share one fetch.
#[tokio::test]
async fn concurrent_first_uses_of_a_document_fetch_it_once() {
    let docs = DocServer::start().await;
    let client_id = docs.serve_client("/slow.json", "https://app.example/callback");
    let mut slow = docs.routes.lock().unwrap()["/slow.json"].clone();
    slow.delay_ms = 300;
    docs.serve("/slow.json", slow);
    let app = app_for(Backend::Memory, &docs).await;
    let query = authorize_query(&client_id, "https://app.example/callback", &pkce_pair().1);

    let answers = futures_join_all((0..8).map(|_| app.get_authorize(&query, None))).await;

    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    assert_eq!(docs.hits("/slow.json"), 1);
}

/// Runs the futures concurrently on this task and collects their outputs.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// Fetches are outbound requests anyone can trigger: past the per-host limit they are
/// refused, and the refusal is not cached.
#[tokio::test]
async fn fetches_past_the_per_host_limit_are_refused() {
    let docs = DocServer::start().await;
    let mut settings = enabled(Some(&docs));
    settings.fetches_per_host = 2;
    let app = spawn_app_on(Backend::Memory, move |c| c.cimd = settings).await;
    let ids: Vec<String> = (0..3)
        .map(|i| docs.serve_client(&format!("/c{i}.json"), "https://app.example/callback"))
        .collect();
    let challenge = pkce_pair().1;
    let query = |id: &str| authorize_query(id, "https://app.example/callback", &challenge);

    assert_eq!(
        app.get_authorize(&query(&ids[0]), None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.get_authorize(&query(&ids[1]), None).await.status(),
        StatusCode::OK
    );
    let page = assert_error_page(&app, &query(&ids[2])).await;

    assert!(page.contains("Too many"), "{page}");
    assert_eq!(docs.hits("/c2.json"), 0);
    // Cached documents still work, and a new minute allows fetches again.
    assert_eq!(
        app.get_authorize(&query(&ids[0]), None).await.status(),
        StatusCode::OK
    );
    app.clock.advance(60);
    assert_eq!(
        app.get_authorize(&query(&ids[2]), None).await.status(),
        StatusCode::OK
    );
}

/// A test CA and a TLS server that answers every request with one JSON document, counting
/// the requests.
struct TlsDocServer {
    port: u16,
    ca_pem: String,
    hits: Arc<Mutex<usize>>,
}

impl TlsDocServer {
    async fn start() -> TlsDocServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    *counter.lock().unwrap() += 1;
                    let body = serde_json::to_string(&json!({
                        "client_id": format!("https://127.0.0.1:{port}/client.json"),
                        "client_name": "TLS Client",
                        "redirect_uris": ["https://app.example/callback"],
                    }))
                    .unwrap();
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsDocServer {
            port,
            ca_pem: ca.pem(),
            hits,
        }
    }

    fn client_id(&self) -> String {
        format!("https://127.0.0.1:{}/client.json", self.port)
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }

    /// Settings that allow the loopback address of the server (the only exemption: the
    /// fetch is https, verified against the test CA when `trust_ca`).
    fn settings(&self, trust_ca: bool) -> CimdSettings {
        let mut s = CimdSettings {
            enabled: true,
            allow_hosts: AllowHosts::parse(&format!("127.0.0.1:{}", self.port)).unwrap(),
            ..CimdSettings::default()
        };
        if trust_ca {
            s.extra_roots = vec![reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()];
        }
        s
    }
}

#[tokio::test]
async fn a_document_is_fetched_over_https_from_a_server_the_test_ca_certifies() {
    let server = TlsDocServer::start().await;
    for backend in backends() {
        let settings = server.settings(true);
        let app = spawn_app_on(backend, move |c| c.cimd = settings).await;
        let before = server.hits();
        let user = app.user().await;
        let session = app.login(&user).await;
        let (_, challenge) = pkce_pair();
        let query = authorize_query(
            &server.client_id(),
            "https://app.example/callback",
            &challenge,
        );

        let page = app.get_authorize(&query, Some(&session)).await;

        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("TLS Client"), "{html}");
        assert!(html.contains("Unverified application from 127.0.0.1"));
        assert_eq!(server.hits() - before, 1);
    }
}

#[tokio::test]
async fn a_document_server_with_an_untrusted_certificate_is_refused() {
    let server = TlsDocServer::start().await;
    let settings = server.settings(false);
    let app = spawn_app_on(Backend::Memory, move |c| c.cimd = settings).await;
    let (_, challenge) = pkce_pair();

    let page = assert_error_page(
        &app,
        &authorize_query(
            &server.client_id(),
            "https://app.example/callback",
            &challenge,
        ),
    )
    .await;

    assert!(page.contains("cannot be used"), "{page}");
    assert_eq!(server.hits(), 0);
}
