//! The one integration-test binary: every test drives a real server over HTTP on port 0, on
//! the memory store and, when `REDIS_URL` is set, again on Redis.

mod authorize;
mod beer_locker;
mod cli;
mod consent;
mod discovery;
mod flow;
mod helpers;
mod key_rotation;
mod openapi_spec;
mod rate_limit;
mod refresh;
mod revoke_introspect;
mod store;
mod token_errors;
mod users_and_clients;
mod verify;
