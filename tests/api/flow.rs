//! The whole tutorial flow, end to end: register → client → authorize → login → consent →
//! code → token → the JWT verifies against the JWKS → the code cannot be used again.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    TestApp, TestClient, assert_oauth_error, each_store, pkce_pair, query_params,
};

/// Verifies `token` the way an independent resource server would: with `jsonwebtoken`, the
/// key picked by `kid` from the JWKS fetched over HTTP, the algorithm pinned.
async fn verify_with_jwks(app: &TestApp, token: &str) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::ES256);
    let jwks = app.jwks().await;
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.address]);
    validation.set_audience(&[&app.address]);
    decode::<Value>(token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn confidential_client_gets_a_jwt_that_verifies_against_the_jwks_and_the_code_works_once() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let query = app.authorize_query(&client, &[("scope", "beers:read profile")]);

        let redirect = app.approve(&client.owner, &query).await;

        assert!(
            redirect.starts_with("https://app.example/callback?"),
            "{redirect}"
        );
        let params = query_params(&redirect);
        assert_eq!(params["state"], "xyz-state");
        assert_eq!(params["iss"], app.address);
        let code = &params["code"];
        let (random, hint) = code.split_once('.').expect("a code carries a sealed hint");
        assert_eq!(random.len(), 43, "256 random bits, base64url");
        assert!(!hint.is_empty() && !code.contains(&client.owner.id));

        let resp = app.redeem(&client, code).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["pragma"], "no-cache");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 600);
        assert_eq!(body["scope"], "beers:read profile");
        assert!(
            body.get("id_token").is_none(),
            "no openid scope, no ID token"
        );

        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["iss"], app.address);
        assert_eq!(claims["sub"], client.owner.id);
        assert_eq!(claims["aud"], app.address);
        assert_eq!(claims["client_id"], client.client_id);
        assert_eq!(claims["scope"], "beers:read profile");
        let now = app.state.now();
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["exp"], now + 600);
        assert_eq!(claims["auth_time"], now);
        assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

        let access = body["access_token"].as_str().unwrap();
        assert_eq!(app.me_status(access).await, 200);
        let again = app.redeem(&client, code).await;
        assert_oauth_error(again, 400, "invalid_grant").await;
        assert_eq!(
            app.me_status(access).await,
            401,
            "a replayed code revokes what it bought"
        );
    })
    .await;
}

#[tokio::test]
async fn public_client_with_pkce_gets_a_token_without_a_secret() {
    each_store(async |app: TestApp| {
        let client = app.public_client().await;
        let (verifier, challenge) = pkce_pair();
        let code = app
            .code_for(
                &client,
                &[
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                    ("scope", "beers:read"),
                ],
            )
            .await;

        let resp = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &client.redirect_uri),
                    ("client_id", &client.client_id),
                    ("code_verifier", &verifier),
                ],
                None,
            )
            .await;

        assert_eq!(resp.status(), StatusCode::OK);
        let body: Value = resp.json().await.unwrap();
        let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["client_id"], client.client_id);
        assert_eq!(claims["sub"], client.owner.id);
    })
    .await;
}

#[tokio::test]
async fn client_secret_post_client_authenticates_in_the_body() {
    each_store(async |app: TestApp| {
        let client = app
            .client_with(serde_json::json!({
                "client_name": "Post App",
                "redirect_uris": ["https://post.example/cb"],
                "token_endpoint_auth_method": "client_secret_post",
            }))
            .await;
        let code = app.code_for(&client, &[]).await;
        let secret = client.client_secret.clone().unwrap();

        let resp = app
            .post_token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &client.redirect_uri),
                    ("client_id", &client.client_id),
                    ("client_secret", &secret),
                ],
                None,
            )
            .await;

        assert_eq!(resp.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn openid_scope_adds_an_id_token_with_nonce_and_at_hash() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let code = app
            .code_for(&client, &[("scope", "openid"), ("nonce", "n-0S6_WzA2Mj")])
            .await;

        let body: Value = app.redeem(&client, &code).await.json().await.unwrap();

        let id_token = body["id_token"].as_str().expect("an ID token");
        let header = decode_header(id_token).unwrap();
        let jwks = app.jwks().await;
        let key =
            DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&app.address]);
        validation.set_audience(&[&client.client_id]);
        let claims = decode::<Value>(id_token, &key, &validation).unwrap().claims;
        assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
        assert_eq!(claims["sub"], client.owner.id);
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            body["access_token"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(
            claims["at_hash"],
            hallpass::crypto::b64(&digest.as_ref()[..16])
        );
    })
    .await;
}

