//! Configuration: one value, read once in `main`, passed down; never a global.
//!
//! Every setting is an environment variable with a `HALLPASS_` prefix (plus `REDIS_URL` and
//! `REDIS_CLUSTER_URLS`; [`RedisConnArgs`], shared with the beer locker, reads those) and a
//! command-line flag of the same meaning (`HALLPASS_CODE_TTL` is `--code-ttl`). [`ConfigArgs`]
//! is what clap parses; [`Config::from_args`] validates it and fails with a message that says
//! how to fix the value. Tests build a [`Config`] directly, starting from [`Config::default`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::ValueEnum;
use url::Url;

use crate::store::redis::{RedisOptions, RedisTarget};
use crate::uri::is_loopback_host;

/// The scopes offered when `HALLPASS_SCOPES` is not set.
pub const DEFAULT_SCOPES: &str = "openid=Sign you in with your Hallpass account,\
profile=See your username,\
offline_access=Stay signed in to the application,\
beers:read=See the beers in your beer locker,\
beers:write=Add beers to your beer locker and change or remove them,\
hallpass:manage=Manage your Hallpass applications and the access you have granted";

/// The JWS algorithm new access tokens are signed with: the one JOSE algorithm type.
pub use crate::jose::Algorithm as SigningAlg;

/// Whether anyone may register a user account.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// `POST /api/users` is open to anyone.
    Open,
    /// `POST /api/users` answers 403; users are created with the admin commands.
    Closed,
}

/// Who may register a client at `/oauth2/register` (RFC 7591), without an account.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DynamicClients {
    /// No dynamic registration: `/oauth2/register` answers 404 and the metadata does not
    /// advertise it.
    #[default]
    Off,
    /// Public clients only (`token_endpoint_auth_method` `none`), which must use PKCE.
    Public,
    /// Public and confidential clients.
    All,
}

