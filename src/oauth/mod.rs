//! The protocol core. No poem types here: every entry point takes plain values and the
//! [`AppState`](crate::state::AppState) and returns `Result<_, OAuthError>`; `api/` and `web/`
//! only translate HTTP to these calls and back.
//!
//! - [`error`]: [`error::OAuthError`], a code and a description (no HTTP status).
//! - [`authorize`]: the authorization endpoint's validation, consent decision, code issuance.
//! - [`grant`]: the token endpoint's grants; [`grant_type`]: their names; [`code_hint`]:
//!   authorization codes that carry their user, sealed.
//! - [`client`]: client registration and client authentication; [`client_lease`]: the
//!   short leases that let a client authenticate again without a store round trip.
//! - [`cimd`]: clients identified by a URL (Client ID Metadata Documents), fetched and cached.
//! - [`users`]: user accounts and caller authentication for the management API.
//! - [`username`], [`passwords`]: the RFC 8265 username profile, the new-password policy.
//! - [`refresh`]: rotating refresh-token families with reuse detection.
//! - [`revocation`]: RFC 7009 revocation, RFC 7662 introspection, the access-token denylist.
//! - [`revocation_feed`]: what offline verifiers must refuse, published at `/oauth2/revocations`.
//! - [`consent`]: remembered consent.
//! - [`resource`]: RFC 8707 resource indicators: the registered resource servers, the `aud`
//!   of each token and the scope narrowed to it.
//! - [`disclosure`]: what a token may see of its user.
//! - [`redirect_uri`]: redirect URIs in normal form, so the stored one is the one used;
//!   loopback matching on any port and private-use schemes (RFC 8252).
//! - [`redirect_trust`]: which error responses are redirected automatically (RFC 9700 §4.11.2).
//! - [`first_party`]: first-party clients, the only ones granted `hallpass:manage`.
//! - [`docs_client`]: `hallpass-docs`, the built-in public client of Swagger UI at `/docs`.
//! - [`session`]: signed browser sessions and pending requests; [`sign_out`]: ending them.
//! - [`token_cutoff`]: refusing access tokens issued before consent withdrawal, client deletion
//!   or sign-out everywhere.
//! - [`client_update`]: compare-and-swap updates of client records.
//! - [`dynamic_client`]: RFC 7591 registration and RFC 7592 management at `/oauth2/register`.
//! - [`pkce`], [`scope`]: RFC 7636 and RFC 6749 §3.3 helpers.

pub mod authorize;
pub mod cimd;
pub mod client;
pub mod client_lease;
pub mod client_update;
pub mod code_hint;
pub mod consent;
pub mod cors;
pub mod disclosure;
pub mod docs_client;
pub mod dynamic_client;
pub mod error;
pub mod first_party;
pub mod grant;
pub mod grant_type;
pub mod passwords;
pub mod pkce;
pub mod redirect_trust;
pub mod redirect_uri;
pub mod refresh;
pub mod resource;
pub mod revocation;
pub mod revocation_feed;
pub mod scope;
pub mod session;
pub mod sign_out;
pub mod token_cutoff;
pub mod username;
pub mod users;