/// Fifty concurrent redemptions of one code, each answered 200 or `invalid_grant`: the bodies
/// of the 200s, and every status.
async fn redeem_fifty_times(
    app: &Arc<TestApp>,
    client: &TestClient,
    code: &str,
) -> (Vec<Value>, Vec<u16>) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, client, code) = (app.clone(), client.clone(), code.to_string());
            tokio::spawn(async move {
                let resp = app.redeem(&client, &code).await;
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    for (status, body) in &answers {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "{status} {body}"
        );
    }
    let statuses = answers.iter().map(|(s, _)| *s).collect();
    let won = answers
        .into_iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    (won, statuses)
}

#[tokio::test]
async fn fifty_concurrent_redemptions_of_one_code_yield_exactly_one_token_which_the_others_revoke()
{
    each_store(async |app: TestApp| {
        let app = Arc::new(app);
        let client = app.confidential_client().await;
        let code = app.code_for(&client, &[]).await;

        let (won, statuses) = redeem_fifty_times(&app, &client, &code).await;

        assert_eq!(won.len(), 1, "{statuses:?}");
        // Every other redemption was a use of a used code (RFC 6749 §4.1.2): the token the
        // winner got is revoked, however close together they came.
        let access = won[0]["access_token"].as_str().unwrap();
        assert_eq!(app.introspect(&client, access).await["active"], false);
    })
    .await;
}

#[tokio::test]
async fn concurrent_redemptions_of_a_code_with_offline_access_leave_no_live_token() {
    each_store(async |app: TestApp| {
        let app = Arc::new(app);
        let client = app.refreshing_client().await;
        let code = app
            .code_for(&client, &[("scope", "beers:read offline_access")])
            .await;

        let (won, statuses) = redeem_fifty_times(&app, &client, &code).await;

        // A refresh token is handed out only if no replay came before its family existed,
        // so the race may leave no winner at all; never two, and nothing it bought lives.
        assert!(won.len() <= 1, "{statuses:?}");
        for body in won {
            let access = body["access_token"].as_str().unwrap();
            assert_eq!(app.introspect(&client, access).await["active"], false);
            let refresh = body["refresh_token"].as_str().unwrap();
            assert_oauth_error(
                app.refresh(&client, refresh, None).await,
                400,
                "invalid_grant",
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_oauth2_crate_completes_the_code_exchange_with_pkce() {
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
        RedirectUrl, Scope, TokenResponse, TokenUrl, basic::BasicClient,
    };
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let client = BasicClient::new(ClientId::new(c.client_id.clone()))
            .set_client_secret(ClientSecret::new(c.client_secret.clone().unwrap()))
            .set_auth_uri(AuthUrl::new(app.url("/oauth2/authorize")).unwrap())
            .set_token_uri(TokenUrl::new(app.url("/oauth2/token")).unwrap())
            .set_redirect_uri(RedirectUrl::new(c.redirect_uri.clone()).unwrap());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (auth_url, csrf) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("beers:read".into()))
            .set_pkce_challenge(challenge)
            .url();

        let redirect = app.approve(&c.owner, auth_url.query().unwrap()).await;
        let params = query_params(&redirect);
        assert_eq!(&params["state"], csrf.secret());
        let http = oauth2::reqwest::Client::builder()
            .redirect(oauth2::reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let token = client
            .exchange_code(AuthorizationCode::new(params["code"].clone()))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .expect("the oauth2 crate accepts our token response");

        assert_eq!(token.token_type(), &oauth2::basic::BasicTokenType::Bearer);
        assert_eq!(token.scopes().unwrap()[0].as_str(), "beers:read");
        let claims = verify_with_jwks(&app, token.access_token().secret()).await;
        assert_eq!(claims["client_id"], c.client_id);
    })
    .await;
}

#[tokio::test]
async fn a_bearer_token_from_the_flow_identifies_the_user_at_api_users_me() {
    each_store(async |app: TestApp| {
        let client = app.confidential_client().await;
        let code = app.code_for(&client, &[]).await;
        let body: Value = app.redeem(&client, &code).await.json().await.unwrap();

        let me = app
            .http
            .get(app.url("/api/users/me"))
            .bearer_auth(body["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();

        assert_eq!(me.status(), StatusCode::OK);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["username"], client.owner.username);
        assert!(me.get("password_hash").is_none());
    })
    .await;
}

#[tokio::test]
async fn a_replayed_code_also_revokes_the_refresh_token_it_bought() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let code = app.code_for(&c, &[("scope", "offline_access")]).await;
        let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
        let rt = body["refresh_token"].as_str().unwrap();

        assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;

        assert_oauth_error(app.refresh(&c, rt, None).await, 400, "invalid_grant").await;
    })
    .await;
}

