//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1; Basic: RFC 7617 §2; Bearer: RFC 6750 §3)
//! and `Retry-After` (RFC 9110 §10.2.3), built one way for the server and the verifier.

/// Seconds a client should wait before retrying a 503 (`Retry-After`).
pub const RETRY_AFTER_SECS: u64 = 1;

/// [`RETRY_AFTER_SECS`] as a header value.
pub const RETRY_AFTER: &str = "1";

/// One challenge: an auth scheme and its parameters, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WwwAuthenticate {
    scheme: &'static str,
    params: Vec<(&'static str, String)>,
}

impl WwwAuthenticate {
    /// `Basic realm="<realm>", charset="UTF-8"` (RFC 7617 §2.1).
    pub fn basic(realm: &str) -> Self {
        Self {
            scheme: "Basic",
            params: Vec::new(),
        }
        .param("realm", realm)
        .param("charset", "UTF-8")
    }

    /// `Bearer`, with no parameters yet (RFC 6750 §3).
    pub fn bearer() -> Self {
        Self {
            scheme: "Bearer",
            params: Vec::new(),
        }
    }

    /// Adds `name="value"`. A `"` or `\` in the value becomes `'`, so the quoted string
    /// always parses.
    pub fn param(mut self, name: &'static str, value: &str) -> Self {
        self.params.push((name, value.replace(['"', '\\'], "'")));
        self
    }

    /// Several challenges in one header value, comma-separated (RFC 9110 §11.6.1).
    pub fn join(challenges: &[WwwAuthenticate]) -> String {
        challenges
            .iter()
            .map(WwwAuthenticate::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for WwwAuthenticate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme)?;
        for (i, (name, value)) in self.params.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{name}=\"{value}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_quote_their_parameters_and_join_with_commas() {
        let bearer = WwwAuthenticate::bearer()
            .param("realm", "hallpass")
            .param("error", "invalid_token")
            .param("error_description", "bad \"sig\"");
        assert_eq!(
            bearer.to_string(),
            "Bearer realm=\"hallpass\", error=\"invalid_token\", error_description=\"bad 'sig'\""
        );
        assert_eq!(WwwAuthenticate::bearer().to_string(), "Bearer");
        assert_eq!(
            WwwAuthenticate::join(&[
                WwwAuthenticate::basic("hallpass"),
                WwwAuthenticate::bearer()
            ]),
            "Basic realm=\"hallpass\", charset=\"UTF-8\", Bearer"
        );
        assert_eq!(RETRY_AFTER, RETRY_AFTER_SECS.to_string());
    }
}
