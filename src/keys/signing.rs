//! One signing key: the parsed ring key pair (so signing costs one signature, never a PKCS#8
//! parse per token), its metadata, its public JWK and the verification key made from that JWK.

use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents},
};
use serde::{Deserialize, Serialize};

use super::KeyError;
use crate::jose::{Algorithm, Jwk, PublicKey, VerifyingKey};

/// The metadata stored beside a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMeta {
    /// JOSE algorithm.
    pub alg: Algorithm,
    /// When the key was created (Unix seconds).
    pub created_at: u64,
    /// When the key may start signing (Unix seconds).
    pub not_before: u64,
    /// When the key was retired by hand (Unix seconds), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// One signing key with its public JWK.
pub struct SigningKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    /// Metadata: algorithm and timestamps.
    pub meta: KeyMeta,
    jwk: Jwk,
    pair: Pair,
    verifying: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("meta", &self.meta)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// Parses a PKCS#8 DER private key; the algorithm is found from the key itself.
    pub fn from_pkcs8(der: &[u8], created_at: u64, not_before: u64) -> Result<Self, String> {
        let rng = SystemRandom::new();
        if let Ok(kp) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
        {
            let point = kp.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                return Err("unexpected P-256 public key encoding".into());
            }
            let public = PublicKey::P256(point.to_vec());
            return Ok(Self::assemble(
                Algorithm::ES256,
                Pair::Ecdsa(kp),
                public,
                created_at,
                not_before,
            ));
        }
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let public = PublicKey::Ed25519(kp.public_key().as_ref().to_vec());
            return Ok(Self::assemble(
                Algorithm::EdDSA,
                Pair::Ed25519(kp),
                public,
                created_at,
                not_before,
            ));
        }
        if let Ok(kp) = RsaKeyPair::from_pkcs8(der) {
            if kp.public().modulus_len() < 256 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            // ring gives the public components; leading zeros are already stripped.
            let components: RsaPublicKeyComponents<Vec<u8>> = kp.public().into();
            let public = PublicKey::Rsa {
                n: components.n,
                e: components.e,
            };
            return Ok(Self::assemble(
                Algorithm::RS256,
                Pair::Rsa(kp),
                public,
                created_at,
                not_before,
            ));
        }
        Err("not a PKCS#8 P-256, Ed25519 or RSA (2048 bits or more) private key; convert a SEC1 or PKCS#1 key with `openssl pkcs8 -topk8 -nocrypt -in old.pem -out new.pem`".into())
    }

    /// Builds the key from its public key: the JWK (whose RFC 7638 thumbprint is the `kid`)
    /// and the verification key the server checks its own tokens with.
    fn assemble(
        alg: Algorithm,
        pair: Pair,
        public: PublicKey,
        created_at: u64,
        not_before: u64,
    ) -> Self {
        let jwk = Jwk::published(alg, &public);
        Self {
            kid: jwk.kid.clone(),
            meta: KeyMeta {
                alg,
                created_at,
                not_before,
                retired_at: None,
            },
            jwk,
            pair,
            verifying: VerifyingKey { alg, key: public },
        }
    }

    /// Generates a new key of `alg` and returns it with its PKCS#8 DER encoding. An RSA key
    /// takes a noticeable fraction of a second: call this off the async runtime's workers.
    pub fn generate(alg: Algorithm, now: u64, not_before: u64) -> Result<(Self, Vec<u8>), String> {
        let rng = SystemRandom::new();
        let der = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| e.to_string())?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| e.to_string())?
                .as_ref()
                .to_vec(),
            Algorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
                    .map_err(|e| e.to_string())?;
                key.to_pkcs8_der()
                    .map_err(|e| e.to_string())?
                    .as_bytes()
                    .to_vec()
            }
        };
        let key = Self::from_pkcs8(&der, now, not_before)?;
        Ok((key, der))
    }

    /// The public JWK (RFC 7517) with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public key, with its algorithm, that verifies this key's signatures.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ecdsa(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Pair::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

impl crate::jose::Signer for SigningKey {
    fn alg(&self) -> Algorithm {
        self.meta.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        SigningKey::sign(self, message).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_key_gets_the_rfc8037_thumbprint_as_kid() {
        // RFC 8037 appendix A: the seed, wrapped in PKCS#8 v1, and its public key's thumbprint.
        let seed = crate::crypto::unb64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let key = SigningKey::from_pkcs8(&der, 1, 1).unwrap();
        assert_eq!(
            key.jwk().x.as_deref(),
            Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        );
        assert_eq!(key.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn the_jwk_of_every_algorithm_verifies_the_keys_signatures() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let (key, _) = SigningKey::generate(alg, 1, 1).unwrap_or_else(|e| panic!("{e}"));
            let sig = key.sign(b"message").unwrap_or_else(|e| panic!("{e}"));
            let from_jwk = key.jwk().verifying_key().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&from_jwk, key.verifying_key());
            assert!(from_jwk.verify(b"message", &sig), "{alg}");
            assert!(!from_jwk.verify(b"other", &sig), "{alg}");
            assert_eq!(key.jwk().thumbprint(), key.kid);
        }
    }

    #[test]
    fn ring_gives_the_rsa_public_components_the_rsa_crate_gives() {
        use rsa::{pkcs8::DecodePrivateKey, traits::PublicKeyParts};
        let (key, der) =
            SigningKey::generate(Algorithm::RS256, 1, 1).unwrap_or_else(|e| panic!("{e}"));
        let parsed = rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap_or_else(|e| panic!("{e}"));
        let PublicKey::Rsa { n, e } = &key.verifying_key().key else {
            panic!("not an RSA key");
        };
        assert_eq!(n, &parsed.n().to_bytes_be());
        assert_eq!(e, &parsed.e().to_bytes_be());
    }

    #[test]
    fn debug_never_prints_the_private_key() {
        let (key, _) =
            SigningKey::generate(Algorithm::ES256, 1, 1).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{key:?}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains(&key.kid));
    }
}
