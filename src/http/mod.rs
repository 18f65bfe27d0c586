//! Poem glue shared by the server and the verifier, with no server dependency (only poem,
//! poem-openapi, serde and tracing): the RFC 6749 §5.2 error body with [`ErrorCode`]'s
//! OpenAPI schema, the one builder of `WWW-Authenticate` challenges and `Retry-After`, and
//! the CORS building blocks ([`cors`]) and [`text::Text`], a string field that is only a
//! JSON string.
//!
//! Which status, challenge and `Retry-After` a server error gets is decided in
//! [`crate::error`]; the verifier decides its own in `verify`.
//!
//! [`ErrorCode`]: crate::error_code::ErrorCode

#![cfg(feature = "verify-poem")]

pub mod body;
pub mod challenge;
pub mod cors;
pub mod text;
