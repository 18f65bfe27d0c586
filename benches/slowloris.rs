//! Slowloris against a real release server: `/healthz` latency and errors, open fds and RSS
//! while slow clients hold connections (issue 8, item 2).
//!
//! ```sh
//! cargo build --release --bin hallpass
//! cargo bench --bench slowloris                      # 300 slow sockets of each kind, 20 s
//! SLOW_SOCKETS=400 SERVER_FD_SOFT=1024 HALLPASS_BIN=/tmp/hallpass-orig cargo bench --bench slowloris
//! ```
//!
//! It starts `HALLPASS_BIN` (default `target/release/hallpass`) on a free port with a fresh
//! keys directory and the memory store, under `ulimit -Sn $SERVER_FD_SOFT` when set (the
//! common soft default is 1024; `SERVER_FD_HARD` sets soft and hard), then opens `SLOW_SOCKETS` connections of each kind and keeps
//! them open as an attacker would, reconnecting whenever the server closes one:
//!
//! - silent: connects and sends nothing;
//! - header drip: a request line, then one header line every 5 s;
//! - body drip: a POST head announcing 10,000 bytes, then one byte every 5 s.
//!
//! Meanwhile, for `DURATION` seconds (default 20), it asks `GET /healthz` on a fresh
//! connection every 100 ms (5 s timeout) and at the end prints the latency percentiles, the
//! failures, the server's open fds (`/proc/PID/fd`) and RSS, how often the slow clients had
//! to reconnect, and how many "Too many open files" lines the server logged.

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One `/healthz` on a fresh connection: the latency when it answers 200.
async fn healthz(addr: &str) -> Option<Duration> {
    let start = Instant::now();
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        out.starts_with(b"HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .ok()
        .flatten()
        .map(|()| start.elapsed())
}

/// A slow client of `kind` that reconnects whenever the server closes it.
async fn slow_client(addr: String, kind: usize, reconnects: Arc<AtomicU64>) {
    let drip = Duration::from_secs(5);
    loop {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            reconnects.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let head: &[u8] = match kind {
            0 => b"",
            1 => b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n",
            _ => b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n",
        };
        let mut ok = s.write_all(head).await.is_ok();
        let mut buf = [0u8; 1024];
        while ok {
            tokio::select! {
                r = s.read(&mut buf) => ok = matches!(r, Ok(n) if n > 0) && kind != 2,
                () = tokio::time::sleep(drip) => {
                    ok = match kind {
                        0 => true,
                        1 => s.write_all(b"X-Slow: 1\r\n").await.is_ok(),
                        _ => s.write_all(b"a").await.is_ok(),
                    };
                }
            }
        }
        reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// The server process, killed when the bench ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn proc_stats(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let rss_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    (fds, rss_kb)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bin = std::env::var("HALLPASS_BIN").unwrap_or_else(|_| "target/release/hallpass".into());
    let per_kind = env_num("SLOW_SOCKETS", 300);
    let duration = Duration::from_secs(env_num("DURATION", 20));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("slowloris-{port}"));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("server.log");
    let mut ulimit = std::env::var("SERVER_FD_HARD")
        .map(|n| format!("ulimit -n {n} && "))
        .unwrap_or_default();
    if let Ok(n) = std::env::var("SERVER_FD_SOFT") {
        ulimit += &format!("ulimit -Sn {n} && ");
    }
    let server = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ulimit}exec \"$0\" serve 2> \"$1\""))
        .arg(&bin)
        .arg(&log)
        .env("HALLPASS_BIND", &addr)
        .env("HALLPASS_ISSUER", format!("http://{addr}"))
        .env("HALLPASS_KEYS_DIR", dir.join("keys"))
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .spawn()?;
    let server = KillOnDrop(server);
    let pid = server.0.id();
    let started = Instant::now();
    while healthz(&addr).await.is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the server did not answer /healthz within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (idle_fds, idle_rss) = proc_stats(pid);
    println!("server {bin} (pid {pid}) on {addr}: idle {idle_fds} fds, {idle_rss} kB RSS");

    let reconnects = Arc::new(AtomicU64::new(0));
    for kind in 0..3 {
        for _ in 0..per_kind {
            tokio::spawn(slow_client(addr.clone(), kind, reconnects.clone()));
        }
    }
    println!(
        "{per_kind} slow sockets of each kind (silent, header drip, body drip) for {duration:?}"
    );

    let mut latencies = Vec::new();
    let mut failures = 0u32;
    let (mut max_fds, mut max_rss) = (0, 0);
    let end = Instant::now() + duration;
    while Instant::now() < end {
        match healthz(&addr).await {
            Some(l) => latencies.push(l),
            None => failures += 1,
        }
        let (fds, rss) = proc_stats(pid);
        max_fds = max_fds.max(fds);
        max_rss = max_rss.max(rss);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (end_fds, end_rss) = proc_stats(pid);
    latencies.sort();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .map_or("-".to_string(), |d| {
                format!("{:.1} ms", d.as_secs_f64() * 1e3)
            })
    };
    let emfile = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("Too many open files")
        .count();
    println!(
        "/healthz: {} ok, {failures} failed (timeout 5 s); p50 {}, p99 {}, max {}",
        latencies.len(),
        pct(50),
        pct(99),
        pct(100)
    );
    println!(
        "server fds: {end_fds} at the end, {max_fds} max; RSS {end_rss} kB at the end, {max_rss} kB max"
    );
    println!(
        "slow-client reconnects (server closed them): {}; \"Too many open files\" in the server log: {emfile}",
        reconnects.load(Ordering::Relaxed)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
