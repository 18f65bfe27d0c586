//! The browser side: login, consent and logout pages (RFC 6749 §4.1.1–4.1.2).
//!
//! These are plain poem handlers, kept out of the OpenAPI spec. Each parses the request,
//! calls one `oauth::` function and renders the answer. Every response is HTML with
//! `X-Frame-Options: DENY`, `Content-Security-Policy: frame-ancestors 'none'` and
//! `Cache-Control: no-store`; every redirect is a 303 (never a 307, which would re-post the
//! login form to the client, RFC 9700 §4.12).
//!
//! The session is a signed cookie (`HttpOnly`, `SameSite=Lax`; on https `Secure` and the
//! `__Host-` prefix: [`cookies`]) with an id that `POST /logout` ends in the store
//! (`oauth::sign_out`). The login form carries a CSRF token bound to a keyed MAC ([`csrf`]);
//! the consent form carries the pending request sealed to the session's subject.

pub mod cookies;
pub mod csrf;
pub mod pages;
mod redirect_guard;

use std::collections::HashMap;

use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler,
    http::{StatusCode, header},
    middleware::SetHeader,
    web::Data,
};

use crate::{
    crypto::random_id,
    error::{ErrorCode, HttpError, OAuthError},
    oauth::{
        authorize::{self, AuthorizeError, Decision},
        client,
        session::{self, Session},
        sign_out, users,
    },
    state::AppState,
    store::{Prefetched, schema},
    throttle::{self, Refusal, client_ip},
};

pub use cookies::{CSRF_COOKIE, SESSION_COOKIE};

/// The browser routes and their methods, for `Allow` on a 405 ([`crate::api::allow`]).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/oauth2/authorize", &["GET", "POST"]),
    ("/login", &["GET", "POST"]),
    ("/logout", &["GET", "POST"]),
    ("/", &["GET"]),
];

/// Adds the browser routes, each with the page security headers, to `route`, and serves the
/// home page at exactly `/` ahead of `route` (where the API, nested at `/`, would answer it).
pub fn mount(route: Route) -> impl Endpoint {
    let route = route
        .at(
            "/oauth2/authorize",
            get(authorize_get).post(authorize_post).with(page_headers()),
        )
        .at(
            "/login",
            get(login_get).post(login_post).with(page_headers()),
        )
        .at(
            "/logout",
            get(logout_page).post(logout).with(page_headers()),
        );
    WithHome {
        home: get(home).with(page_headers()).map_to_response().boxed(),
        inner: route,
    }
}

/// Answers `/` with the home page, every other path with `inner`.
struct WithHome<E> {
    home: poem::endpoint::BoxEndpoint<'static, Response>,
    inner: E,
}

impl<E: Endpoint> Endpoint for WithHome<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if req.uri().path() == "/" {
            self.home.call(req).await
        } else {
            Ok(self.inner.call(req).await?.into_response())
        }
    }
}

/// The security headers of every page. The CSP has no `form-action` on purpose: Chromium
/// applies `form-action` to the redirects that follow a form submission, so the consent
/// form's 303 to the client (another origin, a loopback port, or a private-use scheme such as
/// `com.example.app:`) would be blocked; `default-src 'none'` does not cover `form-action`,
/// and every form on these pages posts to a fixed path of this server.
fn page_headers() -> SetHeader {
    SetHeader::new()
        .overriding("X-Frame-Options", "DENY")
        .overriding(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        )
        .overriding(header::CACHE_CONTROL, "no-store")
        .overriding(header::PRAGMA, "no-cache")
        .overriding("Referrer-Policy", "no-referrer")
        .overriding("X-Content-Type-Options", "nosniff")
}

fn html(status: StatusCode, body: String) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn see_other(url: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, url)
        .finish()
}

fn server_error_page(err: &OAuthError) -> Response {
    let err = HttpError::from(err.clone());
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = html(
        status,
        pages::error(
            "Something went wrong",
            "The server cannot complete this request right now. Please try again in a moment.",
        ),
    );
    if let Some(retry) = err.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static(retry));
    }
    resp
}

