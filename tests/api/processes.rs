//! Three `hallpass` processes (the built binary, not in-process servers) share one store and
//! one keys directory behind one issuer, as instances behind a load balancer do: a user signs
//! in on the first, consents on the second, and the code is redeemed on the third; a refresh
//! token rotates on two instances; a revocation on one holds on the others.
//!
//! The store is the Redis Cluster (`REDIS_CLUSTER_URLS`), else one Redis (`REDIS_URL`).
//! Processes cannot share a memory store, so without either the test says so and stops
//! (`.ci/redis-up` starts both). Each process binds port 0 and prints `listening on …`;
//! readiness is polled on `/readyz` within a deadline. Its keys live under a prefix unique to
//! the test and are deleted at the end; the processes are killed on drop.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::Value;

use crate::{
    backends::{PrefixCleanup, delete_prefix},
    helpers::{
        Backend, Remote, assert_oauth_error, backends, cluster_backend, hidden_input, location,
        query_params,
    },
};

/// The one issuer of all three processes (the load balancer's address; nothing listens there).
const ISSUER: &str = "http://127.0.0.1:9";
/// How long a process may take to bind and to become ready.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A `hallpass` process; killed when dropped. Derefs to its [`Remote`].
struct HallpassProcess {
    child: Child,
    remote: Remote,
}

impl std::ops::Deref for HallpassProcess {
    type Target = Remote;

    fn deref(&self) -> &Remote {
        &self.remote
    }
}

impl Drop for HallpassProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store the processes can share: the cluster, else one Redis node.
fn shared_backend() -> Option<Backend> {
    cluster_backend().or_else(|| {
        backends()
            .into_iter()
            .find(|b| matches!(b, Backend::Redis(_)))
    })
}

/// Starts `hallpass serve` on port 0 with the store of `backend` under `prefix` and the keys
/// in `keys_dir`; returns once it answers 200 on `/readyz`. Its log goes to `log`.
async fn start(backend: &Backend, prefix: &str, keys_dir: &Path, log: PathBuf) -> HallpassProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hallpass"));
    cmd.arg("serve")
        .env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env_remove("HALLPASS_AUDIENCE")
        .env("HALLPASS_BIND", "127.0.0.1:0")
        .env("HALLPASS_ISSUER", ISSUER)
        .env("HALLPASS_KEYS_DIR", keys_dir)
        .env("HALLPASS_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    match backend {
        Backend::Cluster(seeds) => cmd.env("REDIS_CLUSTER_URLS", seeds.join(",")),
        Backend::Redis(url) => cmd.env("REDIS_URL", url),
        other => panic!("processes cannot share {other:?}"),
    };
    let mut child = cmd.spawn().expect("the hallpass binary starts");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(
        START_DEADLINE,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        }),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        panic!("hallpass printed {line:?}; its log: {}", log_text());
    };
    let process = HallpassProcess {
        child,
        remote: Remote::new(format!("http://{addr}")),
    };
    // Bound, but the store may not answer yet: poll readiness within the deadline.
    let deadline = Instant::now() + START_DEADLINE;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        if process.get_status("/readyz").await == StatusCode::OK {
            return process;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} not ready within {START_DEADLINE:?}; its log: {}",
            log_text()
        );
    }
}

#[tokio::test]
async fn three_processes_share_sessions_codes_refresh_families_and_revocations() {
    let Some(backend) = shared_backend() else {
        eprintln!(
            "skipped: neither REDIS_CLUSTER_URLS nor REDIS_URL is set, and separate processes cannot share the memory store; eval \"$(.ci/redis-up)\" first"
        );
        return;
    };
    eprintln!("-- store: {backend:?}");
    // Arrange: one keys directory, its key made once (as an operator would), three processes.
    let prefix = format!("hallpass-processes:{}:", hallpass::crypto::random_id());
    let cleanup = PrefixCleanup {
        backend: backend.clone(),
        prefix: prefix.clone(),
    };
    let dir = std::env::temp_dir().join(format!(
        "hallpass-processes-{}",
        hallpass::crypto::random_id()
    ));
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let generated = Command::new(env!("CARGO_BIN_EXE_hallpass"))
        .args(["keys", "generate", "--keys-dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let mut processes = Vec::new();
    for n in 1..=3 {
        processes.push(start(&backend, &prefix, &keys, dir.join(format!("{n}.log"))).await);
    }
    let [first, second, third] = &processes[..] else {
        unreachable!()
    };
    let ports: std::collections::BTreeSet<&str> =
        processes.iter().map(|p| p.address.as_str()).collect();
    assert_eq!(ports.len(), 3, "three processes on three ports");

    // Act and assert: sign in on the first, consent on the second, redeem on the third.
    let client = first.refreshing_client().await;
    let query = first.authorize_query(&client, &[("scope", "offline_access")]);
    let session = first.login(&client.owner).await;
    let page = second.get_authorize(&query, Some(&session)).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "process 2 knows process 1's session"
    );
    let txn = hidden_input(&page.text().await.unwrap(), "txn").unwrap();
    let resp = second.post_consent(&session, &txn, "allow").await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let code = query_params(&location(&resp))["code"].clone();
    let resp = third.redeem(&client, &code).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "process 3 redeems process 2's code"
    );
    let tokens: Value = resp.json().await.unwrap();

    // A refresh token rotates on the first, its successor on the second.
    let rt1 = tokens["refresh_token"].as_str().unwrap();
    let resp = first.refresh(&client, rt1, None).await;
    assert_eq!(resp.status(), StatusCode::OK, "rotation on process 1");
    let rotated: Value = resp.json().await.unwrap();
    let rt2 = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    let resp = second.refresh(&client, rt2, None).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "process 2 continues process 1's rotation"
    );
    let rotated: Value = resp.json().await.unwrap();
    let rt3 = rotated["refresh_token"].as_str().unwrap().to_string();
    let access = rotated["access_token"].as_str().unwrap().to_string();

    // A revocation on one process holds on the others: the access token on the third...
    for p in &processes {
        assert_eq!(p.me_status(&access).await, 200, "{}", p.address);
    }
    let resp = third
        .post_client_form("/oauth2/revoke", &client, &[("token", &access)])
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for p in &processes {
        assert_eq!(
            p.me_status(&access).await,
            401,
            "the revocation holds on {}",
            p.address
        );
    }
    // ...and the refresh family on the first.
    let resp = first
        .post_client_form(
            "/oauth2/revoke",
            &client,
            &[("token", &rt3), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for p in [second, third] {
        assert_oauth_error(p.refresh(&client, &rt3, None).await, 400, "invalid_grant").await;
    }
    // The code was redeemed once, on the third; the first refuses it again.
    assert_oauth_error(first.redeem(&client, &code).await, 400, "invalid_grant").await;

    // Every key was in the shared store under the test's prefix; none is left behind.
    drop(processes);
    let deleted = delete_prefix(&backend, &prefix);
    assert!(deleted > 0, "the processes wrote to the shared store");
    assert_eq!(delete_prefix(&backend, &prefix), 0, "no key is left behind");
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&dir);
}
