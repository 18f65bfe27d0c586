//! The JWS algorithms Hallpass signs and verifies with (RFC 7518 §3, RFC 8037 §3.1).
//!
//! There is no symmetric algorithm here, and no `none`: a public key can never be used as an
//! HMAC secret, and a token can never opt out of its signature.

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm. The server's `HALLPASS_SIGNING_ALG`, a signing key's metadata
/// and a verification key's JWK all use this one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256 (the default).
    #[cfg_attr(feature = "server", value(name = "ES256"))]
    ES256,
    /// Ed25519.
    #[cfg_attr(feature = "server", value(name = "EdDSA"))]
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key.
    #[cfg_attr(feature = "server", value(name = "RS256"))]
    RS256,
}

impl Algorithm {
    /// The JOSE name of the algorithm.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
        }
    }

    /// The algorithm a JOSE `alg` names, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Algorithm::ES256),
            "EdDSA" => Some(Algorithm::EdDSA),
            "RS256" => Some(Algorithm::RS256),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
