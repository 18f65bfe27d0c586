//! The Redis backends beyond one plain node: operator messages for each way Redis can be
//! misconfigured, writes that run twice (as redis-rs resends a command that timed out), and
//! several instances sharing one store (the cluster when `.ci/redis-up` started it) and one
//! keys directory.

use std::{path::PathBuf, sync::Arc};

use hallpass::store::redis::{Problem, RedisOptions, RedisStore};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, assert_oauth_error, backends, cluster_backend, hidden_input, location,
    query_params, spawn_app_with_store,
};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn problem(options: RedisOptions) -> Problem {
    RedisStore::open(options)
        .check()
        .await
        .expect_err("the check fails")
}

#[tokio::test]
async fn each_misconfiguration_is_named_for_the_operator() {
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let unreachable = problem(RedisOptions::node(
        &format!("redis://127.0.0.1:{port}"),
        "x:",
    ))
    .await;
    assert!(
        matches!(&unreachable, Problem::Unreachable(m) if m.contains("unreachable")),
        "{unreachable:?}"
    );

    let Some(url) = env("REDIS_URL") else {
        eprintln!("REDIS_URL unset: the misconfiguration messages need Redis and run in CI");
        return;
    };
    let base = url.trim_end_matches('/');
    let wrong_user = base.replacen("redis://", "redis://nobody-here:wrong@", 1);
    let p = problem(RedisOptions::node(&wrong_user, "x:")).await;
    assert!(
        matches!(&p, Problem::Fatal(m) if m.contains("wrong username or password")),
        "{p:?}"
    );

    let p = problem(RedisOptions::node(&format!("{base}/999"), "x:")).await;
    assert!(
        matches!(&p, Problem::Fatal(m) if m.contains("DB index")),
        "{p:?}"
    );

    let (Some(tls), Some(other_ca)) = (env("REDIS_TLS_URL"), env("REDIS_TLS_OTHER_CA_FILE")) else {
        eprintln!("REDIS_TLS_URL unset: the wrong-CA message needs the TLS Redis of .ci/redis-up");
        return;
    };
    let mut options = RedisOptions::node(&tls, "x:");
    options.ca_file = Some(PathBuf::from(other_ca));
    let p = problem(options.clone()).await;
    assert!(
        matches!(&p, Problem::Fatal(m) if m.contains("TLS")),
        "{p:?}"
    );
    // The server refuses to start on it, with that message.
    let err = hallpass::startup::check_redis(Some(&options))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HALLPASS_REDIS_CA_FILE"), "{err}");
}

