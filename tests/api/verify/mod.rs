//! `hallpass::verify`, the offline verifier resource servers embed: against a real Hallpass,
//! and against a small JWKS server of the test's own whose key set the test swaps, counting
//! every fetch. Time moves on a mock clock; nothing sleeps.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hallpass::{
    config::SigningAlg,
    keys::SigningKey,
    time::{Clock, MockClock},
    verify::{Verifier, VerifyError},
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

mod feed;
mod support;
pub use support::*;

/// A test JWKS server with one ES256 key, a mock clock and a verifier on it.
async fn setup() -> (JwksServer, SigningKey, Arc<MockClock>, Verifier) {
    let key = key(SigningAlg::ES256);
    let server = JwksServer::start(&[&key]).await;
    let clock = Arc::new(MockClock::new());
    let verifier = server.verifier(&clock);
    (server, key, clock, verifier)
}

async fn hallpass_token(app: &TestApp, scope: &str) -> (String, crate::helpers::TestClient) {
    let client = app.confidential_client().await;
    let code = app.code_for(&client, &[("scope", scope)]).await;
    let body: Value = app.redeem(&client, &code).await.json().await.unwrap();
    (body["access_token"].as_str().unwrap().to_string(), client)
}

fn hallpass_verifier(app: &TestApp) -> Verifier {
    let clock: Arc<dyn Clock> = app.clock.clone();
    Verifier::builder(&app.address, &app.address)
        .clock(clock)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_token_from_the_hallpass_code_flow_verifies_with_typed_claims() {
    let app = spawn_app().await;
    let verifier = hallpass_verifier(&app);
    let (token, client) = hallpass_token(&app, "beers:read beers:write").await;

    let claims = verifier
        .verify_with_scopes(&token, &["beers:read", "beers:write"])
        .await
        .unwrap();

    assert_eq!(claims.iss, app.address);
    assert_eq!(claims.sub, client.owner.id);
    assert_eq!(claims.aud, vec![app.address.clone()]);
    assert_eq!(claims.client_id, client.client_id);
    assert_eq!(
        claims.scopes().collect::<Vec<_>>(),
        ["beers:read", "beers:write"]
    );
    assert_eq!(claims.exp, claims.iat + app.state.config.access_token_ttl);
    assert_eq!(claims.auth_time, Some(claims.iat));
    assert!(!claims.jti.is_empty());
    assert_eq!(
        verifier.jwks_fetches(),
        1,
        "keys discovered through the metadata and fetched once"
    );
    verifier.verify(&token).await.unwrap();
    assert_eq!(
        verifier.jwks_fetches(),
        1,
        "the second token is checked from the cache"
    );
}

#[tokio::test]
async fn an_expired_key_cache_is_revalidated_and_keeps_verifying() {
    let app = spawn_app().await;
    let verifier = hallpass_verifier(&app);
    let (token, _) = hallpass_token(&app, "beers:read").await;
    verifier.verify(&token).await.unwrap();

    app.clock.advance(app.state.config.jwks_max_age + 1);
    let again = verifier.verify(&token).await;

    assert!(again.is_ok(), "{again:?}");
    assert_eq!(
        verifier.jwks_fetches(),
        2,
        "max-age passed: the JWKS was asked again (If-None-Match)"
    );
}

#[tokio::test]
async fn a_token_from_another_hallpass_is_refused_as_signed_by_an_unknown_key() {
    let app = spawn_app().await;
    let other = spawn_app().await;
    let verifier = hallpass_verifier(&app);
    let (ours, _) = hallpass_token(&app, "beers:read").await;
    verifier.verify(&ours).await.unwrap();
    let (theirs, _) = hallpass_token(&other, "beers:read").await;

    assert_eq!(verifier.verify(&theirs).await, Err(VerifyError::UnknownKey));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_tokens_with_unknown_kids_causes_at_most_one_jwks_fetch() {
    let (server, key, clock, verifier) = setup().await;
    verifier
        .verify(&mint(&key, &server.claims(clock.now())))
        .await
        .unwrap();
    assert_eq!(server.jwks_fetches(), 1);
    clock.advance(MIN_REFRESH);
    let forged: Vec<String> = (0..1000)
        .map(|_| {
            let header =
                json!({"alg": "ES256", "typ": "at+jwt", "kid": hallpass::crypto::random_id()});
            mint_raw(&key, &header, &server.claims(clock.now()))
        })
        .collect();

    let tasks: Vec<_> = forged
        .into_iter()
        .map(|t| {
            let v = verifier.clone();
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(VerifyError::UnknownKey));
    }

    assert_eq!(server.jwks_fetches(), 2, "one refetch for the whole burst");
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "yet-another"});
    let late = verifier
        .verify(&mint_raw(&key, &header, &server.claims(clock.now())))
        .await;
    assert_eq!(late, Err(VerifyError::UnknownKey));
    assert_eq!(
        server.jwks_fetches(),
        2,
        "no second fetch within the interval"
    );
    assert_eq!(server.metadata_fetches(), 1, "jwks_uri is discovered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_verifications_share_one_jwks_fetch() {
    let (server, key, clock, verifier) = setup().await;
    let tokens: Vec<String> = (0..200)
        .map(|_| mint(&key, &server.claims(clock.now())))
        .collect();

    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let v = verifier.clone();
            tokio::spawn(async move { v.verify(&t).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_ok());
    }

    assert_eq!(server.metadata_fetches(), 1);
    assert_eq!(server.jwks_fetches(), 1);
}

#[tokio::test]
async fn unknown_kids_trigger_a_refetch_only_once_the_minimum_interval_has_passed() {
    let (server, key, clock, verifier) = setup().await;
    verifier
        .verify(&mint(&key, &server.claims(clock.now())))
        .await
        .unwrap();
    let unknown = |now| {
        mint_raw(
            &key,
            &json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}),
            &server.claims(now),
        )
    };

    assert_eq!(
        verifier.verify(&unknown(clock.now())).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(server.jwks_fetches(), 1, "the last fetch is too recent");
    clock.advance(MIN_REFRESH - 1);
    assert_eq!(
        verifier.verify(&unknown(clock.now())).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(server.jwks_fetches(), 1);
    clock.advance(1);
    assert_eq!(
        verifier.verify(&unknown(clock.now())).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(server.jwks_fetches(), 2);
}

#[tokio::test]
async fn the_key_cache_lives_as_long_as_the_jwks_max_age() {
    let (server, key, clock, verifier) = setup().await;
    server.cache_control("public, max-age=60");
    let token = mint(&key, &server.claims(clock.now()));
    verifier.verify(&token).await.unwrap();

    clock.advance(59);
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.jwks_fetches(), 1, "still fresh");
    clock.advance(1);
    verifier.verify(&token).await.unwrap();
    assert_eq!(server.jwks_fetches(), 2, "max-age reached: refetched");
}

#[tokio::test]
async fn after_a_key_rotation_old_and_new_tokens_verify_without_a_restart() {
    let (server, old_key, clock, verifier) = setup().await;
    let old_token = mint(&old_key, &server.claims(clock.now()));
    verifier.verify(&old_token).await.unwrap();

    // The issuer rotates out of schedule: a new key signs at once, the old one is still published.
    let new_key = key(SigningAlg::ES256);
    server.publish(&[&new_key, &old_key]);
    clock.advance(MIN_REFRESH);
    let new_token = mint(&new_key, &server.claims(clock.now()));

    assert!(
        verifier.verify(&new_token).await.is_ok(),
        "the unknown kid made the verifier refetch"
    );
    assert!(
        verifier.verify(&old_token).await.is_ok(),
        "the old key is still published"
    );
    assert_eq!(server.jwks_fetches(), 2);

    // The old key is retired: its tokens stop verifying once the cache has expired.
    server.publish(&[&new_key]);
    clock.advance(300);
    assert_eq!(
        verifier.verify(&old_token).await,
        Err(VerifyError::UnknownKey)
    );
    assert!(verifier.verify(&new_token).await.is_ok());
    assert_eq!(server.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_cached_keys() {
    let (server, key, clock, verifier) = setup().await;
    let token = mint(&key, &server.claims(clock.now()));
    verifier.verify(&token).await.unwrap();
    server.fail(true);

    clock.advance(301);
    let stale = verifier.verify(&token).await;
    let unknown = mint_raw(
        &key,
        &json!({"alg": "ES256", "typ": "at+jwt", "kid": "new"}),
        &server.claims(clock.now()),
    );
    clock.advance(MIN_REFRESH);
    let during_outage = verifier.verify(&unknown).await;

    assert!(stale.is_ok(), "{stale:?}");
    assert_eq!(
        during_outage,
        Err(VerifyError::KeysUnavailable),
        "cannot tell: 503, not 401"
    );
    assert_eq!(server.jwks_fetches(), 3);
    server.fail(false);
    clock.advance(MIN_REFRESH);
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(server.jwks_fetches(), 4, "recovered by itself");
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_not_trusted() {
    let (server, key, clock, verifier) = setup().await;
    *server.metadata_issuer.write().unwrap() = Some("https://evil.example".into());

    let result = verifier
        .verify(&mint(&key, &server.claims(clock.now())))
        .await;

    assert_eq!(result, Err(VerifyError::KeysUnavailable));
    assert_eq!(
        server.jwks_fetches(),
        0,
        "RFC 8414 §3.3: the JWKS of a mismatched issuer is never fetched"
    );
}

#[tokio::test]
async fn only_at_jwt_typed_tokens_are_accepted() {
    let (server, key, clock, verifier) = setup().await;
    let claims = server.claims(clock.now());
    let with_typ = |typ: Value| {
        let mut header = json!({"alg": "ES256", "kid": key.kid});
        if !typ.is_null() {
            header["typ"] = typ;
        }
        mint_raw(&key, &header, &claims)
    };

    assert_eq!(
        verifier.verify(&with_typ(json!("JWT"))).await,
        Err(VerifyError::Type)
    );
    assert_eq!(
        verifier.verify(&with_typ(Value::Null)).await,
        Err(VerifyError::Type)
    );
    assert_eq!(
        verifier.verify(&with_typ(json!("id_token+jwt"))).await,
        Err(VerifyError::Type)
    );
    assert!(
        verifier
            .verify(&with_typ(json!("application/at+jwt")))
            .await
            .is_ok()
    );
    assert!(verifier.verify(&with_typ(json!("AT+JWT"))).await.is_ok());
}

#[tokio::test]
async fn alg_none_and_hs256_signed_with_the_public_key_are_refused() {
    let (server, key, clock, verifier) = setup().await;
    let claims = server.claims(clock.now());
    let input = |alg: &str| {
        format!(
            "{}.{}",
            b64(&json!({"alg": alg, "typ": "at+jwt", "kid": key.kid}).to_string()),
            b64(&claims.to_string())
        )
    };
    let none = format!("{}.", input("none"));
    let jwk = key.jwk();
    let x = URL_SAFE_NO_PAD.decode(jwk.x.as_deref().unwrap()).unwrap();
    let y = URL_SAFE_NO_PAD.decode(jwk.y.as_deref().unwrap()).unwrap();
    let point = [&[4u8][..], &x, &y].concat();
    let public_key_encodings: Vec<Vec<u8>> = vec![jwk.to_string().into_bytes(), point, x.clone()];

    assert_eq!(verifier.verify(&none).await, Err(VerifyError::Algorithm));
    for secret in public_key_encodings {
        let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let signing_input = input("HS256");
        let tag = ring::hmac::sign(&hmac_key, signing_input.as_bytes());
        let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::Algorithm));
    }
    let claimed_eddsa = mint_raw(
        &key,
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": key.kid}),
        &claims,
    );
    assert_eq!(
        verifier.verify(&claimed_eddsa).await,
        Err(VerifyError::Algorithm),
        "alg must be the key's"
    );
    assert_eq!(
        server.jwks_fetches(),
        1,
        "none of these made the verifier fetch again"
    );
}

#[tokio::test]
async fn tokens_of_every_hallpass_algorithm_verify_with_the_algorithm_of_their_key() {
    let (es, ed, rs) = (
        key(SigningAlg::ES256),
        key(SigningAlg::EdDSA),
        key(SigningAlg::RS256),
    );
    let server = JwksServer::start(&[&es, &ed, &rs]).await;
    let clock = Arc::new(MockClock::new());
    let verifier = server.verifier(&clock);

    for k in [&es, &ed, &rs] {
        let token = mint(k, &server.claims(clock.now()));
        assert!(verifier.verify(&token).await.is_ok(), "{:?}", k.meta.alg);
    }
    // An RS256 signature presented under the EC key's kid.
    let swapped = mint_raw(
        &rs,
        &json!({"alg": "RS256", "typ": "at+jwt", "kid": es.kid}),
        &server.claims(clock.now()),
    );
    assert_eq!(verifier.verify(&swapped).await, Err(VerifyError::Algorithm));
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_a_thirty_second_leeway() {
    let (server, key, clock, verifier) = setup().await;
    let now = clock.now();
    let token = |patch: Value| {
        let mut claims = server.claims(now);
        for (k, v) in patch.as_object().unwrap() {
            claims[k] = v.clone();
        }
        mint(&key, &claims)
    };

    assert!(
        verifier
            .verify(&token(json!({"iat": now - 700, "exp": now - 29})))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier
            .verify(&token(json!({"iat": now - 700, "exp": now - 30})))
            .await,
        Err(VerifyError::Expired)
    );
    assert!(
        verifier
            .verify(&token(json!({"nbf": now + 30})))
            .await
            .is_ok()
    );
    assert_eq!(
        verifier.verify(&token(json!({"nbf": now + 31}))).await,
        Err(VerifyError::NotYetValid)
    );
    assert_eq!(
        verifier.verify(&token(json!({"iat": now + 31}))).await,
        Err(VerifyError::NotYetValid)
    );
    assert!(
        verifier
            .verify(&token(json!({"exp": (now + 60) as f64 + 0.5})))
            .await
            .is_ok(),
        "NumericDate may have a fraction"
    );
}

#[tokio::test]
async fn tokens_for_another_issuer_or_audience_are_refused() {
    let (server, key, clock, verifier) = setup().await;
    let mut foreign = server.claims(clock.now());
    foreign["iss"] = json!("https://evil.example");
    let mut elsewhere = server.claims(clock.now());
    elsewhere["aud"] = json!("https://other-api.example");
    let mut several = server.claims(clock.now());
    several["aud"] = json!(["https://other-api.example", AUDIENCE]);

    assert_eq!(
        verifier.verify(&mint(&key, &foreign)).await,
        Err(VerifyError::Issuer)
    );
    assert_eq!(
        verifier.verify(&mint(&key, &elsewhere)).await,
        Err(VerifyError::Audience)
    );
    assert!(
        verifier.verify(&mint(&key, &several)).await.is_ok(),
        "aud may be an array"
    );
}

#[tokio::test]
async fn a_tampered_or_malformed_token_fails_and_says_why() {
    let (server, key, clock, verifier) = setup().await;
    let token = mint(&key, &server.claims(clock.now()));
    let parts: Vec<&str> = token.split('.').collect();
    let mut escalated = server.claims(clock.now());
    escalated["sub"] = json!("someone-else");
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated.to_string()), parts[2]);
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));

    assert_eq!(
        verifier.verify(&tampered).await,
        Err(VerifyError::Signature)
    );
    assert_eq!(verifier.verify(&bad_sig).await, Err(VerifyError::Signature));
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.??.**",
        &format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
    ] {
        assert!(
            matches!(
                verifier.verify(garbage).await,
                Err(VerifyError::Malformed(_))
            ),
            "{garbage:?}"
        );
    }
    let no_kid = mint_raw(
        &key,
        &json!({"alg": "ES256", "typ": "at+jwt"}),
        &server.claims(clock.now()),
    );
    assert_eq!(
        verifier.verify(&no_kid).await,
        Err(VerifyError::MissingKeyId)
    );
}

#[tokio::test]
async fn every_claim_rfc_9068_requires_must_be_present() {
    let (server, key, clock, verifier) = setup().await;

    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        let mut claims = server.claims(clock.now());
        claims.as_object_mut().unwrap().remove(claim);
        let result = verifier.verify(&mint(&key, &claims)).await;
        assert_eq!(result, Err(VerifyError::MissingClaim(claim)), "{claim}");
    }
}

#[tokio::test]
async fn missing_scopes_are_named_in_the_error() {
    let (server, key, clock, verifier) = setup().await;
    let mut claims = server.claims(clock.now());
    claims["scope"] = json!("beers:read profile");
    claims["tenant"] = json!("acme");
    let token = mint(&key, &claims);

    let result = verifier
        .verify_with_scopes(&token, &["beers:read", "beers:write", "admin"])
        .await;

    assert_eq!(
        result,
        Err(VerifyError::InsufficientScope {
            missing: vec!["beers:write".into(), "admin".into()]
        })
    );
    let ok = verifier
        .verify_with_scopes(&token, &["profile"])
        .await
        .unwrap();
    assert_eq!(ok.extra["tenant"], "acme", "other claims are kept");
}
