//! Delivering authorization errors without being an open redirector (RFC 9700 §4.11.2).
//!
//! [`error_response`] asks [`oauth::redirect_trust`](crate::oauth::redirect_trust) whether the
//! error may go straight back to the client: a 303 if so; otherwise a 400 page naming the
//! redirect URI's host, with the error response as a plain link the person may follow.

use poem::{Request, Response, http::StatusCode};

use crate::{
    oauth::{
        authorize,
        redirect_trust::{self, ErrorAnswer},
    },
    state::AppState,
    web::{current_session, html, pages, see_other, server_error_page},
};

/// Answers the error response `url` of `client_id`'s request; `sub` is the signed-in user.
pub(super) async fn error_response(
    state: &AppState,
    sub: Option<&str>,
    client_id: &str,
    url: String,
) -> Response {
    match redirect_trust::answer(state, client_id, sub, url).await {
        Ok(ErrorAnswer::Redirect(url)) => see_other(&url),
        Ok(ErrorAnswer::Inform {
            host,
            url,
            error,
            description,
        }) => html(
            StatusCode::BAD_REQUEST,
            inform_page(&host, &url, &error, description.as_deref()),
        ),
        Err(e) => server_error_page(&e),
    }
}

/// Answers an error `authorize::validate` found in the request `query` (the client and its
/// redirect URI are valid by then), for whoever is signed in.
pub(super) async fn validation_error(
    state: &AppState,
    req: &Request,
    query: &str,
    url: String,
) -> Response {
    let (params, _) = authorize::parse_query(query);
    let client_id = params
        .get("client_id")
        .map(String::as_str)
        .unwrap_or_default();
    let sub = match current_session(state, req).await {
        Ok(s) => s.map(|(s, _)| s.sub),
        Err(e) => return server_error_page(&e),
    };
    error_response(state, sub.as_deref(), client_id, url).await
}

/// The page: what went wrong, where the link leads, and that following it is the user's call.
pub fn inform_page(host: &str, url: &str, error: &str, description: Option<&str>) -> String {
    let e = pages::escape;
    let why = match description {
        Some(d) => format!("{} (<code>{}</code>)", e(d), e(error)),
        None => format!("<code>{}</code>", e(error)),
    };
    pages::layout(
        "The request cannot be completed",
        &format!(
            r#"<p class="error">An application sent you here with a request Hallpass cannot complete: {why}.</p>
<p>The application answers at <strong>{host}</strong>. Hallpass has not sent you there automatically, because you have not used this application with Hallpass before.</p>
<p><a href="{url}" rel="noreferrer">Return to {host}</a></p>
<p>If you do not know <strong>{host}</strong>, close this page.</p>"#,
            host = e(host),
            url = e(url),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_escapes_the_host_link_and_description() {
        let page = inform_page(
            "a<b",
            "https://x.example/?error=e&state=\"><script>",
            "e",
            Some("<i>"),
        );
        assert!(
            !page.contains("<script>") && !page.contains("<i>"),
            "{page}"
        );
        assert!(page.contains("a&lt;b"));
        assert!(
            page.contains(
                r#"href="https://x.example/?error=e&amp;state=&quot;&gt;&lt;script&gt;""#
            )
        );
    }
}
