//! The beer locker's settings: flags and `BEER_LOCKER_*` variables ([`BeerLockerArgs`]),
//! validated into a [`BeerLockerConfig`] whose errors name the variable to fix. The store
//! settings are Hallpass's own ([`RedisConnArgs`]: `REDIS_URL` or `REDIS_CLUSTER_URLS`, never
//! both, the CA file and the timeouts), parsed and validated by the same code, with the beer
//! locker's key prefix; the `Debug` shows hosts only, as Hallpass's does.

use std::{net::SocketAddr, sync::Arc};

use url::Url;

use crate::{
    config::{ConfigError, RedisConnArgs},
    store::{Store, StoreError, redis::RedisOptions},
    uri::is_loopback_host,
    verify::{BuildError, Verifier},
};

/// Where the beer locker listens by default (`BEER_LOCKER_BIND`).
pub const DEFAULT_BIND: &str = "127.0.0.1:4000";
/// Its resource identifier when it listens there: the one Hallpass's development registry
/// knows ([`crate::oauth::resource::Resources::development`]).
pub const DEFAULT_RESOURCE: &str = "http://127.0.0.1:4000";

/// The raw settings, as clap reads them from flags and `BEER_LOCKER_*` variables.
#[derive(clap::Args, Debug, Clone)]
pub struct BeerLockerArgs {
    /// Issuer URL of the Hallpass whose tokens are accepted: the exact `iss`, whose RFC 8414
    /// metadata names the JWKS.
    #[arg(
        long,
        env = "BEER_LOCKER_ISSUER",
        default_value = "http://127.0.0.1:3000"
    )]
    pub issuer: String,
    /// The `aud` tokens must carry. Defaults to this service's resource identifier (its
    /// public URL, the `resource` of its RFC 9728 metadata), which clients send to Hallpass
    /// as `resource` and Hallpass registers (`HALLPASS_RESOURCES`).
    #[arg(long, env = "BEER_LOCKER_AUDIENCE")]
    pub audience: Option<String>,
    /// Address and port to listen on; port 0 picks a free port.
    #[arg(long, env = "BEER_LOCKER_BIND", default_value = DEFAULT_BIND)]
    pub bind: String,
    /// Public base URL of this service, its RFC 9728 resource identifier (for example
    /// `https://beers.example.com`). Defaults to http:// and the bound address.
    #[arg(long, env = "BEER_LOCKER_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Where the beers are kept: Hallpass's store settings (`REDIS_URL` or
    /// `REDIS_CLUSTER_URLS`, `HALLPASS_REDIS_CA_FILE`, the timeouts). Unset: the in-memory
    /// store, which keeps nothing across restarts.
    #[command(flatten)]
    pub redis: RedisConnArgs,
    /// Prefix of every Redis key of the beer locker.
    #[arg(long, env = "BEER_LOCKER_REDIS_PREFIX", default_value = "beer-locker:")]
    pub redis_prefix: String,
    /// Comma-separated browser origins (https://app.example; http only on loopback hosts)
    /// whose pages may call /api/beers. Empty: none (the metadata is open to every origin).
    #[arg(long, env = "BEER_LOCKER_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Client id Swagger UI at `/docs` signs in with: a public client registered at the
    /// issuer with the redirect URI `<public URL>/docs/oauth2-redirect.html` (see
    /// openapi/README.md). Unset: Authorize asks for a client id.
    #[arg(long, env = "BEER_LOCKER_DOCS_CLIENT_ID")]
    pub docs_client_id: Option<String>,
    /// Seconds between two polls of the issuer's revocation feed (at least 1): a token
    /// revoked at the issuer is refused here within this time plus the time of one poll.
    #[arg(long, env = "BEER_LOCKER_REVOCATION_POLL", default_value_t = 10)]
    pub revocation_poll: u64,
}

/// The validated configuration of the beer locker.
#[derive(Clone)]
pub struct BeerLockerConfig {
    /// Accepted issuer (`BEER_LOCKER_ISSUER`).
    pub issuer: String,
    /// Required audience (`BEER_LOCKER_AUDIENCE`); `None`: the resource identifier (the
    /// public URL, else derived from the bound address), as in the RFC 9728 metadata.
    pub audience: Option<String>,
    /// Listen address (`BEER_LOCKER_BIND`).
    pub bind: SocketAddr,
    /// Public base URL without a trailing slash (`BEER_LOCKER_PUBLIC_URL`); `None`: from the
    /// bound address.
    pub public_url: Option<String>,
    /// The Redis store (`REDIS_URL` or `REDIS_CLUSTER_URLS`, CA file, timeouts, and the key
    /// prefix `BEER_LOCKER_REDIS_PREFIX`); `None`: memory. Its URLs may hold a password: its
    /// `Debug` shows hosts only.
    pub redis: Option<RedisOptions>,
    /// Origins whose pages may call `/api/beers` (`BEER_LOCKER_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// The client Swagger UI signs in with (`BEER_LOCKER_DOCS_CLIENT_ID`).
    pub docs_client_id: Option<String>,
    /// Time between two polls of the issuer's revocation feed
    /// (`BEER_LOCKER_REVOCATION_POLL`, in seconds; tests may set less than a second).
    pub revocation_poll: std::time::Duration,
}

