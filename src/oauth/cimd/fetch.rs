//! The one outbound request of a Client ID Metadata Document, with its SSRF defences.
//!
//! - https only (http only on an allowlisted development host), no redirects followed (a 3xx
//!   is an error), no proxy from the environment.
//! - The host is resolved first and **every** address it resolves to must be public
//!   ([`super::ip::is_public`]); the connection then goes to those checked addresses, because
//!   the resolver below is the client's own DNS resolver: there is no second lookup a DNS
//!   rebinding answer could change. An IP-literal host (which never reaches a resolver) is
//!   checked by [`Fetcher::check_url`].
//! - Short connect and total timeouts; the body is read in chunks and refused as soon as it
//!   passes [`MAX_BODY_BYTES`], whatever `Content-Length` says.
//! - The freshness of the answer comes from `Cache-Control: max-age` (or `no-store` /
//!   `no-cache`, which mean as short as allowed) and else `Expires`; the caller clamps it.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::{Duration, SystemTime},
};

use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header,
};
use url::Url;

use super::ip::is_public;

/// The largest document accepted, in bytes (the draft suggests a few kilobytes).
pub const MAX_BODY_BYTES: usize = 5 * 1024;
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of the whole fetch, body included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(4);

/// Hosts exempt from the address check and allowed over plain http: development only.
#[derive(Debug, Clone, Default)]
pub struct AllowHosts(Vec<(String, u16)>);

impl AllowHosts {
    /// Parses comma-separated `host:port` pairs (`127.0.0.1:8080`, `[::1]:9000`,
    /// `localhost:3001`).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let url = Url::parse(&format!("http://{item}/"))
                .ok()
                .filter(|u| u.port().is_some() && u.path() == "/" && u.username().is_empty());
            let Some((host, port)) = url.and_then(|u| Some((u.host_str()?.to_string(), u.port()?)))
            else {
                return Err(format!(
                    "HALLPASS_CIMD_ALLOW_HOSTS / --cimd-allow-hosts: {item:?} is not host:port; give comma-separated pairs such as 127.0.0.1:8080"
                ));
            };
            out.push((host, port));
        }
        Ok(AllowHosts(out))
    }

    /// Whether the list names `url`'s host and port.
    pub fn allows(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.0.iter().any(|(h, p)| h == host && *p == port)
    }

    /// Whether the list names `host` (with any port): the resolver sees no port.
    fn allows_name(&self, host: &str) -> bool {
        self.0.iter().any(|(h, _)| h.eq_ignore_ascii_case(host))
    }

    /// Whether the list is empty (production).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a fetch was refused or failed; the text is shown to the user or the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// What a fetch returned.
#[derive(Debug)]
pub struct Fetched {
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
    /// Seconds the answer says it stays fresh, if it says (before clamping).
    pub fresh_for: Option<u64>,
}

/// Refusal raised inside the resolver, recognised in the error chain.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to a non-public address")]
struct NonPublicAddress;

/// The client's DNS resolver: resolves, then refuses the whole answer if any address is not
/// public (unless the host is allowlisted). reqwest connects to exactly what it returns.
struct GuardedResolver {
    allow: Arc<AllowHosts>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow.allows_name(&host) && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(Box::new(NonPublicAddress) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client of document fetches.
pub struct Fetcher {
    http: Option<reqwest::Client>,
    allow: Arc<AllowHosts>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher with its guarded resolver; `extra_roots` are added to the web PKI roots
    /// (a test CA).
    pub fn new(allow: AllowHosts, extra_roots: &[reqwest::Certificate]) -> Self {
        let allow = Arc::new(allow);
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!("hallpass/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow: allow.clone(),
            }));
        for root in extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = match builder.build() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "the client ID metadata document HTTP client could not be built; such client ids will be refused");
                None
            }
        };
        Fetcher { http, allow }
    }

    /// Checks a URL before any network use: https (or http on an allowlisted host), and an
    /// IP-literal host must be public unless allowlisted.
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        let allowed = self.allow.allows(url);
        match url.scheme() {
            "https" => {}
            "http" if allowed => {}
            _ => return Err(FetchError("it must be an https URL".into())),
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(FetchError("it has no host".into())),
        };
        if literal.is_some_and(|ip| !is_public(ip)) && !allowed {
            return Err(refused_address());
        }
        Ok(())
    }

    /// Fetches `url` (already through [`Fetcher::check_url`]).
    pub async fn fetch(&self, url: &Url) -> Result<Fetched, FetchError> {
        self.check_url(url)?;
        let http = self
            .http
            .as_ref()
            .ok_or_else(|| FetchError("this server cannot fetch documents now".into()))?;
        let mut resp = http
            .get(url.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError(format!(
                "it answered with a redirect (HTTP {}), and redirects are not followed",
                status.as_u16()
            )));
        }
        if status != reqwest::StatusCode::OK {
            return Err(FetchError(format!(
                "it answered HTTP {} instead of 200",
                status.as_u16()
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let fresh_for = freshness(resp.headers(), SystemTime::now());
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, fresh_for })
    }
}

