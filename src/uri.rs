//! URL rules shared by the server and the verifier: which hosts count as loopback, where
//! plain `http` is tolerated (RFC 8252 §7.3, RFC 8414 §2).
//!
//! Two notions of loopback: [`is_loopback_host`] (an IP literal or the name `localhost`)
//! decides where plain `http` is tolerated; [`is_loopback_ip`] (IP literals only) decides
//! which redirect URIs match on any port (RFC 8252 §7.3). RFC 8252 §8.3 calls `localhost`
//! NOT RECOMMENDED, because the name goes through the resolver (a hosts file or a DNS answer
//! may point it elsewhere) and may listen on another interface than the one asked; so a
//! `localhost` redirect URI is accepted but matched exactly, port included.

use url::Url;

/// Whether a URL's host is a loopback address or `localhost` (RFC 8252 §7.3).
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Whether a URL's host is a loopback IP literal (`127.0.0.0/8`, `[::1]`): the "loopback IP
/// redirect" of RFC 8252 §7.3, never the name `localhost`.
pub fn is_loopback_ip(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    }
}

/// The ASCII serialization of a URL's origin (`scheme://host[:port]`, the default port
/// omitted; RFC 6454 §6.2), as browsers send it in `Origin`; `None` for opaque origins.
pub fn origin_of(url: &Url) -> Option<String> {
    match url.origin() {
        url::Origin::Tuple(..) => Some(url.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Checks that `raw` is an origin exactly as a browser serializes it: `https://host[:port]`,
/// or `http` on a loopback host, with no path, query, fragment or user information, and
/// lower case with the default port omitted. The error says why not.
pub fn check_origin(raw: &str) -> Result<(), String> {
    let url = Url::parse(raw).map_err(|_| "is not an origin (scheme://host[:port])".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        "http" => return Err("must use https (http is allowed only on loopback hosts)".into()),
        _ => return Err("must use https, or http on a loopback host".into()),
    }
    match origin_of(&url) {
        Some(origin) if origin == raw => Ok(()),
        Some(origin) => Err(format!(
            "must be exactly an origin, with no path, query or trailing slash, such as {origin:?}"
        )),
        None => Err("is not an origin (scheme://host[:port])".into()),
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn origins_must_be_serialized_https_or_loopback_http() {
        assert!(check_origin("https://app.example").is_ok());
        assert!(check_origin("https://app.example:8443").is_ok());
        assert!(check_origin("http://127.0.0.1:5173").is_ok());
        assert!(check_origin("http://localhost:3000").is_ok());
        assert!(check_origin("http://app.example").is_err());
        assert!(check_origin("https://app.example/").is_err());
        assert!(check_origin("https://app.example/cb").is_err());
        assert!(check_origin("https://app.example:443").is_err());
        assert!(check_origin("https://App.example").is_err());
        assert!(check_origin("null").is_err());
        assert!(check_origin("*").is_err());
    }
}