/// The raw settings, as clap reads them from flags and environment variables.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Issuer URL: the `iss` of every token and the base of every endpoint URL. https, or http
    /// on a loopback host for development.
    #[arg(long, env = "HALLPASS_ISSUER", default_value = "http://127.0.0.1:3000")]
    pub issuer: String,
    /// Address and port to listen on.
    #[arg(long, env = "HALLPASS_BIND", default_value = "127.0.0.1:3000")]
    pub bind: String,
    /// The keys directory and the settings key commands need.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Where the store is.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Authorization-code lifetime in seconds (10 to 600; RFC 6749 §4.1.2 recommends at most 600).
    #[arg(long, env = "HALLPASS_CODE_TTL", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(10..=600))]
    pub code_ttl: u64,
    /// Browser-session lifetime in seconds (60 to 2592000).
    #[arg(long, env = "HALLPASS_SESSION_TTL", default_value_t = 28_800,
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub session_ttl: u64,
    /// `open`: anyone may register a user with `POST /api/users`; `closed`: that answers 403
    /// and users are created with `hallpass users create`.
    #[arg(
        long,
        env = "HALLPASS_REGISTRATION",
        value_enum,
        ignore_case = true,
        default_value = "open"
    )]
    pub registration: Registration,
    /// Dynamic client registration (RFC 7591 and RFC 7592, at `/oauth2/register`): `off`,
    /// `public` (public clients with PKCE only) or `all`.
    #[arg(
        long,
        env = "HALLPASS_DYNAMIC_CLIENTS",
        value_enum,
        ignore_case = true,
        default_value = "off"
    )]
    pub dynamic_clients: DynamicClients,
    /// Client ID Metadata Documents (URL client ids).
    #[command(flatten)]
    pub cimd: crate::oauth::cimd::CimdArgs,
    /// Scopes offered, as comma-separated `name=description` pairs.
    #[arg(long, env = "HALLPASS_SCOPES", default_value = DEFAULT_SCOPES)]
    pub scopes: String,
    /// The identifier of Hallpass's own API (management API, `/userinfo`): the `aud` of
    /// tokens for it. Defaults to the issuer.
    #[arg(long, env = "HALLPASS_AUDIENCE")]
    pub audience: Option<String>,
    /// JSON file registering the resource servers (RFC 8707): identifier, name, accepted
    /// scopes, and optionally the default. Unset: with a loopback issuer, the development
    /// registry (the beer locker at http://127.0.0.1:4000); otherwise none but Hallpass's own
    /// API.
    #[arg(long, env = "HALLPASS_RESOURCES")]
    pub resources: Option<PathBuf>,
    /// Seconds within which a rotated refresh token presented again returns the same successor
    /// instead of revoking the family (retries, parallel tabs).
    #[arg(long, env = "HALLPASS_REFRESH_GRACE", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub refresh_grace: u64,
    /// Refresh-token idle lifetime in seconds: unused this long, the family expires.
    #[arg(long, env = "HALLPASS_REFRESH_IDLE_TTL", default_value_t = 1_209_600,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub refresh_idle_ttl: u64,
    /// Refresh-token absolute lifetime in seconds, from the first sign-in.
    #[arg(long, env = "HALLPASS_REFRESH_ABSOLUTE_TTL", default_value_t = 2_592_000,
          value_parser = clap::value_parser!(u64).range(60..=31_536_000))]
    pub refresh_absolute_ttl: u64,
    /// Rotate signing keys automatically every this many days (unset: only by `hallpass keys
    /// rotate`). Needs a keys directory every instance can write.
    #[arg(long, env = "HALLPASS_KEY_ROTATION_DAYS",
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub key_rotation_days: Option<u64>,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "HALLPASS_MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1024..=10_485_760))]
    pub max_body_bytes: u64,
    /// Seconds a client may take to send a request's whole head (request line and headers);
    /// a connection that sends nothing, or drips header lines, is closed then.
    #[arg(long, env = "HALLPASS_HEADER_READ_TIMEOUT", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_read_timeout: u64,
    /// Seconds a client may take to send a request body; slower bodies get 408.
    #[arg(long, env = "HALLPASS_BODY_READ_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub body_read_timeout: u64,
    /// Seconds a keep-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "HALLPASS_IDLE_TIMEOUT", default_value_t = 75,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_timeout: u64,
    /// Most connections served at once; more wait until one closes. Default: the open-file
    /// limit (raised to the hard limit at start) minus a reserve of 128.
    #[arg(long, env = "HALLPASS_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: Option<u64>,
    /// Client ids that are first-party (comma-separated): only they may be granted
    /// `hallpass:manage`.
    #[arg(long, env = "HALLPASS_FIRST_PARTY_CLIENTS", default_value = "")]
    pub first_party_clients: String,
    /// A separate address for `/metrics`; when set, `/metrics` is served only there.
    #[arg(long, env = "HALLPASS_METRICS_BIND")]
    pub metrics_bind: Option<String>,
    /// Milliseconds a client that authenticated through the store may authenticate again on
    /// this instance without a store round trip (see `oauth::client_lease`), at most 250.
    /// 0 turns leases off on this instance. Every change to a client waits 250 ms before it
    /// answers, whatever this setting, since other instances may hold leases.
    #[arg(long, env = "HALLPASS_CLIENT_LEASE_MS", default_value_t = 250,
          value_parser = clap::value_parser!(u64).range(0..=250))]
    pub client_lease_ms: u64,
    /// Rate limits and trusted proxies (`HALLPASS_RATE_LIMIT_*`, `HALLPASS_TRUSTED_PROXIES`).
    #[command(flatten)]
    pub rate_limit: crate::throttle::settings::RateLimitArgs,
}

