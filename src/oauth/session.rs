//! Signed values: the browser-session cookie and the pending authorization request.
//!
//! Both are `base64url(JSON) "." base64url(HMAC-SHA256)` under the deployment's session key,
//! with a `purpose` inside the signed payload so one can never be replayed as the other, and an
//! expiry checked against the clock. No server-side session store is needed.

use ring::hmac;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::crypto::{b64, unb64};

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    purpose: String,
    exp: u64,
    data: T,
}

/// Signs `data` for `purpose`, valid until `exp` (Unix seconds).
pub fn seal<T: Serialize>(key: &hmac::Key, purpose: &str, exp: u64, data: &T) -> String {
    let env = Envelope {
        purpose: purpose.to_string(),
        exp,
        data,
    };
    let payload = b64(&serde_json::to_vec(&env).unwrap_or_default());
    let tag = hmac::sign(key, payload.as_bytes());
    format!("{payload}.{}", b64(tag.as_ref()))
}

/// Verifies and decodes a value sealed for `purpose`; `None` when forged, altered, expired or
/// meant for something else.
pub fn open<T: DeserializeOwned>(
    key: &hmac::Key,
    purpose: &str,
    now: u64,
    sealed: &str,
) -> Option<T> {
    if sealed.len() > 8192 {
        return None;
    }
    let (payload, tag) = sealed.split_once('.')?;
    hmac::verify(key, payload.as_bytes(), &unb64(tag)?).ok()?;
    let env: Envelope<T> = serde_json::from_slice(&unb64(payload)?).ok()?;
    (env.purpose == purpose && env.exp > now).then_some(env.data)
}

/// The browser session: who signed in, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// User id.
    pub sub: String,
    /// When the user authenticated (Unix seconds); also when the session was issued.
    pub auth_time: u64,
    /// Random session id, ended in the store at sign-out (`oauth::sign_out`). Empty in a
    /// cookie sealed before sessions had ids; such a session is refused.
    #[serde(default)]
    pub sid: String,
    /// The user's record key (the username's case-mapped form) at sign-in: a hint that lets
    /// the authorization endpoint read the user's record in the same round trip as the rest
    /// ([`crate::oauth::users::for_session`]). Only a record whose id is `sub` is taken;
    /// otherwise, and in a cookie sealed before the hint existed (empty), the user is found
    /// by id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_unaltered_unexpired_and_for_their_purpose() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef");
        let s = Session {
            sub: "u".into(),
            auth_time: 5,
            sid: "s".into(),
            user: "u".into(),
        };
        let sealed = seal(&key, "session", 100, &s);
        assert_eq!(open::<Session>(&key, "session", 99, &sealed), Some(s));
        assert_eq!(open::<Session>(&key, "session", 100, &sealed), None);
        assert_eq!(open::<Session>(&key, "consent", 99, &sealed), None);
        let mut altered = sealed.clone();
        altered.insert(3, 'x');
        assert_eq!(open::<Session>(&key, "session", 99, &altered), None);
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another key another key another!");
        assert_eq!(open::<Session>(&other, "session", 99, &sealed), None);
    }
}
