//! Compact JWS (RFC 7515 §7.1): signing, and the one verification path of access tokens.
//!
//! Verification is two steps, so that the key can be looked up (synchronously in the server's
//! own key set, asynchronously in the verifier's JWKS cache) between them:
//! [`Unverified::parse`] splits the token and checks its header (`typ`, `crit`, `alg` one of
//! ours, `kid` present); [`Unverified::verify`] checks that `alg` is the key's own algorithm
//! (RFC 8725 §3.1: never chosen by the token), the signature, and then the claims.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{Algorithm, Claims, Expected, VerifyError, VerifyingKey, claims::RawClaims};

/// Tokens longer than this are refused without parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Something that signs JWS signing inputs with a key of one algorithm.
pub trait Signer {
    /// The key's algorithm (the header's `alg`).
    fn alg(&self) -> Algorithm;
    /// The key's id (the header's `kid`).
    fn kid(&self) -> &str;
    /// The signature of `message`, or `None` if signing failed.
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>>;
}

#[derive(Serialize)]
struct SignHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with header `{alg, typ, kid}`; `None` if serialising or
/// signing failed.
pub fn sign<T: Serialize>(signer: &impl Signer, typ: &str, claims: &T) -> Option<String> {
    let header = SignHeader {
        alg: signer.alg().as_str(),
        typ,
        kid: signer.kid(),
    };
    let header = serde_json::to_vec(&header).ok()?;
    let claims = serde_json::to_vec(claims).ok()?;
    let mut jws = String::with_capacity(512);
    URL_SAFE_NO_PAD.encode_string(header, &mut jws);
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
    let sig = signer.sign(jws.as_bytes())?;
    jws.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut jws);
    Some(jws)
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A token whose header passed every check, before its signature is verified.
#[derive(Debug)]
pub struct Unverified<'a> {
    alg: Algorithm,
    kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Unverified<'a> {
    /// Splits `token` and checks its header: `typ` is `at+jwt` (RFC 9068 §4), no `crit`,
    /// an `alg` of ours, a `kid`.
    pub fn parse(token: &'a str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::Malformed("the token is too long"));
        }
        let three = VerifyError::Malformed("a JWT has three dot-separated parts");
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(three);
        };
        let signing_input = token.get(..header.len() + 1 + payload.len()).ok_or(three)?;
        let header: JoseHeader =
            decode_part(header).ok_or(VerifyError::Malformed("the header does not decode"))?;
        if !super::is_access_token_typ(header.typ.as_deref().unwrap_or_default()) {
            return Err(VerifyError::Type);
        }
        if header.crit.is_some() {
            return Err(VerifyError::Malformed(
                "critical header parameters are not supported",
            ));
        }
        let alg = Algorithm::from_name(&header.alg).ok_or(VerifyError::Algorithm)?;
        let kid = header.kid.ok_or(VerifyError::MissingKeyId)?;
        Ok(Self {
            alg,
            kid,
            signing_input,
            payload,
            signature,
        })
    }

    /// The `kid` the header names.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Verifies the signature with `key` (whose algorithm the token's `alg` must be) and
    /// checks the claims against `expected` at `now`.
    pub fn verify(
        self,
        key: &VerifyingKey,
        expected: &Expected<'_>,
        now: u64,
    ) -> Result<Claims, VerifyError> {
        if key.alg != self.alg {
            return Err(VerifyError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(self.signature)
            .map_err(|_| VerifyError::Malformed("the signature does not decode"))?;
        if !key.verify(self.signing_input.as_bytes(), &signature) {
            return Err(VerifyError::Signature);
        }
        let raw: RawClaims =
            decode_part(self.payload).ok_or(VerifyError::Malformed("the claims do not decode"))?;
        expected.check(raw, now)
    }
}

fn decode_part<T: DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}
