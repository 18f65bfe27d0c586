//! Load test of the authorization-code flow, over real HTTP on loopback, with the server's
//! own CPU time per flow.
//!
//! The server is the shared test server (`hallpass::testing`, built like `main` builds it)
//! on its own tokio runtime, whose threads (workers and blocking pool, where password hashes
//! are checked) are named `hp-server`: the CPU time the kernel counts for those threads
//! (`/proc/self/task/*/schedstat`) is the server's, apart from the load generator on its own
//! runtime. The store is the Redis Cluster when `REDIS_CLUSTER_URLS` is set, else Redis when
//! `REDIS_URL` is, else memory (Redis's own CPU is not counted).
//!
//! Each of `BENCH_CONNECTIONS` virtual browsers (default 8) runs whole flows for
//! `BENCH_SECS` seconds (default 10) after a one-second warm-up, for each mode of
//! `BENCH_MODES` (default all, in this order):
//!
//! - `client_credentials`: one token request (HTTP Basic), the baseline the flows are read
//!   against;
//! - `fresh`: `GET /oauth2/authorize` (the sign-in page) → `POST /login` (the password is
//!   checked: Argon2id) → `GET /oauth2/authorize` (the consent page, `prompt=consent`) →
//!   `POST /oauth2/authorize` (allow) → `POST /oauth2/token` (code + PKCE, HTTP Basic);
//! - `consent`: the same with a live session: consent page → allow → token;
//! - `remembered`: a live session and remembered consent: authorize (redirects with the
//!   code at once) → token.
//!
//! `BENCH_CLIENT_LEASE_MS` sets the server's client lease (`HALLPASS_CLIENT_LEASE_MS`,
//! default 250; 0 reads the client's record from the store on every request).
//!
//! On Redis (`REDIS_URL`), each mode also prints how many Redis commands one flow costs, and
//! in how many round trips, as Redis counts them (`INFO stats`).
//!
//! `BENCH_ROUNDS` (default 1) runs the list of modes that many times, one after the other,
//! and ends with each mode's median: the ratio to a token is taken within each round (the
//! token measured moments before the flows), so a machine whose speed drifts from one minute
//! to the next moves both sides of it. `BENCH_PIN=1` pins the server's threads (and the
//! signing reference) to CPU 0 and the load generator to CPU 1 (`support/pin.rs`).
//!
//! The server's CPU time is read in nanoseconds (`/proc/self/task/*/schedstat`).
//!
//! Prints the machine's reference first (JWT signatures per second on one core with the
//! server's key type, `support/signing_rate.rs`), then, per mode: flows/s, p50 and p99 of a
//! whole flow, and the server's CPU time per flow, also as a multiple of a
//! client-credentials token's.
//!
//! ```text
//! cargo bench --bench code_flow
//! REDIS_URL=redis://127.0.0.1:6379 BENCH_MODES=client_credentials,consent cargo bench --bench code_flow
//! BENCH_PIN=1 BENCH_ROUNDS=5 BENCH_SECS=2 BENCH_MODES=client_credentials,consent,remembered cargo bench --bench code_flow
//! ```
//!
//! The allocator is the server binary's: mimalloc (the default `mimalloc` feature); add
//! `--no-default-features --features server` to measure with the system's allocator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hallpass::{
    config::Config,
    oauth::{client, users},
    testing::TestServer,
};
use reqwest::{StatusCode, header};

#[path = "support/pin.rs"]
mod pin;
#[path = "support/signing_rate.rs"]
mod signing_rate;
#[path = "support/store.rs"]
mod store;

const SERVER_THREAD: &str = "hp-server";
const PASSWORD: &str = "bench password 42";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    ClientCredentials,
    Fresh,
    Consent,
    Remembered,
}

impl Mode {
    const ALL: [Mode; 4] = [
        Mode::ClientCredentials,
        Mode::Fresh,
        Mode::Consent,
        Mode::Remembered,
    ];

    fn name(self) -> &'static str {
        match self {
            Mode::ClientCredentials => "client_credentials",
            Mode::Fresh => "fresh",
            Mode::Consent => "consent",
            Mode::Remembered => "remembered",
        }
    }
}

/// What every virtual browser shares.
struct Target {
    base: String,
    client_id: String,
    secret: String,
    /// The users, one per virtual browser (`bench-<i>`).
    users: Vec<String>,
    /// The server's signing algorithm.
    alg: hallpass::config::SigningAlg,
}

