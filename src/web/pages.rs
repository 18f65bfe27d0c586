//! HTML rendering for the browser pages. Every value shown is escaped; no business logic.

/// Escapes text for HTML element content and double-quoted attributes.
///
/// Copies the runs between special characters whole (they are ASCII, so a byte match never
/// falls inside a multi-byte character): the consent page escapes its sealed form and the
/// request's query, hundreds of bytes on every visit.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#x27;",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        out.push_str(entity);
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out
}

pub(super) fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Hallpass</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{padding:.5rem 1.2rem;margin:1rem .5rem 0 0}}.error{{color:#a00}}li{{margin:.4rem 0}}code{{background:#eee;padding:0 .2rem}}button.link{{background:none;border:0;padding:0;margin:0;color:#06c;text-decoration:underline;cursor:pointer;font:inherit}}</style>
</head><body><h1>{title}</h1>
{body}
</body></html>"#,
        title = escape(title)
    )
}

/// The login form. `csrf` is the double-submit token, `return_to` a local path.
pub fn login(
    error: Option<&str>,
    csrf: &str,
    return_to: &str,
    username: &str,
    app: Option<&str>,
) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let app = app
        .map(|a| {
            format!(
                "<p>Sign in to continue to <strong>{}</strong>.</p>",
                escape(a)
            )
        })
        .unwrap_or_default();
    layout(
        "Sign in",
        &format!(
            r#"{app}{error}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="return_to" value="{return_to}">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" value="{username}" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>"#,
            csrf = escape(csrf),
            return_to = escape(return_to),
            username = escape(username),
        ),
    )
}

/// What an authorization request asks for, as the consent page lists it.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// Each scope and the sentence that describes it.
    pub scopes: &'a [(String, String)],
    /// Each resource server the tokens are for (RFC 8707): its name and identifier.
    pub resources: &'a [(String, String)],
}

/// What the consent page can say about who runs the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust<'a> {
    /// Registered by a user or the operator.
    Verified,
    /// Registered itself (RFC 7591): its name is whatever its registrant chose.
    SelfRegistered,
    /// Identified by a metadata document URL: `host` serves it (the one thing known), and
    /// `loopback_only` when every redirect URI is a loopback one.
    MetadataDocument {
        /// The document URL's host, shown prominently.
        host: &'a str,
        /// Every redirect URI is on a loopback host.
        loopback_only: bool,
    },
}

/// The consent page: who asks, for whom, for what, and at which services. `trust` says
/// whether the client's name can be believed; when not, the page says so.
pub fn consent(
    client_name: &str,
    trust: Trust<'_>,
    redirect_host: &str,
    username: &str,
    asked: Asked<'_>,
    txn: &str,
    this_request: &str,
) -> String {
    let Asked { scopes, resources } = asked;
    let items: String = scopes
        .iter()
        .map(|(name, desc)| {
            format!(
                "<li><strong>{}</strong> <code>{}</code></li>",
                escape(desc),
                escape(name)
            )
        })
        .collect();
    let services = if resources.is_empty() {
        String::new()
    } else {
        let names: String = resources
            .iter()
            .map(|(name, id)| {
                format!(
                    "<li><strong>{}</strong> <code>{}</code></li>",
                    escape(name),
                    escape(id)
                )
            })
            .collect();
        format!("<p>It will use this access at:</p>\n<ul class=\"resources\">{names}</ul>\n")
    };
    let unverified = match trust {
        Trust::Verified => String::new(),
        Trust::SelfRegistered => format!(
            r#"<p class="error" role="note"><strong>Unverified application.</strong> It registered itself with Hallpass, which has not checked who runs it: the name “{client}” is its own claim. Allow access only if you started this from an application you trust at <code>{host}</code>.</p>"#,
            client = escape(client_name),
            host = escape(redirect_host),
        ),
        Trust::MetadataDocument {
            host: doc_host,
            loopback_only,
        } => {
            let loopback = if loopback_only {
                r#"<p class="error" role="note"><strong>This application runs on your device.</strong> It receives the answer on a local address, so any program on this computer could present itself under this name.</p>"#
            } else {
                ""
            };
            format!(
                r#"<p class="error" role="note"><strong>Unverified application from {doc_host}.</strong> It is described by a document on <strong>{doc_host}</strong>; Hallpass has not checked who runs it, and the name “{client}” is its own claim. Allow access only if you trust <strong>{doc_host}</strong>.</p>{loopback}"#,
                client = escape(client_name),
                doc_host = escape(doc_host),
            )
        }
    };
    layout(
        "Allow access?",
        &format!(
            r#"<p><strong>{client}</strong> (redirecting to <code>{host}</code>) asks to access your account <strong>{user}</strong>:</p>{unverified}
<ul>{items}</ul>
{services}<form method="post" action="/oauth2/authorize">
<input type="hidden" name="txn" value="{txn}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
<form method="post" action="/logout"><input type="hidden" name="return_to" value="{back}">
<p><small>Signed in as {user}. <button type="submit" class="link">Not you?</button></small></p></form>"#,
            back = escape(this_request),
            client = escape(client_name),
            host = escape(redirect_host),
            user = escape(username),
            txn = escape(txn),
        ),
    )
}

