//! One signing key walked through next → active → retiring → retired, with tokens signed
//! before and after verifying throughout; and two instances agreeing on the active key.

use std::sync::Arc;

use hallpass::{
    config::SigningAlg,
    keys::{self, KeySet, KeyState},
    store::{Store, memory::MemoryStore},
};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app_on, spawn_app_with_store};

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn machine_token(app: &TestApp, c: &crate::helpers::TestClient) -> String {
    let body: Value = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&c.client_id, c.client_secret.as_deref().unwrap())),
        )
        .await
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_key_walks_through_every_state_while_old_and_new_tokens_keep_verifying() {
    let dir = temp_dir();
    let app = spawn_app_on(Backend::Memory, |c| c.keys_dir = dir.clone()).await;
    let (ttl, max_age) = (
        app.state.config.access_token_ttl,
        app.state.config.jwks_max_age,
    );
    let now = app.state.now();
    let (first_set, _) = KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 100).unwrap();
    let a = first_set.active(now).unwrap().kid.clone();
    app.state.reload_keys().unwrap();
    let c = app
        .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;
    let token_a = machine_token(&app, &c).await;
    assert_eq!(kid_of(&token_a), a);

    // Rotate: B is published at once but signs only after one max-age (plus a margin).
    let b = keys::rotate(&dir, SigningAlg::ES256, now, max_age + 70, ttl)
        .unwrap()
        .kid;
    app.state.reload_keys().unwrap();
    let set = app.state.keys();
    assert_eq!(
        set.state_of(set.all().iter().find(|k| k.kid == b).unwrap(), now, ttl),
        KeyState::Next
    );
    assert_eq!(jwks_kids(&app).await, vec![b.clone(), a.clone()]);
    assert_eq!(
        kid_of(&machine_token(&app, &c).await),
        a,
        "a next key signs nothing"
    );

    // B becomes active; A is retiring and still published, so A's tokens verify.
    app.clock.advance(max_age + 70);
    let token_b = machine_token(&app, &c).await;
    assert_eq!(kid_of(&token_b), b);
    let set = app.state.keys();
    let key_a = set.all().iter().find(|k| k.kid == a).unwrap();
    assert_eq!(
        set.state_of(key_a, app.state.now(), ttl),
        KeyState::Retiring
    );
    assert_eq!(jwks_kids(&app).await, vec![b.clone(), a.clone()]);
    assert_eq!(app.introspect(&c, &token_b).await["active"], true);

    // Once every token A signed has expired, A is retired and unpublished.
    app.clock.advance(ttl + 31);
    let set = app.state.keys();
    let key_a = set.all().iter().find(|k| k.kid == a).unwrap();
    assert_eq!(set.state_of(key_a, app.state.now(), ttl), KeyState::Retired);
    assert_eq!(jwks_kids(&app).await, vec![b.clone()]);
    let token_b2 = machine_token(&app, &c).await;
    assert_eq!(app.introspect(&c, &token_b2).await["active"], true);

    // The next rotation deletes the retired key's files.
    // Its files stay until no token of any configured lifetime (at most a day) can be alive.
    keys::rotate(&dir, SigningAlg::ES256, app.state.now(), max_age + 70, ttl).unwrap();
    assert!(dir.join(format!("{a}.pem")).exists());
    let a_day_later = app.state.now() + keys::MAX_TOKEN_LIFETIME;
    keys::rotate(&dir, SigningAlg::ES256, a_day_later, max_age + 70, ttl).unwrap();
    assert!(!dir.join(format!("{a}.pem")).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tokens_signed_before_a_rotation_verify_until_they_expire() {
    let dir = temp_dir();
    let app = spawn_app_on(Backend::Memory, |c| c.keys_dir = dir.clone()).await;
    let (ttl, max_age) = (
        app.state.config.access_token_ttl,
        app.state.config.jwks_max_age,
    );
    KeySet::load_or_generate(&dir, SigningAlg::ES256, app.state.now() - 10).unwrap();
    app.state.reload_keys().unwrap();
    let c = app
        .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;

    keys::rotate(&dir, SigningAlg::ES256, app.state.now(), max_age + 70, ttl).unwrap();
    app.state.reload_keys().unwrap();
    app.clock.advance(max_age + 60);
    let old = machine_token(&app, &c).await; // still signed by A, ten seconds before B takes over
    app.clock.advance(10 + ttl - 5);
    assert_eq!(
        app.introspect(&c, &old).await["active"],
        true,
        "A is still published"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_at_once_and_its_tokens_stop_verifying() {
    let dir = temp_dir();
    let app = spawn_app_on(Backend::Memory, |c| c.keys_dir = dir.clone()).await;
    let now = app.state.now();
    let (set, _) = KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 10).unwrap();
    let a = set.active(now).unwrap().kid.clone();
    app.state.reload_keys().unwrap();
    let c = app
        .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;
    let token_a = machine_token(&app, &c).await;

    assert!(
        keys::retire(&dir, &a, now, false).is_err(),
        "the only signing key is not retired by accident"
    );
    let (b, der) =
        hallpass::keys::SigningKey::generate(SigningAlg::ES256, now - 5, now - 5).unwrap();
    b.write(&dir, &der).unwrap();
    keys::retire(&dir, &a, now, false).unwrap();
    app.state.reload_keys().unwrap();

    assert_eq!(jwks_kids(&app).await, vec![b.kid.clone()]);
    assert_eq!(app.introspect(&c, &token_a).await, json!({"active": false}));
    assert_eq!(kid_of(&machine_token(&app, &c).await), b.kid);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn two_instances_sharing_keys_and_store_agree_on_the_active_key() {
    let dir = temp_dir();
    let now = hallpass::time::SystemClock.now_secs();
    KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 10).unwrap();
    keys::rotate(&dir, SigningAlg::ES256, now - 400, 300, 600).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let issuer = "http://hallpass.test".to_string();
    let mut apps = Vec::new();
    for _ in 0..2 {
        let (d, i) = (dir.clone(), issuer.clone());
        let app = spawn_app_with_store(store.clone(), move |c| {
            c.keys_dir = d;
            c.issuer = i.clone();
            c.audience = i;
        })
        .await;
        app.state.reload_keys().unwrap();
        apps.push(app);
    }
    let c = apps[0]
        .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;
    let t0 = machine_token(&apps[0], &c).await;
    let t1 = machine_token(&apps[1], &c).await;
    assert_eq!(kid_of(&t0), kid_of(&t1));
    assert_eq!(apps[1].introspect(&c, &t0).await["active"], true);
    assert_eq!(apps[0].introspect(&c, &t1).await["active"], true);
    assert_eq!(jwks_kids(&apps[0]).await, jwks_kids(&apps[1]).await);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With `HALLPASS_KEY_ROTATION_DAYS`, instances rotate on schedule with no leader: exactly
/// one of them makes the next key, published a lead time before the period ends.
#[tokio::test]
async fn scheduled_rotation_makes_exactly_one_next_key_among_several_instances() {
    let dir = temp_dir();
    let now = hallpass::time::SystemClock.now_secs();
    KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 10).unwrap();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let period = 86_400;
    let mut apps = Vec::new();
    for _ in 0..3 {
        let d = dir.clone();
        let app = spawn_app_with_store(store.clone(), move |c| {
            c.keys_dir = d;
            c.key_rotation_secs = Some(period);
        })
        .await;
        app.state.reload_keys().unwrap();
        apps.push(app);
    }
    let lead = keys::rotation_lead(apps[0].state.config.jwks_max_age);

    for app in &apps {
        assert_eq!(
            keys::rotate_if_due(&app.state).await.unwrap(),
            None,
            "not due yet"
        );
        app.clock.advance(period - lead - 10 + 1);
    }
    let mut made = Vec::new();
    for app in &apps {
        made.extend(keys::rotate_if_due(&app.state).await.unwrap());
    }
    assert_eq!(made.len(), 1, "exactly one instance rotated: {made:?}");
    for app in &apps {
        app.state.reload_keys().unwrap();
        assert_eq!(
            keys::rotate_if_due(&app.state).await.unwrap(),
            None,
            "a next key is already waiting"
        );
        let keys = app.state.keys();
        let next = keys.all().iter().find(|k| k.kid == made[0]).unwrap();
        assert_eq!(keys.state_of(next, app.state.now(), 600), KeyState::Next);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
