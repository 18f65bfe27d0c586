//! The verifier tests' own issuer: a small JWKS server whose key set, `Cache-Control` and
//! health the test controls, and helpers that mint tokens with any header.

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hallpass::{
    config::SigningAlg,
    keys::SigningKey,
    time::{Clock, MockClock},
    verify::Verifier,
};
use poem::{
    Request, Response, Route, Server,
    endpoint::make_sync,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
};
use serde_json::{Value, json};

/// The audience of the tokens the test server's keys sign.
pub const AUDIENCE: &str = "https://beers.example";
/// The minimum refresh interval of test verifiers, in seconds.
pub const MIN_REFRESH: u64 = 10;

/// An issuer of the test's own: RFC 8414 metadata and a JWKS whose keys, `Cache-Control`
/// and health the test controls, counting every request.
pub struct JwksServer {
    /// `http://127.0.0.1:<port>`, the issuer.
    pub issuer: String,
    keys: Arc<RwLock<Vec<Value>>>,
    cache_control: Arc<RwLock<String>>,
    /// The issuer the metadata names, when not the server's own.
    pub(super) metadata_issuer: Arc<RwLock<Option<String>>>,
    failing: Arc<AtomicBool>,
    jwks_hits: Arc<AtomicUsize>,
    metadata_hits: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Starts on a free port, publishing `keys`, with `Cache-Control: public, max-age=300`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let issuer = format!("http://127.0.0.1:{port}");
        let server = JwksServer {
            issuer: issuer.clone(),
            keys: Arc::new(RwLock::new(Vec::new())),
            cache_control: Arc::new(RwLock::new("public, max-age=300".into())),
            metadata_issuer: Arc::new(RwLock::new(None)),
            failing: Arc::new(AtomicBool::new(false)),
            jwks_hits: Arc::new(AtomicUsize::new(0)),
            metadata_hits: Arc::new(AtomicUsize::new(0)),
        };
        server.publish(keys);
        let metadata = {
            let (hits, named) = (server.metadata_hits.clone(), server.metadata_issuer.clone());
            let issuer = issuer.clone();
            make_sync(move |_: Request| {
                hits.fetch_add(1, Ordering::SeqCst);
                let named = named
                    .read()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| issuer.clone());
                let doc = json!({"issuer": named, "jwks_uri": format!("{issuer}/jwks")});
                Response::builder()
                    .content_type("application/json")
                    .body(doc.to_string())
            })
        };
        let jwks = {
            let (hits, keys, cache, failing) = (
                server.jwks_hits.clone(),
                server.keys.clone(),
                server.cache_control.clone(),
                server.failing.clone(),
            );
            make_sync(move |_: Request| {
                hits.fetch_add(1, Ordering::SeqCst);
                if failing.load(Ordering::SeqCst) {
                    return Response::builder()
                        .status(StatusCode::INTERNAL_SERVER_ERROR)
                        .finish();
                }
                let doc = json!({"keys": keys.read().unwrap().clone()});
                Response::builder()
                    .content_type("application/json")
                    .header("Cache-Control", cache.read().unwrap().clone())
                    .body(doc.to_string())
            })
        };
        let app = Route::new()
            .at("/.well-known/oauth-authorization-server", metadata)
            .at("/jwks", jwks);
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        server
    }

    /// Replaces the published key set.
    pub fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.write().unwrap() = keys
            .iter()
            .map(|k| serde_json::to_value(k.jwk()).unwrap())
            .collect();
    }

    /// Sets the JWKS `Cache-Control`.
    pub fn cache_control(&self, value: &str) {
        *self.cache_control.write().unwrap() = value.to_string();
    }

    /// Makes the JWKS answer 500 (`true`) or serve again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// JWKS requests so far.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }

    /// Metadata requests so far.
    pub fn metadata_fetches(&self) -> usize {
        self.metadata_hits.load(Ordering::SeqCst)
    }

    /// A verifier of this issuer's tokens for [`AUDIENCE`] on `clock`.
    pub fn verifier(&self, clock: &Arc<MockClock>) -> Verifier {
        let clock: Arc<dyn Clock> = clock.clone();
        Verifier::builder(&self.issuer, AUDIENCE)
            .clock(clock)
            .min_refresh_interval(std::time::Duration::from_secs(MIN_REFRESH))
            .build()
            .unwrap()
    }

    /// Valid claims from this issuer at `now`.
    pub fn claims(&self, now: u64) -> Value {
        json!({
            "iss": self.issuer,
            "sub": "user-1",
            "aud": AUDIENCE,
            "client_id": "client-1",
            "scope": "beers:read beers:write",
            "iat": now,
            "exp": now + 600,
            "jti": hallpass::crypto::random_id(),
        })
    }
}

/// A new key of `alg`.
pub fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg, 0, 0).unwrap().0
}

/// `claims` signed by `key` as an access token.
pub fn mint(key: &SigningKey, claims: &Value) -> String {
    hallpass::token::sign(key, "at+jwt", claims).unwrap()
}

/// A compact JWS with any header, signed by `key` (or with `signature` when given).
pub fn mint_raw(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(&header.to_string()), b64(&claims.to_string()));
    let sig = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

pub fn b64(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(s.as_bytes())
}

/// The kid of a token.
pub fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}
