//! `Allow` on every 405 (RFC 9110 §15.5.6): "the origin server MUST generate an Allow header
//! field in a 405 response containing a list of the target resource's currently supported
//! methods".
//!
//! poem's method router answers 405 without it, and its routes do not tell which methods
//! they hold, so [`AllowOn405`] keeps a table of path patterns and methods and, on a 405 only,
//! adds the methods of the first pattern the path matches. The table is built from the same
//! declarations the router is: the API's rows from the OpenAPI operations
//! ([`MethodTable::from_openapi`], the metadata poem-openapi routes with), the pages' from
//! [`crate::web::ROUTES`], so a new operation cannot be forgotten. Calling the router again
//! with other methods to find out was rejected: it would run handlers. `HEAD` is listed
//! wherever `GET` is, since poem answers it from `GET`. The 405's body stays what the route
//! gave (the RFC JSON error on API paths).

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, StatusCode, header},
};

/// Path patterns (`/api/clients/{client_id}` or `:client_id` segments) and their methods.
#[derive(Debug, Clone, Default)]
pub struct MethodTable {
    rows: Vec<(Vec<String>, Vec<String>)>,
}

impl MethodTable {
    /// The operations of an OpenAPI service's APIs.
    pub fn from_openapi<T: poem_openapi::OpenApi>() -> Self {
        let mut table = Self::default();
        for api in T::meta() {
            for path in api.paths {
                let methods: Vec<String> = path
                    .operations
                    .iter()
                    .map(|o| o.method.to_string())
                    .collect();
                table.add(&path.path, methods.iter().map(String::as_str));
            }
        }
        table
    }

    /// Adds `methods` to `pattern` (merged with the row of an equal pattern).
    pub fn add<'a>(&mut self, pattern: &str, methods: impl IntoIterator<Item = &'a str>) {
        let segs = segments(pattern);
        let new: Vec<String> = methods.into_iter().map(str::to_ascii_uppercase).collect();
        match self.rows.iter_mut().find(|(s, _)| *s == segs) {
            Some((_, m)) => m.extend(new),
            None => self.rows.push((segs, new)),
        }
    }

    /// The `Allow` value for `path`, or `None` when no pattern matches.
    pub fn allow(&self, path: &str) -> Option<String> {
        let segs = segments(path);
        let (_, methods) = self.rows.iter().find(|(pattern, _)| {
            pattern.len() == segs.len()
                && pattern.iter().zip(&segs).all(|(p, s)| is_var(p) || p == s)
        })?;
        let mut out = methods.clone();
        if out.iter().any(|m| m == "GET") {
            out.push("HEAD".into());
        }
        out.sort();
        out.dedup();
        Some(out.join(", "))
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_var(seg: &str) -> bool {
    seg.starts_with(':') || (seg.starts_with('{') && seg.ends_with('}'))
}

/// Adds `Allow` to 405 answers; see the module docs.
#[derive(Debug, Clone)]
pub struct AllowOn405(pub Arc<MethodTable>);

impl<E: Endpoint> Middleware<E> for AllowOn405 {
    type Output = AllowOn405Endpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        AllowOn405Endpoint {
            inner: ep,
            table: self.0.clone(),
        }
    }
}

/// See [`AllowOn405`].
pub struct AllowOn405Endpoint<E> {
    inner: E,
    table: Arc<MethodTable>,
}

impl<E: Endpoint> Endpoint for AllowOn405Endpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let path = req.uri().path().to_string();
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            match self.table.allow(&path) {
                Some(allow) => {
                    if let Ok(v) = HeaderValue::from_str(&allow) {
                        resp.headers_mut().insert(header::ALLOW, v);
                    }
                }
                None => {
                    tracing::warn!(path = %path, "405 for a path missing from the method table")
                }
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_gets_the_methods_of_the_pattern_it_matches_with_head_beside_get() {
        let mut t = MethodTable::default();
        t.add("/api/clients/{client_id}", ["get", "delete"]);
        t.add("/oauth2/token", ["post"]);
        t.add("/login", ["GET", "POST"]);
        assert_eq!(
            t.allow("/api/clients/abc").as_deref(),
            Some("DELETE, GET, HEAD")
        );
        assert_eq!(t.allow("/oauth2/token").as_deref(), Some("POST"));
        assert_eq!(t.allow("/login").as_deref(), Some("GET, HEAD, POST"));
        assert_eq!(t.allow("/api/clients/abc/secret"), None);
    }
}
