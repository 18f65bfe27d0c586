//! Resource indicators (RFC 8707): which resource servers a token is for.
//!
//! Resource servers are registered ([`Resources`], from the `HALLPASS_RESOURCES` file, or
//! the development registry): each has its identifier URI (the `resource` of its RFC 9728
//! metadata, and the `aud` of tokens for it), a name the consent page shows, and the scopes
//! it accepts. Hallpass's own API is one of them, always: its identifier is
//! `HALLPASS_AUDIENCE` (the issuer unless set), and it accepts `hallpass:manage`, `openid`
//! and `profile` (the user API and `/userinfo`) plus every offered scope no other resource
//! server claims, so that a deployment that registers nothing issues exactly the tokens it
//! always did.
//!
//! A request names its resources with `resource` (repeatable; absolute URIs without a
//! fragment, RFC 8707 §2). Without one, the default applies: the `default` list of the file
//! when it has one, otherwise the resource servers that accept one of the requested scopes
//! (Hallpass's own API when none does). Anything unknown, malformed, or that the client may
//! ask no scope of, is `invalid_target`.
//!
//! The granted scope is then narrowed to what the selected resources accept (RFC 8707 §2.2:
//! "the intersection of the scope and the resource"), so a token for the beer locker never
//! carries `hallpass:manage`. Hallpass's own scopes ([`AS_SCOPES`]: the OpenID Connect
//! ones and `offline_access`) are kept whatever the resource: they are for the ID token,
//! `/userinfo` and the refresh token. The code and the refresh-token family record the
//! granted resources; the token and refresh requests may narrow them, never widen them.

use serde::Deserialize;
use url::Url;

use crate::{
    config::{Config, ScopeDef},
    oauth::error::{ErrorCode, OAuthError},
    oauth::scope::Scope,
};

/// Scopes of Hallpass itself rather than of a resource server: granted whatever the
/// resource (the ID token, `/userinfo`, refresh tokens).
pub const AS_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// The name the consent page shows for Hallpass's own API.
pub const OWN_API_NAME: &str = "Hallpass (your account and applications)";

/// Most `resource` values one request may carry.
pub const MAX_PER_REQUEST: usize = 10;
/// Longest `resource` value, in bytes.
pub const MAX_LEN: usize = 2048;

/// The scopes Hallpass's own API accepts whatever else is registered: the management API's
/// and those `/userinfo` and `/api/users/me` read.
const OWN_API_SCOPES: &[&str] = &[crate::oauth::users::MANAGE_SCOPE, "openid", "profile"];

/// One registered resource server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceServer {
    /// Its identifier URI: its RFC 9728 `resource`, the `aud` of tokens for it.
    pub id: String,
    /// What the consent page calls it.
    pub name: String,
    /// The scopes it accepts.
    pub scopes: Scope,
}

/// The registered resource servers besides Hallpass's own API, and the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    servers: Vec<ResourceServer>,
    /// The `default` of the file; `None`: chosen by scope.
    default: Option<Vec<String>>,
}

/// The `HALLPASS_RESOURCES` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourcesFile {
    resources: Vec<ResourceEntry>,
    #[serde(default)]
    default: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceEntry {
    resource: String,
    name: String,
    scopes: Vec<String>,
}

/// Whether `raw` is an acceptable identifier: an absolute URI without a fragment (RFC 8707 §2).
fn parse_identifier(raw: &str) -> Option<Url> {
    if raw.is_empty() || raw.len() > MAX_LEN || raw.chars().any(char::is_whitespace) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    (url.fragment().is_none() && raw.contains(':')).then_some(url)
}

/// Whether two identifiers name the same resource (compared as parsed URLs, so
/// `https://api.example` and `https://API.example/` are one).
fn same(a: &str, b: &str) -> bool {
    a == b || matches!((Url::parse(a), Url::parse(b)), (Ok(x), Ok(y)) if x == y)
}

impl Resources {
    /// No resource server but Hallpass's own API; the default by scope.
    pub fn none() -> Self {
        Self::default()
    }