fn too_large() -> FetchError {
    FetchError(format!("it is larger than {MAX_BODY_BYTES} bytes"))
}

fn refused_address() -> FetchError {
    FetchError(
        "its host is a loopback, private, link-local or otherwise non-public address, which is never fetched".into(),
    )
}

/// A fetch failure in words, without internal detail beyond its kind.
fn describe(e: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<NonPublicAddress>() {
            return refused_address();
        }
        source = s.source();
    }
    if e.is_timeout() {
        FetchError(format!(
            "it did not answer within {} seconds",
            TOTAL_TIMEOUT.as_secs()
        ))
    } else if e.is_connect() {
        FetchError("its host could not be reached".into())
    } else {
        tracing::debug!(error = %e, "client ID metadata document fetch failed");
        FetchError("it could not be fetched".into())
    }
}

/// Seconds an answer is fresh for by its headers: `Cache-Control` `no-store`/`no-cache` give
/// 0, `max-age` its value, else `Expires` minus now; `None` when none is given or readable.
pub fn freshness(headers: &header::HeaderMap, now: SystemTime) -> Option<u64> {
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives
        .iter()
        .any(|d| d == "no-store" || d == "no-cache")
    {
        return Some(0);
    }
    if let Some(age) = directives
        .iter()
        .find_map(|d| d.strip_prefix("max-age="))
        .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
    {
        return Some(age);
    }
    let expires = headers.get(header::EXPIRES)?.to_str().ok()?;
    match httpdate::parse_http_date(expires) {
        Ok(at) => Some(at.duration_since(now).map(|d| d.as_secs()).unwrap_or(0)),
        // RFC 9111 §5.3: an invalid Expires means already expired.
        Err(_) => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> header::HeaderMap {
        let mut h = header::HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn freshness_reads_max_age_then_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = |p: &[(header::HeaderName, &str)]| freshness(&headers(p), now);
        assert_eq!(
            h(&[(header::CACHE_CONTROL, "public, max-age=600")]),
            Some(600)
        );
        assert_eq!(
            h(&[(header::CACHE_CONTROL, "max-age=60, no-cache")]),
            Some(0)
        );
        assert_eq!(h(&[(header::CACHE_CONTROL, "no-store")]), Some(0));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        assert_eq!(h(&[(header::EXPIRES, &later)]), Some(3600));
        assert_eq!(
            h(&[
                (header::CACHE_CONTROL, "max-age=5"),
                (header::EXPIRES, &later)
            ]),
            Some(5)
        );
        assert_eq!(h(&[(header::EXPIRES, "0")]), Some(0));
        assert_eq!(h(&[]), None);
    }

    #[test]
    fn allow_hosts_parse_host_port_pairs_only() {
        let a = AllowHosts::parse("127.0.0.1:8080, [::1]:9000,localhost:3001").unwrap();
        assert!(a.allows(&Url::parse("http://127.0.0.1:8080/c.json").unwrap()));
        assert!(a.allows(&Url::parse("http://[::1]:9000/c.json").unwrap()));
        assert!(!a.allows(&Url::parse("http://127.0.0.1:8081/c.json").unwrap()));
        assert!(AllowHosts::parse("127.0.0.1").is_err());
        assert!(AllowHosts::parse("http://x:1/").is_err());
        assert!(AllowHosts::parse("").unwrap().is_empty());
    }

    #[test]
    fn urls_must_be_https_and_literal_addresses_public() {
        let f = Fetcher::new(AllowHosts::default(), &[]);
        let check = |u: &str| f.check_url(&Url::parse(u).unwrap()).is_ok();
        assert!(check("https://app.example/client.json"));
        assert!(check("https://93.184.216.34/client.json"));
        assert!(!check("http://app.example/client.json"));
        assert!(!check("https://127.0.0.1/client.json"));
        assert!(!check("https://[::1]/client.json"));
        assert!(!check("https://[::ffff:127.0.0.1]/client.json"));
        assert!(!check("https://169.254.169.254/latest"));
        assert!(!check("https://10.0.0.1/client.json"));
    }
}