/// The value of cookie `name`.
fn cookie(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(
    state: &AppState,
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age: u64,
) -> String {
    cookies::set_cookie(&state.config, name, value, path, same_site, max_age)
}

/// The signed-in session and its user, if the cookie is valid, the session was not signed
/// out, and the user still exists.
async fn current_session(
    state: &AppState,
    req: &Request,
) -> Result<Option<(Session, users::User)>, OAuthError> {
    let cookie = session_cookie(state, req);
    checked_session(state, cookie, &mut Prefetched::default()).await
}

/// The session cookie's session, when it is valid (signature and expiry; not whether it
/// was signed out).
fn session_cookie(state: &AppState, req: &Request) -> Option<Session> {
    let raw = cookie(req, cookies::session_name(&state.config))?;
    session::open::<Session>(&state.session_key, "session", state.now(), &raw)
}

/// [`current_session`] for the session cookie's `session`, with the records taken from
/// `pre` when they were read ahead.
async fn checked_session(
    state: &AppState,
    session: Option<Session>,
    pre: &mut Prefetched,
) -> Result<Option<(Session, users::User)>, OAuthError> {
    let Some(s) = session else {
        return Ok(None);
    };
    if sign_out::is_ended(state, &s, pre).await? {
        return Ok(None);
    }
    Ok(users::for_session(state, &s.sub, &s.user, pre)
        .await?
        .map(|u| (s, u)))
}

/// Reads ahead, in one store round trip, what an authorization request for `client_id`
/// will read: the session's sign-out record and its user's record (through the cookie's
/// record key, else the user's id record), the client's record, and the user's consent to
/// it. A store error
/// reads nothing ahead: the reads then happen one by one and answer the error as usual.
async fn read_ahead(
    state: &AppState,
    session: Option<&Session>,
    client_id: Option<&str>,
) -> Prefetched {
    let sub = session.map(|s| &s.sub);
    let mut keys = Vec::with_capacity(4);
    if let Some(s) = session {
        keys.push(schema::sessions(&s.sub));
        keys.push(if s.user.is_empty() {
            schema::user_id(&s.sub)
        } else {
            schema::user(&s.user)
        });
    }
    let client = client_id.and_then(|id| Some((id, client::record_key(&state.config, id)?)));
    if let Some((id, key)) = client {
        keys.push(key);
        if let Some(sub) = &sub {
            keys.push(schema::consent(sub, id));
        }
    }
    Prefetched::read(state.store.as_ref(), keys)
        .await
        .unwrap_or_default()
}

/// Reads an urlencoded form body into single-valued fields; `None` when malformed, of the
/// wrong content type, or with a repeated field.
async fn read_form(req: &Request, body: Body) -> Option<HashMap<String, String>> {
    let ct = req.header(header::CONTENT_TYPE).unwrap_or_default();
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return None;
    }
    let bytes = body.into_bytes().await.ok()?;
    let raw = std::str::from_utf8(&bytes).ok()?;
    let (map, repeated) = authorize::parse_query(raw);
    repeated.is_none().then_some(map)
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    error: Option<&str>,
    return_to: &str,
    username: &str,
    csrf_cookie: Option<&str>,
    app: Option<&str>,
) -> Response {
    let pair = csrf::for_page(&state.session_key, state.now(), csrf_cookie);
    let mut resp = html(
        status,
        pages::login(error, &pair.field, return_to, username, app),
    );
    let name = cookies::csrf_name(&state.config);
    let c = set_cookie(
        state,
        name,
        &pair.cookie,
        "/login",
        "Strict",
        csrf::CSRF_TTL,
    );
    if let Ok(v) = c.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The name of the application whose authorization request `return_to` continues, if any.
async fn asking_app(state: &AppState, return_to: &str) -> Option<String> {
    let query = return_to.strip_prefix("/oauth2/authorize?")?;
    let (params, _) = authorize::parse_query(query);
    let id = params.get("client_id")?;
    crate::oauth::client::get(state, id)
        .await
        .ok()
        .flatten()
        .map(|c| c.client_name)
}

/// What the consent page says about who runs `client`; `doc_host` is its id's host when it
/// is a metadata document URL.
fn consent_trust<'a>(client: &crate::oauth::client::Client, doc_host: &'a str) -> pages::Trust<'a> {
    if client.is_metadata_document() {
        pages::Trust::MetadataDocument {
            host: doc_host,
            loopback_only: crate::oauth::cimd::loopback_only(client),
        }
    } else if client.is_verified() {
        pages::Trust::Verified
    } else {
        pages::Trust::SelfRegistered
    }
}