/// Rate limits out of the way: every virtual browser signs in from 127.0.0.1, over and over.
fn no_limits(c: &mut Config) {
    let r = &mut c.rate_limits;
    r.sign_in_account_ip = 1 << 40;
    r.sign_in_ip = 1 << 40;
    r.sign_in_account = 1 << 40;
    r.client_auth = 1 << 40;
    r.registration = 1 << 40;
}

fn main() {
    let secs = env_u64("BENCH_SECS", 10);
    let connections = env_u64("BENCH_CONNECTIONS", 8) as usize;
    let server_threads = env_u64("BENCH_SERVER_THREADS", 1) as usize;
    let rounds = env_u64("BENCH_ROUNDS", 1).max(1);
    let modes: Vec<Mode> = match std::env::var("BENCH_MODES") {
        Ok(list) if !list.is_empty() => list
            .split(',')
            .map(|m| {
                *Mode::ALL
                    .iter()
                    .find(|x| x.name() == m.trim())
                    .unwrap_or_else(|| panic!("unknown mode {m:?}"))
            })
            .collect(),
        _ => Mode::ALL.to_vec(),
    };

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name(SERVER_THREAD)
        .on_thread_start(|| pin::this_thread(0))
        // A blocking thread that exits takes its CPU time out of /proc/self/task.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("hallpass-bench:{}:", hallpass::crypto::random_id());
    let (store, store_name) = server_rt.block_on(async { store::open_store(&prefix) });
    let (_server, target) = server_rt.block_on(async move {
        let lease = Duration::from_millis(env_u64(
            "BENCH_CLIENT_LEASE_MS",
            hallpass::config::DEFAULT_CLIENT_LEASE.as_millis() as u64,
        ));
        let server = TestServer::spawn(store, move |c| {
            no_limits(c);
            c.client_lease = lease;
        })
        .await
        .unwrap();
        let state = &server.state;
        let owner = users::register(state, "bench-owner", PASSWORD)
            .await
            .unwrap();
        let reg = client::Registration {
            client_name: Some("Bench".into()),
            redirect_uris: Some(vec![REDIRECT_URI.into()]),
            grant_types: Some(vec![
                "authorization_code".into(),
                "client_credentials".into(),
            ]),
            scope: Some("openid profile beers:read".into()),
            ..Default::default()
        };
        let (c, secret) = client::register(state, &owner, reg).await.unwrap();
        let mut names = Vec::new();
        for i in 0..connections {
            let name = format!("bench-{i}");
            users::register(state, &name, PASSWORD).await.unwrap();
            names.push(name);
        }
        let target = Target {
            base: server.address.clone(),
            client_id: c.client_id,
            secret: secret.unwrap(),
            users: names,
            alg: state.config.signing_alg,
        };
        (server, Arc::new(target))
    });

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| pin::this_thread(1))
        .enable_all()
        .build()
        .unwrap();
    println!(
        "code_flow store={store_name} connections={connections} server_threads={server_threads} secs={secs} rounds={rounds} pinned={}",
        pin::enabled()
    );
    pin::this_thread(0);
    let rate = signing_rate::signing_rate(target.alg, Duration::from_secs(1));
    pin::this_thread(1);
    println!(
        "  reference: {:.0} {:?} signatures/s on one core ({:.1} µs each)",
        rate,
        target.alg,
        1e6 / rate
    );
    let mut per_mode: Vec<(Mode, Vec<f64>, Vec<f64>)> =
        modes.iter().map(|&m| (m, Vec::new(), Vec::new())).collect();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("  round {round} of {rounds}");
        }
        let mut baseline: Option<f64> = None;
        for (mode, cpus, ratios) in &mut per_mode {
            let mode = *mode;
            let report = client_rt.block_on(run(mode, target.clone(), connections, secs));
            let per_flow_us = report.cpu.as_secs_f64() * 1e6 / report.flows as f64;
            cpus.push(per_flow_us);
            if mode == Mode::ClientCredentials {
                baseline = Some(per_flow_us);
            }
            let ratio = baseline
                .filter(|_| mode != Mode::ClientCredentials)
                .map(|b| per_flow_us / b);
            ratios.extend(ratio);
            println!(
                "  {:<18} {} flows, {:.0} flows/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {:.0} µs/flow{}",
                mode.name(),
                report.flows,
                report.flows as f64 / secs as f64,
                report.p50.as_secs_f64() * 1e3,
                report.p99.as_secs_f64() * 1e3,
                per_flow_us,
                ratio
                    .map(|r| format!(", {r:.1}x a client-credentials token"))
                    .unwrap_or_default(),
            );
            if let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
                && store_name == "redis"
                && round == 1
            {
                let (n, reads) = client_rt.block_on(redis_per_flow(&url, mode, target.clone()));
                println!(
                    "  {:<18} {n} Redis commands per flow, in {reads} round trips (reads Redis processed)",
                    ""
                );
            }
        }
    }
    if rounds > 1 {
        println!(
            "  median of {rounds} rounds (the ratio is each round's, so drift between rounds cancels):"
        );
        for (mode, cpus, ratios) in &mut per_mode {
            let ratio = median(ratios)
                .map(|r| format!(", {r:.1}x a client-credentials token"))
                .unwrap_or_default();
            println!(
                "  {:<18} server CPU {:.0} µs/flow{ratio}",
                mode.name(),
                median(cpus).unwrap_or_default()
            );
        }
    }
}

