//! Verification throughput of `hallpass::verify` on one core: ES256 access tokens checked by
//! a [`Verifier`] whose key cache is warm, the way a resource server checks every request.
//!
//! Run with `cargo bench --bench verify`. A tiny JWKS server on a loopback port serves the
//! issuer metadata, keys and a revocation feed of 1,000 revoked `jti`s and 300 "not before"
//! rules (none covering the measured tokens, so every one is looked up in full); it is asked
//! before the clock starts, and the feed's background poll runs every 10 s as by default. Everything runs on
//! one thread (a current-thread tokio runtime), so the figure is per core. Prints tokens per
//! second and the latency distribution of single verifications.

use std::{
    error::Error,
    time::{Duration, Instant},
};

use hallpass::{
    config::SigningAlg,
    keys::SigningKey,
    time::{Clock, SystemClock},
    verify::Verifier,
};
use poem::{
    Request, Response, Route, Server,
    endpoint::make_sync,
    listener::{Acceptor, Listener, TcpListener},
};
use serde_json::json;

const AUDIENCE: &str = "https://beers.example";
const DISTINCT_TOKENS: usize = 1_000;
const WARMUP: usize = 2_000;
const MEASURED: usize = 30_000;

fn main() -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let now = SystemClock.now();
    let (key, _) = SigningKey::generate(SigningAlg::ES256, now, now)?;
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let port = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().map(|s| s.port()))
        .ok_or("no local address")?;
    let issuer = format!("http://127.0.0.1:{port}");
    let metadata = json!({
        "issuer": issuer, "jwks_uri": format!("{issuer}/jwks"),
        "hallpass_revocation_feed_endpoint": format!("{issuer}/revocations"),
    })
    .to_string();
    let digest = |s: &str| hallpass::crypto::sha256_b64(s.as_bytes());
    let revoked: Vec<_> = (0..1_000)
        .map(|_| json!({"jti": hallpass::crypto::random_id(), "exp": now + 3600}))
        .collect();
    let rules: Vec<_> = (0..100)
        .flat_map(|i| {
            let (u, c) = (digest(&format!("gone-{i}")), digest(&format!("deleted-{i}")));
            [
                json!({"sub_sha256": u, "client_id_sha256": digest("bench"), "cutoff": now + 10, "exp": now + 3600}),
                json!({"client_id_sha256": c, "cutoff": now + 10, "exp": now + 3600}),
                json!({"sub_sha256": digest(&format!("user-{i}")), "cutoff": now - 10, "exp": now + 3600}),
            ]
        })
        .collect();
    let feed = json!({"issuer": issuer, "revoked": revoked, "not_before": rules}).to_string();
    let jwks = json!({"keys": [key.jwk()]}).to_string();
    let app = Route::new()
        .at(
            "/.well-known/oauth-authorization-server",
            make_sync(move |_: Request| {
                Response::builder()
                    .content_type("application/json")
                    .body(metadata.clone())
            }),
        )
        .at(
            "/jwks",
            make_sync(move |_: Request| {
                Response::builder()
                    .content_type("application/json")
                    .header("Cache-Control", "public, max-age=300")
                    .body(jwks.clone())
            }),
        )
        .at(
            "/revocations",
            make_sync(move |_: Request| {
                Response::builder()
                    .content_type("application/json")
                    .header("ETag", "\"bench\"")
                    .body(feed.clone())
            }),
        );
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));

    let tokens = (0..DISTINCT_TOKENS)
        .map(|i| {
            let claims = json!({
                "iss": issuer, "sub": format!("user-{i}"), "aud": AUDIENCE, "client_id": "bench",
                "scope": "beers:read beers:write", "iat": now, "exp": now + 3600,
                "jti": hallpass::crypto::random_id(), "auth_time": now,
            });
            hallpass::token::sign(&key, "at+jwt", &claims)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let verifier = Verifier::new(&issuer, AUDIENCE)?;

    for token in tokens.iter().cycle().take(WARMUP) {
        verifier.verify_with_scopes(token, &["beers:read"]).await?;
    }
    let fetches_before = verifier.jwks_fetches();
    let feed = verifier.revocation_status().ok_or("no revocation feed")?;
    if !feed.is_current() || feed.revoked_tokens != 1_000 || feed.rules != 300 {
        return Err(format!("the revocation feed did not load: {feed:?}").into());
    }

    let mut latencies = Vec::with_capacity(MEASURED);
    let started = Instant::now();
    for token in tokens.iter().cycle().take(MEASURED) {
        let t = Instant::now();
        let claims = verifier.verify_with_scopes(token, &["beers:read"]).await?;
        latencies.push(t.elapsed());
        std::hint::black_box(claims);
    }
    let elapsed = started.elapsed();

    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = elapsed / MEASURED as u32;
    println!("hallpass::verify, ES256, warm cache, one core");
    println!("  tokens verified   {MEASURED} ({DISTINCT_TOKENS} distinct)");
    println!("  elapsed           {:.3} s", elapsed.as_secs_f64());
    println!(
        "  throughput        {:.0} tokens/s",
        MEASURED as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency (µs)      mean {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
        micros(mean),
        micros(pct(0.50)),
        micros(pct(0.90)),
        micros(pct(0.99)),
        micros(pct(1.0))
    );
    println!(
        "  JWKS fetches while measuring: {}",
        verifier.jwks_fetches() - fetches_before
    );
    let feed = verifier.revocation_status().ok_or("no revocation feed")?;
    println!(
        "  revocation feed: {} jtis, {} rules, {} polls",
        feed.revoked_tokens, feed.rules, feed.polls
    );
    Ok(())
}