/// Only local paths back into the authorization flow (or home) may follow a login.
fn safe_return_to(raw: &str) -> &str {
    let ok = raw == "/"
        || (raw.starts_with("/oauth2/authorize?")
            && raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'));
    if ok { raw } else { "/" }
}

#[handler]
async fn authorize_get(req: &Request, Data(state): Data<&AppState>) -> Response {
    let query = req.uri().query().unwrap_or("");
    let client_id = (query.len() <= 8192)
        .then(|| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "client_id")
                .map(|(_, v)| v)
        })
        .flatten();
    let cookie_session = session_cookie(state, req);
    let mut pre = read_ahead(state, cookie_session.as_ref(), client_id.as_deref()).await;
    let (client, areq) = match authorize::validate(state, query, &mut pre).await {
        Ok(v) => v,
        Err(AuthorizeError::Page(msg)) => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::error("Invalid request", &msg),
            );
        }
        Err(AuthorizeError::Redirect(url)) => {
            return redirect_guard::validation_error(state, req, query, url).await;
        }
        Err(AuthorizeError::Server(e)) => return server_error_page(&e),
    };
    let signed_in = match checked_session(state, cookie_session, &mut pre).await {
        Ok(s) => s,
        Err(e) => return server_error_page(&e),
    };
    let signed_in_sub = signed_in.as_ref().map(|(s, _)| s.sub.clone());
    let fresh = signed_in.filter(|(s, _)| !areq.needs_fresh_login(s.auth_time, state.now()));
    let Some((session, user)) = fresh else {
        if areq.prompts("none") {
            let err = OAuthError::new(ErrorCode::LoginRequired, "the user must sign in");
            let url = authorize::redirect_error(state, &areq, &err);
            let sub = signed_in_sub.as_deref();
            return redirect_guard::error_response(state, sub, &areq.client_id, url).await;
        }
        let return_to = format!("/oauth2/authorize?{}", authorize::query_after_login(query));
        return login_page(
            state,
            StatusCode::OK,
            None,
            &return_to,
            "",
            cookie(req, cookies::csrf_name(&state.config)).as_deref(),
            Some(&client.client_name),
        );
    };
    match authorize::after_login(state, &mut pre, &session, &areq).await {
        Ok(authorize::Next::Redirect(url)) => return see_other(&url),
        Ok(authorize::Next::Error(url)) => {
            let sub = Some(session.sub.as_str());
            return redirect_guard::error_response(state, sub, &areq.client_id, url).await;
        }
        Ok(authorize::Next::AskConsent) => {}
        Err(e) => return server_error_page(&e),
    }
    let scopes: Vec<(String, String)> = areq
        .scope
        .iter()
        .map(|s| {
            (
                s.to_string(),
                state.config.scope_description(s).unwrap_or(s).to_string(),
            )
        })
        .collect();
    let resources: Vec<(String, String)> = areq
        .resources
        .iter()
        .map(|id| {
            let name = crate::oauth::resource::find(&state.config, id)
                .map_or_else(|| id.clone(), |r| r.name);
            (name, id.clone())
        })
        .collect();
    let host = crate::oauth::redirect_uri::display_target(&areq.redirect_uri);
    let doc_host = url::Url::parse(&client.client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    let txn = authorize::seal_pending(state, &session, &areq);
    let this_request = format!("/oauth2/authorize?{}", authorize::query_after_login(query));
    html(
        StatusCode::OK,
        pages::consent(
            &client.client_name,
            consent_trust(&client, &doc_host),
            &host,
            &user.username,
            pages::Asked {
                scopes: &scopes,
                resources: &resources,
            },
            &txn,
            &this_request,
        ),
    )
}