/// The median of `v` (the mean of the middle two when even); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Redis commands one flow of `mode` costs, and the reads Redis processed for them (one per
/// round trip: a pipeline arrives in one read), counted by Redis itself
/// (`total_commands_processed`, `total_reads_processed`, less the counting's own `INFO`s); one
/// browser, nothing else running.
async fn redis_per_flow(url: &str, mode: Mode, target: Arc<Target>) -> (i64, i64) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    async fn processed(conn: &mut redis::aio::MultiplexedConnection) -> (i64, i64) {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(conn)
            .await
            .unwrap();
        let field = |name: &str| -> i64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap()
        };
        (
            field("total_commands_processed:"),
            field("total_reads_processed:"),
        )
    }
    let mut browser = Browser::new(target, 0);
    browser.prepare(mode).await;
    // One flow first, so the one counted runs as the measured ones do (with a live client
    // lease, when leases are on).
    browser.one(mode).await;
    let a = processed(&mut conn).await;
    let b = processed(&mut conn).await;
    browser.one(mode).await;
    let c = processed(&mut conn).await;
    ((c.0 - b.0) - (b.0 - a.0), (c.1 - b.1) - (b.1 - a.1))
}

struct Report {
    flows: usize,
    p50: Duration,
    p99: Duration,
    cpu: Duration,
}

