//! Scope sets (RFC 6749 §3.3): parsed from the space-delimited form, de-duplicated, ordered.
//! Stored records hold a [`Scope`]; it (de)serialises as the space-delimited string, so the
//! stored JSON is the same as the wire form.

use std::collections::BTreeSet;

use crate::{
    config::is_scope_token,
    oauth::error::{ErrorCode, OAuthError},
};

/// A set of scope tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-delimited scope string; any invalid token is `invalid_scope`.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        if raw.len() > 2048 {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope is too long",
            ));
        }
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope contains an invalid scope token",
                ));
            }
            set.insert(token.to_string());
        }
        Ok(Self(set))
    }

    /// A set from known-good tokens.
    pub fn from_tokens<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self(tokens.into_iter().map(str::to_string).collect())
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// Every token of `self` and of `other`.
    pub fn union(&self, other: &Scope) -> Scope {
        Self(self.0.union(&other.0).cloned().collect())
    }

    /// Whether the set contains `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl serde::Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Scope::parse(&raw).map_err(|e| serde::de::Error::custom(e.description))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_deduplicated_sorted_and_validated() {
        let s = Scope::parse("b a  b").unwrap_or_default();
        assert_eq!(s.to_string(), "a b");
        assert!(Scope::parse("a \"b").is_err());
        assert!(Scope::from_tokens(["a"]).is_subset(&s));
        assert!(!Scope::from_tokens(["c"]).is_subset(&s));
    }

    #[test]
    fn a_scope_is_stored_as_its_space_delimited_string() {
        let s = Scope::from_tokens(["openid", "beers:read"]);
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, "\"beers:read openid\"");
        assert_eq!(serde_json::from_str::<Scope>(&json).ok(), Some(s));
        assert!(serde_json::from_str::<Scope>("\"a \\\"b\"").is_err());
    }
}