/// The settings of the keys directory: all `hallpass keys` needs.
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// Directory of the signing keys (PKCS#8 PEM). Generated on first start when empty.
    #[arg(long, env = "HALLPASS_KEYS_DIR", default_value = "keys")]
    pub keys_dir: PathBuf,
    /// Signing algorithm of new access tokens.
    #[arg(
        long,
        env = "HALLPASS_SIGNING_ALG",
        value_enum,
        ignore_case = true,
        default_value = "ES256"
    )]
    pub signing_alg: SigningAlg,
    /// Access-token lifetime in seconds (60 to 86400).
    #[arg(long, env = "HALLPASS_ACCESS_TOKEN_TTL", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub access_token_ttl: u64,
    /// Seconds resource servers may cache the JWKS (`Cache-Control: max-age`); a rotated key is
    /// published at least this long before it signs.
    #[arg(long, env = "HALLPASS_JWKS_MAX_AGE", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub jwks_max_age: u64,
}

/// How to reach Redis: the settings the `hallpass` and `beer-locker` binaries share (the
/// same variables, parsed and validated by the same code), each binary adding its own key
/// prefix.
#[derive(clap::Args, Clone)]
pub struct RedisConnArgs {
    /// Redis URL of one node (`redis://`, `rediss://` for TLS, `redis+unix://`). Unset (and no
    /// cluster): the in-memory store, which keeps nothing across restarts.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// A Redis Cluster instead: comma-separated seed URLs (`redis://` or `rediss://`).
    #[arg(long, env = "REDIS_CLUSTER_URLS", hide_env_values = true)]
    pub redis_cluster_urls: Option<String>,
    /// PEM file of a private CA that signed the Redis servers' TLS certificates.
    #[arg(long, env = "HALLPASS_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Milliseconds to open one Redis connection.
    #[arg(
        long,
        env = "HALLPASS_REDIS_CONNECT_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub redis_connect_timeout_ms: u64,
    /// Milliseconds to wait for one Redis reply.
    #[arg(
        long,
        env = "HALLPASS_REDIS_RESPONSE_TIMEOUT_MS",
        default_value_t = 2000
    )]
    pub redis_response_timeout_ms: u64,
}

impl RedisConnArgs {
    /// The validated settings with keys under `prefix`: `None` for the memory store. Setting
    /// both `REDIS_URL` and `REDIS_CLUSTER_URLS` is an error that says so.
    pub fn options(&self, prefix: &str) -> Result<Option<RedisOptions>, ConfigError> {
        let node = validate_redis_url(self.redis_url.clone())?;
        let seeds: Vec<String> = self
            .redis_cluster_urls
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        let target = match (node, seeds.is_empty()) {
            (Some(_), false) => {
                return Err(ConfigError(
                    "both REDIS_URL and REDIS_CLUSTER_URLS are set: set REDIS_URL for one Redis node, or REDIS_CLUSTER_URLS for a Redis Cluster, not both".into(),
                ));
            }
            (Some(url), true) => RedisTarget::Node(url),
            (None, false) => {
                for url in &seeds {
                    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                        return Err(ConfigError(
                            "REDIS_CLUSTER_URLS: every seed must start with redis:// or rediss://"
                                .into(),
                        ));
                    }
                }
                RedisTarget::Cluster(seeds)
            }
            (None, true) => return Ok(None),
        };
        let mut options = RedisOptions::new(target, prefix);
        options.ca_file = self
            .redis_ca_file
            .clone()
            .filter(|p| !p.as_os_str().is_empty());
        options.connect_timeout = Duration::from_millis(self.redis_connect_timeout_ms.max(1));
        options.response_timeout = Duration::from_millis(self.redis_response_timeout_ms.max(1));
        Ok(Some(options))
    }
}

impl std::fmt::Debug for RedisConnArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnArgs")
            .field("store", &redis_location(self.redis_url.as_deref()))
            .field("cluster", &self.redis_cluster_urls.is_some())
            .field("ca_file", &self.redis_ca_file)
            .finish_non_exhaustive()
    }
}

