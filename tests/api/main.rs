//! The one integration-test binary: every test drives a real server over HTTP on port 0, on
//! the memory store and again on each Redis the environment offers (single node, TLS, cluster).

// Tests may unwrap, expect and panic (the `[lints]` table denies them in src/).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The servers these tests start in this process run on the allocator the `hallpass` binary
/// runs on (mimalloc, the default `mimalloc` feature), as the tests that start the binary
/// itself already did; `--no-default-features --features server` runs them on the system
/// allocator. The unit tests in `src/` keep the system allocator (the library sets none).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod accounts;
mod authorize;
mod backends;
mod beer_locker;
mod cli;
mod client_id_metadata;
mod client_leases;
mod connections;
mod consent;
mod cors;
mod discovery;
mod dynamic_clients;
mod flow;
mod hardening_flows;
mod helpers;
mod key_rotation;
mod native_apps;
mod openapi_spec;
mod pages;
mod processes;
mod rate_limit;
mod redis_backends;
mod refresh;
mod resources;
mod revocation_feed;
mod revoke_introspect;
mod sessions;
mod store;
mod token_errors;
mod users_and_clients;
mod verify;