#[test]
fn users_create_speaks_cli_when_redis_is_misconfigured() {
    let Some(url) = env("REDIS_URL") else {
        eprintln!("REDIS_URL unset: runs in CI");
        return;
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .args(["users", "create", "someone"])
        .env("REDIS_URL", format!("{}/999", url.trim_end_matches('/')))
        .env_remove("REDIS_CLUSTER_URLS")
        .env("HALLPASS_NEW_USER_PASSWORD", "a long enough password 1")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DB index"), "{stderr}");
    assert!(
        !stderr.contains("503") && !stderr.contains("temporarily_unavailable"),
        "{stderr}"
    );
}

/// Every Redis backend, with every command sent twice.
fn twice_backends() -> Vec<(Backend, Arc<RedisStore>)> {
    backends()
        .into_iter()
        .filter_map(|b| {
            let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
            let mut options = b.redis_options(&prefix)?;
            options.send_twice = true;
            Some((b, Arc::new(RedisStore::open(options).with_journal())))
        })
        .collect()
}

async fn expire(store: &RedisStore) {
    let keys: Vec<String> = store
        .journal()
        .map(|j| j.lock().unwrap().iter().cloned().collect())
        .unwrap_or_default();
    store
        .expire_keys(&keys, std::time::Duration::from_secs(60))
        .await
        .unwrap();
}

/// A take or a compare-and-swap that Redis executes twice still succeeds once: a code is
/// redeemed (and only once), and a refresh rotates without being mistaken for reuse.
#[tokio::test]
async fn writes_executed_twice_keep_their_first_result() {
    for (backend, store) in twice_backends() {
        eprintln!("-- store (every command twice): {backend:?}");
        let app = spawn_app_with_store(store.clone(), |_| {}).await;
        let c = app.refreshing_client().await;
        let code = app.code_for(&c, &[("scope", "offline_access")]).await;
        let resp = app.redeem(&c, &code).await;
        assert_eq!(resp.status(), StatusCode::OK, "the code is redeemed");
        let body: Value = resp.json().await.unwrap();

        let rt1 = body["refresh_token"].as_str().unwrap().to_string();
        let second = app.refresh(&c, &rt1, None).await;
        assert_eq!(second.status(), StatusCode::OK, "the rotation succeeds");
        let rt2: Value = second.json().await.unwrap();
        let third = app
            .refresh(&c, rt2["refresh_token"].as_str().unwrap(), None)
            .await;
        assert_eq!(third.status(), StatusCode::OK, "the family is not revoked");
        // Still only once (and the replay revokes what the code bought).
        assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;
        drop(app);
        expire(&store).await;
    }
}

/// Commands issued together leave together (the store's coalescing queue), yet each gets
/// its own answer: 300 concurrent writes and reads of distinct keys read back their own
/// values, and of 50 concurrent creations of one key exactly one wins.
#[tokio::test]
async fn concurrent_commands_sent_together_each_get_their_own_answer() {
    use hallpass::store::Store;
    for b in backends() {
        let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
        let Some(options) = b.redis_options(&prefix) else {
            continue;
        };
        eprintln!("-- store: {b:?}");
        let store = Arc::new(RedisStore::open(options).with_journal());
        let ttl = Some(std::time::Duration::from_secs(60));
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..300 {
            let store = store.clone();
            writes.spawn(async move {
                store
                    .put(&format!("k{i}"), format!("v{i}").as_bytes(), ttl)
                    .await
            });
        }
        while let Some(w) = writes.join_next().await {
            w.unwrap().unwrap();
        }
        let mut reads = tokio::task::JoinSet::new();
        for i in 0..300 {
            let store = store.clone();
            reads.spawn(async move {
                let (a, b) = (format!("k{i}"), format!("k{}", (i + 1) % 300));
                (i, store.get_many(&[&a, &b]).await.unwrap())
            });
        }
        while let Some(r) = reads.join_next().await {
            let (i, values) = r.unwrap();
            assert_eq!(values[0].as_deref(), Some(format!("v{i}").as_bytes()));
            let next = format!("v{}", (i + 1) % 300);
            assert_eq!(values[1].as_deref(), Some(next.as_bytes()));
        }
        let mut creations = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let store = store.clone();
            creations.spawn(async move { store.put_new("once", b"1", ttl).await.unwrap() });
        }
        let mut won = 0;
        while let Some(c) = creations.join_next().await {
            won += usize::from(c.unwrap());
        }
        assert_eq!(won, 1, "exactly one creation wins");
        expire(&store).await;
    }
}

