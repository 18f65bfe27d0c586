//! Issue 8, items 5, 6, 9 and 13: the management scope only for first-party clients, no open
//! redirector, what a token sees at `/api/users/me`, and the smaller protocol fixes.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestClient, assert_oauth_error, location, pkce_pair, query_params, spawn_app,
    spawn_app_with_store,
};
use hallpass::{
    oauth::{client, users::MANAGE_SCOPE},
    store::{StoreJson, schema},
    token::{ACCESS_TOKEN_TYP, AccessClaims, sign},
};

/// The error response of an authorization request for a client the server does not trust:
/// a 400 HTML page, no `Location`, and a link to the redirect URI carrying the error. Returns
/// the link.
pub async fn error_link(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers().get(header::LOCATION).is_none(),
        "an untrusted client's error is never redirected automatically"
    );
    let html = resp.text().await.unwrap();
    let start = html.find("<a href=\"").expect("the page offers a link") + 9;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Registers a client on `app`, then starts a second server on the same store that names it
/// first-party (an operator adding it to `HALLPASS_FIRST_PARTY_CLIENTS` and restarting).
async fn with_first_party(app: &TestApp, registration: Value) -> (TestApp, TestClient) {
    let c = app.client_with(registration).await;
    let id = c.client_id.clone();
    let second = spawn_app_with_store(app.state.store.clone(), move |cfg| {
        cfg.first_party_clients.insert(id);
    })
    .await;
    (second, c)
}

/// Gives a stored client `hallpass:manage` in its registered scope, as a client registered
/// before registration refused it would have.
async fn registered_before_the_rule(app: &TestApp, c: &TestClient) {
    let mut record = client::get(&app.state, &c.client_id)
        .await
        .unwrap()
        .unwrap();
    record.scope = record
        .scope
        .union(&hallpass::oauth::scope::Scope::from_tokens([MANAGE_SCOPE]));
    app.state
        .store
        .put_json(&schema::client(&c.client_id), &record, None)
        .await
        .unwrap();
}

// ---- Item 5: hallpass:manage only for first-party clients ----

#[tokio::test]
async fn a_users_client_cannot_register_the_manage_scope() {
    let app = spawn_app().await;
    let user = app.user().await;
    let resp = app
        .post_client(
            &user,
            &json!({"client_name": "Console", "redirect_uris": ["https://c.example/cb"], "scope": "beers:read hallpass:manage"}),
        )
        .await;
    let body = assert_oauth_error(resp, 400, "invalid_client_metadata").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("first-party"),
        "{body}"
    );
}

#[tokio::test]
async fn a_third_party_client_asking_for_the_manage_scope_gets_invalid_scope_everywhere() {
    let app = spawn_app().await;
    let web = app.confidential_client().await;
    registered_before_the_rule(&app, &web).await;
    let query = app.authorize_query(&web, &[("scope", "beers:read hallpass:manage")]);
    let link = error_link(app.get_authorize(&query, None).await).await;
    assert_eq!(query_params(&link)["error"], "invalid_scope");
    // Omitting scope asks for the registered ones: the consent page never offers manage.
    let session = app.login(&web.owner).await;
    let page = app
        .get_authorize(&app.authorize_query(&web, &[]), Some(&session))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(!page.text().await.unwrap().contains(MANAGE_SCOPE));

    let machine = app
        .client_with(json!({"client_name": "M", "grant_types": ["client_credentials"]}))
        .await;
    registered_before_the_rule(&app, &machine).await;
    let basic = Some((
        machine.client_id.as_str(),
        machine.client_secret.as_deref().unwrap(),
    ));
    let explicit = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", MANAGE_SCOPE),
            ],
            basic,
        )
        .await;
    assert_oauth_error(explicit, 400, "invalid_scope").await;
    let default: Value = app
        .post_token(&[("grant_type", "client_credentials")], basic)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !default["scope"].as_str().unwrap().contains(MANAGE_SCOPE),
        "{default}"
    );
}

