//! The RFC 6749 §5.2 error body, and the OpenAPI schema of [`ErrorCode`] (a string enum of
//! the wire spellings), written by hand so that the code itself stays free of poem.

use std::borrow::Cow;

use poem_openapi::{
    Object,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};

use crate::error_code::ErrorCode;

/// The RFC 6749 §5.2 error body.
#[derive(Object, Debug, Clone, PartialEq, Eq)]
#[oai(skip_serializing_if_is_none)]
pub struct ErrorBody {
    // The error code. No `///`: poem-openapi would wrap the `$ref` and a description in an
    // `allOf`, which generators (openapi-python-client) cannot read; `ErrorCode` describes it.
    #[allow(missing_docs)]
    pub error: ErrorCode,
    /// Human-readable text that helps the client developer understand the error.
    pub error_description: Option<String>,
}

impl Type for ErrorCode {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "ErrorCode".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
            description: Some("The error codes Hallpass answers with, spelled as in the RFCs."),
            enum_items: ErrorCode::ALL
                .iter()
                .map(|c| serde_json::Value::String(c.as_str().to_string()))
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

impl ToJSON for ErrorCode {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::String(self.as_str().to_string()))
    }
}

impl ParseFromJSON for ErrorCode {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_str().and_then(ErrorCode::parse) {
            Some(code) => Ok(code),
            None => Err(ParseError::expected_type(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_json() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse_from_json(code.to_json()).ok(), Some(code));
        }
        assert!(ErrorCode::parse_from_json(Some(serde_json::json!("nope"))).is_err());
    }
}