    /// The development registry: the beer locker at its default address
    /// (`http://127.0.0.1:4000`), accepting the `beers:*` scopes `offered` has.
    pub fn development(offered: &[ScopeDef]) -> Self {
        let scopes = Scope::from_tokens(
            [
                crate::beer_locker::SCOPE_READ,
                crate::beer_locker::SCOPE_WRITE,
            ]
            .into_iter()
            .filter(|s| offered.iter().any(|o| o.name == *s)),
        );
        if scopes.is_empty() {
            return Self::none();
        }
        Self {
            servers: vec![ResourceServer {
                id: crate::beer_locker::config::DEFAULT_RESOURCE.to_string(),
                name: "Beer locker".to_string(),
                scopes,
            }],
            default: None,
        }
    }

    /// A registry of `servers` (for tests and tools); validated like the file.
    pub fn from_servers(
        servers: Vec<ResourceServer>,
        default: Option<Vec<String>>,
        offered: &[ScopeDef],
        own_id: &str,
    ) -> Result<Self, String> {
        let entries = servers
            .into_iter()
            .map(|s| ResourceEntry {
                resource: s.id,
                name: s.name,
                scopes: s.scopes.iter().map(str::to_string).collect(),
            })
            .collect();
        Self::validate(
            ResourcesFile {
                resources: entries,
                default,
            },
            offered,
            own_id,
        )
    }

    /// Parses and checks the `HALLPASS_RESOURCES` file (JSON). `offered` are the offered
    /// scopes, `own_id` Hallpass's own identifier. The error says what to fix.
    pub fn from_json(raw: &str, offered: &[ScopeDef], own_id: &str) -> Result<Self, String> {
        let file: ResourcesFile = serde_json::from_str(raw).map_err(|e| {
            format!(
                "{e}; write {{\"resources\": [{{\"resource\": \"https://api.example.com\", \"name\": \"Example API\", \"scopes\": [\"example:read\"]}}], \"default\": [optional list of identifiers]}}"
            )
        })?;
        Self::validate(file, offered, own_id)
    }

    fn validate(file: ResourcesFile, offered: &[ScopeDef], own_id: &str) -> Result<Self, String> {
        let mut servers: Vec<ResourceServer> = Vec::new();
        for e in file.resources {
            let id = e.resource.trim().to_string();
            if parse_identifier(&id).is_none() {
                return Err(format!(
                    "resource {id:?} must be an absolute URI without a fragment, such as https://api.example.com"
                ));
            }
            if same(&id, own_id) {
                return Err(format!(
                    "resource {id:?} is Hallpass's own API (HALLPASS_AUDIENCE), which is always registered; remove it"
                ));
            }
            if servers.iter().any(|s| same(&s.id, &id)) {
                return Err(format!("resource {id:?} is listed twice; list it once"));
            }
            let name = e.name.trim().to_string();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(format!(
                    "resource {id:?}: name must be 1 to 100 characters without control characters"
                ));
            }
            if e.scopes.is_empty() {
                return Err(format!(
                    "resource {id:?}: list the scopes it accepts (at least one)"
                ));
            }
            for s in &e.scopes {
                if AS_SCOPES.contains(&s.as_str()) || OWN_API_SCOPES.contains(&s.as_str()) {
                    return Err(format!(
                        "resource {id:?}: {s:?} is a scope of Hallpass itself, granted whatever the resource; remove it"
                    ));
                }
                if !offered.iter().any(|o| o.name == *s) {
                    return Err(format!(
                        "resource {id:?}: scope {s:?} is not offered; add it to HALLPASS_SCOPES or remove it"
                    ));
                }
            }
            servers.push(ResourceServer {
                id,
                name,
                scopes: Scope::from_tokens(e.scopes.iter().map(String::as_str)),
            });
        }
        let default = match file.default {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(
                    "default is empty; list at least one identifier, or leave it out to choose by scope"
                        .into(),
                );
            }
            Some(list) => {
                let mut out = Vec::new();
                for d in list {
                    let id = if same(&d, own_id) {
                        own_id.to_string()
                    } else {
                        servers
                            .iter()
                            .find(|s| same(&s.id, &d))
                            .map(|s| s.id.clone())
                            .ok_or_else(|| {
                                format!("default names {d:?}, which is not a registered resource")
                            })?
                    };
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
                Some(out)
            }
        };
        Ok(Self { servers, default })
    }

    /// The registered resource servers besides Hallpass's own API.
    pub fn servers(&self) -> &[ResourceServer] {
        &self.servers
    }

    /// The fixed default, if the file sets one.
    pub fn fixed_default(&self) -> Option<&[String]> {
        self.default.as_deref()
    }
}

