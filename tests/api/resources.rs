//! Resource indicators (RFC 8707): `resource` at the authorization, code-exchange, refresh and
//! client-credentials requests picks the access token's `aud` and narrows its scope;
//! unknown or malformed resources are `invalid_target`; a refresh narrows the resources and
//! never widens them; without `resource` the default applies; the consent page names the
//! resource servers; introspection answers for tokens of every registered resource.

use hallpass::{
    config::{Config, ScopeDef},
    oauth::{
        resource::{ResourceServer, Resources},
        scope::Scope,
    },
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Backend, TestApp, TestClient, assert_oauth_error, backends, hidden_input, query_params,
    spawn_app_on,
};

const BEERS: &str = "https://beers.example";
const NOTES: &str = "https://notes.example/api";
const USERINFO: &str = "/userinfo";

/// Registers two resource servers besides Hallpass's own API: the beer locker
/// (`beers:read`, `beers:write`) and a notes API (`notes:read`, offered for it).
fn registry(c: &mut Config) {
    c.scopes.push(ScopeDef {
        name: "notes:read".into(),
        description: "Read your notes".into(),
    });
    c.resources = Resources::from_servers(
        vec![
            ResourceServer {
                id: BEERS.into(),
                name: "Beer <Locker>".into(),
                scopes: Scope::from_tokens(["beers:read", "beers:write"]),
            },
            ResourceServer {
                id: NOTES.into(),
                name: "Notes".into(),
                scopes: Scope::from_tokens(["notes:read"]),
            },
        ],
        None,
        &c.scopes,
        &c.audience,
    )
    .unwrap();
}

async fn app_on(backend: Backend) -> TestApp {
    spawn_app_on(backend, registry).await
}

/// The claims of a JWT, unverified (other tests verify signatures).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// The code flow with `extra` authorize parameters, redeemed with `token_extra` added to
/// the token request; the token response.
async fn code_flow(
    app: &TestApp,
    client: &TestClient,
    extra: &[(&str, &str)],
    token_extra: &[(&str, &str)],
) -> reqwest::Response {
    let code = app.code_for(client, extra).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
    ];
    form.extend_from_slice(token_extra);
    app.post_token(
        &form,
        Some((
            &client.client_id,
            client.client_secret.as_deref().unwrap_or_default(),
        )),
    )
    .await
}

async fn ok_json(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn the_requested_resource_is_the_audience_and_narrows_the_scope() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;

    let body = ok_json(
        code_flow(
            &app,
            &client,
            &[
                ("scope", "openid beers:read notes:read"),
                ("resource", BEERS),
            ],
            &[],
        )
        .await,
    )
    .await;

    let at = claims(body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], BEERS);
    // openid stays (the ID token); notes:read is not the beer locker's.
    assert_eq!(at["scope"], "beers:read openid");
    assert_eq!(body["scope"], "beers:read openid");
    assert!(body["id_token"].is_string());
    assert_eq!(
        claims(body["id_token"].as_str().unwrap())["aud"],
        client.client_id
    );
}

