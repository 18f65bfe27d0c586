//! Redirect URIs: normal form (RFC 3986 §6.2.2, RFC 9700 §4.1.3), matching (RFC 8252 §7.3)
//! and private-use URI schemes (RFC 8252 §7.1).
//!
//! Redirect URIs are compared as exact strings, and the redirect is built by parsing the
//! stored URI. A URI the parser would rewrite — dot segments (`/./`, `/../`, also encoded as
//! `%2e`), percent-encoded unreserved characters (`%41`, `%7E`), a backslash, an upper-case
//! host, a default port, a missing path — is registered as one string and redirected to as
//! another, and different strings could name one resource. [`check_normal_form`] refuses
//! them at registration, so the URI stored is the URI redirected to.
//!
//! A request's `redirect_uri` must equal a registered one ([`matches`]), with one exception:
//! a registered loopback IP redirect (`http://127.0.0.1:PORT/...`, `http://[::1]:PORT/...`)
//! matches the same URI on any port, because a native app listens on whatever ephemeral port
//! the OS gives it (RFC 8252 §7.3). Path and query still match exactly, and the requested URI
//! must itself be in normal form. `http://localhost` is accepted at registration but matched
//! exactly, port included (RFC 8252 §8.3: NOT RECOMMENDED; see [`crate::uri`]).
//!
//! A native app may also register a private-use URI scheme ([`check_private_use_scheme`]: a
//! reverse domain name such as `com.example.app:/callback`); [`FORBIDDEN_SCHEMES`] are refused
//! for every client.

use url::Url;

use crate::uri::is_loopback_ip;

/// Schemes never accepted in a redirect URI, for any client: they run script, read local
/// files, or hand the response to another program than the client.
pub const FORBIDDEN_SCHEMES: &[&str] = &[
    "javascript",
    "vbscript",
    "data",
    "blob",
    "file",
    "filesystem",
    "about",
    "view-source",
    "jar",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "intent",
    "chrome",
    "chrome-extension",
    "moz-extension",
];

/// Whether the `requested` redirect URI of an authorization request matches the
/// `registered` one: the same string, or, for a loopback IP redirect, the same URI on another
/// port (RFC 8252 §7.3).
pub fn matches(registered: &str, requested: &str) -> bool {
    registered == requested || same_but_port(registered, requested)
}

/// `registered` is `http` on a loopback IP literal, `requested` is in normal form, and both
/// are equal once their ports are removed.
fn same_but_port(registered: &str, requested: &str) -> bool {
    let Ok(mut reg) = Url::parse(registered) else {
        return false;
    };
    if reg.scheme() != "http" || !is_loopback_ip(&reg) || check_normal_form(requested).is_err() {
        return false;
    }
    let Ok(mut req) = Url::parse(requested) else {
        return false;
    };
    reg.set_port(None).is_ok() && req.set_port(None).is_ok() && reg.as_str() == req.as_str()
}

/// Why `scheme` is not a private-use URI scheme of RFC 8252 §7.1 (a domain name the app's
/// publisher controls, in reverse order: `com.example.app`), or `Ok`.
pub fn check_private_use_scheme(scheme: &str) -> Result<(), String> {
    let labels: Vec<&str> = scheme.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(format!(
            "uses the scheme {scheme:?}, which is not a private-use scheme: use a reverse domain name you control, such as com.example.app (RFC 8252 §7.1)"
        ));
    }
    Ok(())
}

/// What the user is shown as the place a redirect URI leads: its host for http(s), its
/// scheme (`com.example.app:`) for a private-use one.
pub fn display_target(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            u.host_str().unwrap_or_default().to_string()
        }
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => String::new(),
    }
}

/// Why `raw` is not in normal form, or `Ok` when parsing and serialising it changes nothing.
pub fn check_normal_form(raw: &str) -> Result<(), String> {
    if raw.contains('\\') {
        return Err("must not contain a backslash".into());
    }
    if let Some(c) = encoded_unreserved(raw) {
        return Err(format!(
            "percent-encodes the unreserved character {c:?}; write it unencoded"
        ));
    }
    if has_dot_segment(raw) {
        return Err("must not contain dot segments (/./ or /../)".into());
    }
    match Url::parse(raw) {
        Ok(url) if url.as_str() == raw => Ok(()),
        Ok(url) => Err(format!(
            "is not in normal form; register {:?}",
            url.as_str()
        )),
        Err(_) => Err("is not an absolute URI".into()),
    }
}

