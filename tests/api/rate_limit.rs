//! Rate limits (issue 8, item 3): failed sign-ins per account and IP, per IP and per
//! account; failed client authentication per `client_id`; registration per IP. Over a limit
//! the API answers 429 with `Retry-After` and the RFC error body, the login form a 429 page
//! that says how long to wait. Time moves with the MockClock, never by sleeping.

use hallpass::{
    config::Config,
    throttle::settings::{RateLimits, TrustedProxies},
    time::Clock,
};
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::helpers::{
    TestApp, TestClient, TestUser, assert_oauth_error, backends, hidden_input, set_cookie,
    spawn_app_on,
};

/// Thresholds low enough for a test: 3 failures per account and IP, 10 per IP, 6 per
/// account, 3 per client, 2 registrations; a 900 s window.
fn low_limits(config: &mut Config) {
    config.rate_limits = RateLimits {
        sign_in_account_ip: 3,
        sign_in_ip: 10,
        sign_in_account: 6,
        client_auth: 3,
        registration: 2,
        window: 900,
        max_delay: 300,
        trusted_proxies: TrustedProxies::default(),
    };
}

/// The same, with X-Forwarded-For believed from 127.0.0.1 (where the test client connects).
fn low_limits_behind_proxy(config: &mut Config) {
    low_limits(config);
    config.rate_limits.trusted_proxies = TrustedProxies::parse("127.0.0.1").unwrap();
}

/// Runs `test` on every store with `tweak` applied to the configuration.
async fn each_store_with<F, Fut>(tweak: fn(&mut Config), test: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("-- store: {backend:?}");
        let app = spawn_app_on(backend, tweak).await;
        // Start at the beginning of a counting window, so that moving the clock by a few
        // seconds never starts a new one.
        let now = app.clock.now();
        app.clock.advance(900 - now % 900);
        test(app).await;
    }
}