/// Three instances share the store and the keys directory, behind one issuer: sign in on the
/// first, consent on the second, redeem on the third; refresh on two; revoke on one.
#[tokio::test]
async fn three_instances_share_sessions_codes_families_and_revocations() {
    let backend = cluster_backend().unwrap_or(Backend::Memory);
    eprintln!("-- store: {backend:?}");
    let (store, _cleanup) = backend.store("hallpass-test");
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    let issuer = "http://127.0.0.1:9";
    let spawn = || {
        let (store, dir) = (store.clone(), dir.clone());
        async move {
            spawn_app_with_store(store, move |c| {
                c.keys_dir = dir;
                c.issuer = issuer.into();
                c.audience = issuer.into();
            })
            .await
        }
    };
    let (a, b, c3): (TestApp, TestApp, TestApp) = (spawn().await, spawn().await, spawn().await);
    let client = a.refreshing_client().await;
    let query = a.authorize_query(&client, &[("scope", "offline_access")]);

    let session = a.login(&client.owner).await;
    let page = b.get_authorize(&query, Some(&session)).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "instance 2 knows instance 1's session"
    );
    let txn = hidden_input(&page.text().await.unwrap(), "txn").unwrap();
    let resp = b.post_consent(&session, &txn, "allow").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = query_params(&location(&resp))["code"].clone();
    let resp = c3.redeem(&client, &code).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "instance 3 redeems instance 2's code"
    );
    let tokens: Value = resp.json().await.unwrap();

    let rt1 = tokens["refresh_token"].as_str().unwrap();
    let r2: Value = a.refresh(&client, rt1, None).await.json().await.unwrap();
    assert!(r2.get("refresh_token").is_some(), "{r2}");
    let rt2 = r2["refresh_token"].as_str().unwrap();
    let r3 = b.refresh(&client, rt2, None).await;
    assert_eq!(
        r3.status(),
        StatusCode::OK,
        "a rotation on instance 1 continues on instance 2"
    );
    let r3: Value = r3.json().await.unwrap();

    let access = r3["access_token"].as_str().unwrap();
    for app in [&a, &b, &c3] {
        assert_eq!(app.me_status(access).await, 200);
    }
    let resp = c3
        .post_client_form("/oauth2/revoke", &client, &[("token", access)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for app in [&a, &b, &c3] {
        assert_eq!(
            app.me_status(access).await,
            401,
            "the revocation holds everywhere"
        );
    }
    assert_oauth_error(a.redeem(&client, &code).await, 400, "invalid_grant").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `HALLPASS_REDIS_WAIT_REPLICAS`, security-critical writes wait for the replicas: on the
/// cluster (one replica per master) one replica acknowledges and the flow works; asking for
/// more replicas than exist makes those writes answer 503 with `Retry-After`.
#[tokio::test]
async fn security_critical_writes_wait_for_replicas_or_answer_503() {
    let Some(backend) = cluster_backend() else {
        eprintln!(
            "REDIS_CLUSTER_URLS unset: the durability test needs the cluster of .ci/redis-up"
        );
        return;
    };
    for (replicas, redeemed) in [(1, true), (3, false)] {
        let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
        let mut options = backend.redis_options(&prefix).unwrap();
        options.wait_replicas = replicas;
        options.wait_timeout = std::time::Duration::from_millis(200);
        // The client is registered through a store that does not wait (a client record is
        // security-critical too: see below).
        let mut plain = options.clone();
        plain.wait_replicas = 0;
        let plain = Arc::new(RedisStore::open(plain).with_journal());
        let setup = spawn_app_with_store(plain.clone(), |_| {}).await;
        let c = setup.confidential_client().await;
        let store = Arc::new(RedisStore::open(options).with_journal());
        let app = spawn_app_with_store(store.clone(), |_| {}).await;
        if !redeemed {
            let resp = app
                .post_client(
                    &c.owner,
                    &json!({"client_name": "N", "redirect_uris": ["https://app.example/cb"]}),
                )
                .await;
            assert_eq!(
                resp.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "a client write is not durable"
            );
        }
        let query = app.authorize_query(&c, &[]);
        let session = app.login(&c.owner).await;
        let txn = app.consent_txn(&query, &session).await;
        let resp = app.post_consent(&session, &txn, "allow").await;
        if redeemed {
            assert_eq!(resp.status(), StatusCode::SEE_OTHER);
            let code = query_params(&location(&resp))["code"].clone();
            assert_eq!(app.redeem(&c, &code).await.status(), StatusCode::OK);
        } else {
            assert_eq!(
                resp.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "the code write is not durable"
            );
            assert!(resp.headers().contains_key("retry-after"));
        }
        drop(app);
        drop(setup);
        expire(&store).await;
        expire(&plain).await;
    }
}

/// A TCP proxy to `upstream` that stops forwarding, both ways, while its switch is on: a Redis
/// that hangs with its sockets open, as a SIGSTOPped master does.
async fn freezable_proxy(upstream: String) -> (String, tokio::sync::watch::Sender<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (frozen, watch) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                ),
                (Box::new(sr), Box::new(cw)),
            ] {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buf).await {
                        if watch.wait_for(|frozen| !*frozen).await.is_err()
                            || to.write_all(&buf[..n]).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        }
    });
    (format!("redis://{addr}"), frozen)
}

/// A node that stops answering with its sockets open makes the store drop its connection
/// after three timeouts in a row and reconnect on a later command; the rebuild is counted
/// once and exported as `hallpass_store_reconnects_total`.
#[tokio::test]
async fn repeated_timeouts_rebuild_the_connection_once_and_metrics_count_it() {
    let Some(url) = env("REDIS_URL") else {
        eprintln!("REDIS_URL unset: the rebuild test needs a Redis to hang in front of");
        return;
    };
    let upstream = url::Url::parse(&url).unwrap();
    let upstream = format!(
        "{}:{}",
        upstream.host_str().unwrap(),
        upstream.port().unwrap_or(6379)
    );
    let (proxy, frozen) = freezable_proxy(upstream).await;
    let mut options = RedisOptions::node(&proxy, "hallpass-test-rebuild:");
    options.connect_timeout = std::time::Duration::from_millis(100);
    options.response_timeout = std::time::Duration::from_millis(100);
    let store = Arc::new(RedisStore::open(options));
    let app = spawn_app_with_store(store.clone(), |_| {}).await;
    use hallpass::store::Store;
    store.ping().await.unwrap();
    assert_eq!(store.reconnects(), 0);

    // Act: the node hangs; six commands fail (three time out, and then the new connection
    // cannot be made while it hangs).
    frozen.send_replace(true);
    for _ in 0..6 {
        assert!(store.ping().await.is_err(), "a hung node times out");
    }
    let while_hung = store.reconnects();
    frozen.send_replace(false);
    store.ping().await.unwrap();

    // Assert: one rebuild (the second three timeouts came within the second), then healthy.
    assert_eq!(
        while_hung, 1,
        "rebuilt after three timeouts, once a second at most"
    );
    assert_eq!(store.reconnects(), 1);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l == "hallpass_store_reconnects_total 1"),
        "{text}"
    );
}
