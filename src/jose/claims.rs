//! RFC 9068 access-token claims: the set the server signs ([`AccessClaims`]), the set a
//! verification returns ([`Claims`], which adds `nbf` and any other claim), and the one
//! validation of `iss`, `aud`, `exp`, `nbf` and `iat` both the server and the verifier use.
//!
//! `aud` is a list everywhere (RFC 7519 §4.1.3, RFC 8707). A single audience is written as a
//! plain string, as Hallpass has always issued it; a string or an array is read.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::VerifyError;

/// The claims of an access token as the server issues them (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for client_credentials.
    pub sub: String,
    /// Audiences: the resource servers the token is for.
    #[serde(with = "audience")]
    pub aud: Vec<String>,
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

/// The claims of a verified access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claims {
    /// Issuer: always the expected issuer.
    pub iss: String,
    /// Subject: the user id, or the client id for `client_credentials` tokens.
    pub sub: String,
    /// Audiences; one of them is the expected audience.
    pub aud: Vec<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated granted scopes (empty when the token has none).
    pub scope: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Not before (Unix seconds), when present.
    pub nbf: Option<u64>,
    /// Unique token id.
    pub jti: String,
    /// When the user authenticated (user flows only).
    pub auth_time: Option<u64>,
    /// Every other claim, as sent.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The granted scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// Checks that every scope of `required` is granted; the error names those missing.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), VerifyError> {
        let missing: Vec<String> = required
            .iter()
            .filter(|r| !self.has_scope(r))
            .map(|r| r.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(VerifyError::InsufficientScope { missing })
        }
    }
}

impl From<Claims> for AccessClaims {
    fn from(c: Claims) -> Self {
        Self {
            iss: c.iss,
            sub: c.sub,
            aud: c.aud,
            client_id: c.client_id,
            scope: c.scope,
            iat: c.iat,
            exp: c.exp,
            jti: c.jti,
            auth_time: c.auth_time,
        }
    }
}

/// What a token's claims must say: who issued it, for whom, and the clock skew tolerated.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The exact `iss`.
    pub issuer: &'a str,
    /// A value `aud` must contain.
    pub audience: &'a str,
    /// Seconds of skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: u64,
}

impl Expected<'_> {
    /// Checks the claims of a token whose signature verified, at `now` (Unix seconds).
    pub fn check(&self, raw: RawClaims, now: u64) -> Result<Claims, VerifyError> {
        let iss = raw.iss.ok_or(VerifyError::MissingClaim("iss"))?;
        if iss != self.issuer {
            return Err(VerifyError::Issuer);
        }
        let aud = raw.aud.ok_or(VerifyError::MissingClaim("aud"))?.0;
        if !aud.iter().any(|a| a == self.audience) {
            return Err(VerifyError::Audience);
        }
        let exp = raw.exp.ok_or(VerifyError::MissingClaim("exp"))?.secs();
        if now >= exp.saturating_add(self.leeway) {
            return Err(VerifyError::Expired);
        }
        let latest = now.saturating_add(self.leeway);
        let nbf = raw.nbf.map(NumericDate::secs);
        let iat = raw.iat.ok_or(VerifyError::MissingClaim("iat"))?.secs();
        if nbf.is_some_and(|nbf| nbf > latest) || iat > latest {
            return Err(VerifyError::NotYetValid);
        }
        Ok(Claims {
            iss,
            sub: raw.sub.ok_or(VerifyError::MissingClaim("sub"))?,
            aud,
            client_id: raw
                .client_id
                .ok_or(VerifyError::MissingClaim("client_id"))?,
            scope: raw.scope.unwrap_or_default(),
            iat,
            exp,
            nbf,
            jti: raw.jti.ok_or(VerifyError::MissingClaim("jti"))?,
            auth_time: raw.auth_time.map(NumericDate::secs),
            extra: raw.extra,
        })
    }
}

/// The claims as sent, before any check: every RFC 9068 claim optional, so that a missing one
/// is reported by name.
#[derive(Deserialize)]
pub struct RawClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audiences>,
    client_id: Option<String>,
    scope: Option<String>,
    iat: Option<NumericDate>,
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
    jti: Option<String>,
    auth_time: Option<NumericDate>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// `aud`: a string or an array of strings.
struct Audiences(Vec<String>);

impl<'de> Deserialize<'de> for Audiences {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        audience::deserialize(d).map(Audiences)
    }
}

/// RFC 7519 NumericDate: seconds, possibly with a fraction.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum NumericDate {
    Int(u64),
    Float(f64),
}

impl NumericDate {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn secs(self) -> u64 {
        match self {
            NumericDate::Int(s) => s,
            // `as` saturates: negative becomes 0, too large becomes u64::MAX.
            NumericDate::Float(s) => s.floor() as u64,
        }
    }
}

/// Serde for `aud`: one audience as a string, several as an array; either is read.
pub mod audience {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes one audience as a string, several as an array.
    pub fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    /// Reads a string or an array of strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(a) => a,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(aud: &[&str]) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: aud.iter().map(|a| a.to_string()).collect(),
            client_id: "c".into(),
            scope: "a b".into(),
            iat: 1,
            exp: 2,
            jti: "j".into(),
            auth_time: None,
        }
    }

    #[test]
    fn one_audience_is_written_as_a_string_and_several_as_an_array() {
        let one = serde_json::to_value(claims(&["api"])).unwrap_or_default();
        assert_eq!(one["aud"], "api");
        let two = serde_json::to_value(claims(&["api", "other"])).unwrap_or_default();
        assert_eq!(two["aud"], serde_json::json!(["api", "other"]));
        for v in [one, two] {
            let back: AccessClaims = serde_json::from_value(v.clone()).unwrap_or_else(|e| {
                panic!("{e}: {v}");
            });
            assert_eq!(serde_json::to_value(back).unwrap_or_default(), v);
        }
    }
}