/// The store settings: all `hallpass users create` needs.
#[derive(clap::Args, Clone)]
pub struct RedisArgs {
    /// How to reach Redis (shared with the beer locker).
    #[command(flatten)]
    pub conn: RedisConnArgs,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    #[arg(long, env = "HALLPASS_REDIS_PREFIX", default_value = "hallpass:")]
    pub redis_prefix: String,
    /// Replicas that must acknowledge security-critical writes (WAIT); 0 does not wait.
    #[arg(long, env = "HALLPASS_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// Milliseconds such a write waits for its replicas before answering 503.
    #[arg(long, env = "HALLPASS_REDIS_WAIT_TIMEOUT_MS", default_value_t = 500)]
    pub redis_wait_timeout_ms: u64,
}

impl RedisArgs {
    /// The validated store settings: `None` for the memory store.
    pub fn options(&self) -> Result<Option<RedisOptions>, ConfigError> {
        let Some(mut options) = self.conn.options(&self.redis_prefix)? else {
            return Ok(None);
        };
        options.wait_replicas = self.redis_wait_replicas;
        options.wait_timeout = Duration::from_millis(self.redis_wait_timeout_ms.max(1));
        Ok(Some(options))
    }
}

impl std::fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisArgs")
            .field("conn", &self.conn)
            .field("redis_prefix", &self.redis_prefix)
            .finish()
    }
}

/// One offered scope and the sentence the consent page shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDef {
    /// The scope token (RFC 6749 §3.3).
    pub name: String,
    /// What granting it lets the application do, in words for the user.
    pub description: String,
}

/// The default client lease (`HALLPASS_CLIENT_LEASE_MS`).
pub const DEFAULT_CLIENT_LEASE: Duration = Duration::from_millis(250);