/// The home page: what Hallpass is, links, and who is signed in.
pub fn home(signed_in_as: Option<&str>) -> String {
    let who = match signed_in_as {
        Some(user) => format!(
            r#"<p>Signed in as <strong>{}</strong>.</p>
<form method="post" action="/logout"><button type="submit">Sign out</button></form>"#,
            escape(user)
        ),
        None => r#"<p>You are not signed in. <a href="/login">Sign in</a></p>"#.to_string(),
    };
    layout(
        "Hallpass",
        &format!(
            r#"<p>Hallpass is an OAuth 2.0 authorization server.</p>
{who}
<ul>
<li><a href="/docs">API documentation (Swagger UI)</a></li>
<li><a href="/openapi.yaml">OpenAPI spec</a></li>
<li><a href="/.well-known/oauth-authorization-server">Authorization server metadata</a></li>
</ul>"#
        ),
    )
}

/// The sign-out confirmation.
pub fn logout() -> String {
    layout(
        "Sign out",
        r#"<form method="post" action="/logout"><button type="submit">Sign out of Hallpass</button></form>"#,
    )
}

/// An error page that never redirects.
pub fn error(title: &str, message: &str) -> String {
    layout(
        title,
        &format!("<p class=\"error\">{}</p>", escape(message)),
    )
}

/// A plain message page.
pub fn message(title: &str, message: &str) -> String {
    layout(
        title,
        &format!(
            "<p>{}</p><p><a href=\"/docs\">API documentation</a></p>",
            escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_replaces_each_special_character_and_keeps_the_text_around_it() {
        assert_eq!(escape(""), "");
        assert_eq!(escape("plain"), "plain");
        assert_eq!(
            escape("&<>\"'"),
            "&amp;&lt;&gt;&quot;&#x27;",
            "specials side by side, at both ends"
        );
        assert_eq!(
            escape("«é» <b>Bière</b> & 🍺'"),
            "«é» &lt;b&gt;Bière&lt;/b&gt; &amp; 🍺&#x27;",
            "multi-byte characters pass through whole"
        );
    }

    #[test]
    fn every_shown_value_is_escaped() {
        let page = consent(
            "<script>x</script>",
            Trust::SelfRegistered,
            "a\"b",
            "u&u",
            Asked {
                scopes: &[("s".into(), "<b>".into())],
                resources: &[("<i>Beers</i>".into(), "https://b.example/?a=1&b=2".into())],
            },
            "t'",
            "/oauth2/authorize?a=1&b=\"",
        );
        assert!(page.contains("value=\"/oauth2/authorize?a=1&amp;b=&quot;\""));
        assert!(!page.contains("<script>x"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("a&quot;b"));
        assert!(page.contains("u&amp;u"));
        assert!(page.contains("t&#x27;"));
        assert!(page.contains("&lt;i&gt;Beers&lt;/i&gt;"), "{page}");
        assert!(page.contains("https://b.example/?a=1&amp;b=2"));
        assert!(page.contains("Unverified application"));
        assert!(!page.contains("“<script>"));
        let login = login(None, "c", "/", "", Some("<i>App</i>"));
        assert!(login.contains("continue to <strong>&lt;i&gt;App&lt;/i&gt;</strong>"));
    }
}
