//! Load test of `client_credentials` at the token endpoint, over real HTTP on loopback.
//!
//! The server is the shared test server (`hallpass::testing`, built like `main` builds it)
//! and runs in this process on its own tokio runtime (the store is the Redis Cluster when
//! `REDIS_CLUSTER_URLS` is set, else Redis when `REDIS_URL` is, else memory);
//! `BENCH_INSTANCES` servers (default 1), each with its own store connection, share the store
//! and one keys directory, and the connections are spread over them. The load generator runs
//! on a second runtime and keeps `BENCH_CONNECTIONS` keep-alive connections busy for
//! `BENCH_SECS` seconds, after a warm-up; `BENCH_RATE` (requests/s in all, 0 = as fast as
//! possible) paces them for a soak. Prints the resident memory of the process at the start and
//! the end of the measured run, and the machine's reference: JWT signatures per second on one
//! core with the server's key type (`support/signing_rate.rs`), with the run's share of it.
//! Requests are pre-serialised bytes and responses are read by `Content-Length`, so the
//! generator costs little next to the server. Prints throughput and latency percentiles.
//!
//! `BENCH_PIN=1` pins the server's threads to CPU 0 and the generator's to CPU 1, and
//! measures the reference on CPU 0 (`support/pin.rs`): with `BENCH_SERVER_THREADS=1` that is
//! the one-core measure, tokens/s and signatures/s on the same core. `BENCH_REQUEST=healthz`
//! sends `GET /healthz` instead: the floor of one request through the same connections,
//! middleware and router, with no store, client or signature. `BENCH_GENERATOR=spin` replaces
//! the tokio generator by one thread that busy-polls every connection and never sleeps: on
//! loopback the server then no longer pays the generator's wake-up for each response (see
//! `spin_generator`). `BENCH_CLIENT_LEASE_MS` sets the servers' client lease
//! (`HALLPASS_CLIENT_LEASE_MS`, default 250; 0 reads the client's record from the store on
//! every request, as before leases existed).
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench token_endpoint
//! REDIS_URL=redis://127.0.0.1:6379 BENCH_PIN=1 BENCH_SERVER_THREADS=1 cargo bench --bench token_endpoint
//! REDIS_URL=redis://127.0.0.1:6379 BENCH_PIN=1 BENCH_SERVER_THREADS=1 BENCH_GENERATOR=spin cargo bench --bench token_endpoint
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7000 BENCH_INSTANCES=2 cargo bench --bench token_endpoint
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7000 BENCH_SECS=600 BENCH_RATE=2000 cargo bench --bench token_endpoint
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
    oauth::{client, users},
    testing::TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/http.rs"]
mod http;
#[path = "support/pin.rs"]
mod pin;
#[path = "support/signing_rate.rs"]
mod signing_rate;
#[path = "support/store.rs"]
mod store;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let secs = env_u64("BENCH_SECS", 10);
    let connections = env_u64("BENCH_CONNECTIONS", 32) as usize;
    let lease = Duration::from_millis(env_u64(
        "BENCH_CLIENT_LEASE_MS",
        hallpass::config::DEFAULT_CLIENT_LEASE.as_millis() as u64,
    ));
    let server_threads = env_u64("BENCH_SERVER_THREADS", 2) as usize;
    let client_threads = env_u64("BENCH_CLIENT_THREADS", 1) as usize;

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .on_thread_start(|| pin::this_thread(0))
        .enable_all()
        .build()
        .unwrap();
    let instances = env_u64("BENCH_INSTANCES", 1).max(1) as usize;
    let rate = env_u64("BENCH_RATE", 0);
    let (_servers, ports, client_id, secret, store_name, alg) = server_rt.block_on(async {
        let prefix = format!("hallpass-bench:{}:", hallpass::crypto::random_id());
        let open = || store::open_store(&prefix).0;
        let (shared, name) = store::open_store(&prefix);
        let dir = std::env::temp_dir().join(format!(
            "hallpass-bench-keys-{}",
            hallpass::crypto::random_id()
        ));
        let mut servers = Vec::new();
        for i in 0..instances {
            // Memory cannot be shared between instances that each open their own store.
            let store = if i == 0 || name == "memory" {
                shared.clone()
            } else {
                open()
            };
            let dir = dir.clone();
            servers.push(
                TestServer::spawn(store, move |c| {
                    c.keys_dir = dir;
                    c.client_lease = lease;
                })
                .await
                .unwrap(),
            );
        }
        let state = &servers[0].state;
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
        let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
        let alg = state.config.signing_alg;
        (servers, ports, c.client_id, secret.unwrap(), name, alg)
    });

    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
    let body = "grant_type=client_credentials";
    // `BENCH_REQUEST=healthz` measures the floor instead: `GET /healthz` through the same
    // connections, middleware and router, with no store, no client and no signature.
    let healthz = std::env::var("BENCH_REQUEST").is_ok_and(|v| v == "healthz");
    let requests: Vec<Arc<[u8]>> = ports
        .iter()
        .map(|port| {
            if healthz {
                return format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
                    .into_bytes()
                    .into();
            }
            format!(
                "POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
            .into()
        })
        .collect();
    // Each connection's pace when a total rate is asked for.
    let interval = (rate > 0).then(|| Duration::from_secs_f64(connections as f64 / rate as f64));

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .on_thread_start(|| pin::this_thread(1))
        .enable_all()
        .build()
        .unwrap();
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(secs);
    // `BENCH_GENERATOR=spin`: one thread on CPU 1 busy-polls every connection instead of
    // sleeping in epoll between responses. On loopback, a response sent to a sleeping reader
    // costs the *sender* (the server) the reader's wake-up; a spinning reader never sleeps, as
    // a NIC never does, so the server's CPU is spent on the request alone.
    let spin = std::env::var("BENCH_GENERATOR").is_ok_and(|v| v == "spin");
    assert!(
        !(spin && rate > 0),
        "BENCH_GENERATOR=spin does not pace: unset BENCH_RATE"
    );
    let (mut latencies, errors, (rss_start, rss_end)) = if spin {
        let (ports, requests) = (ports.clone(), requests.clone());
        std::thread::spawn(move || {
            pin::this_thread(1);
            spin_generator(&ports, &requests, connections, warmup, measure)
        })
        .join()
        .unwrap()
    } else {
        client_rt.block_on(async move {
            let start = Instant::now();
            let rss_start = Arc::new(std::sync::Mutex::new(None));
            let tasks: Vec<_> = (0..connections)
                .map(|i| {
                    let request = requests[i % requests.len()].clone();
                    let port = ports[i % ports.len()];
                    let rss_start = rss_start.clone();
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
                            if let Some(every) = interval {
                                tokio::time::sleep(every.saturating_sub(t0.elapsed())).await;
                            }
                            if t0 - start >= warmup {
                                rss_start.lock().unwrap().get_or_insert_with(rss_kib);
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
            let rss = (rss_start.lock().unwrap().unwrap_or(0), rss_kib());
            (all, errors, rss)
        })
    };
    latencies.sort();
    let n = latencies.len();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "token_endpoint {} store={store_name} instances={instances} connections={connections} server_threads={server_threads} client_threads={client_threads} secs={secs} rate={rate} pinned={} generator={}",
        if healthz {
            "healthz"
        } else {
            "client_credentials"
        },
        pin::enabled(),
        if spin { "spin" } else { "tokio" }
    );
    println!(
        "  {n} requests, {errors} errors, {:.0} tokens/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        n as f64 / measure.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[n - 1].as_secs_f64() * 1e3,
    );
    println!("  RSS {rss_start} KiB at the start, {rss_end} KiB at the end");
    pin::this_thread(0);
    let reference = signing_rate::signing_rate(alg, Duration::from_secs(2));
    println!(
        "  reference: {reference:.0} {alg:?} signatures/s on one core; this run reached {:.0}% of it",
        100.0 * n as f64 / measure.as_secs_f64() / reference
    );
    assert_eq!(errors, 0, "every request must succeed");
}

/// This process's resident memory, KiB (Linux; 0 elsewhere).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reads one HTTP/1.1 response; returns whether it was a 200.
async fn read_response(stream: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "server closed the connection");
        filled += n;
        if let Some((len, ok)) = http::complete_response(&buf[..filled]) {
            assert_eq!(len, filled, "one response at a time");
            return ok;
        }
    }
}

