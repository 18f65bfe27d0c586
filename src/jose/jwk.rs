//! JSON Web Keys (RFC 7517): the one JWK type, for the keys the server publishes and the keys
//! the verifier reads, and the ring public key each becomes.
//!
//! A published key carries `kid` (its RFC 7638 thumbprint), `use: sig` and `alg`. A key read
//! from someone's JWKS is accepted only when it is a signature key for one of our
//! [`Algorithm`]s; anything else (symmetric, encryption, unknown types) is refused with the
//! reason, and the verifier skips it.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::Algorithm;

/// One public key (RFC 7517 §4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "verify-poem", derive(poem_openapi::Object))]
#[cfg_attr(feature = "verify-poem", oai(skip_serializing_if_is_none))]
pub struct Jwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint.
    #[serde(default)]
    pub kid: String,
    /// Always `sig`.
    #[serde(default, rename = "use")]
    #[cfg_attr(feature = "verify-poem", oai(rename = "use"))]
    pub use_: String,
    /// The algorithm this key signs with.
    #[serde(default)]
    pub alg: String,
    /// Curve (`P-256`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC or OKP x coordinate / public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The operations the key may be used for (RFC 7517 §4.3), when a JWKS restricts them.
    /// Never published by Hallpass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "verify-poem", oai(skip))]
    pub key_ops: Option<Vec<String>>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "verify-poem", derive(poem_openapi::Object))]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// Compact JSON with members in lexicographic order (what the JWKS `ETag` hashes).
fn write_sorted<T: Serialize>(value: &T, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let value = serde_json::to_value(value).map_err(|_| fmt::Error)?;
    write!(f, "{value}")
}

impl fmt::Display for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_sorted(self, f)
    }
}

impl fmt::Display for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_sorted(self, f)
    }
}

impl Jwk {
    /// The published JWK of a public key: its RFC 7638 members plus `kid`, `use` and `alg`.
    pub fn published(alg: Algorithm, key: &PublicKey) -> Self {
        let b64 = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let mut jwk = match key {
            PublicKey::P256(point) => Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: point.get(1..33).map(b64),
                y: point.get(33..65).map(b64),
                ..Jwk::default()
            },
            PublicKey::Ed25519(x) => Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(b64(x)),
                ..Jwk::default()
            },
            PublicKey::Rsa { n, e } => Jwk {
                kty: "RSA".into(),
                n: Some(b64(n)),
                e: Some(b64(e)),
                ..Jwk::default()
            },
        };
        jwk.kid = jwk.thumbprint();
        jwk.use_ = "sig".into();
        jwk.alg = alg.as_str().into();
        jwk
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        let s = |v: &Option<String>| serde_json::Value::from(v.as_deref().unwrap_or_default());
        let input = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                s(&self.crv),
                s(&self.x),
                s(&self.y)
            ),
            "OKP" => format!(
                r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
                s(&self.crv),
                s(&self.x)
            ),
            _ => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, s(&self.e), s(&self.n)),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, input.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The verification key of this JWK, or why it cannot verify our tokens: not a signature
    /// key, `key_ops` without `verify`, an unsupported key type, or an `alg` that does not
    /// match the key type. The algorithm comes from here, never from a token.
    pub fn verifying_key(&self) -> Result<VerifyingKey, &'static str> {
        if !self.use_.is_empty() && self.use_ != "sig" {
            return Err("not a signature key");
        }
        if self
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
        {
            return Err("key_ops does not allow verify");
        }
        let b64 = |v: &Option<String>| v.as_deref().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let (alg, key) = match (self.kty.as_str(), self.crv.as_deref()) {
            ("EC", Some("P-256")) => {
                let (x, y) = (b64(&self.x).ok_or("bad x")?, b64(&self.y).ok_or("bad y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("bad P-256 coordinates");
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (Algorithm::ES256, PublicKey::P256(point))
            }
            ("OKP", Some("Ed25519")) => {
                let x = b64(&self.x).ok_or("bad x")?;
                if x.len() != 32 {
                    return Err("bad Ed25519 key");
                }
                (Algorithm::EdDSA, PublicKey::Ed25519(x))
            }
            ("RSA", _) => {
                let n = b64(&self.n).ok_or("bad n")?;
                let e = b64(&self.e).ok_or("bad e")?;
                let strip = |v: Vec<u8>| {
                    let zeros = v.iter().take_while(|b| **b == 0).count();
                    v[zeros..].to_vec()
                };
                (
                    Algorithm::RS256,
                    PublicKey::Rsa {
                        n: strip(n),
                        e: strip(e),
                    },
                )
            }
            _ => return Err("unsupported key type"),
        };
        // A JWK's `alg` must agree with its key type; without one, the key type decides.
        if !self.alg.is_empty() && self.alg != alg.as_str() {
            return Err("alg does not match the key type or is not supported");
        }
        Ok(VerifyingKey { alg, key })
    }
}

/// The raw public key material ring verifies with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// An uncompressed P-256 point (`04 || x || y`).
    P256(Vec<u8>),
    /// An Ed25519 public key.
    Ed25519(Vec<u8>),
    /// An RSA public key: big-endian modulus and exponent without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

/// A public key with the one algorithm it verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The algorithm, from the key (never from a token).
    pub alg: Algorithm,
    /// The key material.
    pub key: PublicKey,
}

impl VerifyingKey {
    /// Whether `sig` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.key {
            PublicKey::P256(point) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            PublicKey::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            PublicKey::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(v: serde_json::Value) -> Result<VerifyingKey, &'static str> {
        serde_json::from_value::<Jwk>(v)
            .map_err(|_| "does not parse")?
            .verifying_key()
    }

    #[test]
    fn the_rfc7638_example_key_has_the_rfc7638_thumbprint() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let key = Jwk {
            kty: "RSA".into(),
            n: Some(n.into()),
            e: Some("AQAB".into()),
            ..Jwk::default()
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn symmetric_encryption_and_mismatched_jwks_are_refused() {
        assert_eq!(
            jwk(serde_json::json!({"kty":"oct","kid":"k","k":"c2VjcmV0"})).err(),
            Some("unsupported key type")
        );
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert!(jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x})).is_ok());
        for bad in [
            serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"use":"enc"}),
            serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"alg":"HS256"}),
            serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"k","x":x,"key_ops":["sign"]}),
        ] {
            assert!(jwk(bad.clone()).is_err(), "{bad}");
        }
    }
}