/// The longest client lease any instance of this release holds, and what every change to a
/// client waits before it answers ([`crate::oauth::client_lease`]). Fixed, so that instances
/// configured differently still keep the rule.
pub const CLIENT_LEASE_CEILING: Duration = Duration::from_millis(250);

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Issuer URL without a trailing slash (`HALLPASS_ISSUER`).
    pub issuer: String,
    /// Listen address (`HALLPASS_BIND`); port 0 picks a free port.
    pub bind: SocketAddr,
    /// Signing-key directory (`HALLPASS_KEYS_DIR`).
    pub keys_dir: PathBuf,
    /// Algorithm of new tokens (`HALLPASS_SIGNING_ALG`).
    pub signing_alg: SigningAlg,
    /// Access-token lifetime, seconds (`HALLPASS_ACCESS_TOKEN_TTL`).
    pub access_token_ttl: u64,
    /// Authorization-code lifetime, seconds (`HALLPASS_CODE_TTL`).
    pub code_ttl: u64,
    /// Browser-session lifetime, seconds (`HALLPASS_SESSION_TTL`).
    pub session_ttl: u64,
    /// Whether `POST /api/users` is open (`HALLPASS_REGISTRATION`).
    pub registration_open: bool,
    /// Who may register clients at `/oauth2/register` (`HALLPASS_DYNAMIC_CLIENTS`); see
    /// [`crate::oauth::dynamic_client`].
    pub dynamic_clients: DynamicClients,
    /// Client ID Metadata Documents (`HALLPASS_CLIENT_ID_METADATA_DOCUMENTS` and
    /// `HALLPASS_CIMD_*`); see [`crate::oauth::cimd`].
    pub cimd: crate::oauth::cimd::CimdSettings,
    /// Offered scopes (`HALLPASS_SCOPES`).
    pub scopes: Vec<ScopeDef>,
    /// Identifier of Hallpass's own API, the `aud` of tokens for it (`HALLPASS_AUDIENCE`).
    pub audience: String,
    /// The registered resource servers besides Hallpass's own API (`HALLPASS_RESOURCES`);
    /// see [`crate::oauth::resource`]. [`Config::default`] registers none (every token is
    /// for Hallpass's own API); [`Config::from_args`] loads the file, or the development
    /// registry for a loopback issuer.
    pub resources: crate::oauth::resource::Resources,
    /// Redis URL (`REDIS_URL`); `None` selects the memory store. May hold a password: never log it.
    pub redis_url: Option<String>,
    /// Redis key prefix (`HALLPASS_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// The whole Redis setting (cluster, TLS CA, timeouts, durability) when it is more than
    /// `redis_url` with defaults; takes precedence over `redis_url` and `redis_prefix`.
    pub redis: Option<RedisOptions>,
    /// JWKS cache lifetime, seconds (`HALLPASS_JWKS_MAX_AGE`).
    pub jwks_max_age: u64,
    /// Refresh-token reuse grace window, seconds (`HALLPASS_REFRESH_GRACE`).
    pub refresh_grace: u64,
    /// Refresh-token idle lifetime, seconds (`HALLPASS_REFRESH_IDLE_TTL`).
    pub refresh_idle_ttl: u64,
    /// Refresh-token absolute lifetime, seconds (`HALLPASS_REFRESH_ABSOLUTE_TTL`).
    pub refresh_absolute_ttl: u64,
    /// Automatic key-rotation period, seconds (`HALLPASS_KEY_ROTATION_DAYS` × 86400).
    pub key_rotation_secs: Option<u64>,
    /// Body limit in bytes (`HALLPASS_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Time to send a request head (`HALLPASS_HEADER_READ_TIMEOUT`).
    pub header_read_timeout: Duration,
    /// Time to send a request body, else 408 (`HALLPASS_BODY_READ_TIMEOUT`).
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request (`HALLPASS_IDLE_TIMEOUT`).
    pub idle_timeout: Duration,
    /// Connection cap (`HALLPASS_MAX_CONNECTIONS`); `None` derives it from the fd limit.
    pub max_connections: Option<usize>,
    /// First-party client ids (`HALLPASS_FIRST_PARTY_CLIENTS`); see [`crate::oauth::first_party`].
    pub first_party_clients: std::collections::BTreeSet<String>,
    /// Address of the separate `/metrics` listener (`HALLPASS_METRICS_BIND`); `None`: `/metrics`
    /// is on the main port.
    pub metrics_bind: Option<SocketAddr>,
    /// Client lease length (`HALLPASS_CLIENT_LEASE_MS`); see [`crate::oauth::client_lease`].
    pub client_lease: Duration,
    /// The longest lease of any instance and the wait of every client change:
    /// [`CLIENT_LEASE_CEILING`] (no setting; tests raise it to make leases outlast them).
    pub client_lease_ceiling: Duration,
    /// Rate limits and trusted proxies (`HALLPASS_RATE_LIMIT_*`, `HALLPASS_TRUSTED_PROXIES`).
    pub rate_limits: crate::throttle::settings::RateLimits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("issuer", &self.issuer)
            .field("bind", &self.bind)
            .field("keys_dir", &self.keys_dir)
            .field("signing_alg", &self.signing_alg)
            .field("store", &redis_location(self.redis_url.as_deref()))
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// A setting that cannot be used, with the fix in its message.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:3000".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 3000)),
            keys_dir: PathBuf::from("keys"),
            signing_alg: SigningAlg::ES256,
            access_token_ttl: 600,
            code_ttl: 60,
            session_ttl: 28_800,
            registration_open: true,
            dynamic_clients: DynamicClients::Off,
            cimd: Default::default(),
            #[allow(clippy::expect_used)]
            scopes: parse_scopes(DEFAULT_SCOPES).expect("the default scopes parse"),
            audience: "http://127.0.0.1:3000".into(),
            resources: crate::oauth::resource::Resources::none(),
            redis_url: None,
            redis_prefix: "hallpass:".into(),
            redis: None,
            jwks_max_age: 300,
            refresh_grace: 30,
            refresh_idle_ttl: 1_209_600,
            refresh_absolute_ttl: 2_592_000,
            key_rotation_secs: None,
            max_body_bytes: 65_536,
            header_read_timeout: crate::server::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: crate::server::DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: crate::server::DEFAULT_IDLE_TIMEOUT,
            max_connections: None,
            first_party_clients: Default::default(),
            metrics_bind: None,
            client_lease: DEFAULT_CLIENT_LEASE,
            client_lease_ceiling: CLIENT_LEASE_CEILING,
            rate_limits: Default::default(),
        }
    }
}

