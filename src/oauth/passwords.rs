//! The policy for new passwords (NIST SP 800-63B §5.1.1.2), applied at registration.
//!
//! A new password must:
//!
//! - have at least [`MIN_PASSWORD_CHARS`] characters and at most [`MAX_PASSWORD_BYTES`]
//!   bytes (the bound on argon2's input; 256 bytes hold 64 characters of any script);
//! - not be whitespace only;
//! - not be the username (compared after the username profile, so `Alice-Smith` is refused
//!   for the user `alice-smith`);
//! - not be on the list of common breached passwords, compared lower-cased.
//!
//! There are no composition rules (SP 800-63B forbids them). Sign-in never applies this
//! policy: it only compares against the stored hash.
//!
//! The list, `data/common-passwords.txt`, is Django's `common-passwords.txt.gz`
//! (BSD-3-Clause, © Django Software Foundation and contributors; 19,640 entries from Royce
//! Williams' compilation of breached passwords), reduced to what the other rules let through:
//! entries of at least 8 characters, lower-cased, deduplicated and sorted by code point, one a
//! line (8,354 lines, 80 KB in the binary). Licence: `data/README.md`.

use std::sync::LazyLock;

use crate::oauth::{error::OAuthError, username};

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2), in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes, to bound the cost of hashing.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Common breached passwords: lower-cased, sorted, one a line.
const COMMON: &str = include_str!("data/common-passwords.txt");

/// [`COMMON`] split into lines once, for binary search.
static COMMON_LINES: LazyLock<Vec<&'static str>> = LazyLock::new(|| COMMON.lines().collect());

/// Whether `password`, lower-cased, is on the list of common breached passwords.
pub fn is_common(password: &str) -> bool {
    COMMON_LINES
        .binary_search(&password.to_lowercase().as_str())
        .is_ok()
}

/// Checks a new password for the user whose case-mapped username is `username_key`.
/// `invalid_request` (400) names the rule that failed and never repeats the password.
pub fn check(password: &str, username_key: &str) -> Result<(), OAuthError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(OAuthError::invalid_request(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if password.chars().all(char::is_whitespace) {
        return Err(OAuthError::invalid_request(
            "password must not be only whitespace",
        ));
    }
    let same_as_name = password.to_lowercase() == username_key
        || username::enforce(password).is_ok_and(|p| p.key == username_key);
    if same_as_name {
        return Err(OAuthError::invalid_request(
            "password must not be the username",
        ));
    }
    if is_common(password) {
        return Err(OAuthError::invalid_request(
            "password is too common: it is on a list of passwords exposed in breaches",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(password: &str, username_key: &str) -> String {
        check(password, username_key)
            .unwrap_err()
            .description
            .into_owned()
    }

    #[test]
    fn the_list_is_sorted_unique_lower_case_and_long_enough_to_matter() {
        let lines = &*COMMON_LINES;
        assert!(lines.len() > 8_000, "{} entries", lines.len());
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(lines.iter().all(|l| l.to_lowercase() == *l));
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() >= MIN_PASSWORD_CHARS)
        );
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for pw in [
            "password",
            "Password1",
            "QWERTYUIOP",
            "iloveyou",
            "1234567890",
        ] {
            assert!(is_common(pw), "{pw}");
            assert!(refusal(pw, "bob").contains("too common"), "{pw}");
        }
        assert!(!is_common("correct horse battery staple"));
    }

    #[test]
    fn the_username_is_refused_as_a_password_whatever_its_case_or_width() {
        for pw in [
            "alice-smith",
            "Alice-Smith",
            "ALICE-SMITH",
            "ａｌｉｃｅ-ｓｍｉｔｈ",
        ] {
            assert_eq!(
                refusal(pw, "alice-smith"),
                "password must not be the username"
            );
        }
        assert!(check("alice-smith-2", "alice-smith").is_ok());
    }

    #[test]
    fn whitespace_only_is_refused_and_the_message_never_echoes_the_password() {
        for pw in [
            "        ",
            "\t\t\t\t\t\t\t\t",
            "\u{3000}\u{3000}\u{3000}\u{3000}   \n ",
        ] {
            assert_eq!(refusal(pw, "bob"), "password must not be only whitespace");
        }
        let secret = "Password1";
        assert!(!refusal(secret, "bob").contains(secret));
    }

    #[test]
    fn length_bounds_allow_64_characters_of_any_script() {
        assert!(refusal("short", "bob").contains("at least 8"));
        assert!(check(&"z".repeat(64), "bob").is_ok());
        assert!(check(&"ж".repeat(64), "bob").is_ok());
        assert!(check(&"😀".repeat(64), "bob").is_ok());
        assert!(refusal(&"z".repeat(MAX_PASSWORD_BYTES + 1), "bob").contains("at most 256"));
        assert!(
            check(" correct horse ", "bob").is_ok(),
            "spaces inside are fine"
        );
    }
}