fn retry_after(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// `GET /api/users/me` with HTTP Basic, optionally through the proxy for `xff`.
async fn me(app: &TestApp, user: &str, password: &str, xff: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .get(app.url("/api/users/me"))
        .basic_auth(user, Some(password));
    if let Some(ip) = xff {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.unwrap()
}

async fn metric(app: &TestApp, limit: &str) -> u64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("hallpass_throttled_requests_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
        .expect("the metric is listed")
}

#[tokio::test]
async fn wrong_basic_passwords_then_the_right_one_get_429_with_a_growing_retry_after_until_the_clock_moves()
 {
    each_store_with(low_limits, |app| async move {
        let user = app.user().await;
        for _ in 0..3 {
            let resp = me(&app, &user.username, "wrong password", None).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }

        let resp = me(&app, &user.username, &user.password, None).await;
        assert_eq!(retry_after(&resp), "1");
        let body = assert_oauth_error(resp, 429, "temporarily_unavailable").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("retry in 1 seconds")
        );

        app.clock.advance(1);
        let resp = me(&app, &user.username, "wrong again", None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "the delay passed");
        let resp = me(&app, &user.username, &user.password, None).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            retry_after(&resp),
            "2",
            "each further failure doubles the wait"
        );
        assert_eq!(metric(&app, "sign_in_account_ip").await, 2);

        app.clock.advance(901);
        let resp = me(&app, &user.username, &user.password, None).await;
        assert_eq!(resp.status(), StatusCode::OK, "a new window");
        // The success reset the account-and-IP counter: failures start from zero.
        for _ in 0..2 {
            let resp = me(&app, &user.username, "wrong password", None).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        let resp = me(&app, &user.username, &user.password, None).await;
        assert_eq!(resp.status(), StatusCode::OK);
    })
    .await;
}

/// `n` parallel `GET /api/users/me` as `user` with `password`; their statuses.
async fn parallel_me(app: &TestApp, user: &TestUser, password: &str, n: usize) -> Vec<StatusCode> {
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (http, url) = (app.http.clone(), app.url("/api/users/me"));
        let (name, password) = (user.username.clone(), password.to_string());
        burst.spawn(async move {
            let req = http.get(url).basic_auth(name, Some(password));
            req.send().await.unwrap().status()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = burst.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses
}

/// Beyond the threshold only one check runs at a time, and below it at most
/// `MAX_IN_FLIGHT`: a burst gets few more password checks than a patient attacker.
#[tokio::test]
async fn a_burst_of_parallel_wrong_passwords_gets_a_bounded_number_of_checks() {
    each_store_with(low_limits, |app| async move {
        let user = app.user().await;
        let statuses = parallel_me(&app, &user, "guess", 40).await;
        let checked = statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count();
        let throttled = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        let bound = usize::try_from(hallpass::throttle::MAX_IN_FLIGHT).unwrap() + 1;
        eprintln!("{checked} of 40 parallel guesses were checked, {throttled} got 429");
        assert!((3..=bound).contains(&checked), "{statuses:?}");
        assert_eq!(checked + throttled, 40, "{statuses:?}");
        let resp = me(&app, &user.username, &user.password, None).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    })
    .await;
}

/// A script calling the API in parallel with the right password is never throttled.
#[tokio::test]
async fn parallel_calls_with_the_right_password_all_pass() {
    each_store_with(low_limits, |app| async move {
        let user = app.user().await;
        let statuses = parallel_me(&app, &user, &user.password, 12).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    })
    .await;
}

/// The login page's CSRF cookie and field, for posting the form.
async fn login_form(app: &TestApp) -> (String, String) {
    let page = app.http.get(app.url("/login")).send().await.unwrap();
    let cookie = set_cookie(&page, "hallpass_csrf").unwrap();
    let csrf = hidden_input(&page.text().await.unwrap(), "csrf").unwrap();
    (cookie, csrf)
}

async fn post_login(
    app: &TestApp,
    form: &(String, String),
    user: &TestUser,
    password: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/login"))
        .header(header::COOKIE, &form.0)
        .form(&[
            ("username", user.username.as_str()),
            ("password", password),
            ("csrf", &form.1),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_login_form_answers_429_with_the_wait_after_repeated_wrong_passwords() {
    each_store_with(low_limits, |app| async move {
        let user = app.user().await;
        let form = login_form(&app).await;
        for _ in 0..3 {
            let resp = post_login(&app, &form, &user, "wrong password").await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }

        let resp = post_login(&app, &form, &user, &user.password).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry_after(&resp), "1");
        let html = resp.text().await.unwrap();
        assert!(html.contains("Too many failed sign-in attempts"), "{html}");
        assert!(html.contains("wait 1 second and try again"), "{html}");
        assert!(
            hidden_input(&html, "csrf").is_some(),
            "the form is shown again"
        );

        app.clock.advance(1);
        let resp = post_login(&app, &form, &user, &user.password).await;
        assert_eq!(
            resp.status(),
            StatusCode::SEE_OTHER,
            "signed in after the wait"
        );
        assert_eq!(metric(&app, "sign_in_account_ip").await, 1);
    })
    .await;
}

#[tokio::test]
async fn another_ip_behind_a_trusted_proxy_signs_in_until_the_account_wide_threshold() {
    each_store_with(low_limits_behind_proxy, |app| async move {
        let user = app.user().await;
        let (name, password) = (user.username.as_str(), user.password.as_str());
        for _ in 0..3 {
            let resp = me(&app, name, "guess", Some("203.0.113.9")).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        let resp = me(&app, name, password, Some("203.0.113.9")).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "the attacker's address waits"
        );
        let resp = me(&app, name, password, Some("198.51.100.7")).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "the owner, elsewhere, does not"
        );

        // Three more failures from three more addresses: six for the account.
        for ip in ["203.0.113.10", "203.0.113.11", "203.0.113.12"] {
            let resp = me(&app, name, "guess", Some(ip)).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        let resp = me(&app, name, password, Some("198.51.100.7")).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "account-wide threshold"
        );
        assert_eq!(metric(&app, "sign_in_account").await, 1);

        app.clock.advance(1);
        let resp = me(&app, name, password, Some("198.51.100.7")).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "never a lockout: the wait is short"
        );
    })
    .await;
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_when_no_proxy_is_trusted() {
    each_store_with(low_limits, |app| async move {
        let user = app.user().await;
        for _ in 0..3 {
            let resp = me(&app, &user.username, "guess", Some("203.0.113.9")).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        }
        let resp = me(&app, &user.username, &user.password, Some("198.51.100.7")).await;
        assert_eq!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "a client cannot pick its own address"
        );
    })
    .await;
}

async fn introspect_as(app: &TestApp, client: &TestClient, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&client.client_id, Some(secret))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn failed_client_authentication_is_throttled_per_client_id_on_every_endpoint() {
    each_store_with(low_limits, |app| async move {
        let client = app.confidential_client().await;
        let other = app.confidential_client().await;
        let id = client.client_id.as_str();
        let resp = app
            .post_token(&[("grant_type", "client_credentials")], Some((id, "wrong")))
            .await;
        assert_oauth_error(resp, 401, "invalid_client").await;
        let resp = app
            .http
            .post(app.url("/oauth2/revoke"))
            .form(&[
                ("token", "x"),
                ("client_id", id),
                ("client_secret", "wrong"),
            ])
            .send()
            .await
            .unwrap();
        assert_oauth_error(resp, 401, "invalid_client").await;
        let resp = introspect_as(&app, &client, "wrong").await;
        assert_oauth_error(resp, 401, "invalid_client").await;

        let secret = client.client_secret.clone().unwrap();
        let resp = introspect_as(&app, &client, &secret).await;
        assert_eq!(retry_after(&resp), "1");
        assert_oauth_error(resp, 429, "temporarily_unavailable").await;
        let resp = app
            .post_token(&[("grant_type", "client_credentials")], Some((id, &secret)))
            .await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let other_secret = other.client_secret.clone().unwrap();
        let resp = introspect_as(&app, &other, &other_secret).await;
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "another client is not affected"
        );
        assert_eq!(metric(&app, "client_auth").await, 2);

        app.clock.advance(1);
        let resp = introspect_as(&app, &client, &secret).await;
        assert_eq!(resp.status(), StatusCode::OK);
    })
    .await;
}

#[tokio::test]
async fn registration_is_throttled_per_ip() {
    each_store_with(low_limits, |app| async move {
        let new_user = |n: u32| {
            json!({"username": format!("user{n}-{}", hallpass::crypto::random_id()), "password": "correct horse battery"})
        };
        for n in 0..2 {
            assert_eq!(app.post_user(&new_user(n)).await.status(), StatusCode::CREATED);
        }
        let resp = app.post_user(&new_user(2)).await;
        assert_eq!(retry_after(&resp), "1");
        assert_oauth_error(resp, 429, "temporarily_unavailable").await;
        assert_eq!(metric(&app, "registration").await, 1);

        app.clock.advance(1);
        assert_eq!(app.post_user(&new_user(3)).await.status(), StatusCode::CREATED);
        let resp = app.post_user(&new_user(4)).await;
        assert_eq!(retry_after(&resp), "2");

        app.clock.advance(900);
        assert_eq!(app.post_user(&new_user(5)).await.status(), StatusCode::CREATED);
    })
    .await;
}
