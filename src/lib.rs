//! # Hallpass
//!
//! A stateless OAuth 2.0 authorization server (RFC 6749, aligned with OAuth 2.1 and RFC 9700)
//! that issues RFC 9068 JWT access tokens, which resource servers verify offline against the
//! JWKS. The only server-side state is in the [`store`]: users, clients, pending authorization
//! codes and the record of redeemed ones, refresh-token families, revoked access-token ids and
//! "not before" cut-offs (also published as the revocation feed offline verifiers poll,
//! [`oauth::revocation_feed`]), remembered consent, ended sessions, rate-limit counters and
//! key-rotation claims, every key named in [`store::schema`]. Every instance is
//! interchangeable.
//!
//! ## Layout
//!
//! A request enters through [`startup::build_app`], which routes it either to the JSON API
//! ([`api`], declared with poem-openapi, so the OpenAPI spec is generated from it) or to the
//! browser pages ([`web`]: login, consent, logout). Both only translate HTTP: they call one
//! function of the protocol core ([`oauth`]), which never sees a poem type, and map its
//! `Result<_, OAuthError>` back through [`error`], the single place where errors become
//! responses.
//!
//! - [`config`]: settings from flags and `HALLPASS_*` variables, validated at start.
//! - [`state`]: the shared [`state::AppState`] (config, store, keys, clock).
//! - [`store`]: the key-value store trait with memory and Redis backends.
//! - [`keys`]: signing keys, `kid` thumbprints, the JWKS, rotation and reloading.
//! - [`jose`]: the one JOSE stack: algorithm, JWK, JWS sign/verify, RFC 9068 claims.
//! - [`token`]: the server's own access tokens, signed and checked through [`jose`].
//! - [`crypto`]: randomness, hashing, constant-time comparison, argon2id.
//! - [`telemetry`]: logging that never records secrets.
//! - [`metrics`]: Prometheus counters at `/metrics`; [`metrics_server`]: their own listener
//!   when `HALLPASS_METRICS_BIND` is set.
//! - [`docs`]: Swagger UI at `/docs` (signing in with OAuth 2.0, strict CSP) and the served
//!   spec, with its `oauth2` scheme filled in from the configuration.
//! - [`server`]: accepting and serving connections with header, idle and connection limits.
//! - [`throttle`]: rate limits on sign-ins, client authentication and registration, in the
//!   store.
//! - [`verify`]: the offline verifier resource servers embed (JWKS cache, strict checks, poem
//!   security scheme). With `--no-default-features --features verify` (or `verify-poem`)
//!   the crate is only [`jose`], [`verify`], [`time`], [`uri`] and [`error_code`] (plus
//!   `error`), without argon2, redis, clap, rsa or Swagger UI.
//! - [`beer_locker`]: the tutorial's beer API as a separate resource server (the `beer-locker`
//!   binary).

// Below both the server and the verifier (`verify`).
pub mod error_code;
pub mod jose;
pub mod time;
pub mod uri;
pub mod verify;

// Shared with the verifier's poem integration (`verify-poem`).
#[cfg(feature = "verify-poem")]
pub mod http;

// The server (`server`, the default).
#[cfg(feature = "server")]
pub mod api;
#[cfg(feature = "server")]
pub mod beer_locker;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod crypto;
#[cfg(feature = "server")]
pub mod docs;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod metrics_server;
#[cfg(feature = "server")]
pub mod oauth;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod startup;
#[cfg(feature = "server")]
pub mod state;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod testing;
#[cfg(feature = "server")]
pub mod throttle;
#[cfg(feature = "server")]
pub mod token;
#[cfg(feature = "server")]
pub mod web;

#[cfg(feature = "server")]
pub use startup::{Application, build_app};
