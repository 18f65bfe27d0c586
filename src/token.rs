//! The server's own access tokens (RFC 9068): signing with the active key and checking them,
//! both through [`crate::jose`], the same path [`crate::verify`] uses on resource servers.
//!
//! Tokens are signed with header `{alg, typ: "at+jwt", kid}`. Verification pins everything
//! the token could try to choose: the key comes from our own key set by `kid`, the algorithm
//! from that key (never from the token, RFC 8725 §3.1), `typ` must be `at+jwt` (RFC 9068 §4),
//! and `iss`, `aud`, `exp`, `nbf` and `iat` are checked against the configuration and the
//! injected clock.

use serde::Serialize;

pub use crate::jose::{ACCESS_TOKEN_TYP, AccessClaims, LEEWAY};
use crate::{
    jose::{Expected, Unverified, VerifyError},
    keys::{KeyError, KeySet, SigningKey},
};

/// Which check a token failed (the verifier's error: one set of checks, one error).
pub type TokenError = VerifyError;

/// Signs `claims` as a compact JWS with `key` and the given `typ`.
pub fn sign<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String, KeyError> {
    crate::jose::sign(key, typ, claims).ok_or(KeyError::Sign)
}

/// Verifies an access token issued by `issuer` for `audience`, at time `now`, with a key of
/// `keys` that is published at `now`.
pub fn verify_access_token(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    audience: &str,
    now: u64,
    token_lifetime: u64,
) -> Result<AccessClaims, TokenError> {
    let token = Unverified::parse(token)?;
    let key = keys
        .find_published(token.kid(), now, token_lifetime)
        .ok_or(VerifyError::UnknownKey)?;
    let expected = Expected {
        issuer,
        audience,
        leeway: LEEWAY,
    };
    token
        .verify(key.verifying_key(), &expected, now)
        .map(AccessClaims::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{crypto::b64, jose::Algorithm};

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://as.example".into(),
            sub: "user-1".into(),
            aud: vec!["https://api.example".into()],
            client_id: "client-1".into(),
            scope: "beers:read".into(),
            iat: now,
            exp: now + 600,
            jti: "j".into(),
            auth_time: Some(now),
        }
    }

    fn keyset(alg: Algorithm) -> KeySet {
        let (key, _) = SigningKey::generate(alg, 0, 0).unwrap_or_else(|e| panic!("{e}"));
        KeySet::from_keys(vec![key])
    }

    fn check(keys: &KeySet, token: &str, aud: &str, now: u64) -> Result<AccessClaims, TokenError> {
        verify_access_token(keys, token, "https://as.example", aud, now, 600)
    }

    #[test]
    fn tokens_of_every_algorithm_verify_and_expire() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let keys = keyset(alg);
            let key = keys.active(1).unwrap_or_else(|e| panic!("{e}"));
            let t = sign(key, ACCESS_TOKEN_TYP, &claims(1000)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                check(&keys, &t, "https://api.example", 1000),
                Ok(claims(1000))
            );
            assert_eq!(
                check(&keys, &t, "https://api.example", 1700),
                Err(TokenError::Expired)
            );
            assert_eq!(
                check(&keys, &t, "https://other", 1000),
                Err(TokenError::Audience)
            );
        }
    }

    #[test]
    fn tokens_with_another_typ_alg_none_hs256_or_another_key_are_refused() {
        let keys = keyset(Algorithm::ES256);
        let key = keys.active(1).unwrap();
        let t = sign(key, "JWT", &claims(1000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check(&keys, &t, "https://api.example", 1000),
            Err(TokenError::Type)
        );

        let body = b64(&serde_json::to_vec(&claims(1000)).unwrap_or_default());
        for alg in ["none", "HS256", "EdDSA"] {
            let header =
                b64(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{}"}}"#, key.kid).as_bytes());
            // HS256 keyed with the public JWK as the secret (RFC 8725 §2.1).
            let input = format!("{header}.{body}");
            let mac_key =
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.jwk().to_string().as_bytes());
            let sig = b64(ring::hmac::sign(&mac_key, input.as_bytes()).as_ref());
            for token in [format!("{input}."), format!("{input}.{sig}")] {
                assert_eq!(
                    check(&keys, &token, "https://api.example", 1000),
                    Err(TokenError::Algorithm),
                    "{alg}"
                );
            }
        }

        let (other, _) =
            SigningKey::generate(Algorithm::ES256, 0, 0).unwrap_or_else(|e| panic!("{e}"));
        let t = sign(&other, ACCESS_TOKEN_TYP, &claims(1000)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check(&keys, &t, "https://api.example", 1000),
            Err(TokenError::UnknownKey)
        );
    }
}
