//! JOSE, once: the algorithm type ([`alg`]), JSON Web Keys ([`jwk`]), compact JWS signing and
//! verification ([`jws`]) and RFC 9068 access-token claims ([`claims`]).
//!
//! The server signs with it, checks its own tokens with it (`AppState::verify_access_token`),
//! and [`crate::verify`] checks tokens with it on a resource server: one verification path,
//! [`Unverified::parse`] then [`Unverified::verify`]. Every check pins what a token could try to
//! choose (RFC 8725): the algorithm is the key's, so `alg: none` and HS256 keyed with a public
//! key cannot pass; `typ` must be `at+jwt`; `iss`, `aud`, `exp`, `nbf`, `iat` are checked with
//! [`LEEWAY`] unless a verifier is configured otherwise.

pub mod alg;
pub mod claims;
mod error;
pub mod jwk;
pub mod jws;

pub use alg::Algorithm;
pub use claims::{AccessClaims, Claims, Expected};
pub use error::VerifyError;
pub use jwk::{Jwk, Jwks, PublicKey, VerifyingKey};
pub use jws::{Signer, Unverified, sign};

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: u64 = 30;

/// Whether a JOSE `typ` names an access token: `at+jwt` or `application/at+jwt`, in any case
/// (RFC 9068 §4, RFC 7515 §4.1.9).
pub fn is_access_token_typ(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
}
