//! Signing keys: loaded once from the keys directory, never printed.
//!
//! Each key is a PKCS#8 PEM file (`<kid>.pem`, mode 0600) with an optional sidecar
//! `<kid>.json` holding its algorithm and timestamps. `kid` is the RFC 7638 JWK thumbprint of
//! the public key. Keys sign with `ring` directly (the parsed key pair is kept, so signing
//! costs one signature, not a PKCS#8 parse per token) and verify through `jsonwebtoken` with
//! the algorithm pinned to the key's own (RFC 8725 §3.1).
//!
//! ## Lifecycle: `next → active → retiring → retired`
//!
//! Every instance that shares the directory derives each key's state from the keys' own
//! timestamps and its clock, so they agree without a leader:
//! - **next**: `not_before` is still ahead. Published in the JWKS, signs nothing.
//!   `hallpass keys rotate` creates a key whose `not_before` is one JWKS `max-age` plus a margin
//!   ahead, so every resource server's cached JWKS holds it before it signs anything.
//! - **active**: the key with the latest `not_before` that has passed. It signs.
//! - **retiring**: superseded by a newer active key, but tokens it signed may still be alive:
//!   published until the access-token lifetime (plus leeway) has passed since it was superseded.
//! - **retired**: not published, never used. `hallpass keys retire <kid>` retires a key at once
//!   (a compromised key), and `rotate` deletes the files of retired keys.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use jsonwebtoken::{Algorithm, DecodingKey};
use ring::{
    rand::SystemRandom,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    config::SigningAlg,
    crypto::{b64, sha256_b64},
};

/// Why keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a usable key.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// There is no key to sign with.
    #[error(
        "no signing key is active in the keys directory; run `hallpass keys generate` or point HALLPASS_KEYS_DIR at the mounted keys"
    )]
    NoActiveKey,
    /// Signing failed (should not happen with a valid key).
    #[error("signing failed")]
    Sign,
}

/// The metadata stored beside a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyMeta {
    /// JOSE algorithm.
    pub alg: SigningAlg,
    /// When the key was created (Unix seconds).
    pub created_at: u64,
    /// When the key may start signing (Unix seconds).
    pub not_before: u64,
    /// When the key was retired by hand (Unix seconds), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

enum Signer {
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
    jwk: Value,
    signer: Signer,
    decoding: DecodingKey,
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
            let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
            let decoding = DecodingKey::from_ec_components(&x, &y).map_err(|e| e.to_string())?;
            let members = json!({"crv": "P-256", "kty": "EC", "x": x, "y": y});
            return Ok(Self::assemble(
                SigningAlg::ES256,
                Signer::Ecdsa(kp),
                members,
                decoding,
                created_at,
                not_before,
            ));
        }
        if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let x = b64(kp.public_key().as_ref());
            let decoding = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            let members = json!({"crv": "Ed25519", "kty": "OKP", "x": x});
            return Ok(Self::assemble(
                SigningAlg::EdDSA,
                Signer::Ed25519(kp),
                members,
                decoding,
                created_at,
                not_before,
            ));
        }
        if let Ok(kp) = RsaKeyPair::from_pkcs8(der) {
            use rsa::{pkcs8::DecodePrivateKey, traits::PublicKeyParts};
            if kp.public().modulus_len() < 256 {
                return Err("RSA keys must have at least 2048 bits".into());
            }
            let parsed = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| e.to_string())?;
            let n = b64(&parsed.n().to_bytes_be());
            let e = b64(&parsed.e().to_bytes_be());
            let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
            let members = json!({"e": e, "kty": "RSA", "n": n});
            return Ok(Self::assemble(
                SigningAlg::RS256,
                Signer::Rsa(kp),
                members,
                decoding,
                created_at,
                not_before,
            ));
        }
        Err("not a PKCS#8 P-256, Ed25519 or RSA (2048 bits or more) private key; convert a SEC1 or PKCS#1 key with `openssl pkcs8 -topk8 -nocrypt -in old.pem -out new.pem`".into())
    }

    /// Builds the key from its public JWK `members` (RFC 7638 §3.2: the required members,
    /// written in lexicographic order, so their compact JSON is the thumbprint input).
    fn assemble(
        alg: SigningAlg,
        signer: Signer,
        members: Value,
        decoding: DecodingKey,
        created_at: u64,
        not_before: u64,
    ) -> Self {
        let kid = sha256_b64(members.to_string().as_bytes());
        let mut jwk = members;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), kid.clone().into());
            obj.insert("use".into(), "sig".into());
            obj.insert("alg".into(), alg.as_str().into());
        }
        let meta = KeyMeta {
            alg,
            created_at,
            not_before,
            retired_at: None,
        };
        Self {
            kid,
            meta,
            jwk,
            signer,
            decoding,
        }
    }

    /// Generates a new key of `alg` and returns it with its PKCS#8 DER encoding.
    pub fn generate(alg: SigningAlg, now: u64, not_before: u64) -> Result<(Self, Vec<u8>), String> {
        let rng = SystemRandom::new();
        let der = match alg {
            SigningAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|e| e.to_string())?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| e.to_string())?
                .as_ref()
                .to_vec(),
            SigningAlg::RS256 => {
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
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The `jsonwebtoken` algorithm of this key.
    pub fn algorithm(&self) -> Algorithm {
        match self.meta.alg {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::RS256 => Algorithm::RS256,
        }
    }

    /// The key for `jsonwebtoken::decode`.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Signs `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ecdsa(kp) => kp
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Signer::Ed25519(kp) => Ok(kp.sign(message).as_ref().to_vec()),
            Signer::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public().modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }

    /// Writes the key as `<kid>.pem` (mode 0600) and `<kid>.json` into `dir`.
    pub fn write(&self, dir: &Path, der: &[u8]) -> Result<PathBuf, KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.into(),
            source,
        })?;
        // The metadata first: an instance reloading in between must never see the key without
        // its `not_before` (it would take the file's time and sign before being published).
        let meta_path = dir.join(format!("{}.json", self.kid));
        let meta = serde_json::to_vec_pretty(&self.meta).map_err(|e| KeyError::Invalid {
            path: meta_path.clone(),
            reason: e.to_string(),
        })?;
        write_private(&meta_path, &meta)?;
        let pem_path = dir.join(format!("{}.pem", self.kid));
        write_private(&pem_path, to_pem(der).as_bytes())?;
        Ok(pem_path)
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| KeyError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