#[handler]
async fn authorize_post(req: &Request, body: Body, Data(state): Data<&AppState>) -> Response {
    let Some(form) = read_form(req, body).await else {
        return html(
            StatusCode::BAD_REQUEST,
            pages::error("Invalid request", "The consent form was malformed."),
        );
    };
    let allow = match form.get("decision").map(String::as_str) {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::error("Invalid request", "Choose Allow or Deny."),
            );
        }
    };
    let txn = form.get("txn").map(String::as_str).unwrap_or_default();
    let pending = authorize::open_pending(state, txn);
    let cookie_session = session_cookie(state, req);
    let client_id = pending.as_ref().map(authorize::Pending::client_id);
    // The form's single use is claimed beside the read-ahead (one round trip for both).
    let claim = async {
        match (&pending, &cookie_session) {
            (Some(p), Some(s)) => authorize::claim(state, p, &s.sub).await,
            _ => Ok(false),
        }
    };
    let (mut pre, claimed) =
        tokio::join!(read_ahead(state, cookie_session.as_ref(), client_id), claim);
    let session = match checked_session(state, cookie_session, &mut pre).await {
        Ok(Some((s, _))) => s,
        Ok(None) => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::error(
                    "Session ended",
                    "You are not signed in any more. Start again from the application.",
                ),
            );
        }
        Err(e) => return server_error_page(&e),
    };
    let claimed = match claimed {
        Ok(c) => c,
        Err(e) => return server_error_page(&e),
    };
    match authorize::decide(state, &mut pre, &session, pending, claimed, allow).await {
        Ok(Decision::Redirect(url)) => see_other(&url),
        Ok(Decision::Refused) => html(
            StatusCode::BAD_REQUEST,
            pages::error(
                "Request expired",
                "This consent form is no longer valid: it expired, was already used, or belongs to another sign-in. Start again from the application.",
            ),
        ),
        Err(e) => server_error_page(&e),
    }
}

#[handler]
async fn login_get(req: &Request, Data(state): Data<&AppState>) -> Response {
    let (params, _) = authorize::parse_query(req.uri().query().unwrap_or(""));
    let return_to = safe_return_to(params.get("return_to").map(String::as_str).unwrap_or("/"));
    let app = asking_app(state, return_to).await;
    login_page(
        state,
        StatusCode::OK,
        None,
        return_to,
        "",
        cookie(req, cookies::csrf_name(&state.config)).as_deref(),
        app.as_deref(),
    )
}