/// Hallpass's own API under `config`.
pub fn own_api(config: &Config) -> ResourceServer {
    let claimed = |s: &str| {
        config
            .resources
            .servers
            .iter()
            .any(|r| r.scopes.contains(s))
    };
    let scopes = Scope::from_tokens(
        config
            .scopes
            .iter()
            .map(|s| s.name.as_str())
            .filter(|s| OWN_API_SCOPES.contains(s) || (!claimed(s) && !AS_SCOPES.contains(s))),
    );
    ResourceServer {
        id: config.audience.clone(),
        name: OWN_API_NAME.to_string(),
        scopes,
    }
}

/// Every registered resource server, Hallpass's own API first.
pub fn all(config: &Config) -> Vec<ResourceServer> {
    std::iter::once(own_api(config))
        .chain(config.resources.servers.iter().cloned())
        .collect()
}

/// The registered resource server `id` names.
pub fn find(config: &Config, id: &str) -> Option<ResourceServer> {
    all(config).into_iter().find(|r| same(&r.id, id))
}

/// Every identifier tokens may carry as `aud`.
pub fn identifiers(config: &Config) -> Vec<String> {
    all(config).into_iter().map(|r| r.id).collect()
}

/// Checks the `resource` values of a request: at most [`MAX_PER_REQUEST`], each an absolute
/// URI without a fragment; `invalid_target` otherwise.
pub fn check_values(values: &[String]) -> Result<(), OAuthError> {
    if values.len() > MAX_PER_REQUEST {
        return Err(invalid_target(format!(
            "at most {MAX_PER_REQUEST} resource values may be sent"
        )));
    }
    for v in values {
        if parse_identifier(v).is_none() {
            return Err(invalid_target(
                "resource must be an absolute URI without a fragment (RFC 8707 §2)",
            ));
        }
    }
    Ok(())
}

fn invalid_target(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidTarget, description)
}

/// What a request is granted: the resources (the token's `aud`) and the scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The identifiers, as registered.
    pub resources: Vec<String>,
    /// The requested scope narrowed to what those resources accept (plus [`AS_SCOPES`]).
    pub scope: Scope,
}

/// Chooses the resources of a new grant (authorization request, client credentials):
/// `requested` (already [`check_values`]ed) or the default, for a client that may request
/// `allowed`, and narrows `scope` to them.
pub fn select(
    config: &Config,
    requested: &[String],
    scope: &Scope,
    allowed: &Scope,
) -> Result<Selection, OAuthError> {
    let servers = if requested.is_empty() {
        default_for(config, scope)
    } else {
        let mut out: Vec<ResourceServer> = Vec::new();
        for r in requested {
            let server = find(config, r).ok_or_else(|| {
                invalid_target(format!("{r} is not a resource server known to Hallpass"))
            })?;
            if !server.scopes.iter().any(|s| allowed.contains(s)) {
                return Err(invalid_target(format!(
                    "this client may request no scope of {}",
                    server.id
                )));
            }
            if !out.iter().any(|s| s.id == server.id) {
                out.push(server);
            }
        }
        out
    };
    narrow_scope(servers, scope)
}