#[tokio::test]
async fn userinfo_answers_for_openid_tokens_and_adds_the_username_with_profile() {
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let token_for = async |scope: &str| {
            let code = app.code_for(&c, &[("scope", scope)]).await;
            let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_string()
        };
        let full = token_for("openid profile").await;
        let info: Value = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&full)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], c.owner.id);
        assert_eq!(info["preferred_username"], c.owner.username);

        let bare = token_for("openid").await;
        let info: Value = app
            .http
            .post(app.url("/userinfo"))
            .bearer_auth(&bare)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info, serde_json::json!({"sub": c.owner.id}));

        let beers = token_for("beers:read").await;
        let resp = app
            .http
            .get(app.url("/userinfo"))
            .bearer_auth(&beers)
            .send()
            .await
            .unwrap();
        assert_oauth_error(resp, 403, "insufficient_scope").await;
        let anon = app.http.get(app.url("/userinfo")).send().await.unwrap();
        assert_oauth_error(anon, 401, "invalid_token").await;
    })
    .await;
}

#[tokio::test]
async fn a_code_redeemed_under_the_earlier_record_layout_still_revokes_on_replay() {
    use hallpass::store::{StoreJson, schema};
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let code = app.code_for(&c, &[]).await;
        let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
        let access = body["access_token"].as_str().unwrap();
        let claims = crate::revocation_feed::claims_of(access);
        // As an earlier release left it: the code's key gone, what it bought under
        // `used:code:…`.
        let store = &app.state.store;
        assert!(store.delete(&schema::code(&code)).await.unwrap());
        let redeemed = serde_json::json!({
            "jti": claims["jti"],
            "exp": claims["exp"],
            "family": null,
            "client_id": c.client_id,
        });
        store
            .put_json(&schema::used_code(&code), &redeemed, None)
            .await
            .unwrap();

        assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;

        assert_eq!(app.introspect(&c, access).await["active"], false);
        assert_eq!(store.get(&schema::used_code(&code)).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn a_code_read_beside_a_failed_client_authentication_is_left_for_the_real_client() {
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        let code = app.code_for(&c, &[]).await;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", c.redirect_uri.as_str()),
        ];

        let wrong = app
            .post_token(&form, Some((&c.client_id, "not-the-secret")))
            .await;
        assert_oauth_error(wrong, 401, "invalid_client").await;

        let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
        assert!(body["access_token"].is_string(), "{body}");
        assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;
    })
    .await;
}