impl std::fmt::Debug for BeerLockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeerLockerConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("cors_origins", &self.cors_origins)
            .field("revocation_poll", &self.revocation_poll)
            .field(
                "store",
                &self
                    .redis
                    .as_ref()
                    .map_or_else(|| "memory".to_string(), RedisOptions::location),
            )
            .finish_non_exhaustive()
    }
}

impl BeerLockerConfig {
    /// A configuration for tokens of `issuer` (audience = its own resource identifier), on a
    /// free loopback port, memory store: what tests start from.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Self {
            audience: None,
            issuer,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            redis: None,
            cors_origins: Vec::new(),
            docs_client_id: None,
            revocation_poll: crate::verify::DEFAULT_REVOCATION_POLL_INTERVAL,
        }
    }

    /// Validates the raw settings; the error says which variable to fix and how.
    pub fn from_args(args: BeerLockerArgs) -> Result<Self, ConfigError> {
        let audience = args.audience.filter(|a| !a.is_empty());
        let checked = audience.as_deref().unwrap_or(DEFAULT_RESOURCE);
        if let Err(e) = Verifier::new(&args.issuer, checked) {
            return Err(ConfigError(match e {
                BuildError::Audience => {
                    "BEER_LOCKER_AUDIENCE / --audience must not be blank".to_string()
                }
                other => format!("BEER_LOCKER_ISSUER / --issuer: {other}"),
            }));
        }
        let bind: SocketAddr = args.bind.parse().map_err(|_| {
            ConfigError(format!(
                "BEER_LOCKER_BIND / --bind is {:?}; give an address and port such as 127.0.0.1:4000 or 0.0.0.0:8080",
                args.bind
            ))
        })?;
        let public_url = match args.public_url.filter(|u| !u.is_empty()) {
            None => None,
            Some(raw) => Some(validate_public_url(&raw)?),
        };
        let redis = args.redis.options(&args.redis_prefix)?;
        if args.revocation_poll == 0 {
            return Err(ConfigError(
                "BEER_LOCKER_REVOCATION_POLL / --revocation-poll must be at least 1 (seconds between two polls of the revocation feed)".into(),
            ));
        }
        let cors_origins: Vec<String> = args
            .cors_origins
            .into_iter()
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        for o in &cors_origins {
            crate::uri::check_origin(o).map_err(|why| {
                ConfigError(format!(
                    "BEER_LOCKER_CORS_ORIGINS / --cors-origins: {o:?} {why}"
                ))
            })?;
        }
        Ok(Self {
            cors_origins,
            issuer: args.issuer,
            audience,
            bind,
            public_url,
            redis,
            docs_client_id: args.docs_client_id.filter(|c| !c.trim().is_empty()),
            revocation_poll: std::time::Duration::from_secs(args.revocation_poll),
        })
    }

    /// The store this configuration selects: Redis (one node or a cluster) when set, else
    /// memory (with a warning), chosen exactly as Hallpass chooses its own.
    pub fn open_store(&self) -> Result<Arc<dyn Store>, StoreError> {
        crate::startup::open_store(self.redis.clone(), "beers")
    }
}

