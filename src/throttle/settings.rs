//! The rate-limit settings: thresholds, window, ceiling, and which proxies are believed.
//!
//! [`RateLimitArgs`] is flattened into the server's flags (`HALLPASS_RATE_LIMIT_*`,
//! `HALLPASS_TRUSTED_PROXIES`); [`RateLimits::from_args`] validates it. There is no switch to
//! turn limiting off: every threshold is at least 1. Tests build a [`RateLimits`] directly
//! (lower thresholds, a trusted proxy).

use std::net::IpAddr;

use crate::config::ConfigError;

/// The raw settings, as clap reads them.
#[derive(clap::Args, Debug, Clone)]
pub struct RateLimitArgs {
    /// Failed sign-ins per account from one IP, within a window, before each further attempt
    /// waits (1 s, then doubling up to the ceiling).
    #[arg(long, env = "HALLPASS_RATE_LIMIT_SIGN_IN", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rate_limit_sign_in: u64,
    /// Failed sign-ins from one IP (any account), within a window, before delays start.
    #[arg(long, env = "HALLPASS_RATE_LIMIT_SIGN_IN_IP", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate_limit_sign_in_ip: u64,
    /// Failed sign-ins of one account (from any IP), within a window, before delays start.
    #[arg(long, env = "HALLPASS_RATE_LIMIT_SIGN_IN_ACCOUNT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate_limit_sign_in_account: u64,
    /// Failed client authentications per `client_id`, within a window, before delays start.
    #[arg(long, env = "HALLPASS_RATE_LIMIT_CLIENT_AUTH", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate_limit_client_auth: u64,
    /// User registrations (`POST /api/users`) per IP, within a window, before delays start;
    /// client registrations (`POST /oauth2/register`) per IP are counted apart, to the same
    /// threshold.
    #[arg(long, env = "HALLPASS_RATE_LIMIT_REGISTRATION", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub rate_limit_registration: u64,
    /// Length of the counting window, in seconds: counts start again in every window.
    #[arg(long, env = "HALLPASS_RATE_LIMIT_WINDOW", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub rate_limit_window: u64,
    /// The longest a throttled subject waits, in seconds (the ceiling of the doubling delay).
    #[arg(long, env = "HALLPASS_RATE_LIMIT_MAX_DELAY", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub rate_limit_max_delay: u64,
    /// Comma-separated IPs and CIDRs of reverse proxies whose `X-Forwarded-For` is believed
    /// (the client is the right-most address that is not one of them). Unset: the socket's
    /// peer address is the client.
    #[arg(long, env = "HALLPASS_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    /// `HALLPASS_RATE_LIMIT_SIGN_IN`.
    pub sign_in_account_ip: u64,
    /// `HALLPASS_RATE_LIMIT_SIGN_IN_IP`.
    pub sign_in_ip: u64,
    /// `HALLPASS_RATE_LIMIT_SIGN_IN_ACCOUNT`.
    pub sign_in_account: u64,
    /// `HALLPASS_RATE_LIMIT_CLIENT_AUTH`.
    pub client_auth: u64,
    /// `HALLPASS_RATE_LIMIT_REGISTRATION`.
    pub registration: u64,
    /// `HALLPASS_RATE_LIMIT_WINDOW`, seconds.
    pub window: u64,
    /// `HALLPASS_RATE_LIMIT_MAX_DELAY`, seconds.
    pub max_delay: u64,
    /// `HALLPASS_TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            sign_in_account_ip: 5,
            sign_in_ip: 30,
            sign_in_account: 100,
            client_auth: 10,
            registration: 10,
            window: 900,
            max_delay: 300,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

impl RateLimits {
    /// Validates the raw settings.
    pub fn from_args(args: &RateLimitArgs) -> Result<Self, ConfigError> {
        Ok(Self {
            sign_in_account_ip: args.rate_limit_sign_in,
            sign_in_ip: args.rate_limit_sign_in_ip,
            sign_in_account: args.rate_limit_sign_in_account,
            client_auth: args.rate_limit_client_auth,
            registration: args.rate_limit_registration,
            window: args.rate_limit_window,
            max_delay: args.rate_limit_max_delay,
            trusted_proxies: TrustedProxies::parse(&args.trusted_proxies)?,
        })
    }
}

/// One trusted network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8, 127.0.0.1, ::1` (an address without `/` is a single host).
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let fix = |item: &str| {
            ConfigError(format!(
                "HALLPASS_TRUSTED_PROXIES / --trusted-proxies: {item:?} is not an IP address or CIDR; write comma-separated entries such as 10.0.0.0/8, 127.0.0.1, ::1"
            ))
        };
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| fix(item))?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| fix(item))?,
                None => max,
            };
            out.push(Cidr { addr, bits });
        }
        Ok(Self(out))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a request that came from `peer` with these `X-Forwarded-For` entries
    /// (every header's comma-separated list, in order): walking from the right, the first
    /// address that is not a trusted proxy. A hop that does not parse ends the walk at the
    /// last trusted address, since only a trusted proxy's own entries are believed.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if self.is_empty() {
            return client;
        }
        for hop in forwarded_for.rev() {
            if !self.contains(client) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => client = ip.to_canonical(),
                Err(_) => break,
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn trusted_proxies_parse_hosts_and_networks_and_refuse_garbage() {
        let t =
            TrustedProxies::parse("10.0.0.0/8, 127.0.0.1,::1, 2001:db8::/32").unwrap_or_default();
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(t.contains(ip("::ffff:127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(TrustedProxies::parse("").is_ok_and(|t| t.is_empty()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_and_nothing_is_believed_by_default() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap_or_default();
        let peer = ip("127.0.0.1");
        let xff = ["198.51.100.1, 203.0.113.7", "10.0.0.2"];
        let hops = || xff.iter().flat_map(|h| h.split(','));
        assert_eq!(proxies.client_ip(peer, hops()), ip("203.0.113.7"));
        assert_eq!(TrustedProxies::default().client_ip(peer, hops()), peer);
        assert_eq!(proxies.client_ip(ip("192.0.2.9"), hops()), ip("192.0.2.9"));
        assert_eq!(proxies.client_ip(peer, ["junk"].into_iter()), peer);
        assert_eq!(proxies.client_ip(peer, std::iter::empty()), peer);
    }
}
