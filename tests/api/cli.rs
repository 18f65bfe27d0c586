//! The `hallpass` binary: configuration errors, key commands, admin user creation.

use std::process::Command;

use serde_json::json;

use crate::helpers::{Backend, backends, spawn_app_with_store};

fn hallpass() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hallpass"));
    cmd.env_remove("REDIS_URL")
        .env_remove("REDIS_CLUSTER_URLS")
        .env("RUST_LOG", "error");
    cmd
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hallpass-cli-{}", hallpass::crypto::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_bad_setting_stops_the_server_with_a_message_that_says_how_to_fix_it() {
    let cases: [(&[&str], &str); 4] = [
        (&["--issuer", "http://auth.example.com"], "HALLPASS_ISSUER"),
        (&["--bind", "nowhere"], "HALLPASS_BIND"),
        (&["--scopes", "bad\"scope=x"], "HALLPASS_SCOPES"),
        (&["--redis-url", "http://127.0.0.1:6379"], "rediss://"),
    ];
    for (args, hint) in cases {
        let out = hallpass().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(hint), "{args:?}: {err}");
    }
    let out = hallpass().args(["--code-ttl", "9999"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("10..=600"));
}

#[test]
fn keys_generate_rotate_list_and_retire_work_with_flags_after_the_subcommand() {
    let dir = temp_dir();
    let d = dir.to_str().unwrap();
    let generated = hallpass()
        .args(["keys", "generate", "--keys-dir", d])
        .output()
        .unwrap();
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let first = String::from_utf8_lossy(&generated.stdout)
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    let pem = dir.join(format!("{first}.pem"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let rot = hallpass()
        .args(["keys", "rotate", "--keys-dir", d])
        .output()
        .unwrap();
    assert!(rot.status.success());
    let next = String::from_utf8_lossy(&rot.stdout)
        .split('\t')
        .next()
        .unwrap()
        .to_string();

    let list = String::from_utf8_lossy(
        &hallpass()
            .args(["keys", "list", "--keys-dir", d])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        list.lines()
            .any(|l| l.starts_with(&first) && l.ends_with("active")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with(&next) && l.ends_with("next")),
        "{list}"
    );

    let refused = hallpass()
        .args(["keys", "retire", &first, "--keys-dir", d])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the only signing key is kept");
    let forced = hallpass()
        .args(["keys", "retire", &first, "--force", "--keys-dir", d])
        .output()
        .unwrap();
    assert!(forced.status.success());
    let list = String::from_utf8_lossy(
        &hallpass()
            .args(["keys", "list", "--keys-dir", d])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string();
    assert!(
        list.lines()
            .any(|l| l.starts_with(&first) && l.ends_with("retired")),
        "{list}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn users_create_refuses_the_memory_store() {
    let out = hallpass()
        .args(["users", "create", "bob"])
        .env("HALLPASS_NEW_USER_PASSWORD", "long enough")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("REDIS_URL"));
}

/// With closed registration, the admin command is how users come to exist.
#[tokio::test]
async fn users_create_makes_a_user_who_can_sign_in() {
    let Some(Backend::Redis(url)) = backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Redis(_)))
    else {
        eprintln!("REDIS_URL unset: the admin-command test needs Redis and runs in CI");
        return;
    };
    let prefix = format!("hallpass-test:{}:", hallpass::crypto::random_id());
    let out = hallpass()
        .args([
            "users",
            "create",
            "carol",
            "--redis-url",
            &url,
            "--redis-prefix",
            &prefix,
        ])
        .env("HALLPASS_NEW_USER_PASSWORD", "carol's long password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store =
        std::sync::Arc::new(hallpass::store::redis::RedisStore::new(&url, &prefix).unwrap());
    let app = spawn_app_with_store(store, |c| c.registration_open = false).await;
    let me = app
        .http
        .get(app.url("/api/users/me"))
        .basic_auth("carol", Some("carol's long password"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), reqwest::StatusCode::OK);
    let closed = app
        .post_user(&json!({"username": "dave", "password": "long enough"}))
        .await;
    assert_eq!(closed.status(), reqwest::StatusCode::FORBIDDEN);
}

/// Each subcommand's help lists only the flags it reads, not every server setting.
#[test]
fn each_subcommand_help_shows_only_its_own_flags() {
    let help = |args: &[&str]| {
        let out = hallpass().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let keys = help(&["keys", "list", "--help"]);
    for flag in ["--keys-dir", "--signing-alg", "--access-token-ttl"] {
        assert!(keys.contains(flag), "keys list --help lacks {flag}: {keys}");
    }
    for flag in ["--issuer", "--redis-url", "--scopes", "--code-ttl"] {
        assert!(
            !keys.contains(flag),
            "keys list --help shows {flag}: {keys}"
        );
    }
    let users = help(&["users", "create", "--help"]);
    assert!(
        users.contains("--redis-url") && users.contains("--redis-prefix"),
        "{users}"
    );
    for flag in ["--issuer", "--keys-dir", "--bind", "--scopes"] {
        assert!(
            !users.contains(flag),
            "users create --help shows {flag}: {users}"
        );
    }
    let serve = help(&["--help"]);
    for flag in [
        "--issuer",
        "--bind",
        "--keys-dir",
        "--redis-url",
        "--max-body-bytes",
    ] {
        assert!(serve.contains(flag), "hallpass --help lacks {flag}");
    }
    assert!(help(&["serve", "--help"]).contains("--issuer"));
}

/// `hallpass serve --flag` reads the same settings as `hallpass --flag`.
#[test]
fn serve_takes_the_server_flags_after_the_subcommand_too() {
    let out = hallpass()
        .args(["serve", "--issuer", "http://auth.example.com"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HALLPASS_ISSUER"));
}
