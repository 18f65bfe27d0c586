//! Which authorization errors are redirected automatically (RFC 9700 §4.11.2).
//!
//! An error response goes back to the client's redirect URI. Sent there without a word to
//! the user, it turns Hallpass into an open redirector: anyone can register a client whose
//! redirect URI is a phishing page and hand out `https://hallpass/oauth2/authorize?...`
//! links that land there. So an error is redirected at once only to a client the server has
//! reason to trust: a first-party client, or one the signed-in user has already approved
//! (remembered consent exists). Otherwise the browser gets a page that names the redirect
//! URI's host and offers the error response as a plain link, so the person decides ("inform
//! the user"). Successful redirects (a code) are not affected: the user just approved them.

use url::Url;

use crate::{
    oauth::{consent, error::OAuthError, first_party, scope::Scope},
    state::AppState,
};

/// How to deliver an error response whose redirect URL is already built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAnswer {
    /// Redirect at once (303 to this URL).
    Redirect(String),
    /// Show a page that names `host` and links to `url`.
    Inform {
        /// The redirect URI's host, as the user should see it.
        host: String,
        /// The full error response URL (`error`, `error_description`, `state`, `iss`).
        url: String,
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
}

/// Whether errors for `client_id` may be redirected without asking: a first-party client, or
/// one `sub` (the signed-in user, if any) has approved before.
pub async fn trusted(
    state: &AppState,
    client_id: &str,
    sub: Option<&str>,
) -> Result<bool, OAuthError> {
    if first_party::is_first_party(&state.config, client_id) {
        return Ok(true);
    }
    match sub {
        // Any remembered grant: the empty scope is covered by every stored grant.
        Some(sub) => {
            consent::covers(
                state,
                &mut Default::default(),
                sub,
                client_id,
                &Scope::default(),
                &[],
            )
            .await
        }
        None => Ok(false),
    }
}

/// Decides how to deliver the error response `url` for `client_id`.
pub async fn answer(
    state: &AppState,
    client_id: &str,
    sub: Option<&str>,
    url: String,
) -> Result<ErrorAnswer, OAuthError> {
    if trusted(state, client_id, sub).await? {
        return Ok(ErrorAnswer::Redirect(url));
    }
    Ok(inform(url))
}

/// The [`ErrorAnswer::Inform`] for an error response URL.
pub fn inform(url: String) -> ErrorAnswer {
    let parsed = Url::parse(&url).ok();
    let host = crate::oauth::redirect_uri::display_target(&url);
    let param = |name: &str| {
        parsed.as_ref().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        })
    };
    ErrorAnswer::Inform {
        host,
        error: param("error").unwrap_or_default(),
        description: param("error_description"),
        url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_use_scheme_is_named_by_its_scheme() {
        let answer = inform("com.example.app:/cb?error=access_denied&iss=i".into());
        assert!(
            matches!(answer, ErrorAnswer::Inform { ref host, .. } if host == "com.example.app:"),
            "{answer:?}"
        );
    }

    #[test]
    fn the_page_names_the_host_and_the_error_of_the_response() {
        let url =
            "https://evil.example/phish?error=invalid_request&error_description=no+x&state=s&iss=i";
        assert_eq!(
            inform(url.into()),
            ErrorAnswer::Inform {
                host: "evil.example".into(),
                url: url.into(),
                error: "invalid_request".into(),
                description: Some("no x".into()),
            }
        );
    }
}