fn validate_public_url(raw: &str) -> Result<String, ConfigError> {
    let fix = "BEER_LOCKER_PUBLIC_URL / --public-url must be an https URL with no path, query or fragment, such as https://beers.example.com (http is allowed on 127.0.0.1, [::1] and localhost)";
    let url =
        Url::parse(raw).map_err(|e| ConfigError(format!("{fix}; {raw:?} does not parse: {e}")))?;
    let secure = url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(&url));
    if !secure || url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
        return Err(ConfigError(format!("{fix}; got {raw:?}")));
    }
    Ok(raw.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_origins() {
        assert_eq!(
            validate_public_url("https://beers.example/")
                .ok()
                .as_deref(),
            Some("https://beers.example")
        );
        assert!(validate_public_url("http://127.0.0.1:4000").is_ok());
        assert!(validate_public_url("http://beers.example").is_err());
        assert!(validate_public_url("https://beers.example/api").is_err());
    }

    fn args(issuer: &str) -> BeerLockerArgs {
        BeerLockerArgs {
            issuer: issuer.into(),
            audience: None,
            bind: "127.0.0.1:4000".into(),
            public_url: None,
            redis: crate::config::tests::conn_args(None, None),
            redis_prefix: "beer-locker:".into(),
            cors_origins: Vec::new(),
            docs_client_id: None,
            revocation_poll: 10,
        }
    }

    #[test]
    fn cors_origins_must_be_exact_https_or_loopback_origins() {
        let with = |o: &[&str]| BeerLockerArgs {
            cors_origins: o.iter().map(|s| s.to_string()).collect(),
            ..args("http://127.0.0.1:3000")
        };
        let ok =
            BeerLockerConfig::from_args(with(&["https://app.example", " http://127.0.0.1:5173"]));
        assert_eq!(
            ok.unwrap().cors_origins,
            ["https://app.example", "http://127.0.0.1:5173"]
        );
        let bad = BeerLockerConfig::from_args(with(&["https://app.example/"]));
        assert!(bad.unwrap_err().0.contains("BEER_LOCKER_CORS_ORIGINS"));
    }

    #[test]
    fn configuration_leaves_the_audience_to_the_resource_and_names_the_variable_to_fix() {
        let config = BeerLockerConfig::from_args(args("http://127.0.0.1:3000"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.audience, None);
        let err = |a: BeerLockerArgs| {
            BeerLockerConfig::from_args(a)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(args("http://auth.example")).contains("BEER_LOCKER_ISSUER"));
        assert!(
            err(BeerLockerArgs {
                bind: "4000".into(),
                ..args("https://auth.example")
            })
            .contains("BEER_LOCKER_BIND")
        );
        let http = BeerLockerArgs {
            redis: crate::config::tests::conn_args(Some("http://r:6380"), None),
            ..args("https://auth.example")
        };
        assert!(err(http).contains("rediss://"));
        let public = BeerLockerArgs {
            public_url: Some("https://beers.example/v1".into()),
            ..args("https://auth.example")
        };
        assert!(err(public).contains("BEER_LOCKER_PUBLIC_URL"));
        let never = BeerLockerArgs {
            revocation_poll: 0,
            ..args("https://auth.example")
        };
        assert!(err(never).contains("BEER_LOCKER_REVOCATION_POLL"));
    }

    /// The beer locker reads Hallpass's store settings with Hallpass's rules: a cluster, its
    /// CA file and timeouts reach the store options under the beer locker's prefix, and one
    /// node plus a cluster is a start-up error.
    #[test]
    fn the_store_settings_are_hallpass_s_cluster_ca_and_timeouts_and_not_both_kinds() {
        let cluster = BeerLockerArgs {
            redis: RedisConnArgs {
                redis_ca_file: Some("/etc/redis/ca.pem".into()),
                redis_connect_timeout_ms: 300,
                redis_response_timeout_ms: 700,
                ..crate::config::tests::conn_args(
                    None,
                    Some("rediss://:pw@r1:7000, rediss://r2:7001"),
                )
            },
            redis_prefix: "beers-eu:".into(),
            ..args("https://auth.example")
        };
        let options = BeerLockerConfig::from_args(cluster)
            .unwrap()
            .redis
            .expect("a Redis store");
        assert!(
            options.target
                == crate::store::redis::RedisTarget::Cluster(vec![
                    "rediss://:pw@r1:7000".into(),
                    "rediss://r2:7001".into()
                ])
        );
        assert_eq!(options.prefix, "beers-eu:");
        assert_eq!(
            options.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/redis/ca.pem"))
        );
        assert_eq!(options.connect_timeout.as_millis(), 300);
        assert_eq!(options.response_timeout.as_millis(), 700);

        let both = BeerLockerArgs {
            redis: crate::config::tests::conn_args(Some("redis://r:6379"), Some("redis://r1:7000")),
            ..args("https://auth.example")
        };
        let err = BeerLockerConfig::from_args(both).unwrap_err().to_string();
        assert!(
            err.contains("both REDIS_URL and REDIS_CLUSTER_URLS"),
            "{err}"
        );
        let memory = BeerLockerConfig::from_args(args("https://auth.example")).unwrap();
        assert!(memory.redis.is_none());
    }

    #[test]
    fn the_debug_form_never_shows_the_redis_password() {
        let config = BeerLockerConfig {
            redis: Some(RedisOptions::node(
                "redis://:s3cret@127.0.0.1:6379",
                "beer-locker:",
            )),
            ..BeerLockerConfig::new("http://127.0.0.1:3000")
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("127.0.0.1:6379"),
            "{debug}"
        );
    }
}