#[handler]
async fn login_post(req: &Request, body: Body, Data(state): Data<&AppState>) -> Response {
    let Some(form) = read_form(req, body).await else {
        return login_page(
            state,
            StatusCode::BAD_REQUEST,
            Some("The sign-in form was malformed."),
            "/",
            "",
            None,
            None,
        );
    };
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let return_to = safe_return_to(field("return_to"));
    let app = asking_app(state, return_to).await;
    let app = app.as_deref();
    let csrf_ok = csrf::check(
        &state.session_key,
        state.now(),
        cookie(req, cookies::csrf_name(&state.config)).as_deref(),
        field("csrf"),
    );
    if !csrf_ok {
        return login_page(
            state,
            StatusCode::BAD_REQUEST,
            Some("Your sign-in form expired. Please sign in again (cookies must be enabled)."),
            return_to,
            field("username"),
            None,
            app,
        );
    }
    let attempt = throttle::Attempt::sign_in(field("username"), client_ip::of(req, state));
    let work = users::authenticate(state, field("username"), field("password"));
    match throttle::guard(state, &attempt, work, throttle::sign_in_outcome).await {
        Ok(Some(user)) => {
            let now = state.now();
            let session = Session {
                sub: user.id.clone(),
                auth_time: now,
                sid: random_id(),
                user: users::record_key(&user.username).unwrap_or_default(),
            };
            let ttl = state.config.session_ttl;
            let sealed = session::seal(&state.session_key, "session", now + ttl, &session);
            tracing::info!(user_id = %user.id, "user signed in");
            let mut resp = see_other(return_to);
            for c in [
                set_cookie(
                    state,
                    cookies::session_name(&state.config),
                    &sealed,
                    "/",
                    "Lax",
                    ttl,
                ),
                set_cookie(
                    state,
                    cookies::csrf_name(&state.config),
                    "",
                    "/login",
                    "Strict",
                    0,
                ),
            ] {
                if let Ok(v) = c.parse() {
                    resp.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Ok(None) => login_page(
            state,
            StatusCode::UNAUTHORIZED,
            Some("Wrong username or password."),
            return_to,
            field("username"),
            cookie(req, cookies::csrf_name(&state.config)).as_deref(),
            app,
        ),
        Err(Refusal::Throttled(t)) => {
            let (user, csrf) = (field("username"), cookie(req, CSRF_COOKIE));
            let status = StatusCode::TOO_MANY_REQUESTS;
            let mut resp = login_page(
                state,
                status,
                Some(&t.message()),
                return_to,
                user,
                csrf.as_deref(),
                app,
            );
            if let Ok(v) = t.retry_after.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Err(Refusal::Error(e)) => server_error_page(&e),
    }
}

/// A GET only offers the button: signing out changes state, so it takes a POST.
#[handler]
async fn logout_page() -> Response {
    html(StatusCode::OK, pages::logout())
}

/// Whether a browser POST comes from our own pages: `Sec-Fetch-Site` when the browser sends it,
/// else an `Origin` equal to the issuer's. Requests without either (non-browser clients)
/// pass, since they cannot carry another site's intent.
fn same_origin(state: &AppState, req: &Request) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match req.header(header::ORIGIN) {
        Some(origin) => {
            state.config.issuer.starts_with(origin) && {
                let rest = &state.config.issuer[origin.len()..];
                rest.is_empty() || rest.starts_with('/')
            }
        }
        None => true,
    }
}

/// Signs out; with a `return_to` back into an authorization request ("Not you?" on the
/// consent page), continues there, so the other account signs in to the same request.
#[handler]
async fn logout(req: &Request, body: Body, Data(state): Data<&AppState>) -> Response {
    if !same_origin(state, req) {
        return html(
            StatusCode::FORBIDDEN,
            pages::error("Not signed out", "Sign out from the Hallpass page itself."),
        );
    }
    if let Ok(Some((session, _))) = current_session(state, req).await {
        if let Err(e) = sign_out::end(state, &session).await {
            return server_error_page(&e);
        }
    }
    let back = read_form(req, body)
        .await
        .and_then(|f| f.get("return_to").cloned())
        .map(|r| safe_return_to(&r).to_string())
        .filter(|r| r != "/");
    let mut resp = match back {
        Some(url) => see_other(&url),
        None => html(
            StatusCode::OK,
            pages::message("Signed out", "You are signed out of Hallpass."),
        ),
    };
    let name = cookies::session_name(&state.config);
    if let Ok(v) = set_cookie(state, name, "", "/", "Lax", 0).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[handler]
async fn home(req: &Request, Data(state): Data<&AppState>) -> Response {
    let user = match current_session(state, req).await {
        Ok(Some((_, user))) => Some(user.username),
        _ => None,
    };
    html(StatusCode::OK, pages::home(user.as_deref()))
}
