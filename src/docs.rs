//! Security headers of Swagger UI at `/docs`.
//!
//! poem-openapi serves Swagger UI as one HTML page with its bundle, its stylesheet and a
//! start-up script inline (`<style>`/`<script>` elements, no external files), plus
//! `/docs/oauth-receiver.html` with one inline script. The policy therefore allows inline
//! scripts and styles but nothing from elsewhere: no remote scripts, frames, objects, fonts
//! or form targets; images only from Hallpass and `data:` (the stylesheet's icons);
//! "Try it out" requests only to Hallpass itself. `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY` keep the page out of frames (clickjacking).

use poem::{http::header, middleware::SetHeader};

/// The Content-Security-Policy of `/docs`. `issuer` is added to `connect-src`, so "Try it
/// out" works when the page is reached under another name than the issuer's.
pub fn csp(issuer: &str) -> String {
    let origin = url::Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self' {origin}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'"
    )
}

/// The headers every `/docs` response gets.
pub fn headers(issuer: &str) -> SetHeader {
    SetHeader::new()
        .overriding("Content-Security-Policy", csp(issuer))
        .overriding("X-Frame-Options", "DENY")
        .overriding("X-Content-Type-Options", "nosniff")
        .overriding(header::REFERRER_POLICY, "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_forbids_framing_and_remote_code_and_allows_the_issuer() {
        let p = csp("https://auth.example.com");
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.starts_with("default-src 'none'"));
        assert!(p.contains("connect-src 'self' https://auth.example.com;"));
        assert!(!p.contains("unsafe-eval") && !p.contains("https:;"));
    }
}
