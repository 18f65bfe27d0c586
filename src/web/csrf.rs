//! The login form's CSRF token, bound to a keyed MAC.
//!
//! A plain double submit (cookie value = form field) lets an attacker who can plant a cookie
//! (`hallpass_csrf=x` plus field `csrf=x`) sign a victim in to the attacker's account. Here
//! the cookie is a value sealed under the deployment's session key (purpose `login-csrf`, an
//! hour's expiry: `oauth::session::seal`), and the form field is an HMAC, under the same
//! key, of the cookie. Nobody without the key can make a cookie that opens, nor the field
//! that goes with a cookie. (A pair fetched from the server stays replayable for its hour by
//! someone who can plant cookies on the victim's browser; the `__Host-` prefix on https
//! deployments is what stops that.)

use ring::hmac;

use crate::{
    crypto::{b64, ct_eq, random_token},
    oauth::session,
};

/// How long a login form's CSRF cookie is valid, in seconds.
pub const CSRF_TTL: u64 = 3600;
const PURPOSE: &str = "login-csrf";

/// A CSRF cookie value and the form field that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfPair {
    /// The cookie value.
    pub cookie: String,
    /// The hidden form field value.
    pub field: String,
}

fn field_for(key: &hmac::Key, cookie: &str) -> String {
    let msg = format!("hallpass login csrf field\0{cookie}");
    b64(hmac::sign(key, msg.as_bytes()).as_ref())
}

/// The pair for a login page: the browser's current cookie when it is valid and less than half
/// its lifetime old (so open tabs keep working), else a fresh one.
pub fn for_page(key: &hmac::Key, now: u64, cookie: Option<&str>) -> CsrfPair {
    let reusable = cookie.filter(|c| {
        session::open::<(String, u64)>(key, PURPOSE, now, c)
            .is_some_and(|(_, issued)| issued + CSRF_TTL / 2 > now)
    });
    let cookie = match reusable {
        Some(c) => c.to_string(),
        None => session::seal(key, PURPOSE, now + CSRF_TTL, &(random_token(), now)),
    };
    CsrfPair {
        field: field_for(key, &cookie),
        cookie,
    }
}

/// Whether `cookie` is a valid, unexpired CSRF cookie of ours and `field` its form field.
pub fn check(key: &hmac::Key, now: u64, cookie: Option<&str>, field: &str) -> bool {
    let Some(cookie) = cookie else {
        return false;
    };
    session::open::<(String, u64)>(key, PURPOSE, now, cookie).is_some()
        && ct_eq(field_for(key, cookie).as_bytes(), field.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_minted_pair_checks_and_a_planted_equal_pair_does_not() {
        let pair = for_page(&key(), 1000, None);
        assert!(check(&key(), 1000, Some(&pair.cookie), &pair.field));
        assert!(!check(&key(), 1000, Some("x"), "x"));
        assert!(!check(&key(), 1000, Some(&pair.cookie), &pair.cookie));
        assert!(!check(&key(), 1000, None, &pair.field));
        assert!(!check(
            &key(),
            1000 + CSRF_TTL,
            Some(&pair.cookie),
            &pair.field
        ));
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another key another key another!");
        assert!(!check(&other, 1000, Some(&pair.cookie), &pair.field));
    }

    #[test]
    fn a_young_cookie_is_reused_and_an_old_or_forged_one_replaced() {
        let first = for_page(&key(), 1000, None);
        assert_eq!(for_page(&key(), 1100, Some(&first.cookie)), first);
        assert_ne!(
            for_page(&key(), 1000 + CSRF_TTL / 2, Some(&first.cookie)).cookie,
            first.cookie
        );
        assert_ne!(for_page(&key(), 1000, Some("x")).cookie, "x");
    }
}
