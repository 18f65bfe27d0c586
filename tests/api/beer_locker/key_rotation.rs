//! Key rotation at Hallpass seen from the beer locker: scheduled rotation and an emergency
//! key, with no restart of the beer locker.

use super::*;

#[tokio::test]
async fn after_a_scheduled_key_rotation_at_hallpass_old_and_new_tokens_keep_working() {
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    let (app, slot) = app_for_locker(|c| c.keys_dir = dir.clone()).await;
    let (ttl, max_age) = (
        app.state.config.access_token_ttl,
        app.state.config.jwks_max_age,
    );
    KeySet::load_or_generate(&dir, SigningAlg::ES256, app.state.now() - 100).unwrap();
    app.state.reload_keys().unwrap();
    let locker = slot.start(&app, &Backend::Memory).await;
    let (token_a, client) = user_token(&app, "beers:read beers:write").await;
    let beer = locker.add_beer(&token_a, &orval()).await;

    // B is published now and signs after one max-age: the beer locker's cache gets it in time.
    let b = keys::rotate(&dir, SigningAlg::ES256, app.state.now(), max_age + 70, ttl)
        .unwrap()
        .kid;
    app.state.reload_keys().unwrap();
    app.clock.advance(max_age + 70);
    let token_b = token_for(&app, &client, "beers:read beers:write").await;

    assert_eq!(kid_of(&token_b), b);
    assert_ne!(kid_of(&token_a), b);
    assert_eq!(
        locker.beers(&token_b).await,
        vec![beer.clone()],
        "new key accepted without a restart"
    );
    assert_eq!(
        locker.beers(&token_a).await,
        vec![beer],
        "the retiring key still verifies"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_key_hallpass_starts_signing_with_at_once_is_fetched_on_its_first_token() {
    let dir = std::env::temp_dir().join(format!("hallpass-keys-{}", hallpass::crypto::random_id()));
    let (app, slot) = app_for_locker(|c| c.keys_dir = dir.clone()).await;
    let now = app.state.now();
    let (set, _) = KeySet::load_or_generate(&dir, SigningAlg::ES256, now - 100).unwrap();
    let a = set.active(now).unwrap().kid.clone();
    app.state.reload_keys().unwrap();
    let locker = slot.start(&app, &Backend::Memory).await;
    let (token_a, client) = user_token(&app, "beers:read beers:write").await;
    let beer = locker.add_beer(&token_a, &orval()).await;

    // Emergency rotation: C signs at once and A is retired, long before the cache expires.
    let (c, der) = SigningKey::generate(SigningAlg::ES256, now - 5, now - 5).unwrap();
    c.write(&dir, &der).unwrap();
    keys::retire(&dir, &a, now, false).unwrap();
    app.state.reload_keys().unwrap();
    app.clock
        .advance(hallpass::verify::DEFAULT_MIN_REFRESH_INTERVAL.as_secs());
    let token_c = token_for(&app, &client, "beers:read beers:write").await;

    assert_eq!(kid_of(&token_c), c.kid);
    assert_eq!(
        locker.beers(&token_c).await,
        vec![beer],
        "the unknown kid made the beer locker refetch"
    );
    let resp = locker.get("/api/beers", &token_a).await;
    let challenge = assert_refused(resp, 401, "invalid_token", &locker).await;
    assert!(
        challenge.contains("does not publish"),
        "A left the JWKS: {challenge}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
