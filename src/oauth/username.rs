//! Usernames under the PRECIS UsernameCaseMapped profile (RFC 8265 §3.3), so that names
//! which look alike are one name.
//!
//! [`enforce`] turns what a person typed into a [`Username`]:
//!
//! - `key`: the UsernameCaseMapped enforcement (width mapping, case folding to lower case,
//!   NFC, the bidi rule; control, format, space and bidi-override characters refused). It is
//!   what the store is keyed by and what sign-in looks up, so `Alice`, `ALICE`, `ａｌｉｃｅ`
//!   (full width) and `alice` are the same account, and an NFD name equals its NFC form.
//! - `display`: the UsernameCasePreserved enforcement of the same input (the same rules
//!   without the case folding), shown back to the user and put in tokens. Two accounts can
//!   never differ only by case, so the display form cannot impersonate another account.
//!
//! On top of the profile, Hallpass refuses `:` (HTTP Basic cannot carry it in a username)
//! and names longer than [`MAX_USERNAME_CHARS`] characters after mapping.

use precis_profiles::{
    UsernameCaseMapped, UsernameCasePreserved,
    precis_core::{Error as PrecisError, profile::PrecisFastInvocation},
};

use crate::oauth::error::OAuthError;

/// Longest username, in characters (after the profile is applied).
pub const MAX_USERNAME_CHARS: usize = 64;

/// A username that passed the profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// The case-mapped form: the store key and the identity compared at sign-in.
    pub key: String,
    /// The case-preserved form, for display.
    pub display: String,
}

/// Applies the profile to `input`; `invalid_request` (400) says which rule it breaks.
pub fn enforce(input: &str) -> Result<Username, OAuthError> {
    let key = UsernameCaseMapped::enforce(input).map_err(refusal)?;
    let display = UsernameCasePreserved::enforce(input).map_err(refusal)?;
    if key.chars().count() > MAX_USERNAME_CHARS {
        return Err(OAuthError::invalid_request(format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    if key.contains(':') {
        return Err(OAuthError::invalid_request("username must not contain ':'"));
    }
    Ok(Username {
        key: key.into_owned(),
        display: display.into_owned(),
    })
}

/// The 400 for a name the profile refuses.
fn refusal(err: PrecisError) -> OAuthError {
    OAuthError::invalid_request(match err {
        PrecisError::BadCodepoint(info)
            if char::from_u32(info.cp).is_some_and(char::is_whitespace) =>
        {
            "username must not contain spaces".to_string()
        }
        PrecisError::BadCodepoint(info) => format!(
            "username must not contain U+{:04X} (control, format, bidi-override and other \
             characters the PRECIS username profile refuses, RFC 8265)",
            info.cp
        ),
        PrecisError::Invalid | PrecisError::Unexpected(_) => format!(
            "username must be 1 to {MAX_USERNAME_CHARS} characters that the PRECIS username \
             profile accepts (RFC 8265), with right-to-left text following the bidi rule"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ErrorCode;

    fn key(s: &str) -> String {
        enforce(s).unwrap().key
    }

    #[test]
    fn case_width_and_normalisation_variants_share_one_key() {
        assert_eq!(key("alice"), "alice");
        assert_eq!(key("Alice"), "alice");
        assert_eq!(key("ALICE"), "alice");
        assert_eq!(key("ａｌｉｃｅ"), "alice");
        assert_eq!(key("jose\u{301}"), key("jos\u{e9}"));
        assert_eq!(key("jose\u{301}"), "jos\u{e9}");
    }

    #[test]
    fn the_display_form_keeps_case_but_is_width_mapped_and_nfc() {
        let name = enforce("Ａlice").unwrap();
        assert_eq!(name.display, "Alice");
        assert_eq!(name.key, "alice");
        assert_eq!(enforce("Jose\u{301}").unwrap().display, "Jos\u{e9}");
    }

    #[test]
    fn invisible_control_and_bidi_characters_are_refused() {
        for name in [
            "alice\u{200B}", // zero-width space
            "\u{202E}ecila", // right-to-left override
            "alice\u{2066}", // left-to-right isolate
            "ali\u{AD}ce",   // soft hyphen
            "alice\u{7}",    // control
            "alice\u{FEFF}", // byte-order mark
            "",              // empty
            "has space",     // space
            "colon:name",    // Basic cannot carry it
            &"x".repeat(MAX_USERNAME_CHARS + 1),
        ] {
            let err = enforce(name).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{name:?}");
        }
    }

    #[test]
    fn ordinary_names_pass_unchanged() {
        for name in ["bob", "user-AbC_12", "dave.smith", "zoë", "ユーザー"] {
            assert_eq!(enforce(name).unwrap().display, name);
        }
        assert!(enforce(&"x".repeat(MAX_USERNAME_CHARS)).is_ok());
    }

    #[test]
    fn refusals_name_the_offending_code_point() {
        let err = enforce("alice\u{200B}").unwrap_err();
        assert!(err.description.contains("U+200B"), "{}", err.description);
    }
}
