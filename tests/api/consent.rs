//! Remembered consent, `prompt`, and the consent API.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, assert_oauth_error, each_store, location, query_params, spawn_app};

#[tokio::test]
async fn a_granted_client_is_not_asked_again_for_the_same_or_fewer_scopes() {
    each_store(async |app: TestApp| {
        let c = app.confidential_client().await;
        app.code_for(&c, &[("scope", "beers:read beers:write")])
            .await;
        let session = app.login(&c.owner).await;

        for scope in ["beers:read beers:write", "beers:read"] {
            let resp = app
                .get_authorize(
                    &app.authorize_query(&c, &[("scope", scope)]),
                    Some(&session),
                )
                .await;
            assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{scope}");
            let p = query_params(&location(&resp));
            assert!(p.contains_key("code"), "{scope}");
            assert_eq!(p["state"], "xyz-state");
        }
        let wider = app
            .get_authorize(
                &app.authorize_query(&c, &[("scope", "beers:read profile")]),
                Some(&session),
            )
            .await;
        assert_eq!(wider.status(), StatusCode::OK, "a new scope asks again");
        let forced = app
            .get_authorize(
                &app.authorize_query(&c, &[("scope", "beers:read"), ("prompt", "consent")]),
                Some(&session),
            )
            .await;
        assert_eq!(
            forced.status(),
            StatusCode::OK,
            "prompt=consent forces the page"
        );
    })
    .await;
}

#[tokio::test]
async fn prompt_none_gives_a_code_with_consent_and_consent_required_without() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    let session = app.login(&c.owner).await;
    let q = app.authorize_query(&c, &[("scope", "beers:read"), ("prompt", "none")]);

    // Not approved yet: the error is offered as a link, not redirected (RFC 9700 §4.11.2).
    let before = app.get_authorize(&q, Some(&session)).await;
    let p = query_params(&crate::hardening_flows::error_link(before).await);
    assert_eq!(p["error"], "consent_required");
    assert_eq!(p["iss"], app.address);

    app.code_for(&c, &[("scope", "beers:read")]).await;
    let after = app.get_authorize(&q, Some(&session)).await;
    assert!(query_params(&location(&after)).contains_key("code"));
    let no_session = app.get_authorize(&q, None).await;
    assert_eq!(
        query_params(&crate::hardening_flows::error_link(no_session).await)["error"],
        "login_required"
    );
}

#[tokio::test]
async fn consents_are_listed_and_withdrawing_one_asks_again_and_revokes_refresh_tokens() {
    each_store(async |app: TestApp| {
        let c = app.refreshing_client().await;
        let tokens = app
            .tokens_with_refresh(&c, "offline_access beers:read")
            .await;
        let rt = tokens["refresh_token"].as_str().unwrap().to_string();
        let owner = &c.owner;
        let list: Value = app
            .as_user(reqwest::Method::GET, "/api/consents", owner)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list.as_array().unwrap().len(), 1);
        assert_eq!(list[0]["client_id"], c.client_id);
        assert_eq!(list[0]["client_name"], "Offline App");
        assert_eq!(list[0]["scope"], "beers:read offline_access");

        let del = app
            .as_user(
                reqwest::Method::DELETE,
                format!("/api/consents/{}", c.client_id),
                owner,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), StatusCode::NO_CONTENT);

        assert_oauth_error(app.refresh(&c, &rt, None).await, 400, "invalid_grant").await;
        let session = app.login(owner).await;
        let page = app
            .get_authorize(
                &app.authorize_query(&c, &[("scope", "beers:read")]),
                Some(&session),
            )
            .await;
        assert_eq!(page.status(), StatusCode::OK, "asked again");
        let again = app
            .as_user(
                reqwest::Method::DELETE,
                format!("/api/consents/{}", c.client_id),
                owner,
            )
            .send()
            .await
            .unwrap();
        assert_oauth_error(again, 404, "not_found").await;
    })
    .await;
}

#[tokio::test]
async fn consents_need_authentication_and_are_per_user() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    app.code_for(&c, &[]).await;
    let anon = app.http.get(app.url("/api/consents")).send().await.unwrap();
    assert_oauth_error(anon, 401, "invalid_token").await;
    let other = app.user().await;
    let list: Value = app
        .as_user(reqwest::Method::GET, "/api/consents", &other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, serde_json::json!([]));
}

#[tokio::test]
async fn prompt_login_and_an_exceeded_max_age_ask_for_the_password_again() {
    let app = spawn_app().await;
    let c = app.confidential_client().await;
    app.code_for(&c, &[("scope", "beers:read")]).await;
    let session = app.login(&c.owner).await;
    app.clock.advance(120);

    let fresh_enough = app
        .get_authorize(
            &app.authorize_query(&c, &[("scope", "beers:read"), ("max_age", "3600")]),
            Some(&session),
        )
        .await;
    assert!(
        query_params(&location(&fresh_enough)).contains_key("code"),
        "a recent sign-in satisfies max_age"
    );

    for extra in [[("prompt", "login")], [("max_age", "60")]] {
        let mut params = vec![("scope", "beers:read")];
        params.extend(extra);
        let resp = app
            .get_authorize(&app.authorize_query(&c, &params), Some(&session))
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{extra:?}");
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("name=\"password\""),
            "{extra:?}: the login form"
        );
        let return_to = crate::helpers::hidden_input(&html, "return_to").unwrap();
        assert!(
            !return_to.contains("prompt=login"),
            "signing in once is enough: {return_to}"
        );
    }

    let none = app
        .get_authorize(
            &app.authorize_query(&c, &[("prompt", "none"), ("max_age", "60")]),
            Some(&session),
        )
        .await;
    assert_eq!(query_params(&location(&none))["error"], "login_required");
    let mixed = app
        .get_authorize(
            &app.authorize_query(&c, &[("prompt", "none login")]),
            Some(&session),
        )
        .await;
    assert_eq!(query_params(&location(&mixed))["error"], "invalid_request");
    let bad_age = app
        .get_authorize(
            &app.authorize_query(&c, &[("max_age", "soon")]),
            Some(&session),
        )
        .await;
    assert_eq!(
        query_params(&location(&bad_age))["error"],
        "invalid_request"
    );
}
