//! Security headers of Swagger UI at `/docs`.
//!
//! poem-openapi serves Swagger UI as one HTML page with its bundle, its stylesheet and a
//! start-up script inline (`<style>`/`<script>` elements, no external files). The page is
//! fixed once the spec is built, so the policy allows exactly its inline scripts, by their
//! SHA-256 (CSP Level 2 hash sources), and nothing else: no other inline or remote script, no
//! `eval`, no frames, objects, fonts or form targets. Styles may be inline (Swagger UI sets
//! `style` attributes); images come only from Hallpass and `data:` (the stylesheet's icons);
//! "Try it out" requests go only to Hallpass itself. `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY` keep the page out of frames (clickjacking).
//!
//! `/docs/oauth-receiver.html` (Swagger UI's OAuth 2.0 redirect page) gets the same policy,
//! which blocks its script: the spec declares no OAuth 2.0 security scheme, so Swagger UI
//! never opens it.

use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{http::header, middleware::SetHeader};

/// The CSP hash sources (`'sha256-…'`) of every inline `<script>` in `html`.
pub fn inline_script_hashes(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find("<script") {
        let after = &rest[open..];
        let Some(gt) = after.find('>') else { break };
        let body = &after[gt + 1..];
        let Some(close) = body.find("</script>") else {
            break;
        };
        // Browsers hash the script's text after the HTML parser turned CR LF and CR into LF.
        let text = body[..close].replace("\r\n", "\n").replace('\r', "\n");
        let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        out.push(format!("'sha256-{}'", STANDARD.encode(digest.as_ref())));
        rest = &body[close..];
    }
    out
}

/// The Content-Security-Policy of `/docs` for the page `html`. `issuer` is added to
/// `connect-src`, so "Try it out" works when the page is reached under another name.
pub fn csp(issuer: &str, html: &str) -> String {
    let origin = url::Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let scripts = inline_script_hashes(html).join(" ");
    format!(
        "default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self' {origin}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'"
    )
}

/// The headers every `/docs` response gets; `html` is the Swagger UI page served there.
pub fn headers(issuer: &str, html: &str) -> SetHeader {
    SetHeader::new()
        .overriding("Content-Security-Policy", csp(issuer, html))
        .overriding("X-Frame-Options", "DENY")
        .overriding("X-Content-Type-Options", "nosniff")
        .overriding(header::REFERRER_POLICY, "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_pages_own_scripts_and_forbids_framing() {
        let html = "<html><script charset=\"UTF-8\">a()</script><p>x</p><script>b()</script>";
        let p = csp("https://auth.example.com", html);
        let hashes = inline_script_hashes(html);
        assert_eq!(hashes.len(), 2);
        assert!(
            p.contains(&format!("script-src {} {};", hashes[0], hashes[1])),
            "{p}"
        );
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(p.starts_with("default-src 'none'"));
        assert!(p.contains("connect-src 'self' https://auth.example.com;"));
        assert!(!p.contains("unsafe-eval") && !p.contains("script-src 'unsafe-inline'"));
    }
}
