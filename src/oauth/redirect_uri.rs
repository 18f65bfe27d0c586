//! Redirect URIs in normal form (RFC 3986 §6.2.2, RFC 9700 §4.1.3).
//!
//! Redirect URIs are compared as exact strings, and the redirect is built by parsing the
//! stored URI. A URI the parser would rewrite — dot segments (`/./`, `/../`, also encoded as
//! `%2e`), percent-encoded unreserved characters (`%41`, `%7E`), a backslash, an upper-case
//! host, a default port, a missing path — is registered as one string and redirected to as
//! another, and different strings could name one resource. [`check_normal_form`] refuses
//! them at registration, so the URI stored is the URI redirected to.

use url::Url;

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
        ] {
            assert_eq!(check_normal_form(good), Ok(()), "{good}");
        }
    }
}
