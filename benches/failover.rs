//! Failover under load, on the Redis Cluster of `.ci/redis-up`.
//!
//! Two Hallpass instances in this process share the cluster and one keys directory. Workers
//! run `client_credentials` token requests, the code flow (authorize with a standing consent,
//! redeem) and refresh rotations; after `FAILOVER_AFTER` seconds (default 3) a master is sent
//! `FAILOVER_SIGNAL` (`KILL`, the default, or `STOP`), and the load goes on for
//! `FAILOVER_SECS` (default 15). Then it prints every answer's status per kind (only 200, 303
//! and 503 are allowed; a replayed code must get 400 or 503), the window of 503s and the time from the replica's promotion to the
//! last 503, and checks that no code was redeemed twice and that every refresh family still
//! rotates, and how many times each instance rebuilt its cluster connection after repeated
//! timeouts (`hallpass_store_reconnects_total`, read from its `/metrics`). A stopped master is
//! continued at the end; a killed one is restarted by running `.ci/redis-up` again (it
//! rejoins as a replica).
//!
//! ```text
//! eval "$(.ci/redis-up)"
//! cargo bench --profile dev --bench failover                          # kill -9
//! FAILOVER_SIGNAL=STOP cargo bench --profile dev --bench failover     # SIGSTOP
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeMap,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hallpass::{
    oauth::{client, users},
    store::{
        Store,
        redis::{RedisOptions, RedisStore, RedisTarget},
    },
    testing::TestServer,
};
use serde_json::Value;