#[tokio::test]
async fn two_resources_give_a_token_for_both_and_the_code_exchange_may_narrow_them() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;
    let both = [
        ("scope", "beers:read notes:read"),
        ("resource", BEERS),
        ("resource", NOTES),
    ];

    let two = ok_json(code_flow(&app, &client, &both, &[]).await).await;
    let one = ok_json(code_flow(&app, &client, &both, &[("resource", NOTES)]).await).await;

    let at = claims(two["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], json!([BEERS, NOTES]));
    assert_eq!(at["scope"], "beers:read notes:read");
    let at = claims(one["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], NOTES);
    assert_eq!(at["scope"], "notes:read");
}

#[tokio::test]
async fn an_unknown_or_malformed_resource_is_invalid_target_at_the_authorization_endpoint() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;
    for resource in [
        "https://unknown.example",
        "https://beers.example#fragment",
        "/relative",
    ] {
        let query = app.authorize_query(&client, &[("resource", resource)]);
        let resp = app.get_authorize(&query, None).await;
        let to = crate::hardening_flows::error_link(resp).await;
        assert!(to.starts_with(&client.redirect_uri), "{resource}: {to}");
        let p = query_params(&to);
        assert_eq!(p["error"], "invalid_target", "{resource}: {to}");
        assert_eq!(p["state"], "xyz-state");
        assert_eq!(p["iss"], app.address);
    }
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_resource_the_code_was_not_granted_for() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;
    let beers = [("scope", "beers:read"), ("resource", BEERS)];

    let wider = code_flow(&app, &client, &beers, &[("resource", NOTES)]).await;
    let unknown = code_flow(&app, &client, &beers, &[("resource", "https://x.example")]).await;
    let malformed = code_flow(&app, &client, &beers, &[("resource", "not a uri")]).await;

    let body = assert_oauth_error(wider, 400, "invalid_target").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("never widen"),
        "{body}"
    );
    assert_oauth_error(unknown, 400, "invalid_target").await;
    assert_oauth_error(malformed, 400, "invalid_target").await;
}

#[tokio::test]
async fn client_credentials_take_a_resource_and_refuse_an_unknown_one() {
    let app = app_on(Backend::Memory).await;
    let client = app
        .client_with(json!({
            "client_name": "Machine",
            "redirect_uris": ["https://m.example/cb"],
            "grant_types": ["client_credentials"],
        }))
        .await;
    let basic = Some((
        client.client_id.as_str(),
        client.client_secret.as_deref().unwrap(),
    ));

    let beers = app
        .post_token(
            &[("grant_type", "client_credentials"), ("resource", BEERS)],
            basic,
        )
        .await;
    let by_scope = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "notes:read"),
            ],
            basic,
        )
        .await;
    let unknown = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://unknown.example"),
            ],
            basic,
        )
        .await;
    let repeated_scope = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("scope", "beers:read"),
                ("scope", "notes:read"),
            ],
            basic,
        )
        .await;

    let beers = ok_json(beers).await;
    let at = claims(beers["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], BEERS);
    let scope = beers["scope"].as_str().unwrap();
    assert!(scope.contains("beers:read beers:write"), "{scope}");
    assert!(!scope.contains("notes:read"), "{scope}");
    let at = claims(ok_json(by_scope).await["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], NOTES, "without resource, the scope chooses");
    assert_oauth_error(unknown, 400, "invalid_target").await;
    assert_oauth_error(repeated_scope, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_refresh_narrows_the_resources_and_cannot_widen_them() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let app = app_on(backend).await;
        let client = app.refreshing_client().await;
        let code = app
            .code_for(
                &client,
                &[
                    ("scope", "beers:read notes:read offline_access"),
                    ("resource", BEERS),
                    ("resource", NOTES),
                ],
            )
            .await;
        let first = ok_json(app.redeem(&client, &code).await).await;
        let rt = first["refresh_token"].as_str().unwrap().to_string();
        let refresh = |rt: String, resource: Option<String>| {
            let client = client.clone();
            let app = &app;
            async move {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ];
                if let Some(r) = &resource {
                    form.push(("resource", r.as_str()));
                }
                app.post_token(
                    &form,
                    Some((&client.client_id, client.client_secret.as_deref().unwrap())),
                )
                .await
            }
        };

        let narrowed = ok_json(refresh(rt, Some(BEERS.into())).await).await;
        let rt = narrowed["refresh_token"].as_str().unwrap().to_string();
        // Hallpass's own API is registered, but this grant is not for it.
        let widened = refresh(rt.clone(), Some(app.address.clone())).await;
        let unknown = refresh(rt.clone(), Some("https://unknown.example".into())).await;
        let all = ok_json(refresh(rt, None).await).await;

        let at = claims(narrowed["access_token"].as_str().unwrap());
        assert_eq!(at["aud"], BEERS);
        assert_eq!(narrowed["scope"], "beers:read offline_access");
        assert_oauth_error(widened, 400, "invalid_target").await;
        assert_oauth_error(unknown, 400, "invalid_target").await;
        let at = claims(all["access_token"].as_str().unwrap());
        assert_eq!(
            at["aud"],
            json!([BEERS, NOTES]),
            "the refresh token keeps both"
        );
        assert_eq!(all["scope"], "beers:read notes:read offline_access");
    }
}

#[tokio::test]
async fn without_resource_the_scopes_choose_and_a_configured_default_applies() {
    let app = app_on(Backend::Memory).await;
    let fixed = spawn_app_on(Backend::Memory, |c| {
        registry(c);
        let servers = c.resources.servers().to_vec();
        c.resources =
            Resources::from_servers(servers, Some(vec![NOTES.into()]), &c.scopes, &c.audience)
                .unwrap();
    })
    .await;
    let client = app.confidential_client().await;
    let fixed_client = fixed.confidential_client().await;

    let beers = ok_json(code_flow(&app, &client, &[("scope", "beers:read")], &[]).await).await;
    let own = ok_json(code_flow(&app, &client, &[("scope", "openid profile")], &[]).await).await;
    let default = ok_json(
        code_flow(
            &fixed,
            &fixed_client,
            &[("scope", "openid notes:read")],
            &[],
        )
        .await,
    )
    .await;
    let refused = {
        let query = fixed.authorize_query(&fixed_client, &[("scope", "beers:read")]);
        fixed.get_authorize(&query, None).await
    };

    assert_eq!(
        claims(beers["access_token"].as_str().unwrap())["aud"],
        BEERS
    );
    let own_token = own["access_token"].as_str().unwrap();
    assert_eq!(claims(own_token)["aud"], app.address);
    assert_eq!(app.me_status(own_token).await, 200);
    assert_eq!(
        claims(default["access_token"].as_str().unwrap())["aud"],
        NOTES
    );
    let to = crate::hardening_flows::error_link(refused).await;
    assert_eq!(query_params(&to)["error"], "invalid_scope", "{to}");
}

#[tokio::test]
async fn tokens_for_another_resource_are_refused_by_hallpass_api_and_active_at_introspection() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;
    let body = ok_json(
        code_flow(
            &app,
            &client,
            &[("scope", "openid profile beers:read"), ("resource", BEERS)],
            &[],
        )
        .await,
    )
    .await;
    let token = body["access_token"].as_str().unwrap();

    let me = app.me_status(token).await;
    let userinfo = app
        .http
        .get(app.url(USERINFO))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status();
    let introspected = app.introspect(&client, token).await;

    assert_eq!(
        me, 401,
        "a beer-locker token does not reach the management API"
    );
    assert_eq!(userinfo, StatusCode::UNAUTHORIZED);
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["aud"], BEERS);
}

#[tokio::test]
async fn the_consent_page_names_the_resource_servers() {
    let app = app_on(Backend::Memory).await;
    let client = app.confidential_client().await;
    let session = app.login(&client.owner).await;
    let query = app.authorize_query(
        &client,
        &[
            ("scope", "openid beers:read notes:read"),
            ("resource", BEERS),
            ("resource", NOTES),
        ],
    );

    let page = app.get_authorize(&query, Some(&session)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();

    assert!(html.contains("Beer &lt;Locker&gt;"), "{html}");
    assert!(html.contains(BEERS) && html.contains(NOTES), "{html}");
    assert!(!html.contains("Beer <Locker>"), "names are escaped");
    // Consent for the beer locker does not stand in for consent for another resource.
    let txn = hidden_input(&html, "txn").unwrap();
    assert_eq!(
        app.post_consent(&session, &txn, "allow").await.status(),
        StatusCode::SEE_OTHER
    );
    let again = app.get_authorize(&query, Some(&session)).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER, "remembered");
    let other = app.authorize_query(&client, &[("scope", "openid")]);
    let asks = app.get_authorize(&other, Some(&session)).await;
    assert_eq!(asks.status(), StatusCode::OK, "a new resource asks again");
}
