//! Fixed-value strings of the API (grant types, client authentication methods, token type
//! hints): an `enum` in the spec, so generated SDKs get typed values, but any string at parse
//! time, so that the protocol core answers an unknown value with its RFC error
//! (`unsupported_grant_type`, `invalid_client_metadata`) instead of a parser's 400
//! (CONVENTIONS §1.5: forms are permissive, the domain is strict).

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};

/// Declares a permissive string newtype whose schema is a named string enum.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident, $schema:literal, $description:literal, [$($value:literal),+ $(,)?]) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The values the spec lists.
            pub const VALUES: &'static [&'static str] = &[$($value),+];
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                $schema.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Reference($schema.to_string())
            }

            fn register(registry: &mut Registry) {
                registry.create_schema::<Self, _>($schema.to_string(), |_| MetaSchema {
                    description: Some($description),
                    enum_items: Self::VALUES
                        .iter()
                        .map(|v| serde_json::Value::String(v.to_string()))
                        .collect(),
                    ..MetaSchema::new("string")
                });
            }

            fn as_raw_value(&self) -> Option<&Self::RawValueType> {
                Some(self)
            }

            fn raw_element_iter<'a>(
                &'a self,
            ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::String(self.0.clone()))
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
                match value {
                    Some(serde_json::Value::String(s)) => Ok(Self(s)),
                    other => Err(ParseError::expected_type(other.unwrap_or_default())),
                }
            }
        }
    };
}

open_enum!(
    /// A grant type name (RFC 7591 §2 `grant_types`, RFC 6749 `grant_type`).
    GrantTypeName,
    "GrantType",
    "A grant type Hallpass implements.",
    ["authorization_code", "refresh_token", "client_credentials"]
);

open_enum!(
    /// A token endpoint authentication method (RFC 7591 §2).
    AuthMethodName,
    "TokenEndpointAuthMethod",
    "How a client authenticates at the token endpoint: `none` for a public client.",
    ["client_secret_basic", "client_secret_post", "none"]
);

open_enum!(
    /// A token type hint (RFC 7009 §2.1).
    TokenTypeHint,
    "TokenTypeHint",
    "Which kind of token `token` is; a hint only.",
    ["access_token", "refresh_token"]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_lists_the_values_the_core_knows_and_parsing_accepts_any_string() {
        let names: Vec<_> = crate::oauth::grant_type::GrantType::ALL
            .iter()
            .map(|g| g.as_str())
            .collect();
        assert_eq!(GrantTypeName::VALUES, names.as_slice());
        let any = GrantTypeName::parse_from_json(Some(serde_json::json!("password")));
        assert_eq!(any.ok(), Some(GrantTypeName::from("password")));
        // Forms deserialise through serde, which takes any string too.
        let hint: Option<TokenTypeHint> = serde_json::from_str("\"nonsense\"").ok();
        assert_eq!(hint, Some(TokenTypeHint::from("nonsense")));
    }
}
