//! Discovery documents and the JWKS.

use reqwest::{StatusCode, header};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn authorization_server_metadata_names_every_endpoint_and_capability() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let resp = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let m: Value = resp.json().await.unwrap();
        assert_eq!(m["issuer"], app.address);
        assert_eq!(m["authorization_endpoint"], app.url("/oauth2/authorize"));
        assert_eq!(m["token_endpoint"], app.url("/oauth2/token"));
        assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json"));
        assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            m["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        let grants = m["grant_types_supported"].as_array().unwrap();
        assert!(grants.contains(&Value::from("authorization_code")));
        let methods = m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        for method in ["client_secret_basic", "client_secret_post", "none"] {
            assert!(methods.contains(&Value::from(method)), "{method}");
        }
        let scopes = m["scopes_supported"].as_array().unwrap();
        assert!(
            scopes.contains(&Value::from("beers:read")) && scopes.contains(&Value::from("openid"))
        );
        assert_eq!(m["subject_types_supported"], serde_json::json!(["public"]));
        assert_eq!(
            m["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
    }
}

#[tokio::test]
async fn jwks_is_cacheable_has_an_etag_and_answers_304_when_unchanged() {
    let app = spawn_app().await;
    let resp = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cache = resp.headers()[header::CACHE_CONTROL]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cache.contains("max-age=300"), "{cache}");
    let etag = resp.headers()[header::ETAG].to_str().unwrap().to_string();
    let jwks: Value = resp.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "no private part is ever published");
    let kid = app.state.signing_key().unwrap().kid.clone();
    assert_eq!(key["kid"], kid.as_str());

    let again = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let other = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header(header::IF_NONE_MATCH, "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_probes_answer_and_swagger_ui_and_the_spec_are_served() {
    let app = spawn_app().await;
    assert_eq!(app.get_status("/healthz").await, StatusCode::OK);
    assert_eq!(app.get_status("/readyz").await, StatusCode::OK);
    let ui = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(ui.status(), StatusCode::OK);
    assert!(ui.text().await.unwrap().contains("swagger"));
    let json: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(json["paths"]["/oauth2/token"]["post"].is_object());
    let expected: Value =
        serde_json::from_str(&hallpass::api::spec(&app.state).unwrap().json()).unwrap();
    assert_eq!(
        json, expected,
        "the served spec is the one `api::spec` makes"
    );
    let yaml = app
        .http
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(yaml.contains("operationId: token"));
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_keys_in_prometheus_format() {
    let app = spawn_app().await;
    let c = app
        .client_with(serde_json::json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;
    let basic = Some((c.client_id.as_str(), c.client_secret.as_deref().unwrap()));
    for _ in 0..3 {
        app.post_token(&[("grant_type", "client_credentials")], basic)
            .await;
    }
    app.post_token(&[("grant_type", "nope")], basic).await;
    for i in 0..20 {
        app.get_status(&format!("/random/{i}")).await;
    }

    let resp = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("hallpass_tokens_issued_total{grant_type=\"client_credentials\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "hallpass_http_requests_total{endpoint=\"/oauth2/token\",status=\"2xx\"} 3\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "hallpass_http_requests_total{endpoint=\"/oauth2/token\",status=\"4xx\"} 1\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("hallpass_http_requests_total{endpoint=\"other\",status=\"4xx\"} 20\n"),
        "random paths share one series: {text}"
    );
    assert!(
        text.contains("hallpass_signing_keys{state=\"active\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains(&c.client_secret.clone().unwrap()));
}

/// Our JWS and JWK encodings checked by a library we did not write: for every algorithm, a
/// token signed by `hallpass::jose` verifies with `jsonwebtoken` against the published JWK,
/// with one audience (a string) and with two (an array).
#[test]
fn tokens_of_every_algorithm_verify_with_jsonwebtoken_against_the_published_jwk() {
    use hallpass::{
        config::SigningAlg,
        keys::SigningKey,
        time::{Clock, SystemClock},
        token::{ACCESS_TOKEN_TYP, AccessClaims, sign},
    };
    use jsonwebtoken::{DecodingKey, Validation, decode, jwk::Jwk};

    let now = SystemClock.now();
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
        let (key, _) = SigningKey::generate(alg, now, now).unwrap();
        let jwk: Jwk = serde_json::from_value(serde_json::to_value(key.jwk()).unwrap()).unwrap();
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        for aud in [
            vec!["https://api.example"],
            vec!["https://api.example", "other"],
        ] {
            let claims = AccessClaims {
                iss: "https://as.example".into(),
                sub: "user-1".into(),
                aud: aud.iter().map(|a| a.to_string()).collect(),
                client_id: "client-1".into(),
                scope: "beers:read".into(),
                iat: now,
                exp: now + 600,
                jti: "j".into(),
                auth_time: None,
            };
            let token = sign(&key, ACCESS_TOKEN_TYP, &claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let mut validation = Validation::new(header.alg);
            validation.set_issuer(&["https://as.example"]);
            validation.set_audience(&["https://api.example"]);
            let decoded = decode::<AccessClaims>(&token, &decoding, &validation)
                .unwrap_or_else(|e| panic!("{alg} {aud:?}: {e}"));
            assert_eq!(decoded.claims, claims);
            assert_eq!(format!("{:?}", header.alg), alg.as_str());
        }
    }
}