/// The first unreserved character (RFC 3986 §2.3) written percent-encoded, if any.
fn encoded_unreserved(raw: &str) -> Option<char> {
    let bytes = raw.as_bytes();
    bytes.windows(3).find_map(|w| {
        if w[0] != b'%' {
            return None;
        }
        let hex = std::str::from_utf8(&w[1..]).ok()?;
        let c = char::from(u8::from_str_radix(hex, 16).ok()?);
        (c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')).then_some(c)
    })
}

/// Whether the path has a `.` or `..` segment.
fn has_dot_segment(raw: &str) -> bool {
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let hier = &rest[..end];
    let path = hier.find('/').map_or("", |i| &hier[i..]);
    path.split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_the_parser_would_rewrite_are_refused() {
        for bad in [
            "https://app.example/a/./cb",
            "https://app.example/a/../cb",
            "https://app.example/a/%2e%2E/cb",
            "https://app.example/a/.%2e",
            "https://app.example/%63b",
            "https://app.example/cb?x=%7E",
            "https://app.example/a\\cb",
            "https://APP.example/cb",
            "https://app.example:443/cb",
            "https://app.example",
        ] {
            assert!(check_normal_form(bad).is_err(), "{bad}");
        }
        for good in [
            "https://app.example/cb",
            "https://app.example/cb?tenant=7",
            "https://app.example/a%2Fb/cb",
            "https://app.example/..cb/.x",
            "http://127.0.0.1:8765/callback",
            "http://[::1]/cb",
            "com.example.app:/callback",
            "com.example.app://callback/x?y=1",
        ] {
            assert_eq!(check_normal_form(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn loopback_ip_redirects_match_on_any_port_and_nothing_else_does() {
        let reg = "http://127.0.0.1:8765/callback";
        assert!(matches(reg, reg));
        assert!(matches(reg, "http://127.0.0.1:51234/callback"));
        assert!(matches(reg, "http://127.0.0.1/callback"));
        assert!(matches("http://[::1]/cb?x=1", "http://[::1]:4000/cb?x=1"));
        for other in [
            "http://127.0.0.1:51234/callback/",
            "http://127.0.0.1:51234/Callback",
            "http://127.0.0.1:51234/callback?x=1",
            "http://127.0.0.1:51234/callback#f",
            "http://[::1]:51234/callback",
            "http://127.0.0.2:51234/callback",
            "http://localhost:51234/callback",
            "https://127.0.0.1:51234/callback",
            "http://u@127.0.0.1:51234/callback",
            "http://127.0.0.1:51234/a/../callback",
            "http://127.0.0.1:80/callback",
        ] {
            assert!(!matches(reg, other), "{other}");
        }
        // Only IP literals: localhost and https hosts match exactly.
        assert!(!matches(
            "http://localhost:8765/cb",
            "http://localhost:9000/cb"
        ));
        assert!(!matches(
            "https://app.example:8443/cb",
            "https://app.example:9443/cb"
        ));
        assert!(!matches("com.example.app:/cb", "com.example.app:/cb?x=1"));
    }

    #[test]
    fn private_use_schemes_are_reverse_domain_names() {
        assert!(check_private_use_scheme("com.example.app").is_ok());
        assert!(check_private_use_scheme("io.github.my-tool").is_ok());
        for bad in [
            "myapp",
            "com..app",
            ".com.app",
            "com.-app",
            "javascript",
            "com.app+x",
        ] {
            assert!(check_private_use_scheme(bad).is_err(), "{bad}");
        }
        assert_eq!(display_target("com.example.app:/cb"), "com.example.app:");
        assert_eq!(display_target("https://app.example/cb"), "app.example");
    }
}