fn to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn from_pem(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = pem.find("-----END PRIVATE KEY-----")?;
    let body: String = pem.get(start..end)?.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// Where a key is in its life at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Signing.
    Active,
    /// Published so that tokens it signed keep verifying; no longer signing.
    Retiring,
    /// Gone from the JWKS.
    Retired,
}

impl KeyState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    /// Whether the JWKS publishes a key in this state.
    pub fn is_published(self) -> bool {
        !matches!(self, KeyState::Retired)
    }
}

/// All keys of a deployment.
#[derive(Debug, Default, Clone)]
pub struct KeySet {
    keys: Vec<Arc<SigningKey>>,
}

impl KeySet {
    /// A set of the given keys (tests build keys in memory).
    pub fn from_keys(keys: Vec<SigningKey>) -> Self {
        let mut keys: Vec<_> = keys.into_iter().map(Arc::new).collect();
        keys.sort_by(|a, b| {
            b.meta
                .not_before
                .cmp(&a.meta.not_before)
                .then(a.kid.cmp(&b.kid))
        });
        Self { keys }
    }

    /// Reads every `*.pem` in `dir`. Files that are not keys are an error, with the path.
    pub fn load(dir: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: dir.into(),
            source,
        };
        let mut keys = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io(e)),
        };
        for entry in entries {
            let path = entry.map_err(io)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("pem") {
                continue;
            }
            keys.push(load_key(&path)?);
        }
        Ok(Self::from_keys(keys))
    }

    /// Loads `dir`; when it holds no key at all, generates a key of `alg` that signs from
    /// `now` and writes it there (the development path). A directory with keys but none able
    /// to sign is an error, never silently patched. Returns the set and whether a key was made.
    pub fn load_or_generate(
        dir: &Path,
        alg: SigningAlg,
        now: u64,
    ) -> Result<(Self, bool), KeyError> {
        let set = Self::load(dir)?;
        if !set.keys.is_empty() {
            // Mounted keys are never supplemented behind the operator's back.
            set.active(now)?;
            return Ok((set, false));
        }
        let (key, der) =
            SigningKey::generate(alg, now, now).map_err(|reason| KeyError::Invalid {
                path: dir.into(),
                reason,
            })?;
        key.write(dir, &der)?;
        Ok((Self::load(dir)?, true))
    }

    fn signing_candidates(&self, now: u64) -> impl Iterator<Item = &Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(move |k| k.meta.not_before <= now && k.meta.retired_at.is_none_or(|r| r > now))
    }

    /// The key that signs at `now`: the latest `not_before` that has passed, not retired.
    pub fn active(&self, now: u64) -> Result<&Arc<SigningKey>, KeyError> {
        self.signing_candidates(now)
            .next()
            .ok_or(KeyError::NoActiveKey)
    }

    /// The state of `key` at `now`, given the longest lifetime of a token it may have signed.
    pub fn state_of(&self, key: &SigningKey, now: u64, token_lifetime: u64) -> KeyState {
        if key.meta.retired_at.is_some_and(|r| r <= now) {
            return KeyState::Retired;
        }
        if key.meta.not_before > now {
            return KeyState::Next;
        }
        // Superseded when the first newer key began to sign.
        let superseded_at = self
            .signing_candidates(now)
            .filter(|k| {
                k.meta.not_before > key.meta.not_before
                    || (k.meta.not_before == key.meta.not_before && k.kid < key.kid)
            })
            .map(|k| k.meta.not_before)
            .min();
        match superseded_at {
            None => KeyState::Active,
            Some(t) if now < t + token_lifetime + crate::token::LEEWAY => KeyState::Retiring,
            Some(_) => KeyState::Retired,
        }
    }

    /// The key with this `kid`, if it is published at `now`.
    pub fn find_published(
        &self,
        kid: &str,
        now: u64,
        token_lifetime: u64,
    ) -> Option<&Arc<SigningKey>> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .filter(|k| self.state_of(k, now, token_lifetime).is_published())
    }

    /// Every key, newest `not_before` first.
    pub fn all(&self) -> &[Arc<SigningKey>] {
        &self.keys
    }

    /// The JWKS document (RFC 7517 §5): every key published at `now`.
    pub fn jwks(&self, now: u64, token_lifetime: u64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| self.state_of(k, now, token_lifetime).is_published())
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

