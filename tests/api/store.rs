//! Store conformance (both backends pass the same tests) and behaviour when the store is down.

use std::{sync::Arc, time::Duration};

use hallpass::store::{Store, memory::MemoryStore, redis::RedisStore};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Backend, Cleanup, assert_oauth_error, backends, spawn_app_with_store};

fn store_for(backend: &Backend) -> (Arc<dyn Store>, Cleanup) {
    backend.store("hallpass-test")
}

#[tokio::test]
async fn both_stores_implement_the_same_primitives() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (s, _cleanup) = store_for(&backend);
        assert_eq!(s.get("k").await.unwrap(), None);
        s.put("k", b"v1", None).await.unwrap();
        assert_eq!(s.get("k").await.unwrap(), Some(b"v1".to_vec()));
        assert!(
            !s.put_new("k", b"v2", None).await.unwrap(),
            "put_new keeps an existing key"
        );
        assert!(
            s.put_new("n", b"x", Some(Duration::from_secs(60)))
                .await
                .unwrap()
        );

        assert!(
            !s.compare_and_swap("k", b"wrong", Some(b"v3"), None)
                .await
                .unwrap()
        );
        assert!(
            s.compare_and_swap("k", b"v1", Some(b"v3"), Some(Duration::from_secs(60)))
                .await
                .unwrap()
        );
        assert_eq!(s.get("k").await.unwrap(), Some(b"v3".to_vec()));
        assert!(s.compare_and_swap("k", b"v3", None, None).await.unwrap());
        assert_eq!(s.get("k").await.unwrap(), None);

        let minute = Duration::from_secs(60);
        assert_eq!(
            s.swap_if_prefixed("g", b"{", b"used", minute)
                .await
                .unwrap(),
            None
        );
        assert_eq!(s.get("g").await.unwrap(), None, "nothing is created");
        s.put("g", b"{grant}", Some(minute)).await.unwrap();
        assert_eq!(
            s.swap_if_prefixed("g", b"{", b"used", minute)
                .await
                .unwrap(),
            Some(b"{grant}".to_vec()),
            "the first swap finds the grant"
        );
        assert_eq!(s.get("g").await.unwrap(), Some(b"used".to_vec()));
        assert_eq!(
            s.swap_if_prefixed("g", b"{", b"used again", minute)
                .await
                .unwrap(),
            Some(b"used".to_vec()),
            "a second finds what the first left, and leaves it"
        );
        assert_eq!(s.get("g").await.unwrap(), Some(b"used".to_vec()));

        s.put("t", b"once", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(s.take("t").await.unwrap(), Some(b"once".to_vec()));
        assert_eq!(s.take("t").await.unwrap(), None);

        assert!(s.delete("n").await.unwrap());
        assert!(!s.delete("n").await.unwrap());

        s.set_add("set", "b").await.unwrap();
        s.set_add("set", "a").await.unwrap();
        s.set_add("set", "a").await.unwrap();
        assert_eq!(s.set_members("set").await.unwrap(), vec!["a", "b"]);
        s.set_remove("set", "a").await.unwrap();
        assert_eq!(s.set_members("set").await.unwrap(), vec!["b"]);
        assert_eq!(s.set_members("none").await.unwrap(), Vec::<String>::new());
        s.ping().await.unwrap();
    }
}

#[tokio::test]
async fn get_many_reads_each_key_in_order_on_every_store() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (s, _cleanup) = store_for(&backend);
        assert_eq!(
            s.get_many(&[]).await.unwrap(),
            Vec::<Option<Vec<u8>>>::new()
        );
        // Keys far apart (on a cluster: other slots, most likely other masters).
        let keys: Vec<String> = (0..12).map(|i| format!("many:{i}")).collect();
        for (i, key) in keys.iter().enumerate().filter(|(i, _)| i % 3 != 1) {
            s.put(
                key,
                format!("v{i}").as_bytes(),
                Some(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        }
        // A taken key reads as absent, as with `get` (Redis keeps a marker under it).
        assert!(s.take("many:0").await.unwrap().is_some());
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = s.get_many(&refs).await.unwrap();
        let want: Vec<Option<Vec<u8>>> = (0..12)
            .map(|i| (i != 0 && i % 3 != 1).then(|| format!("v{i}").into_bytes()))
            .collect();
        assert_eq!(got, want);
        for key in &refs {
            assert_eq!(
                got[refs.iter().position(|k| k == key).unwrap()],
                s.get(key).await.unwrap()
            );
        }
    }
}

#[tokio::test]
async fn of_fifty_concurrent_takes_exactly_one_gets_the_value() {
    for backend in backends() {
        let (s, _cleanup) = store_for(&backend);
        s.put("code", b"grant", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.take("code").await.unwrap() })
            })
            .collect();
        let mut got = 0;
        for t in tasks {
            got += usize::from(t.await.unwrap().is_some());
        }
        assert_eq!(got, 1, "{backend:?}");
    }
}

/// Fifty concurrent redemptions of one code: exactly one finds the grant, and the key holds
/// what that one wrote; the same for the compare-and-swap fallback (`swap_by_compare`).
#[tokio::test]
async fn of_fifty_concurrent_swaps_exactly_one_finds_the_grant() {
    for backend in backends() {
        for fallback in [false, true] {
            let (s, _cleanup) = store_for(&backend);
            let minute = Duration::from_secs(60);
            s.put("code", b"{grant}", Some(minute)).await.unwrap();
            let tasks: Vec<_> = (0..50)
                .map(|i| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        let new = format!("used:{i}");
                        let found = if fallback {
                            hallpass::store::swap_by_compare(
                                &*s,
                                "code",
                                b"{",
                                new.as_bytes(),
                                minute,
                            )
                            .await
                        } else {
                            s.swap_if_prefixed("code", b"{", new.as_bytes(), minute)
                                .await
                        };
                        (new, found.unwrap())
                    })
                })
                .collect();
            let mut winners = Vec::new();
            for t in tasks {
                let (new, found) = t.await.unwrap();
                let found = found.expect("the key exists throughout");
                if found == b"{grant}" {
                    winners.push(new);
                } else {
                    assert!(found.starts_with(b"used:"), "{backend:?}");
                }
            }
            assert_eq!(winners.len(), 1, "{backend:?} fallback={fallback}");
            assert_eq!(
                s.get("code").await.unwrap(),
                Some(winners[0].clone().into_bytes())
            );
        }
    }
}

