//! The request context the rate limits need: who the client is.
//!
//! [`client_ip`] reads poem's `RemoteAddr` and, only when the peer is one of
//! `HALLPASS_TRUSTED_PROXIES`, the `X-Forwarded-For` headers (right-most untrusted hop; see
//! [`TrustedProxies::client_ip`]). A request over a Unix socket has no IP: `None`, and only the
//! limits that do not need one apply.

use std::net::IpAddr;

use poem::Request;

use super::settings::TrustedProxies;
use crate::state::AppState;

/// The client's IP address for `req`, with the configured trusted proxies.
pub fn of(req: &Request, state: &AppState) -> Option<IpAddr> {
    client_ip(req, &state.config.rate_limits.trusted_proxies)
}

/// The client's IP address for `req`.
pub fn client_ip(req: &Request, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr()?.ip();
    let hops = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    Some(trusted.client_ip(peer, hops.into_iter()))
}
