//! Authorization codes that name their user, sealed: `<43 random characters>.<hint>`.
//!
//! Redeeming a code needs the user's consent cut-off (`tokens_nb:<user id>:<client_id>`,
//! [`crate::oauth::token_cutoff`]), and the user is in the code's record. The hint lets the
//! token endpoint read the cut-off in the same store round trip that consumes the code,
//! instead of one round trip after it.
//!
//! The hint is the user id XORed with HMAC-SHA256(session key, `code-user` + the random
//! part), in base64url: a one-time pad (the random part is 256 bits, never reused), so a code
//! shows nothing of its user to whoever sees the redirect. It is only a hint: the record
//! decides. A hint that does not name the record's user (a code from an instance with another
//! session key, or a user id longer than 32 bytes, which gets no hint) costs the cut-off's
//! read one more round trip, never a check. The code's store key is the SHA-256 of the whole
//! code, so an altered hint is an unknown code.

use ring::hmac;

use crate::crypto::{b64, random_token, unb64};

/// Domain separation from the session key's other uses.
const PURPOSE: &[u8] = b"code-user\0";

/// The longest user id a hint carries (one HMAC-SHA256 output).
const MAX_HINTED: usize = 32;

/// `data` XORed with HMAC-SHA256(key, PURPOSE + random): seals a user id, and opens a
/// sealed one (at most [`MAX_HINTED`] bytes).
fn xor_pad(key: &hmac::Key, random: &str, data: &[u8]) -> Vec<u8> {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(PURPOSE);
    ctx.update(random.as_bytes());
    let pad = ctx.sign();
    data.iter().zip(pad.as_ref()).map(|(b, p)| b ^ p).collect()
}

/// A new authorization code for the user `sub`.
pub fn new_code(key: &hmac::Key, sub: &str) -> String {
    let random = random_token();
    if sub.is_empty() || sub.len() > MAX_HINTED {
        return random;
    }
    format!("{random}.{}", b64(&xor_pad(key, &random, sub.as_bytes())))
}

/// The user a code's hint names, if it has one that opens to a user id under `key`.
pub fn user_hint(key: &hmac::Key, code: &str) -> Option<String> {
    let (random, hint) = code.split_once('.')?;
    let sealed = unb64(hint).filter(|s| !s.is_empty() && s.len() <= MAX_HINTED)?;
    String::from_utf8(xor_pad(key, random, &sealed)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &[u8]) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, k)
    }

    #[test]
    fn a_code_names_its_user_only_under_its_key() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let sub = "H8rRHUgl9MdFMQvqJrxsRg";
        let code = new_code(&k, sub);
        let (random, hint) = code.split_once('.').unwrap();
        assert_eq!(random.len(), 43, "256 random bits, base64url");
        assert!(!code.contains(sub), "the user id is sealed");
        assert!(
            hint.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe"
        );
        assert_eq!(user_hint(&k, &code).as_deref(), Some(sub));
        // Two codes of one user share nothing of the hint.
        let again = new_code(&k, sub);
        assert_ne!(again.split_once('.').unwrap().1, hint);
        assert_eq!(user_hint(&k, &again).as_deref(), Some(sub));

        let other = key(b"another key another key another!");
        assert_ne!(user_hint(&other, &code).as_deref(), Some(sub));
    }

    #[test]
    fn codes_without_a_usable_hint_name_no_one() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let long = "u".repeat(MAX_HINTED + 1);
        let code = new_code(&k, &long);
        assert_eq!(code.len(), 43, "no hint for a user id too long to seal");
        assert_eq!(user_hint(&k, &code), None);
        assert_eq!(user_hint(&k, &new_code(&k, "")), None);
        let exact = "u".repeat(MAX_HINTED);
        assert_eq!(
            user_hint(&k, &new_code(&k, &exact)).as_deref(),
            Some(exact.as_str())
        );
        for odd in ["", ".", "abc.", "abc.!!", "abc.AAAA.BB", "no-dot"] {
            assert!(
                user_hint(&k, odd).is_none_or(|s| s.len() <= MAX_HINTED),
                "{odd}"
            );
        }
        let too_long = format!("abc.{}", b64(&[0u8; MAX_HINTED + 1]));
        assert_eq!(user_hint(&k, &too_long), None);
    }
}
