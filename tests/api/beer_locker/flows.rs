//! The beer locker in use: a user's beers over the code flow, isolation between users, and
//! the real `beer-locker` binary as a child process.

use super::*;

#[tokio::test]
async fn a_user_manages_beers_with_a_token_from_the_code_flow() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (app, locker) = app_and_locker(&backend).await;
        let (token, _) = user_token(&app, "beers:read beers:write").await;

        let resp = locker.post_beer(&token, &orval()).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        let beer: Value = resp.json().await.unwrap();
        let id = beer["id"].as_str().unwrap().to_string();
        assert_eq!(location, locker.url(&format!("/api/beers/{id}")));
        assert_eq!(
            (
                beer["name"].as_str(),
                beer["type"].as_str(),
                beer["quantity"].as_u64()
            ),
            (Some("Orval"), Some("trappist"), Some(6))
        );
        let stout = locker
            .add_beer(
                &token,
                &json!({"name": "Guinness", "type": "stout", "quantity": 2}),
            )
            .await;

        assert_eq!(
            locker.beers(&token).await,
            vec![beer.clone(), stout.clone()]
        );
        let resp = locker.get(&format!("/api/beers/{id}"), &token).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.json::<Value>().await.unwrap(), beer);

        let path = format!("/api/beers/{id}");
        let resp = locker
            .send(
                reqwest::Method::PUT,
                &path,
                Some(&token),
                Some(&json!({"name": "Orval", "type": "trappist", "quantity": 5})),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let updated: Value = resp.json().await.unwrap();
        assert_eq!(updated["quantity"], 5);
        assert_eq!(updated["id"], beer["id"]);

        let resp = locker
            .send(reqwest::Method::DELETE, &path, Some(&token), None)
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            locker.get(&path, &token).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(locker.beers(&token).await, vec![stout]);
    }
}

#[tokio::test]
async fn a_second_user_can_neither_see_nor_touch_the_first_users_beers() {
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let (app, locker) = app_and_locker(&backend).await;
        let (alice, _) = user_token(&app, "beers:read beers:write").await;
        let (bob, _) = user_token(&app, "beers:read beers:write").await;
        let beer = locker.add_beer(&alice, &orval()).await;
        let path = format!("/api/beers/{}", beer["id"].as_str().unwrap());

        assert_eq!(locker.beers(&bob).await, Vec::<Value>::new());
        let get = locker.get(&path, &bob).await;
        let put = locker
            .send(
                reqwest::Method::PUT,
                &path,
                Some(&bob),
                Some(&json!({"name": "Mine", "type": "ale", "quantity": 0})),
            )
            .await;
        let delete = locker
            .send(reqwest::Method::DELETE, &path, Some(&bob), None)
            .await;

        for resp in [get, put, delete] {
            assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "someone else's beer looks like no beer"
            );
            assert_eq!(resp.json::<Value>().await.unwrap()["error"], "not_found");
        }
        assert_eq!(locker.beers(&alice).await, vec![beer]);
    }
}

#[tokio::test]
async fn the_beer_locker_binary_runs_as_its_own_process_and_trusts_only_the_jwks() {
    // The binary binds its own port: take a free one, register it, then start the binary.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    let app = spawn_app_on(Backend::Memory, |c| register_locker(c, &address)).await;
    let process = spawn_locker_process(&app.address, &format!("127.0.0.1:{port}")).await;
    let locker = &process.locker;
    let (token, _) = user_token(&app, "beers:read beers:write").await;

    let beer = locker.add_beer(&token, &orval()).await;
    let listed = locker.beers(&token).await;
    let anonymous = locker
        .send(reqwest::Method::GET, "/api/beers", None, None)
        .await;
    let foreign = {
        let other = spawn_app().await;
        let (theirs, _) = user_token(&other, "beers:read beers:write").await;
        locker.get("/api/beers", &theirs).await
    };
    let metadata: Value = locker
        .http
        .get(locker.metadata_url())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(listed, vec![beer]);
    let challenge = assert_refused(anonymous, 401, "invalid_token", locker).await;
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}\"", locker.metadata_url())
    );
    let challenge = assert_refused(foreign, 401, "invalid_token", locker).await;
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(metadata["resource"], locker.address);
    assert_eq!(metadata["authorization_servers"], json!([app.address]));
}
