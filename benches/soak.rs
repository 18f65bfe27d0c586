//! Soak of the token endpoint with the server in its own process, so the resident memory
//! measured is the server's alone (not the load generator's).
//!
//! Starts the built `hallpass` binary (the release build under `cargo bench`) on port 0, on
//! the Redis Cluster when `REDIS_CLUSTER_URLS` is set, else on Redis when `REDIS_URL` is, else
//! on memory, under a key prefix of its own (deleted at the end). Registers a user and a
//! `client_credentials` client over HTTP, then:
//!
//! 1. measures the peak: `SOAK_CONNECTIONS` (32) keep-alive connections as fast as possible
//!    for `SOAK_PEAK_SECS` (10) seconds, after a 2 s warm-up;
//! 2. soaks at `SOAK_LOAD_PERCENT` (80) % of that peak (or at `SOAK_RATE` requests/s when set)
//!    for `SOAK_SECS` (600) seconds, each connection paced on a fixed schedule;
//! 3. prints the server process's `VmRSS` (from `/proc/<pid>/status`) at the start and the end
//!    of the soak and every `SOAK_SAMPLE_SECS` (60) seconds in between, the error count (any
//!    answer but 200, or a broken connection) and the latency percentiles; and the ES256
//!    signing rate of one core, in this process, for scale.
//!
//! ```text
//! eval "$(.ci/redis-up)"; unset REDIS_URL     # the cluster
//! cargo bench --bench soak                     # 10 minutes at 80 % of peak
//! SOAK_SECS=120 cargo bench --bench soak       # 2 minutes
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use hallpass::{config::SigningAlg, store::redis::RedisTarget};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/http.rs"]
mod http;
#[path = "support/signing_rate.rs"]
mod signing_rate;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The server process; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Latencies in 10 µs buckets up to 1 s (the last bucket holds everything slower).
#[derive(Clone)]
struct Histogram(Vec<u64>);

impl Histogram {
    const BUCKETS: usize = 100_000;

    fn new() -> Self {
        Self(vec![0; Self::BUCKETS])
    }

    fn record(&mut self, d: Duration) {
        let i = (d.as_micros() / 10).min(Self::BUCKETS as u128 - 1) as usize;
        self.0[i] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The latency at quantile `q`, ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        let target = ((self.count() as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.0.iter().enumerate() {
            seen += n;
            if seen >= target {
                return (i as f64 + 1.0) * 0.01;
            }
        }
        0.0
    }
}

/// What one phase of load gave.
struct Phase {
    ok: u64,
    errors: u64,
    latencies: Histogram,
    elapsed: Duration,
}

fn main() {
    let soak_secs = env_u64("SOAK_SECS", 600);
    let peak_secs = env_u64("SOAK_PEAK_SECS", 10);
    let percent = env_u64("SOAK_LOAD_PERCENT", 80);
    let connections = env_u64("SOAK_CONNECTIONS", 32) as usize;
    let sample_secs = env_u64("SOAK_SAMPLE_SECS", 60).max(1);
    let fixed_rate = env_u64("SOAK_RATE", 0);

    let signing_rate = signing_rate::signing_rate(SigningAlg::ES256, Duration::from_secs(1));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (target, store_name) = match (env("REDIS_CLUSTER_URLS"), env("REDIS_URL")) {
            (Some(urls), _) => (
                Some(RedisTarget::Cluster(
                    urls.split(',').map(|u| u.trim().to_string()).collect(),
                )),
                "redis-cluster",
            ),
            (None, Some(url)) => (Some(RedisTarget::Node(url)), "redis"),
            (None, None) => (None, "memory"),
        };
        let prefix = format!("hallpass-soak:{}:", hallpass::crypto::random_id());
        let dir = std::env::temp_dir().join(format!("hallpass-soak-{}", hallpass::crypto::random_id()));
        let (server, port) = start_server(target.as_ref(), &prefix, &dir).await;
        let pid = server.0.id();
        let (client_id, secret) = register(port).await;

        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        let body = "grant_type=client_credentials";
        let request: Arc<[u8]> = format!(
            "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
        .into();

        // 1. The peak (after a warm-up that is not counted).
        load(port, &request, connections, Duration::from_secs(2), None).await;
        let peak = load(port, &request, connections, Duration::from_secs(peak_secs), None).await;
        let peak_rate = peak.ok as f64 / peak.elapsed.as_secs_f64();
        let rate = if fixed_rate > 0 {
            fixed_rate as f64
        } else {
            peak_rate * percent as f64 / 100.0
        };
        println!(
            "soak token_endpoint client_credentials store={store_name} server=separate process (pid {pid}) connections={connections}"
        );
        println!(
            "  ES256 signing, one core in the bench process: {signing_rate:.0} signatures/s"
        );
        println!(
            "  peak: {peak_rate:.0} tokens/s over {peak_secs} s ({} errors); soak at {rate:.0} requests/s ({}) for {soak_secs} s",
            peak.errors,
            if fixed_rate > 0 { "SOAK_RATE".to_string() } else { format!("{percent} % of peak") }
        );

        // 2. The soak, sampling the server's RSS.
        let rss_start = rss_kib(pid);
        let sampler = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(sample_secs));
            tick.tick().await;
            loop {
                tick.tick().await;
                println!(
                    "  {:>5.0} s: server RSS {} KiB",
                    started.elapsed().as_secs_f64(),
                    rss_kib(pid)
                );
            }
        });
        let soak = load(
            port,
            &request,
            connections,
            Duration::from_secs(soak_secs),
            Some(rate),
        )
        .await;
        sampler.abort();
        let rss_end = rss_kib(pid);
        let n = soak.ok + soak.errors;
        println!(
            "  soak: {n} requests, {} errors, {:.0} tokens/s reached, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            soak.errors,
            soak.ok as f64 / soak.elapsed.as_secs_f64(),
            soak.latencies.quantile_ms(0.50),
            soak.latencies.quantile_ms(0.99),
            soak.latencies.quantile_ms(0.999),
        );
        println!(
            "  server RSS {rss_start} KiB at the start of the soak, {rss_end} KiB at the end ({:+} KiB)",
            rss_end as i64 - rss_start as i64
        );
        drop(server);
        if let Some(target) = &target {
            let deleted = hallpass::testing::delete_keys_with_prefix(target, &prefix);
            println!("  deleted the soak's {deleted} Redis keys");
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(soak.errors, 0, "every request of the soak must succeed");
    });
}