impl Config {
    /// The Redis store's settings: [`Config::redis`] when set, else `redis_url` with the
    /// default timeouts; `None` for the memory store.
    pub fn redis_options(&self) -> Option<RedisOptions> {
        self.redis.clone().or_else(|| {
            self.redis_url
                .as_deref()
                .map(|url| RedisOptions::node(url, &self.redis_prefix))
        })
    }

    /// Validates the raw settings.
    pub fn from_args(args: ConfigArgs) -> Result<Config, ConfigError> {
        let issuer = validate_issuer(&args.issuer)?;
        let bind: SocketAddr = args.bind.parse().map_err(|_| {
            ConfigError(format!(
                "HALLPASS_BIND / --bind is {:?}; give an address and port such as 127.0.0.1:3000 or 0.0.0.0:8080",
                args.bind
            ))
        })?;
        let scopes = parse_scopes(&args.scopes)?;
        if args.refresh_idle_ttl > args.refresh_absolute_ttl {
            return Err(ConfigError(
                "HALLPASS_REFRESH_IDLE_TTL must not exceed HALLPASS_REFRESH_ABSOLUTE_TTL".into(),
            ));
        }
        let audience = match args.audience {
            Some(a) if a.trim().is_empty() || a.chars().any(char::is_whitespace) => {
                return Err(ConfigError(
                    "HALLPASS_AUDIENCE / --audience must be one identifier (usually a URL) without spaces".into(),
                ));
            }
            Some(a) => a,
            None => issuer.clone(),
        };
        let resources = load_resources(args.resources.as_deref(), &issuer, &scopes, &audience)?;
        let redis = args.redis.options()?;
        let redis_url = validate_redis_url(args.redis.conn.redis_url)?;
        let first_party_clients =
            crate::oauth::first_party::parse_setting(&args.first_party_clients)
                .map_err(ConfigError)?;
        let metrics_bind = match args.metrics_bind.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse().map_err(|_| {
                ConfigError(format!(
                    "HALLPASS_METRICS_BIND / --metrics-bind is {raw:?}; give an address and port such as 127.0.0.1:9100"
                ))
            })?),
        };
        Ok(Config {
            issuer,
            bind,
            keys_dir: args.keys.keys_dir,
            signing_alg: args.keys.signing_alg,
            access_token_ttl: args.keys.access_token_ttl,
            code_ttl: args.code_ttl,
            session_ttl: args.session_ttl,
            registration_open: args.registration == Registration::Open,
            dynamic_clients: args.dynamic_clients,
            cimd: args.cimd.settings().map_err(ConfigError)?,
            scopes,
            audience,
            resources,
            redis_url,
            redis_prefix: args.redis.redis_prefix,
            redis,
            jwks_max_age: args.keys.jwks_max_age,
            refresh_grace: args.refresh_grace,
            refresh_idle_ttl: args.refresh_idle_ttl,
            refresh_absolute_ttl: args.refresh_absolute_ttl,
            key_rotation_secs: args.key_rotation_days.map(|d| d * 86_400),
            max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(65_536),
            header_read_timeout: Duration::from_secs(args.header_read_timeout),
            body_read_timeout: Duration::from_secs(args.body_read_timeout),
            idle_timeout: Duration::from_secs(args.idle_timeout),
            max_connections: args
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            first_party_clients,
            metrics_bind,
            client_lease: Duration::from_millis(args.client_lease_ms),
            client_lease_ceiling: CLIENT_LEASE_CEILING,
            rate_limits: crate::throttle::settings::RateLimits::from_args(&args.rate_limit)?,
        })
    }

    /// Whether cookies get the `Secure` attribute: when the issuer is https.
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The description of an offered scope.
    pub fn scope_description(&self, name: &str) -> Option<&str> {
        self.scopes
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.description.as_str())
    }

    /// The full URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

