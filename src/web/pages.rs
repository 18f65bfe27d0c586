//! HTML rendering for the browser pages. Every value shown is escaped; no business logic.

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

pub(super) fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Hallpass</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}}
label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.5rem;box-sizing:border-box}}
button{{padding:.5rem 1.2rem;margin:1rem .5rem 0 0}}.error{{color:#a00}}li{{margin:.4rem 0}}code{{background:#eee;padding:0 .2rem}}</style>
</head><body><h1>{title}</h1>
{body}
</body></html>"#,
        title = escape(title)
    )
}

/// The login form. `csrf` is the double-submit token, `return_to` a local path.
pub fn login(error: Option<&str>, csrf: &str, return_to: &str, username: &str) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    layout(
        "Sign in",
        &format!(
            r#"{error}<form method="post" action="/login">
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

/// The consent page: who asks, for whom, for what.
pub fn consent(
    client_name: &str,
    redirect_host: &str,
    username: &str,
    scopes: &[(String, String)],
    txn: &str,
) -> String {
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
    layout(
        "Allow access?",
        &format!(
            r#"<p><strong>{client}</strong> (redirecting to <code>{host}</code>) asks to access your account <strong>{user}</strong>:</p>
<ul>{items}</ul>
<form method="post" action="/oauth2/authorize">
<input type="hidden" name="txn" value="{txn}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
<p><small>Signed in as {user}. <a href="/logout">Not you?</a></small></p>"#,
            client = escape(client_name),
            host = escape(redirect_host),
            user = escape(username),
            txn = escape(txn),
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
    fn every_shown_value_is_escaped() {
        let page = consent(
            "<script>x</script>",
            "a\"b",
            "u&u",
            &[("s".into(), "<b>".into())],
            "t'",
        );
        assert!(!page.contains("<script>x"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(page.contains("a&quot;b"));
        assert!(page.contains("u&amp;u"));
        assert!(page.contains("t&#x27;"));
    }
}