/// Chooses the resources of a token issued from an existing grant (the code exchange, a
/// refresh): `requested` must be among `granted` (narrowing, never widening); without it,
/// all of `granted` that are still registered. A grant none of whose resources is
/// registered (recorded before resources were, or since unregistered) gets the default.
pub fn narrow(
    config: &Config,
    granted: &[String],
    requested: &[String],
    scope: &Scope,
) -> Result<Selection, OAuthError> {
    if requested.is_empty() {
        let registered: Vec<ResourceServer> =
            granted.iter().filter_map(|g| find(config, g)).collect();
        if registered.is_empty() {
            // Recorded before resources were, or every one unregistered since (or
            // `HALLPASS_AUDIENCE` changed): what the same request without a grant gets.
            if !granted.is_empty() {
                tracing::warn!(
                    "no resource of this grant is registered any more; using the default"
                );
            }
            return select(config, &[], scope, scope);
        }
        return narrow_scope(registered, scope);
    }
    if granted.is_empty() {
        return select(config, requested, scope, scope);
    }
    let mut servers: Vec<ResourceServer> = Vec::new();
    for r in requested {
        if !granted.iter().any(|g| same(g, r)) {
            return Err(invalid_target(format!(
                "{r} was not granted: a token request may narrow the granted resources, never widen them"
            )));
        }
        let server = find(config, r).ok_or_else(|| {
            invalid_target(format!("{r} is not a resource server known to Hallpass"))
        })?;
        if !servers.iter().any(|s| s.id == server.id) {
            servers.push(server);
        }
    }
    narrow_scope(servers, scope)
}

/// The default resources for `scope`: the file's `default`, else those accepting one of
/// its scopes (Hallpass's own API when none does).
fn default_for(config: &Config, scope: &Scope) -> Vec<ResourceServer> {
    if let Some(ids) = config.resources.fixed_default() {
        return ids.iter().filter_map(|id| find(config, id)).collect();
    }
    let picked: Vec<ResourceServer> = all(config)
        .into_iter()
        .filter(|r| r.scopes.iter().any(|s| scope.contains(s)))
        .collect();
    if picked.is_empty() {
        vec![own_api(config)]
    } else {
        picked
    }
}