/// The resource registry: the `HALLPASS_RESOURCES` file when given (an empty path is
/// unset); else, for a loopback (development) issuer, the development registry; else none.
fn load_resources(
    path: Option<&std::path::Path>,
    issuer: &str,
    scopes: &[ScopeDef],
    audience: &str,
) -> Result<crate::oauth::resource::Resources, ConfigError> {
    use crate::oauth::resource::Resources;
    let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else {
        let development = Url::parse(issuer).is_ok_and(|u| is_loopback_host(&u));
        return Ok(if development {
            Resources::development(scopes)
        } else {
            Resources::none()
        });
    };
    let raw = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "HALLPASS_RESOURCES / --resources: cannot read {}: {e}",
            path.display()
        ))
    })?;
    Resources::from_json(&raw, scopes, audience).map_err(|e| {
        ConfigError(format!(
            "HALLPASS_RESOURCES / --resources ({}): {e}",
            path.display()
        ))
    })
}

/// Checks `REDIS_URL` the same way for both binaries: empty means unset (the memory store);
/// `redis://`, `rediss://` (TLS), `redis+unix://` and `unix://` are accepted.
pub fn validate_redis_url(raw: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = raw.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|p| url.starts_with(p))
    {
        return Err(ConfigError(
            "REDIS_URL / --redis-url must start with redis://, rediss:// or redis+unix:// (or be unset for the memory store)".into(),
        ));
    }
    Ok(Some(url))
}

/// Where the store is, safe to log or print in a `Debug`: `memory`, or `redis host:port`
/// (never the URL, which may carry a password).
pub fn redis_location(redis_url: Option<&str>) -> String {
    let Some(raw) = redis_url else {
        return "memory".into();
    };
    match Url::parse(raw) {
        Ok(url) => format!(
            "redis {}:{}",
            url.host_str().unwrap_or("unix socket"),
            url.port().unwrap_or(6379)
        ),
        Err(_) => "redis".into(),
    }
}

