//! Load test of `client_credentials` at the token endpoint, over real HTTP on loopback.
//!
//! The server is the shared test server (`hallpass::testing`, built like `main` builds it)
//! and runs in this process on its own tokio runtime (the store is Redis when
//! `REDIS_URL` is set, else memory); the load generator runs on a second runtime and keeps
//! `BENCH_CONNECTIONS` keep-alive connections busy for `BENCH_SECS` seconds, after a warm-up.
//! Requests are pre-serialised bytes and responses are read by `Content-Length`, so the
//! generator costs little next to the server. Prints throughput and latency percentiles.
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench token_endpoint
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hallpass::{
    oauth::{client, users},
    store::{Store, memory::MemoryStore, redis::RedisStore},
    testing::TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_u64("BENCH_SECS", 10);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let server_threads = env_u64("BENCH_SERVER_THREADS", 2) as usize;
    let client_threads = env_u64("BENCH_CLIENT_THREADS", 1) as usize;

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .enable_all()
        .build()
        .unwrap();
    let (_server, port, client_id, secret, store_name) = server_rt.block_on(async {
        let (store, name): (Arc<dyn Store>, &str) = match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => {
                let prefix = format!("hallpass-bench:{}:", hallpass::crypto::random_id());
                (Arc::new(RedisStore::new(&url, &prefix).unwrap()), "redis")
            }
            _ => (Arc::new(MemoryStore::new()), "memory"),
        };
        let server = TestServer::spawn(store, |_| {}).await.unwrap();
        let state = &server.state;
        let user = users::register(state, "bench", "bench password")
            .await
            .unwrap();
        let reg = client::Registration {
            client_name: Some("bench".into()),
            grant_types: Some(vec!["client_credentials".into()]),
            scope: Some("beers:read".into()),
            ..Default::default()
        };
        let (c, secret) = client::register(state, &user, reg).await.unwrap();
        let port = server.port;
        (server, port, c.client_id, secret.unwrap(), name)
    });

    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    let body = "grant_type=client_credentials";
    let request = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let request: Arc<[u8]> = request.into_bytes().into();

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .enable_all()
        .build()
        .unwrap();
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(secs);
    let (mut latencies, errors) = client_rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let request = request.clone();
                tokio::spawn(async move {
                    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .unwrap();
                    stream.set_nodelay(true).unwrap();
                    let mut buf = vec![0u8; 16 * 1024];
                    let mut lat = Vec::with_capacity(200_000);
                    let mut errors = 0u64;
                    loop {
                        let t0 = Instant::now();
                        if t0 - start > warmup + measure {
                            break;
                        }
                        stream.write_all(&request).await.unwrap();
                        let status_ok = read_response(&mut stream, &mut buf).await;
                        if t0 - start >= warmup {
                            lat.push(t0.elapsed());
                            if !status_ok {
                                errors += 1;
                            }
                        }
                    }
                    (lat, errors)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        (all, errors)
    });
    latencies.sort();
    let n = latencies.len();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "token_endpoint client_credentials store={store_name} connections={connections} server_threads={server_threads} client_threads={client_threads} secs={secs}"
    );
    println!(
        "  {n} requests, {errors} errors, {:.0} tokens/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        n as f64 / measure.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[n - 1].as_secs_f64() * 1e3,
    );
    assert_eq!(errors, 0, "every request must succeed");
}

/// Reads one HTTP/1.1 response; returns whether it was a 200.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "server closed the connection");
        filled += n;
        if let Some(end) = find(&buf[..filled], b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let ok = head.starts_with("HTTP/1.1 200");
            while filled < end + 4 + len {
                let n = stream.read(&mut buf[filled..]).await.unwrap();
                assert!(n > 0, "server closed the connection");
                filled += n;
            }
            return ok;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