/// The longest access-token lifetime the configuration allows (`HALLPASS_ACCESS_TOKEN_TTL`).
pub const MAX_TOKEN_LIFETIME: u64 = 86_400;

/// Creates the next key of `alg`, signing from `now + lead`, and deletes the files of keys
/// retired by hand, or superseded longer ago than [`MAX_TOKEN_LIFETIME`]. `lead` must be at least the JWKS `max-age`.
pub fn rotate(
    dir: &Path,
    alg: SigningAlg,
    now: u64,
    lead: u64,
    token_lifetime: u64,
) -> Result<SigningKey, KeyError> {
    let set = KeySet::load(dir)?;
    // Files are deleted only once no token any configuration could have issued is alive:
    // the command may run with another HALLPASS_ACCESS_TOKEN_TTL than the servers.
    let lifetime = token_lifetime.max(MAX_TOKEN_LIFETIME);
    for k in set.all() {
        if set.state_of(k, now, lifetime) == KeyState::Retired {
            for ext in ["pem", "json"] {
                let path = dir.join(format!("{}.{ext}", k.kid));
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(KeyError::Io { path, source }),
                }
            }
        }
    }
    let (key, der) =
        SigningKey::generate(alg, now, now + lead).map_err(|reason| KeyError::Invalid {
            path: dir.into(),
            reason,
        })?;
    key.write(dir, &der)?;
    Ok(key)
}

/// Retires the key `kid` at `now`: it leaves the JWKS and never signs again. Refused when no
/// other key could sign, unless `force`.
pub fn retire(dir: &Path, kid: &str, now: u64, force: bool) -> Result<(), KeyError> {
    let set = KeySet::load(dir)?;
    let key = set
        .all()
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| KeyError::Invalid {
            path: dir.join(format!("{kid}.pem")),
            reason: "no key with this kid".into(),
        })?;
    let others_can_sign = set.signing_candidates(now).any(|k| k.kid != kid);
    if !others_can_sign && !force {
        return Err(KeyError::Invalid {
            path: dir.join(format!("{kid}.pem")),
            reason: "it is the only key that can sign now; run `hallpass keys generate` first, or pass --force".into(),
        });
    }
    let mut meta = key.meta.clone();
    meta.retired_at = Some(now);
    let path = dir.join(format!("{kid}.json"));
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| KeyError::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_private(&path, &bytes)
}

fn load_key(path: &Path) -> Result<SigningKey, KeyError> {
    let invalid = |reason: String| KeyError::Invalid {
        path: path.into(),
        reason,
    };
    let pem = fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.into(),
        source,
    })?;
    let der = from_pem(&pem).ok_or_else(|| {
        invalid("expected a PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----)".into())
    })?;
    let meta_path = path.with_extension("json");
    let meta: Option<KeyMeta> = match fs::read(&meta_path) {
        Ok(bytes) => Some(
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
                path: meta_path.clone(),
                reason: e.to_string(),
            })?,
        ),
        Err(_) => None,
    };
    let (created, not_before, retired_at) = match &meta {
        Some(m) => (m.created_at, m.not_before, m.retired_at),
        // A mounted key without metadata signs from its file's modification time.
        None => {
            let t = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            (t, t, None)
        }
    };
    let mut key = SigningKey::from_pkcs8(&der, created, not_before).map_err(invalid)?;
    key.meta.retired_at = retired_at;
    if let Some(m) = meta {
        if m.alg != key.meta.alg {
            return Err(invalid(format!(
                "metadata says {} but the key is {}",
                m.alg.as_str(),
                key.meta.alg.as_str()
            )));
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_rfc7638_thumbprint_of_the_public_key() {
        // RFC 7638 §3.1 example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let thumb = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            sha256_b64(thumb.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_of_every_algorithm_round_trip_through_pem() {
        for alg in [SigningAlg::ES256, SigningAlg::EdDSA, SigningAlg::RS256] {
            let (key, der) = SigningKey::generate(alg, 1, 1).unwrap_or_else(|e| panic!("{e}"));
            let pem = to_pem(&der);
            let back = SigningKey::from_pkcs8(&from_pem(&pem).unwrap_or_default(), 1, 1)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.kid, key.kid);
            assert_eq!(back.meta.alg, alg);
            assert_eq!(back.jwk()["kid"], key.kid.as_str());
        }
    }

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
            key.jwk()["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
        assert_eq!(key.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn debug_never_prints_the_private_key() {
        let (key, _) =
            SigningKey::generate(SigningAlg::ES256, 1, 1).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{key:?}");
        assert!(shown.contains("[redacted]"));
        assert!(shown.contains(&key.kid));
    }
}