/// Validates an issuer URL (RFC 8414 §2: https, no query or fragment) and drops a trailing slash.
pub fn validate_issuer(raw: &str) -> Result<String, ConfigError> {
    let fix = "HALLPASS_ISSUER / --issuer must be an https URL without query or fragment, such as https://auth.example.com (http is allowed for 127.0.0.1, [::1] and localhost)";
    let url =
        Url::parse(raw).map_err(|e| ConfigError(format!("{fix}; {raw:?} does not parse: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(ConfigError(format!("{fix}; got {raw:?}")));
    }
    match url.scheme() {
        "https" => {}
        "http" if is_loopback_host(&url) => {}
        _ => return Err(ConfigError(format!("{fix}; got {raw:?}"))),
    }
    Ok(raw.trim_end_matches('/').to_string())
}

/// Whether a string is a valid scope token (RFC 6749 §3.3: %x21 / %x23-5B / %x5D-7E).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parses `name=description,name=description`.
pub fn parse_scopes(raw: &str) -> Result<Vec<ScopeDef>, ConfigError> {
    let mut out: Vec<ScopeDef> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, description) = item.split_once('=').unwrap_or((item, item));
        let name = name.trim();
        if !is_scope_token(name) {
            return Err(ConfigError(format!(
                "HALLPASS_SCOPES / --scopes: {name:?} is not a scope token; write comma-separated name=description pairs, names without spaces, quotes or backslashes"
            )));
        }
        if out.iter().any(|s| s.name == name) {
            return Err(ConfigError(format!(
                "HALLPASS_SCOPES / --scopes names {name:?} twice; name each scope once"
            )));
        }
        out.push(ScopeDef {
            name: name.to_string(),
            description: description.trim().to_string(),
        });
    }
    if out.is_empty() {
        return Err(ConfigError(
            "HALLPASS_SCOPES / --scopes is empty; offer at least one scope as name=description"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn issuer_must_be_https_unless_loopback() {
        assert!(validate_issuer("https://auth.example.com/").is_ok());
        assert_eq!(
            validate_issuer("http://localhost:3000/").unwrap_or_default(),
            "http://localhost:3000"
        );
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("https://auth.example.com/?a=b").is_err());
        assert!(validate_issuer("not a url").is_err());
    }

    #[test]
    fn scopes_parse_with_descriptions_and_reject_bad_tokens() {
        let s = parse_scopes("a=First, b:c=Second").unwrap_or_default();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "b:c");
        assert_eq!(s[1].description, "Second");
        assert!(parse_scopes("bad\"scope=x").is_err());
        assert!(parse_scopes("a=1,a=2").is_err());
        assert!(parse_scopes(" , ").is_err());
    }

    #[test]
    fn redis_urls_follow_one_rule_and_never_show_their_password() {
        assert_eq!(validate_redis_url(Some(String::new())).ok(), Some(None));
        assert!(validate_redis_url(Some("redis://127.0.0.1:6379".into())).is_ok());
        assert!(validate_redis_url(Some("redis+unix:///tmp/r.sock".into())).is_ok());
        assert!(validate_redis_url(Some("rediss://r:6380".into())).is_ok());
        assert!(validate_redis_url(Some("http://r".into())).is_err());
        let url = "redis://user:s3cret@redis.internal:6380/0";
        assert_eq!(redis_location(Some(url)), "redis redis.internal:6380");
        assert_eq!(redis_location(None), "memory");
        let config = Config {
            redis_url: Some(url.into()),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
        let args = redis_args(Some(url), None);
        assert!(!format!("{args:?}").contains("s3cret"));
        let options = args.options().unwrap().unwrap();
        assert!(!format!("{options:?}").contains("s3cret"));
    }

    /// The shared connection settings with default timeouts and no CA file.
    pub(crate) fn conn_args(url: Option<&str>, cluster: Option<&str>) -> RedisConnArgs {
        RedisConnArgs {
            redis_url: url.map(String::from),
            redis_cluster_urls: cluster.map(String::from),
            redis_ca_file: None,
            redis_connect_timeout_ms: 2000,
            redis_response_timeout_ms: 2000,
        }
    }

    fn redis_args(url: Option<&str>, cluster: Option<&str>) -> RedisArgs {
        RedisArgs {
            conn: conn_args(url, cluster),
            redis_prefix: "p:".into(),
            redis_wait_replicas: 1,
            redis_wait_timeout_ms: 500,
        }
    }

    #[test]
    fn one_node_or_a_cluster_but_not_both() {
        let both = redis_args(Some("redis://a:6379"), Some("redis://b:7000"));
        let err = both.options().unwrap_err().0;
        assert!(
            err.contains("both REDIS_URL and REDIS_CLUSTER_URLS"),
            "{err}"
        );
        let cluster = redis_args(None, Some(" redis://:pw@b:7000, rediss://c:7001 ,"));
        let options = cluster.options().unwrap().unwrap();
        assert!(
            options.target
                == RedisTarget::Cluster(vec![
                    "redis://:pw@b:7000".into(),
                    "rediss://c:7001".into()
                ])
        );
        assert_eq!(options.location(), "redis cluster b:7000,c:7001");
        assert_eq!(options.wait_replicas, 1);
        assert!(redis_args(None, Some("http://b:7000")).options().is_err());
        assert!(redis_args(None, None).options().unwrap().is_none());
    }
}