type Log = Arc<Mutex<Vec<(&'static str, u16, Duration)>>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The cluster's masters and, for each, its replica's port: `(master, replica)`.
fn masters() -> Vec<(u16, u16)> {
    let nodes = (7000..7006)
        .map(|p| redis_cli(p, &["cluster", "nodes"]))
        .find(|n| !n.is_empty())
        .unwrap();
    let port = |addr: &str| {
        addr.split(['@', ':'])
            .nth(1)
            .unwrap()
            .parse::<u16>()
            .unwrap()
    };
    let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
    lines
        .iter()
        .filter(|f| f[2].contains("master") && !f[2].contains("fail"))
        .filter_map(|m| {
            let replica = lines
                .iter()
                .find(|r| r[3] == m[0] && !r[2].contains("fail"))?;
            Some((port(m[1]), port(replica[1])))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let urls =
        std::env::var("REDIS_CLUSTER_URLS").expect("REDIS_CLUSTER_URLS (eval \"$(.ci/redis-up)\")");
    let signal = std::env::var("FAILOVER_SIGNAL").unwrap_or_else(|_| "KILL".into());
    let after = Duration::from_secs(env_u64("FAILOVER_AFTER", 3));
    let total = Duration::from_secs(env_u64("FAILOVER_SECS", 15));
    let seeds: Vec<String> = urls.split(',').map(|u| u.trim().to_string()).collect();
    let prefix = format!("hallpass-failover:{}:", hallpass::crypto::random_id());
    let mut options = RedisOptions::new(RedisTarget::Cluster(seeds.clone()), &prefix);
    options.connect_timeout = Duration::from_millis(500);
    options.response_timeout = Duration::from_millis(500);
    let dir = std::env::temp_dir().join(format!(
        "hallpass-failover-keys-{}",
        hallpass::crypto::random_id()
    ));
    let mut servers = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(RedisStore::open(options.clone()));
        let d = dir.clone();
        servers.push(
            TestServer::spawn(store, move |c| {
                c.keys_dir = d;
                c.issuer = "http://127.0.0.1:9".into();
                c.audience = "http://127.0.0.1:9".into();
                c.refresh_grace = 30;
            })
            .await
            .unwrap(),
        );
    }
    let state = &servers[0].state;
    let password = "failover password 1";
    let user = users::register(state, "failover", password).await.unwrap();
    let reg = client::Registration {
        client_name: Some("failover".into()),
        redirect_uris: Some(vec!["https://app.example/cb".into()]),
        grant_types: Some(vec![
            "client_credentials".into(),
            "authorization_code".into(),
            "refresh_token".into(),
        ]),
        scope: Some("beers:read offline_access".into()),
        ..Default::default()
    };
    let (c, secret) = client::register(state, &user, reg).await.unwrap();
    let secret = secret.unwrap();
    let addrs: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = login(&http, &addrs[0], "failover", password).await;
    let authorize = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=offline_access&state=s",
        c.client_id
    );
    // The standing consent, so that authorize redirects at once with a code.
    let page = http
        .get(format!("{}{authorize}", addrs[0]))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let txn = hidden(&page.text().await.unwrap(), "txn");
    let resp = http
        .post(format!("{}/oauth2/authorize", addrs[0]))
        .header("cookie", &session)
        .form(&[("txn", txn.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);

    let log: Log = Arc::default();
    let start = Instant::now();
    let ctx = Arc::new((
        http,
        addrs,
        session,
        authorize,
        c.client_id.clone(),
        secret,
        log.clone(),
    ));
    let mut tasks = Vec::new();
    for w in 0..12 {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(
            async move { worker(w, &ctx, start, total).await },
        ));
    }

    tokio::time::sleep(after).await;
    let (victim, replica) = masters()[0];
    let pid = std::fs::read_to_string(format!("/tmp/ci-redis/{victim}/redis.pid")).unwrap();
    let killed_at = start.elapsed();
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.trim())
        .status()
        .unwrap();
    let mut promoted_at = None;
    while start.elapsed() < total {
        if redis_cli(replica, &["role"]).starts_with("master") {
            promoted_at = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut families_ok = true;
    let mut redeemed_twice = 0;
    for t in tasks {
        let (ok, twice) = t.await.unwrap();
        families_ok &= ok;
        redeemed_twice += twice;
    }
    if signal == "STOP" {
        Command::new("kill")
            .arg("-CONT")
            .arg(pid.trim())
            .status()
            .unwrap();
    }

    // The connection rebuilds each instance counted, as its /metrics exports them.
    let mut rebuilds = Vec::new();
    for server in &servers {
        let text = reqwest::get(format!("{}/metrics", server.address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let n: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("hallpass_store_reconnects_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("/metrics exports hallpass_store_reconnects_total");
        rebuilds.push(n);
    }
    let log = log.lock().unwrap();
    let mut counts: BTreeMap<(&str, u16), u64> = BTreeMap::new();
    for (kind, status, _) in log.iter() {
        *counts.entry((kind, *status)).or_default() += 1;
    }
    let unavailable: Vec<Duration> = log.iter().filter(|e| e.1 == 503).map(|e| e.2).collect();
    let others = log
        .iter()
        .filter(|e| e.0 != "replay" && ![200, 303, 503].contains(&e.1))
        .count();
    println!(
        "failover signal=SIG{signal} master={victim} replica={replica} killed_at={killed_at:.2?}"
    );
    for ((kind, status), n) in &counts {
        println!("  {kind:<8} {status}: {n}");
    }
    match (unavailable.first(), unavailable.last()) {
        (Some(first), Some(last)) => println!(
            "  503 window: {:.2?} after the signal, for {:.2?}; last 503 {} the promotion",
            first.saturating_sub(killed_at),
            last.saturating_sub(*first),
            match promoted_at {
                Some(p) if *last >= p => format!("{:.2?} after", last.saturating_sub(p)),
                Some(p) => format!("{:.2?} before", p.saturating_sub(*last)),
                None => "with no".into(),
            }
        ),
        _ => println!("  no 503 at all"),
    }
    println!(
        "  promotion {:.2?} after the signal; answers other than 200/303/503: {others}; codes redeemed twice: {redeemed_twice}; every family still rotates: {families_ok}",
        promoted_at
            .map(|p| p.saturating_sub(killed_at))
            .unwrap_or_default()
    );
    println!(
        "  store connection rebuilds (hallpass_store_reconnects_total per instance): {rebuilds:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(servers);
    let deleted = hallpass::testing::delete_keys_with_prefix(&RedisTarget::Cluster(seeds), &prefix);
    println!("  deleted the run's {deleted} Redis keys");
    assert_eq!(others, 0);
    assert_eq!(redeemed_twice, 0);
    assert!(families_ok);
}

type Ctx = (
    reqwest::Client,
    Vec<String>,
    String,
    String,
    String,
    String,
    Log,
);

/// One worker: token requests, the code flow and one refresh family, alternating between the
/// two instances. Returns whether its family still rotates at the end and how many codes it
/// saw redeemed twice.
async fn worker(w: usize, ctx: &Ctx, start: Instant, total: Duration) -> (bool, u64) {
    let (http, addrs, session, authorize, id, secret, log) = ctx;
    let record =
        |kind: &'static str, status: u16| log.lock().unwrap().push((kind, status, start.elapsed()));
    let mut refresh: Option<String> = None;
    let mut twice = 0;
    let mut i = w;
    while start.elapsed() < total {
        i += 1;
        let addr = &addrs[i % addrs.len()];
        let token = |form: Vec<(&'static str, String)>| {
            http.post(format!("{addr}/oauth2/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
        };
        let Ok(r) = token(vec![("grant_type", "client_credentials".into())]).await else {
            continue;
        };
        record("token", r.status().as_u16());
        let Ok(r) = http
            .get(format!("{addr}{authorize}"))
            .header("cookie", session)
            .send()
            .await
        else {
            continue;
        };
        record("authorize", r.status().as_u16());
        let Some(code) = r
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| {
                url::Url::parse(l)
                    .ok()?
                    .query_pairs()
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
            })
        else {
            continue;
        };
        let redeem = || {
            token(vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
                ("redirect_uri", "https://app.example/cb".into()),
            ])
        };
        let Ok(r) = redeem().await else { continue };
        let status = r.status().as_u16();
        record("redeem", status);
        if status == 200 {
            let body: Value = r.json().await.unwrap();
            if refresh.is_none() {
                // This worker's family (its code is not replayed: a replay revokes it).
                refresh = body["refresh_token"].as_str().map(String::from);
            } else if let Ok(again) = redeem().await {
                // A second redemption must fail (400) or be unavailable; never another 200.
                record("replay", again.status().as_u16());
                if again.status() == 200 {
                    twice += 1;
                }
            }
        }
        if let Some(rt) = refresh.clone() {
            let Ok(r) = token(vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", rt),
            ])
            .await
            else {
                continue;
            };
            let status = r.status().as_u16();
            record("refresh", status);
            if status == 200 {
                let body: Value = r.json().await.unwrap();
                refresh = body["refresh_token"].as_str().map(String::from);
            }
        }
    }
    // After recovery the family must still rotate (retrying through the grace window).
    let Some(rt) = refresh else {
        return (true, twice);
    };
    for _ in 0..20 {
        let r = http
            .post(format!("{}/oauth2/token", addrs[0]))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => return (true, twice),
            503 => tokio::time::sleep(Duration::from_millis(250)).await,
            other => {
                eprintln!(
                    "worker {w}: the family does not rotate: {other} {}",
                    r.text().await.unwrap()
                );
                return (false, twice);
            }
        }
    }
    (false, twice)
}

async fn login(http: &reqwest::Client, addr: &str, username: &str, password: &str) -> String {
    let page = http.get(format!("{addr}/login")).send().await.unwrap();
    let csrf_cookie = cookie(&page, "hallpass_csrf");
    let csrf = hidden(&page.text().await.unwrap(), "csrf");
    let resp = http
        .post(format!("{addr}/login"))
        .header("cookie", csrf_cookie)
        .form(&[
            ("username", username),
            ("password", password),
            ("csrf", &csrf),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    cookie(&resp, "hallpass_session")
}

fn cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string()
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].replace("&amp;", "&")
}