async fn run(mode: Mode, target: Arc<Target>, connections: usize, secs: u64) -> Report {
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs(secs);
    let start = Instant::now();
    let cpu_at = Arc::new(std::sync::Mutex::new(None::<Duration>));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let target = target.clone();
            let cpu_at = cpu_at.clone();
            tokio::spawn(async move {
                let mut browser = Browser::new(target, i);
                browser.prepare(mode).await;
                let mut lat = Vec::new();
                loop {
                    let t0 = Instant::now();
                    if t0 - start > warmup + measure {
                        break;
                    }
                    if t0 - start >= warmup {
                        cpu_at.lock().unwrap().get_or_insert_with(server_cpu);
                    }
                    browser.one(mode).await;
                    if t0 - start >= warmup {
                        lat.push(t0.elapsed());
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    // Every flow that started in the window has ended: the CPU since the window opened.
    let cpu = server_cpu().saturating_sub(cpu_at.lock().unwrap().unwrap_or_default());
    all.sort();
    let n = all.len().max(1);
    let pct = |p: f64| all.get(((n as f64 * p) as usize).min(n - 1)).copied();
    Report {
        flows: all.len(),
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
        cpu,
    }
}

/// One virtual browser: an HTTP client that does not follow redirects, and its cookies.
struct Browser {
    http: reqwest::Client,
    target: Arc<Target>,
    user: String,
    session: Option<String>,
}

impl Browser {
    fn new(target: Arc<Target>, i: usize) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let user = target.users[i].clone();
        Self {
            http,
            target,
            user,
            session: None,
        }
    }

    /// What `mode` needs before its flows: a session, and one allowed flow (remembered
    /// consent needs a consent to remember).
    async fn prepare(&mut self, mode: Mode) {
        if matches!(mode, Mode::Consent | Mode::Remembered) {
            self.sign_in().await;
            self.flow(true).await;
        }
    }

    /// One flow of `mode`.
    async fn one(&mut self, mode: Mode) {
        match mode {
            Mode::ClientCredentials => self.client_credentials().await,
            Mode::Fresh => {
                self.session = None;
                self.flow(true).await;
            }
            Mode::Consent => self.flow(true).await,
            Mode::Remembered => self.flow(false).await,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.base)
    }

    async fn client_credentials(&self) {
        let resp = self
            .http
            .post(self.url("/oauth2/token"))
            .basic_auth(&self.target.client_id, Some(&self.target.secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "beers:read"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "client_credentials");
        resp.bytes().await.unwrap();
    }

    /// Signs in through the login form with no pending request; keeps the session cookie.
    async fn sign_in(&mut self) {
        let page = self.http.get(self.url("/login")).send().await.unwrap();
        self.submit_login(page).await;
    }

    /// Posts the sign-in form `page` shows; returns where the server sends the browser.
    async fn submit_login(&mut self, page: reqwest::Response) -> String {
        assert_eq!(page.status(), StatusCode::OK, "sign-in page");
        let csrf_cookie = cookie(&page, "hallpass_csrf").expect("a CSRF cookie");
        let html = page.text().await.unwrap();
        let resp = self
            .http
            .post(self.url("/login"))
            .header(header::COOKIE, csrf_cookie)
            .form(&[
                ("username", self.user.as_str()),
                ("password", PASSWORD),
                ("csrf", &hidden(&html, "csrf")),
                ("return_to", &hidden(&html, "return_to")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "sign-in");
        self.session = Some(cookie(&resp, "hallpass_session").expect("a session cookie"));
        location(&resp)
    }

    /// One whole flow: authorize (signing in first when there is no session), the consent
    /// page when `prompt_consent`, allow, and the code redeemed at the token endpoint.
    async fn flow(&mut self, prompt_consent: bool) {
        let (verifier, challenge) = pkce();
        let query = {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.target.client_id)
                .append_pair("redirect_uri", REDIRECT_URI)
                .append_pair("scope", "openid beers:read")
                .append_pair("state", "bench")
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if prompt_consent {
                q.append_pair("prompt", "consent");
            }
            q.finish()
        };
        let mut path = format!("/oauth2/authorize?{query}");
        if self.session.is_none() {
            let page = self.http.get(self.url(&path)).send().await.unwrap();
            path = self.submit_login(page).await;
        }
        let session = self.session.clone().unwrap_or_default();
        let resp = self
            .http
            .get(self.url(&path))
            .header(header::COOKIE, &session)
            .send()
            .await
            .unwrap();
        let redirect = if resp.status() == StatusCode::SEE_OTHER {
            location(&resp)
        } else {
            assert_eq!(resp.status(), StatusCode::OK, "consent page");
            let txn = hidden(&resp.text().await.unwrap(), "txn");
            let allowed = self
                .http
                .post(self.url("/oauth2/authorize"))
                .header(header::COOKIE, &session)
                .form(&[("txn", txn.as_str()), ("decision", "allow")])
                .send()
                .await
                .unwrap();
            assert_eq!(allowed.status(), StatusCode::SEE_OTHER, "allow");
            location(&allowed)
        };
        let code = url::Url::parse(&redirect)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("the redirect carries a code");
        let tokens = self
            .http
            .post(self.url("/oauth2/token"))
            .basic_auth(&self.target.client_id, Some(&self.target.secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(tokens.status(), StatusCode::OK, "code redemption");
        tokens.bytes().await.unwrap();
    }
}

fn pkce() -> (String, String) {
    let verifier = hallpass::crypto::random_token();
    let challenge = hallpass::crypto::sha256_b64(verifier.as_bytes());
    (verifier, challenge)
}

fn cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

fn location(resp: &reqwest::Response) -> String {
    let to = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    to.to_string()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the hidden field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
}

/// The CPU time of this process's threads named [`SERVER_THREAD`], in nanoseconds: the
/// first field of each thread's `/proc/self/task/*/schedstat` (time on a CPU, user and
/// kernel), where `stat`'s utime and stime count 10 ms ticks.
fn server_cpu() -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
                continue;
            };
            if comm.trim_end() != SERVER_THREAD {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
                continue;
            };
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}