/// One connection of the spinning generator.
struct SpinConn {
    stream: std::net::TcpStream,
    request: Arc<[u8]>,
    buf: Vec<u8>,
    filled: usize,
    /// When the request in flight was sent; `None` when none is.
    sent: Option<Instant>,
}

/// `BENCH_GENERATOR=spin`: sends each connection's request again as soon as its response is
/// in, polling every non-blocking socket in turn without ever sleeping. Returns the
/// latencies measured after the warm-up, the error count and the RSS at both ends.
fn spin_generator(
    ports: &[u16],
    requests: &[Arc<[u8]>],
    connections: usize,
    warmup: Duration,
    measure: Duration,
) -> (Vec<Duration>, u64, (u64, u64)) {
    use std::io::{ErrorKind, Read, Write};
    let mut conns: Vec<SpinConn> = (0..connections)
        .map(|i| {
            let stream =
                std::net::TcpStream::connect(("127.0.0.1", ports[i % ports.len()])).unwrap();
            stream.set_nodelay(true).unwrap();
            stream.set_nonblocking(true).unwrap();
            SpinConn {
                stream,
                request: requests[i % requests.len()].clone(),
                buf: vec![0u8; 16 * 1024],
                filled: 0,
                sent: None,
            }
        })
        .collect();
    let start = Instant::now();
    let (mut lat, mut errors, mut rss_start) = (Vec::with_capacity(1 << 20), 0u64, None);
    loop {
        let now = Instant::now();
        let running = now - start <= warmup + measure;
        if !running && conns.iter().all(|c| c.sent.is_none()) {
            break;
        }
        let mut progressed = false;
        for c in &mut conns {
            if c.sent.is_none() {
                if !running {
                    continue;
                }
                // A request is far smaller than the socket buffer: it goes out whole.
                let mut written = 0;
                while written < c.request.len() {
                    match c.stream.write(&c.request[written..]) {
                        Ok(n) => written += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) => panic!("write: {e}"),
                    }
                }
                c.sent = Some(Instant::now());
            }
            match c.stream.read(&mut c.buf[c.filled..]) {
                Ok(0) => panic!("server closed the connection"),
                Ok(n) => {
                    c.filled += n;
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
            if let Some((len, ok)) = http::complete_response(&c.buf[..c.filled]) {
                assert_eq!(len, c.filled, "one response at a time");
                let t0 = c.sent.take().unwrap();
                c.filled = 0;
                if t0 - start >= warmup && t0 - start <= warmup + measure {
                    rss_start.get_or_insert_with(rss_kib);
                    lat.push(t0.elapsed());
                    errors += u64::from(!ok);
                }
            }
        }
        if !progressed {
            // Runnable all along, so never woken; but a Redis sharing this core gets it.
            std::thread::yield_now();
        }
    }
    (lat, errors, (rss_start.unwrap_or(0), rss_kib()))
}
