//! Prometheus metrics at `GET /metrics` (text exposition format 0.0.4).
//!
//! Counters are plain atomics in [`Metrics`], held by the state: requests by endpoint and
//! status class (a fixed set of endpoint labels, so a scan of random paths cannot blow up the
//! series count), tokens issued by grant type, refresh-token reuse detections; the keys'
//! states and the store's connection rebuilds (`hallpass_store_reconnects_total`, counted by
//! the store itself) are read at scrape time. Nothing secret is ever a label.

use std::sync::atomic::{AtomicU64, Ordering};

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result, handler, web::Data};

use crate::{keys::KeyState, oauth::grant_type::GrantType, state::AppState, throttle::Limit};

/// Endpoint labels; anything else is counted as `other`.
const ENDPOINTS: [&str; 12] = [
    "/oauth2/token",
    "/oauth2/authorize",
    "/oauth2/revoke",
    "/oauth2/introspect",
    "/userinfo",
    "/login",
    "/logout",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/api",
    "other",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The process's counters.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    tokens: [AtomicU64; GrantType::ALL.len()],
    refresh_reuse: AtomicU64,
    throttled: [AtomicU64; Limit::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: (0..ENDPOINTS.len() * CLASSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            tokens: Default::default(),
            refresh_reuse: AtomicU64::new(0),
            throttled: Default::default(),
        }
    }
}

fn endpoint_index(path: &str) -> usize {
    let label = if path.starts_with("/api/") {
        "/api"
    } else {
        path
    };
    ENDPOINTS
        .iter()
        .position(|e| *e == label)
        .unwrap_or(ENDPOINTS.len() - 1)
}

impl Metrics {
    /// Counts one answered request.
    pub fn request(&self, path: &str, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(c) = self
            .requests
            .get(endpoint_index(path) * CLASSES.len() + class)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one issued access token.
    pub fn token_issued(&self, grant_type: GrantType) {
        if let Some(i) = GrantType::ALL.iter().position(|g| *g == grant_type) {
            self.tokens[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one refresh-token reuse detection (a revoked family).
    pub fn refresh_reuse(&self) {
        self.refresh_reuse.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request refused by a rate limit.
    pub fn throttled(&self, limit: Limit) {
        if let Some(i) = Limit::ALL.iter().position(|l| *l == limit) {
            self.throttled[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP hallpass_http_requests_total Requests answered, by endpoint and status class.\n");
        out.push_str("# TYPE hallpass_http_requests_total counter\n");
        for (e, endpoint) in ENDPOINTS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = self.requests[e * CLASSES.len() + c].load(Ordering::Relaxed);
                if n > 0 {
                    out.push_str(&format!(
                        "hallpass_http_requests_total{{endpoint=\"{endpoint}\",status=\"{class}\"}} {n}\n"
                    ));
                }
            }
        }
        out.push_str("# HELP hallpass_tokens_issued_total Access tokens issued, by grant type.\n");
        out.push_str("# TYPE hallpass_tokens_issued_total counter\n");
        for (i, grant) in GrantType::ALL.iter().enumerate() {
            let n = self.tokens[i].load(Ordering::Relaxed);
            out.push_str(&format!(
                "hallpass_tokens_issued_total{{grant_type=\"{grant}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP hallpass_refresh_reuse_total Refresh-token reuse detections (families revoked).\n");
        out.push_str("# TYPE hallpass_refresh_reuse_total counter\n");
        out.push_str(&format!(
            "hallpass_refresh_reuse_total {}\n",
            self.refresh_reuse.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP hallpass_throttled_requests_total Requests refused by a rate limit (429), by limit.\n");
        out.push_str("# TYPE hallpass_throttled_requests_total counter\n");
        for (i, limit) in Limit::ALL.iter().enumerate() {
            out.push_str(&format!(
                "hallpass_throttled_requests_total{{limit=\"{}\"}} {}\n",
                limit.as_str(),
                self.throttled[i].load(Ordering::Relaxed)
            ));
        }
        out.push_str("# HELP hallpass_store_reconnects_total Times the store dropped its Redis connection after repeated timeouts and rebuilt it (at most once a second).\n");
        out.push_str("# TYPE hallpass_store_reconnects_total counter\n");
        out.push_str(&format!(
            "hallpass_store_reconnects_total {}\n",
            state.store.reconnects()
        ));
        out.push_str("# HELP hallpass_signing_keys Signing keys by state.\n");
        out.push_str("# TYPE hallpass_signing_keys gauge\n");
        let keys = state.keys();
        let now = state.now();
        for s in [
            KeyState::Next,
            KeyState::Active,
            KeyState::Retiring,
            KeyState::Retired,
        ] {
            let n = keys
                .all()
                .iter()
                .filter(|k| keys.state_of(k, now, state.config.access_token_ttl) == s)
                .count();
            out.push_str(&format!(
                "hallpass_signing_keys{{state=\"{}\"}} {n}\n",
                s.as_str()
            ));
        }
        out
    }
}

/// `GET /metrics`.
#[handler]
pub async fn metrics(Data(state): Data<&AppState>) -> Response {
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .header("Cache-Control", "no-store")
        .body(state.metrics.render(state))
}

/// Middleware counting every answered request.
pub struct CountRequests(pub AppState);

impl<E: Endpoint> Middleware<E> for CountRequests {
    type Output = CountRequestsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        CountRequestsEndpoint {
            inner: ep,
            state: self.0.clone(),
        }
    }
}

/// See [`CountRequests`].
pub struct CountRequestsEndpoint<E> {
    inner: E,
    state: AppState,
}

impl<E: Endpoint> Endpoint for CountRequestsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_string();
        let resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        self.state.metrics.request(&path, resp.status().as_u16());
        Ok(resp)
    }
}
