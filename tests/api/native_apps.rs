//! Native apps (RFC 8252): loopback IP redirects match on any port (§7.3), and public clients
//! may register private-use URI schemes (§7.1); dangerous schemes are refused for everyone.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestClient, assert_oauth_error, each_store, hidden_input, location, pkce_pair,
    query_params, spawn_app,
};

/// Runs the code flow for `client` with PKCE, sending `redirect_uri`, and returns the
/// redirect the consent POST answers with.
async fn approve_with_pkce(app: &TestApp, client: &TestClient, challenge: &str) -> String {
    let query = app.authorize_query(
        client,
        &[
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    app.approve(&client.owner, &query).await
}

async fn redeem_public(
    app: &TestApp,
    client: &TestClient,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> reqwest::Response {
    app.post_token(
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &client.client_id),
            ("code_verifier", verifier),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn a_loopback_ip_redirect_uri_matches_on_any_port_through_the_code_flow() {
    each_store(async |app: TestApp| {
        // Registered as http://127.0.0.1:8765/callback.
        let mut client = app.public_client().await;
        client.redirect_uri = "http://127.0.0.1:51234/callback".into();
        let (verifier, challenge) = pkce_pair();

        let redirect = approve_with_pkce(&app, &client, &challenge).await;

        assert!(
            redirect.starts_with("http://127.0.0.1:51234/callback?"),
            "{redirect}"
        );
        let code = query_params(&redirect)["code"].clone();
        // The token request must repeat the port the authorization request used.
        let other_port = redeem_public(
            &app,
            &client,
            &code,
            "http://127.0.0.1:8765/callback",
            &verifier,
        )
        .await;
        assert_oauth_error(other_port, 400, "invalid_grant").await;
        let (verifier, challenge) = pkce_pair();
        let redirect = approve_with_pkce(&app, &client, &challenge).await;
        let code = query_params(&redirect)["code"].clone();
        let resp = redeem_public(&app, &client, &code, &client.redirect_uri, &verifier).await;
        assert_eq!(resp.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn a_loopback_redirect_on_another_path_host_or_scheme_gets_the_error_page() {
    let app = spawn_app().await;
    let mut client = app.public_client().await;
    let (_, challenge) = pkce_pair();
    for uri in [
        "http://127.0.0.1:51234/callback/",
        "http://127.0.0.1:51234/other",
        "http://127.0.0.1:51234/callback?x=1",
        "http://[::1]:51234/callback",
        "http://localhost:51234/callback",
        "https://127.0.0.1:51234/callback",
    ] {
        client.redirect_uri = uri.into();
        let query = app.authorize_query(
            &client,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );

        let resp = app.get_authorize(&query, None).await;

        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
        assert!(resp.headers().get(header::LOCATION).is_none(), "{uri}");
    }
}

/// RFC 8252 §8.3: `localhost` is NOT RECOMMENDED; Hallpass accepts it but matches it exactly.
#[tokio::test]
async fn a_localhost_redirect_uri_matches_only_on_its_registered_port() {
    let app = spawn_app().await;
    let mut client = app
        .client_with(json!({
            "client_name": "Localhost CLI",
            "redirect_uris": ["http://localhost:8765/callback"],
            "token_endpoint_auth_method": "none",
        }))
        .await;
    let (_, challenge) = pkce_pair();
    let pkce = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let session = app.login(&client.owner).await;
    let ok = app
        .get_authorize(&app.authorize_query(&client, &pkce), Some(&session))
        .await;
    assert_eq!(ok.status(), StatusCode::OK, "the registered port");

    client.redirect_uri = "http://localhost:9999/callback".into();
    let resp = app
        .get_authorize(&app.authorize_query(&client, &pkce), Some(&session))
        .await;

    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_public_client_registers_a_private_use_scheme_and_the_consent_redirects_there() {
    each_store(async |app: TestApp| {
        let client = app
            .client_with(json!({
                "client_name": "Native App",
                "redirect_uris": ["com.example.app:/oauth2redirect"],
                "token_endpoint_auth_method": "none",
            }))
            .await;
        let (verifier, challenge) = pkce_pair();
        let query = app.authorize_query(
            &client,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let session = app.login(&client.owner).await;

        let page = app.get_authorize(&query, Some(&session)).await;

        assert_eq!(page.status(), StatusCode::OK);
        // Chromium applies form-action to the redirect after the consent POST: the page must
        // not restrict it, or the redirect to com.example.app: would be blocked.
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(!csp.contains("form-action"), "{csp}");
        let html = page.text().await.unwrap();
        assert!(html.contains("<code>com.example.app:</code>"), "{html}");
        let txn = hidden_input(&html, "txn").unwrap();
        let resp = app.post_consent(&session, &txn, "allow").await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let to = location(&resp);
        assert!(
            to.starts_with("com.example.app:/oauth2redirect?code="),
            "{to}"
        );
        let code = query_params(&to)["code"].clone();
        let tokens = redeem_public(&app, &client, &code, &client.redirect_uri, &verifier).await;
        assert_eq!(tokens.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn private_use_schemes_are_refused_for_confidential_clients_and_dangerous_ones_for_all() {
    let app = spawn_app().await;
    let owner = app.user().await;
    let register = async |uri: &str, method: &str| -> Value {
        let resp = app
            .post_client(
                &owner,
                &json!({
                    "client_name": "App",
                    "redirect_uris": [uri],
                    "token_endpoint_auth_method": method,
                }),
            )
            .await;
        assert_oauth_error(resp, 400, "invalid_redirect_uri").await
    };

    let body = register("com.example.app:/cb", "client_secret_basic").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("public native clients"),
        "{body}"
    );
    for uri in [
        "myapp:/cb",
        "javascript:alert(1)",
        "data:text/html,x",
        "file:///etc/passwd",
        "vbscript:x",
    ] {
        register(uri, "none").await;
        register(uri, "client_secret_basic").await;
    }
}
