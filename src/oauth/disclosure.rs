//! What a caller may see of the user they act for: the same rule at `/userinfo` (OpenID
//! Connect Core §5.4, `profile` → `preferred_username`) and at `GET /api/users/me`.
//!
//! A user who signed in with their password (HTTP Basic) sees their whole record. A Bearer
//! token shows the username only when it carries `profile`: an application the user allowed
//! to read their beers learns who they are only if it asked for, and got, that scope.

use crate::oauth::scope::Scope;

/// The scope that discloses the username.
pub const PROFILE_SCOPE: &str = "profile";

/// Whether the username may be shown to a caller with `token_scope` (`None`: not a token,
/// the user's own password).
pub fn shows_username(token_scope: Option<&Scope>) -> bool {
    token_scope.is_none_or(|s| s.contains(PROFILE_SCOPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_sees_the_username_only_with_profile() {
        assert!(shows_username(None));
        assert!(shows_username(Some(&Scope::from_tokens(["profile"]))));
        assert!(!shows_username(Some(&Scope::from_tokens(["beers:read"]))));
    }
}
