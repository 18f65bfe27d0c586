//! URL rules shared by the server and the verifier: which hosts count as loopback, where
//! plain `http` is tolerated (RFC 8252 §7.3, RFC 8414 §2).

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
