//! JWT access tokens (RFC 9068) and their verification.
//!
//! Tokens are signed here with the active key (`keys.rs`), header `{alg, typ: "at+jwt", kid}`.
//! Verification pins everything the token could try to choose: the key comes from our own
//! key set by `kid`, the algorithm from that key (never from the token, RFC 8725 §3.1),
//! `typ` must be `at+jwt` (RFC 9068 §4), and `iss`, `aud`, `exp` and `nbf` are checked against
//! the configuration and the injected clock.

use jsonwebtoken::{Validation, decode, decode_header};
use serde::{Deserialize, Serialize};

use crate::{
    crypto::b64,
    keys::{KeyError, KeySet, SigningKey},
};

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: u64 = 30;

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for client_credentials.
    pub sub: String,
    /// Audience: the resource server identifier.
    pub aud: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes.
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// When the user authenticated (user flows only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<u64>,
}

impl AccessClaims {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with `key` and the given `typ`.
pub fn sign<T: Serialize>(key: &SigningKey, typ: &str, claims: &T) -> Result<String, KeyError> {
    let header = Header {
        alg: key.meta.alg.as_str(),
        typ,
        kid: &key.kid,
    };
    let header = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
    let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut jws = String::with_capacity(512);
    jws.push_str(&b64(&header));
    jws.push('.');
    jws.push_str(&b64(&claims));
    let sig = key.sign(jws.as_bytes())?;
    jws.push('.');
    jws.push_str(&b64(&sig));
    Ok(jws)
}

/// Which check a token failed. The text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its header or claims do not decode.
    #[error("the token is malformed")]
    Malformed,
    /// `typ` is not `at+jwt`.
    #[error("the token is not an access token")]
    WrongType,
    /// No published key has this `kid`.
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    /// The signature, algorithm, issuer or audience is wrong.
    #[error("the token signature, algorithm, issuer or audience is invalid")]
    Invalid,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Verifies an access token issued by `issuer` for `audience`, at time `now`.
pub fn verify_access_token(
    keys: &KeySet,
    token: &str,
    issuer: &str,
    audience: &str,
    now: u64,
    token_lifetime: u64,
) -> Result<AccessClaims, TokenError> {
    let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
    let typ = header.typ.as_deref().unwrap_or_default();
    if !typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
        && !typ.eq_ignore_ascii_case("application/at+jwt")
    {
        return Err(TokenError::WrongType);
    }
    let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
    let key = keys
        .find_published(kid, now, token_lifetime)
        .ok_or(TokenError::UnknownKey)?;
    let mut validation = Validation::new(key.algorithm());
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["iss", "aud", "exp", "sub"]);
    let data =
        decode::<AccessClaimsWithNbf>(token, key.decoding_key(), &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::Json(_)
                | ErrorKind::Base64(_)
                | ErrorKind::Utf8(_)
                | ErrorKind::MissingRequiredClaim(_) => TokenError::Malformed,
                _ => TokenError::Invalid,
            }
        })?;
    let claims = data.claims;
    if claims.inner.exp + LEEWAY <= now {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY) || claims.inner.iat > now + LEEWAY {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims.inner)
}

#[derive(Deserialize)]
struct AccessClaimsWithNbf {
    #[serde(flatten)]
    inner: AccessClaims,
    #[serde(default)]
    nbf: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SigningAlg;

    fn claims(now: u64) -> AccessClaims {
        AccessClaims {
            iss: "https://as.example".into(),
            sub: "user-1".into(),
            aud: "https://api.example".into(),
            client_id: "client-1".into(),
            scope: "beers:read".into(),
            iat: now,
            exp: now + 600,
            jti: "j".into(),
            auth_time: Some(now),
        }
    }

    fn keyset(alg: SigningAlg) -> KeySet {
        let (key, _) = SigningKey::generate(alg, 0, 0).unwrap_or_else(|e| panic!("{e}"));
        KeySet::from_keys(vec![key])
    }

    #[test]
    fn tokens_of_every_algorithm_verify_and_expire() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let keys = keyset(alg);
            let key = keys.active(1).unwrap_or_else(|e| panic!("{e}"));
            let t = sign(key, ACCESS_TOKEN_TYP, &claims(1000)).unwrap_or_else(|e| panic!("{e}"));
            let ok = verify_access_token(
                &keys,
                &t,
                "https://as.example",
                "https://api.example",
                1000,
                600,
            );
            assert_eq!(ok, Ok(claims(1000)));
            let late = verify_access_token(
                &keys,
                &t,
                "https://as.example",
                "https://api.example",
                1700,
                600,
            );
            assert_eq!(late, Err(TokenError::Expired));
            let aud =
                verify_access_token(&keys, &t, "https://as.example", "https://other", 1000, 600);
            assert_eq!(aud, Err(TokenError::Invalid));
        }
    }

    #[test]
    fn tokens_with_another_typ_or_alg_none_are_refused() {
        let keys = keyset(SigningAlg::ES256);
        let key = keys.active(1).unwrap();
        let t = sign(key, "JWT", &claims(1000)).unwrap_or_else(|e| panic!("{e}"));
        let r = verify_access_token(
            &keys,
            &t,
            "https://as.example",
            "https://api.example",
            1000,
            600,
        );
        assert_eq!(r, Err(TokenError::WrongType));

        let header =
            b64(format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#, key.kid).as_bytes());
        let body = b64(&serde_json::to_vec(&claims(1000)).unwrap_or_default());
        let none = format!("{header}.{body}.");
        let r = verify_access_token(
            &keys,
            &none,
            "https://as.example",
            "https://api.example",
            1000,
            600,
        );
        assert!(
            matches!(r, Err(TokenError::Invalid | TokenError::Malformed)),
            "{r:?}"
        );
    }
}
