//! The grant types Hallpass implements (RFC 6749 §4.1, §4.4, §6), spelled once.

use serde::{Deserialize, Serialize};

/// A grant type, stored and sent by its RFC name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1, with PKCE).
    AuthorizationCode,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
}

impl GrantType {
    /// Every grant type, in the order the metadata and the metrics list them.
    pub const ALL: [GrantType; 3] = [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ];

    /// The RFC name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }

    /// The grant type named `s`, if Hallpass implements it.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// Every name, comma-separated with a final "or", for error messages.
    pub fn names() -> &'static str {
        "authorization_code, refresh_token or client_credentials"
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_types_parse_back_from_their_names_and_serialise_as_them() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(g));
            assert!(GrantType::names().contains(g.as_str()));
            assert_eq!(
                serde_json::to_string(&g).unwrap_or_default(),
                format!("\"{g}\"")
            );
        }
        assert_eq!(GrantType::parse("password"), None);
    }
}
