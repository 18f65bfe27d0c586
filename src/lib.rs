//! # Hallpass
//!
//! A stateless OAuth 2.0 authorization server (RFC 6749, aligned with OAuth 2.1 and RFC 9700)
//! that issues RFC 9068 JWT access tokens, which resource servers verify offline against the
//! JWKS. The only server-side state is in the [`store`]: users, clients, and authorization
//! codes for a minute. Every instance is interchangeable.
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
//! - [`keys`]: signing keys, `kid` thumbprints, the JWKS.
//! - [`token`]: access-token claims, signing and strict verification.
//! - [`crypto`]: randomness, hashing, constant-time comparison, argon2id.
//! - [`telemetry`]: logging that never records secrets.
//! - [`metrics`]: Prometheus counters at `/metrics`.
//! - [`throttle`]: rate limits on sign-ins, client authentication and registration, in the
//!   store.
//! - [`verify`]: the offline verifier resource servers embed (JWKS cache, strict checks, poem
//!   security scheme).
//! - [`beer_locker`]: the tutorial's beer API as a separate resource server (the `beer-locker`
//!   binary).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod beer_locker;
pub mod config;
pub mod crypto;
pub mod error;
pub mod error_code;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod time;
pub mod token;
pub mod uri;
pub mod verify;
pub mod web;

pub use startup::{Application, build_app};
