//! [`Text`]: a JSON string field that accepts only a JSON string.
//!
//! poem-openapi parses a `String` field from a JSON number or boolean too (`"username":
//! false` becomes the user `false`), so a request its spec calls invalid is accepted. Request
//! bodies use [`Text`] instead: the same `type: string` schema, and any other JSON type is
//! refused with the body's 400.

use std::{borrow::Cow, ops::Deref};

use poem_openapi::{
    registry::MetaSchemaRef,
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

/// The JSON Schema `pattern` (ECMA-262) of a display name that the server trims: no control
/// character (C0, DEL, C1), and at least one character that is neither a space nor a control.
pub const DISPLAY_NAME_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

/// A string that was a JSON string in the request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// The string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// As the string's own `Debug` (fields holding secrets redact themselves in their struct).
impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        String::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        String::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Self(s)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_json_string_is_text() {
        let parse = |v: Value| Text::parse_from_json(Some(v)).map(Text::into_inner);
        assert_eq!(parse(Value::from("alice")).unwrap(), "alice");
        assert!(parse(Value::Bool(false)).is_err());
        assert!(parse(Value::from(42)).is_err());
        assert!(parse(Value::Null).is_err());
        assert!(parse(serde_json::json!(["a"])).is_err());
    }

    #[test]
    fn its_schema_is_a_string() {
        assert_eq!(Text::name(), "string");
    }
}