#[tokio::test]
async fn a_first_party_client_may_be_granted_the_manage_scope_and_use_it() {
    let app = spawn_app().await;
    let (fp, console) = with_first_party(
        &app,
        json!({"client_name": "Console", "redirect_uris": ["https://console.example/cb"],
               "grant_types": ["authorization_code", "refresh_token"]}),
    )
    .await;
    let body = fp
        .tokens_with_refresh(&console, "hallpass:manage offline_access")
        .await;
    let resp = fp
        .http
        .post(fp.url("/api/clients"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .json(&json!({"client_name": "Second", "redirect_uris": ["https://second.example/cb"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The operator takes the client off the list: its refresh token no longer buys manage.
    let rt = body["refresh_token"].as_str().unwrap();
    let explicit = app.refresh(&console, rt, Some(MANAGE_SCOPE)).await;
    assert_oauth_error(explicit, 400, "invalid_scope").await;
    let narrowed: Value = app.refresh(&console, rt, None).await.json().await.unwrap();
    assert_eq!(narrowed["scope"], "offline_access", "{narrowed}");
}

#[tokio::test]
async fn a_manage_token_issued_to_a_third_party_client_manages_nothing() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let now = app.state.now();
    let claims = AccessClaims {
        iss: app.state.config.issuer.clone(),
        sub: c.owner.id.clone(),
        aud: vec![app.state.config.audience.clone()],
        client_id: c.client_id.clone(),
        scope: MANAGE_SCOPE.into(),
        iat: now,
        exp: now + 600,
        jti: hallpass::crypto::random_id(),
        auth_time: Some(now),
    };
    let key = app.state.signing_key().unwrap();
    let token = sign(&key, ACCESS_TOKEN_TYP, &claims).unwrap();
    let resp = app
        .http
        .get(app.url("/api/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_oauth_error(resp, 403, "insufficient_scope").await;
}

// ---- Item 6: no open redirector ----

#[tokio::test]
async fn an_unapproved_clients_error_is_a_page_naming_the_host_with_a_link() {
    let app = spawn_app().await;
    let c = app
        .client_with(
            json!({"client_name": "Phish", "redirect_uris": ["https://evil.example/phish"]}),
        )
        .await;
    let query = app
        .authorize_query(&c, &[])
        .replace("response_type=code", "response_type=token");
    let resp = app.get_authorize(&query, None).await;
    assert!(
        resp.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let link = error_link(resp).await;
    assert!(link.starts_with("https://evil.example/phish?"), "{link}");
    let p = query_params(&link);
    assert_eq!(p["error"], "unsupported_response_type");
    assert!(p.contains_key("error_description"));
    assert_eq!(p["state"], "xyz-state");
    assert_eq!(p["iss"], app.address);

    // prompt=none follows the same rule.
    let none = app.authorize_query(&c, &[("prompt", "none")]);
    let link = error_link(app.get_authorize(&none, None).await).await;
    assert_eq!(query_params(&link)["error"], "login_required");
    let stranger = app.user().await;
    let session = app.login(&stranger).await;
    let link = error_link(app.get_authorize(&none, Some(&session)).await).await;
    assert_eq!(query_params(&link)["error"], "consent_required");
}

#[tokio::test]
async fn the_same_clients_error_redirects_once_the_signed_in_user_approved_it() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    app.code_for(&c, &[("scope", "beers:read")]).await;
    let session = app.login(&c.owner).await;
    let query = app.authorize_query(&c, &[("scope", "admin")]);
    let resp = app.get_authorize(&query, Some(&session)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let p = query_params(&location(&resp));
    assert_eq!(p["error"], "invalid_scope");
    assert_eq!(p["state"], "xyz-state");
    // Another person's browser, for whom the client is a stranger, gets the page.
    error_link(app.get_authorize(&query, None).await).await;
}

#[tokio::test]
async fn a_first_party_clients_error_redirects_at_once() {
    let app = spawn_app().await;
    let (fp, c) = with_first_party(
        &app,
        json!({"client_name": "Console", "redirect_uris": ["https://console.example/cb"]}),
    )
    .await;
    let query = fp.authorize_query(&c, &[("prompt", "none")]);
    let resp = fp.get_authorize(&query, None).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(query_params(&location(&resp))["error"], "login_required");
}

// ---- Item 9: what a token sees at /api/users/me ----

#[tokio::test]
async fn api_users_me_shows_the_username_to_a_token_only_with_profile() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let me = async |token: &str| -> Value {
        let resp = app
            .http
            .get(app.url("/api/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    };
    for (scope, shown) in [("beers:read", false), ("beers:read profile", true)] {
        let code = app.code_for(&c, &[("scope", scope)]).await;
        let body: Value = app.redeem(&c, &code).await.json().await.unwrap();
        let view = me(body["access_token"].as_str().unwrap()).await;
        assert_eq!(view["id"], c.owner.id.as_str());
        assert_eq!(view.get("username").is_some(), shown, "{scope}: {view}");
    }
    let basic: Value = app
        .as_user(reqwest::Method::GET, "/api/users/me", &c.owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(basic["username"], c.owner.username.as_str());
}

// ---- Item 13: smaller things ----

#[tokio::test]
async fn a_missing_code_verifier_is_invalid_grant() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let (_, challenge) = pkce_pair();
    let code = app
        .code_for(
            &c,
            &[
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_oauth_error(app.redeem(&c, &code).await, 400, "invalid_grant").await;
}

/// The page has no inline script: its scripts are files of this origin (`script-src 'self'`).
#[tokio::test]
async fn swagger_ui_is_served_with_a_csp_that_forbids_framing_and_allows_only_its_own_files() {
    let app = spawn_app().await;
    let resp = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script: {html}");
    for file in ["swagger-ui-bundle.js", "docs.js", "swagger-ui.css"] {
        assert!(html.contains(file), "{file}");
        let r = app
            .http
            .get(app.url(&format!("/docs/{file}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{file}");
    }
    let bundle = app
        .http
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert!(bundle.text().await.unwrap().contains("SwaggerUIBundle"));
    let init = app.http.get(app.url("/docs/docs.js")).send().await.unwrap();
    let init = init.text().await.unwrap();
    assert!(init.contains("\"clientId\":\"hallpass-docs\""), "{init}");
    assert!(
        init.contains(&app.url("/docs/oauth2-redirect.html")),
        "{init}"
    );
    let redirect = app
        .http
        .get(app.url("/docs/oauth2-redirect.html"))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), StatusCode::OK);
    assert!(
        redirect
            .text()
            .await
            .unwrap()
            .contains("oauth2-redirect.js")
    );
}

#[tokio::test]
async fn invalid_client_says_the_same_whether_or_not_the_client_exists() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let body =
        async |resp: reqwest::Response| assert_oauth_error(resp, 401, "invalid_client").await;
    let form = [("grant_type", "client_credentials")];
    let unknown = body(app.post_token(&form, Some(("nobody", "x"))).await).await;
    let wrong_secret = body(app.post_token(&form, Some((&c.client_id, "x"))).await).await;
    assert_eq!(unknown, wrong_secret);
    // Only the client id in the body: unknown id, and a client that authenticates with Basic.
    let by_id = async |id: &str| {
        let form = [("grant_type", "client_credentials"), ("client_id", id)];
        body(app.post_token(&form, None).await).await
    };
    assert_eq!(by_id("nobody").await, by_id(&c.client_id).await);
    let posted = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_deref().unwrap()),
    ];
    let wrong_method = body(app.post_token(&posted, None).await).await;
    assert_eq!(wrong_method, unknown);
}

#[tokio::test]
async fn an_unsupported_response_mode_is_an_error() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let q = app.authorize_query(&c, &[("response_mode", "fragment")]);
    let link = error_link(app.get_authorize(&q, None).await).await;
    assert_eq!(query_params(&link)["error"], "invalid_request");
    let ok = app.authorize_query(&c, &[("response_mode", "query")]);
    assert_eq!(app.get_authorize(&ok, None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn redirect_uris_with_dot_segments_or_encoded_unreserved_characters_are_refused() {
    let app = spawn_app().await;
    let user = app.user().await;
    for uri in [
        "https://app.example/a/./cb",
        "https://app.example/a/../cb",
        "https://app.example/a/%2E%2e/cb",
        "https://app.example/%41pp",
        "https://app.example/cb%7E",
    ] {
        let resp = app
            .post_client(&user, &json!({"client_name": "N", "redirect_uris": [uri]}))
            .await;
        assert_oauth_error(resp, 400, "invalid_redirect_uri").await;
    }
}

#[tokio::test]
async fn metrics_can_be_served_on_their_own_address_only() {
    let app = crate::helpers::spawn_app_on(crate::helpers::Backend::Memory, |c| {
        c.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    assert_eq!(app.get_status("/metrics").await, StatusCode::NOT_FOUND);
    // The separate listener `Application` bound for `HALLPASS_METRICS_BIND`.
    let addr = app.metrics_addr().expect("a metrics address is configured");
    assert_ne!(
        Some(addr.port()),
        app.address.rsplit(':').next().and_then(|p| p.parse().ok())
    );
    let resp = app
        .http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("hallpass_"));
}