/// Starts `hallpass serve` on port 0 with the store `target` under `prefix` and a key made in
/// `dir/keys`; returns once `/readyz` answers 200.
async fn start_server(
    target: Option<&RedisTarget>,
    prefix: &str,
    dir: &std::path::Path,
) -> (Server, u16) {
    let bin = env!("CARGO_BIN_EXE_hallpass");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let generated = Command::new(bin)
        .args(["keys", "generate", "--keys-dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let log: PathBuf = dir.join("server.log");
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env("HALLPASS_BIND", "127.0.0.1:0")
        .env("HALLPASS_ISSUER", "http://127.0.0.1:9")
        .env("HALLPASS_KEYS_DIR", &keys)
        .env("HALLPASS_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    match target {
        Some(RedisTarget::Cluster(seeds)) => {
            cmd.env("REDIS_CLUSTER_URLS", seeds.join(","));
        }
        Some(RedisTarget::Node(url)) => {
            cmd.env("REDIS_URL", url);
        }
        None => {}
    }
    let mut child = cmd.spawn().expect("the hallpass binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    })
    .await
    .unwrap();
    let server = Server(child);
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        panic!(
            "hallpass printed {line:?}; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return (server, port);
        }
        assert!(
            Instant::now() < deadline,
            "the server was not ready within 30 s"
        );
    }
}

/// Registers a user and a `client_credentials` client over HTTP; returns its id and secret.
async fn register(port: u16) -> (String, String) {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let (username, password) = ("soak", "soak password 1");
    let resp = http
        .post(format!("{base}/api/users"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = http
        .post(format!("{base}/api/clients"))
        .basic_auth(username, Some(password))
        .json(&json!({
            "client_name": "soak",
            "redirect_uris": ["https://app.example/cb"],
            "grant_types": ["client_credentials"],
            "scope": "beers:read",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let c: serde_json::Value = resp.json().await.unwrap();
    (
        c["client_id"].as_str().unwrap().to_string(),
        c["client_secret"].as_str().unwrap().to_string(),
    )
}

/// Keeps `connections` keep-alive connections sending `request` for `secs`: as fast as
/// possible, or at `rate` requests/s in all, each connection on a fixed schedule (so a slow
/// answer does not lower the rate, up to the connection's capacity).
async fn load(
    port: u16,
    request: &Arc<[u8]>,
    connections: usize,
    secs: Duration,
    rate: Option<f64>,
) -> Phase {
    let start = Instant::now();
    let every = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let request = request.clone();
            tokio::spawn(async move {
                let mut hist = Histogram::new();
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut stream = connect(port).await;
                let mut buf = vec![0u8; 16 * 1024];
                let mut tick = every.map(|e| {
                    // Spread the connections' schedules over one period.
                    let first =
                        tokio::time::Instant::now() + e.mul_f64(i as f64 / connections as f64);
                    let mut t = tokio::time::interval_at(first, e);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    t
                });
                while start.elapsed() < secs {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let t0 = Instant::now();
                    let answered = match stream.write_all(&request).await {
                        Ok(()) => read_response(&mut stream, &mut buf).await,
                        Err(_) => None,
                    };
                    hist.record(t0.elapsed());
                    match answered {
                        Some(true) => ok += 1,
                        Some(false) => errors += 1,
                        None => {
                            errors += 1;
                            stream = connect(port).await;
                        }
                    }
                }
                (ok, errors, hist)
            })
        })
        .collect();
    let mut phase = Phase {
        ok: 0,
        errors: 0,
        latencies: Histogram::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (ok, errors, hist) = t.await.unwrap();
        phase.ok += ok;
        phase.errors += errors;
        phase.latencies.merge(&hist);
    }
    phase.elapsed = start.elapsed();
    phase
}

async fn connect(port: u16) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads one HTTP/1.1 response: `Some(whether it was a 200)`, or `None` when the connection
/// broke.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> Option<bool> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.ok()?;
        if n == 0 {
            return None;
        }
        filled += n;
        if let Some((len, ok)) = http::complete_response(&buf[..filled]) {
            return (len == filled).then_some(ok);
        }
    }
}