#[tokio::test]
async fn a_ttl_is_set_on_stored_codes_in_redis() {
    let Some(Backend::Redis(url)) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Redis(_)))
    else {
        eprintln!("REDIS_URL unset: the Redis TTL check runs in CI");
        return;
    };
    let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
    let s = RedisStore::new(&url, &prefix).unwrap();
    s.put("c", b"x", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}c"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 55_000 && pttl <= 60_000, "{pttl}");
}

/// A port on which nothing listens.
async fn dead_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_store_gives_503_temporarily_unavailable_with_retry_after() {
    let url = format!("redis://127.0.0.1:{}", dead_port().await);
    let app = spawn_app_with_store(Arc::new(RedisStore::new(&url, "x:").unwrap()), |_| {}).await;

    let resp = app
        .post_user(&json!({"username": "bob", "password": "long enough"}))
        .await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_oauth_error(resp, 503, "temporarily_unavailable").await;
    let token = app
        .post_token(&[("grant_type", "client_credentials")], Some(("a", "b")))
        .await;
    assert_oauth_error(token, 503, "temporarily_unavailable").await;
    let page = app
        .get_authorize("response_type=code&client_id=abc", None)
        .await;
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.get_status("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // What needs no store keeps working.
    assert_eq!(
        app.get_status("/.well-known/jwks.json").await,
        StatusCode::OK
    );
}

/// A TCP proxy to Redis that the test can cut and restore.
struct Proxy {
    port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

async fn proxy_to(target: String) -> Proxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (up, rx) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !*rx.borrow() {
                continue; // dropped: the client sees the connection close
            }
            let mut rx = rx.clone();
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = rx.wait_for(|up| !*up) => {}
                }
            });
        }
    });
    Proxy { port, up }
}

#[tokio::test]
async fn the_server_recovers_by_itself_when_redis_comes_back() {
    let Some(Backend::Redis(url)) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Redis(_)))
    else {
        eprintln!("REDIS_URL unset: the recovery test needs a real Redis and runs in CI");
        return;
    };
    let target = url::Url::parse(&url).unwrap();
    let proxy = proxy_to(format!(
        "{}:{}",
        target.host_str().unwrap(),
        target.port().unwrap_or(6379)
    ))
    .await;
    let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
    let store = RedisStore::new(&format!("redis://127.0.0.1:{}", proxy.port), &prefix).unwrap();
    let app = spawn_app_with_store(Arc::new(store), |_| {}).await;
    let before = app.user().await;

    proxy.up.send(true).unwrap();
    proxy.up.send_replace(false);
    let during = app
        .post_user(&json!({"username": "during-outage", "password": "long enough"}))
        .await;
    assert_oauth_error(during, 503, "temporarily_unavailable").await;

    proxy.up.send_replace(true);
    let recovered = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let r = app
                .as_user(reqwest::Method::GET, "/api/users/me", &before)
                .send()
                .await
                .unwrap();
            if r.status() == StatusCode::OK {
                return r;
            }
            assert_eq!(
                r.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "only 503s while reconnecting"
            );
        }
    })
    .await
    .expect("the server reconnects without a restart");
    let me: serde_json::Value = recovered.json().await.unwrap();
    assert_eq!(
        me["username"], before.username,
        "data written before the outage is intact"
    );
}

#[tokio::test]
async fn the_memory_store_sweeps_expired_entries_nobody_reads_again() {
    let s = MemoryStore::new();
    for i in 0..5000 {
        s.put(&format!("code:{i}"), b"x", Some(Duration::from_nanos(1)))
            .await
            .unwrap();
    }
    s.put("kept", b"y", None).await.unwrap();
    assert!(s.entries() < 5000, "swept: {} entries left", s.entries());
    assert_eq!(s.get("kept").await.unwrap(), Some(b"y".to_vec()));
}

#[tokio::test]
async fn every_store_counts_atomically_with_incr() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (s, _cleanup) = store_for(&backend);
        let ttl = Duration::from_secs(60);
        assert_eq!(s.incr("n", 1, ttl).await.unwrap(), 1);
        assert_eq!(s.incr("n", 1, ttl).await.unwrap(), 2);
        assert_eq!(s.get("n").await.unwrap(), Some(b"2".to_vec()));
        assert_eq!(
            s.incr("n", -3, ttl).await.unwrap(),
            -1,
            "a counter goes down too"
        );
        assert!(s.delete("n").await.unwrap());
        assert_eq!(
            s.incr("n", 1, ttl).await.unwrap(),
            1,
            "a deleted counter starts again"
        );

        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.incr("c", 1, ttl).await.unwrap() })
            })
            .collect();
        let mut seen = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=50).collect::<Vec<i64>>(), "no increment is lost");

        s.put("seven", b"7", Some(ttl)).await.unwrap();
        assert_eq!(
            s.incr("seven", 1, ttl).await.unwrap(),
            8,
            "a stored number counts on"
        );
        s.put("text", b"abc", None).await.unwrap();
        assert!(s.incr("text", 1, ttl).await.is_err(), "only counters count");
    }
}