/// `scope` narrowed to what `servers` accept, plus Hallpass's own scopes. A request whose
/// every resource-server scope is dropped is `invalid_scope`: its token would be good for
/// nothing it asked.
fn narrow_scope(servers: Vec<ResourceServer>, scope: &Scope) -> Result<Selection, OAuthError> {
    let accepted = |s: &str| servers.iter().any(|r| r.scopes.contains(s));
    let is_as = |s: &str| AS_SCOPES.contains(&s);
    let narrowed = Scope::from_tokens(scope.iter().filter(|s| accepted(s) || is_as(s)));
    if scope.iter().any(|s| !is_as(s)) && !narrowed.iter().any(accepted) {
        let ids: Vec<&str> = servers.iter().map(|r| r.id.as_str()).collect();
        let offered = Scope::from_tokens(servers.iter().flat_map(|r| r.scopes.iter()));
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!(
                "none of the requested scopes is accepted by {}; it accepts: {offered}",
                ids.join(" and ")
            ),
        ));
    }
    Ok(Selection {
        resources: servers.into_iter().map(|r| r.id).collect(),
        scope: narrowed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut c = Config::default();
        c.resources = Resources::from_json(
            r#"{"resources": [
                {"resource": "https://beers.example", "name": "Beers", "scopes": ["beers:read", "beers:write"]}
            ]}"#,
            &c.scopes,
            &c.audience,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap_or_default()
    }

    #[test]
    fn the_file_is_checked_and_names_what_to_fix() {
        let c = Config::default();
        let err = |json: &str| Resources::from_json(json, &c.scopes, &c.audience).unwrap_err();
        assert!(err("{").contains("resources"));
        assert!(err(r#"{"resources": [{"resource": "/relative", "name": "x", "scopes": ["beers:read"]}]}"#).contains("absolute URI"));
        assert!(err(r#"{"resources": [{"resource": "https://a.example#f", "name": "x", "scopes": ["beers:read"]}]}"#).contains("fragment"));
        assert!(err(r#"{"resources": [{"resource": "https://a.example", "name": "x", "scopes": ["nope"]}]}"#).contains("HALLPASS_SCOPES"));
        assert!(err(r#"{"resources": [{"resource": "https://a.example", "name": "x", "scopes": ["openid"]}]}"#).contains("Hallpass itself"));
        assert!(err(r#"{"resources": [{"resource": "http://127.0.0.1:3000/", "name": "x", "scopes": ["beers:read"]}]}"#).contains("own API"));
        assert!(
            err(r#"{"resources": [], "default": ["https://b.example"]}"#)
                .contains("not a registered")
        );
        assert!(err(r#"{"resources": [], "extra": 1}"#).contains("unknown field"));
    }

    #[test]
    fn without_resource_the_scopes_choose_the_audience() {
        let c = config();
        let beers = select(&c, &[], &scope("beers:read"), &scope("beers:read")).unwrap();
        assert_eq!(beers.resources, ["https://beers.example"]);
        let own = select(
            &c,
            &[],
            &scope("hallpass:manage"),
            &scope("hallpass:manage"),
        )
        .unwrap();
        assert_eq!(own.resources, std::slice::from_ref(&c.audience));
        let only_refresh = select(&c, &[], &scope("offline_access"), &scope("offline_access"));
        assert_eq!(
            only_refresh.unwrap().resources,
            std::slice::from_ref(&c.audience)
        );
    }

    #[test]
    fn a_resource_narrows_the_scope_but_keeps_hallpass_own_scopes() {
        let c = config();
        let all = scope("openid offline_access beers:read hallpass:manage");
        let s = select(&c, &["https://beers.example/".into()], &all, &all).unwrap();
        assert_eq!(s.resources, ["https://beers.example"]);
        assert_eq!(s.scope.to_string(), "beers:read offline_access openid");
        let none = select(
            &c,
            &["https://beers.example".into()],
            &scope("hallpass:manage"),
            &all,
        );
        assert_eq!(none.unwrap_err().code, ErrorCode::InvalidScope);
        let unknown = select(&c, &["https://other.example".into()], &all, &all);
        assert_eq!(unknown.unwrap_err().code, ErrorCode::InvalidTarget);
        let disallowed = select(
            &c,
            &["https://beers.example".into()],
            &scope("openid"),
            &scope("openid"),
        );
        assert_eq!(disallowed.unwrap_err().code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn a_later_request_may_narrow_the_resources_never_widen_them() {
        let c = config();
        let granted = vec![c.audience.clone(), "https://beers.example".to_string()];
        let s = scope("beers:read hallpass:manage");
        let one = narrow(&c, &granted, &["https://beers.example".into()], &s).unwrap();
        assert_eq!(
            (one.resources.len(), one.scope.to_string()),
            (1, "beers:read".to_string())
        );
        let wider = narrow(&c, &granted[1..], std::slice::from_ref(&c.audience), &s);
        assert_eq!(wider.unwrap_err().code, ErrorCode::InvalidTarget);
        assert_eq!(narrow(&c, &granted, &[], &s).unwrap().resources, granted);
    }

    #[test]
    fn resource_values_are_absolute_uris_without_fragments() {
        assert!(check_values(&["https://a.example/api".into(), "urn:example:api".into()]).is_ok());
        for bad in ["", "/relative", "https://a.example#x", "a b:c"] {
            assert_eq!(
                check_values(&[bad.into()]).unwrap_err().code,
                ErrorCode::InvalidTarget,
                "{bad}"
            );
        }
        assert!(check_values(&vec!["https://a.example".to_string(); 11]).is_err());
    }

    #[test]
    fn with_nothing_registered_hallpass_own_api_takes_every_scope_as_before() {
        let c = Config {
            resources: Resources::none(),
            ..Config::default()
        };
        let s = scope("beers:read hallpass:manage openid");
        let sel = select(&c, &[], &s, &s).unwrap();
        assert_eq!(sel.resources, std::slice::from_ref(&c.audience));
        assert_eq!(sel.scope, s);
    }
}
