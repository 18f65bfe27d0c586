//! The served OpenAPI document: what poem-openapi generates, plus an `oauth2` security scheme
//! (OpenAPI 3.0 §4.8.27) whose URLs and scopes come from the configuration, which
//! poem-openapi's `#[derive(SecurityScheme)]` can only take as literals.
//!
//! An extractor that accepts OAuth 2.0 access tokens lists, next to its own schemes, a
//! requirement named `oauth2#<scopes>` (for example `oauth2#hallpass:manage`, or `oauth2#`
//! for none): [`Spec::new`] turns each into a requirement of the `oauth2` scheme with those
//! scopes, and declares the scheme itself.

use serde_yaml::{Mapping, Value};

/// The name of the OAuth 2.0 scheme in the spec.
pub const OAUTH2: &str = "oauth2";

/// The prefix of the requirement names extractors list (see the module docs).
pub const REQUIREMENT_PREFIX: &str = "oauth2#";

/// The `oauth2` scheme: the authorization server's endpoints and the scopes it offers.
#[derive(Debug, Clone)]
pub struct OAuth2Scheme {
    /// What the scheme is, for readers of the spec.
    pub description: String,
    /// The authorization endpoint.
    pub authorization_url: String,
    /// The token endpoint (also where tokens are refreshed).
    pub token_url: String,
    /// Every scope, with what it lets the application do.
    pub scopes: Vec<(String, String)>,
    /// Whether to declare the client-credentials flow too.
    pub client_credentials: bool,
}

/// A finished spec document.
#[derive(Debug, Clone)]
pub struct Spec {
    doc: Value,
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

impl OAuth2Scheme {
    fn to_value(&self) -> Value {
        let scopes: Mapping = self
            .scopes
            .iter()
            .map(|(name, description)| (s(name), s(description)))
            .collect();
        let mut code = Mapping::new();
        code.insert(s("authorizationUrl"), s(&self.authorization_url));
        code.insert(s("tokenUrl"), s(&self.token_url));
        code.insert(s("refreshUrl"), s(&self.token_url));
        code.insert(s("scopes"), Value::Mapping(scopes.clone()));
        let mut flows = Mapping::new();
        flows.insert(s("authorizationCode"), Value::Mapping(code));
        if self.client_credentials {
            let mut cc = Mapping::new();
            cc.insert(s("tokenUrl"), s(&self.token_url));
            cc.insert(s("scopes"), Value::Mapping(scopes));
            flows.insert(s("clientCredentials"), Value::Mapping(cc));
        }
        let mut scheme = Mapping::new();
        scheme.insert(s("type"), s("oauth2"));
        scheme.insert(s("description"), s(&self.description));
        scheme.insert(s("flows"), Value::Mapping(flows));
        Value::Mapping(scheme)
    }
}

impl Spec {
    /// The document poem-openapi generated (`spec_yaml()`), with `oauth2` filled in.
    pub fn new(generated_yaml: &str, oauth2: &OAuth2Scheme) -> Result<Self, serde_yaml::Error> {
        let mut doc: Value = serde_yaml::from_str(generated_yaml)?;
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_mapping_mut) {
            for (_, item) in paths.iter_mut() {
                let Some(item) = item.as_mapping_mut() else {
                    continue;
                };
                for (_, op) in item.iter_mut() {
                    if let Some(security) = op.get_mut("security").and_then(Value::as_sequence_mut)
                    {
                        security.iter_mut().for_each(resolve_requirement);
                    }
                }
            }
        }
        let schemes = doc
            .as_mapping_mut()
            .map(|d| {
                d.entry(s("components"))
                    .or_insert(Value::Mapping(Mapping::new()))
            })
            .and_then(Value::as_mapping_mut)
            .map(|c| {
                c.entry(s("securitySchemes"))
                    .or_insert(Value::Mapping(Mapping::new()))
            })
            .and_then(Value::as_mapping_mut);
        if let Some(schemes) = schemes {
            schemes.insert(s(OAUTH2), oauth2.to_value());
        }
        Ok(Self { doc })
    }

    /// Declares `additionalProperties: false` on the object schema `name`: for bodies parsed
    /// with poem-openapi's `deny_unknown_fields`, which does not say so in the schema.
    pub fn closed(mut self, name: &str) -> Self {
        let schema = self
            .doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(name))
            .and_then(Value::as_mapping_mut);
        if let Some(schema) = schema {
            schema.insert(s("additionalProperties"), Value::Bool(false));
        }
        self
    }

    /// Sets `key: value` on property `field` of the object schema `name`: for limits and
    /// requirements the domain enforces (with its own RFC-shaped errors) but poem-openapi
    /// would enforce itself, with its own message, if they were declared on the field.
    pub fn property(mut self, name: &str, field: &str, key: &str, value: Value) -> Self {
        let property = self
            .doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(name))
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_mapping_mut);
        if let Some(property) = property {
            property.insert(s(key), value);
        }
        self
    }

    /// Sets `field` in the example of the object schema `name`: for `writeOnly` fields, which
    /// poem-openapi leaves out of the example it serialises (an example without its password
    /// is not a valid request).
    pub fn example(mut self, name: &str, field: &str, value: Value) -> Self {
        let example = self
            .doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(name))
            .and_then(|s| s.get_mut("example"))
            .and_then(Value::as_mapping_mut);
        if let Some(example) = example {
            example.insert(s(field), value);
        }
        self
    }

    /// Lists `field` as required in the object schema `name` (see [`Spec::property`]).
    pub fn require(mut self, name: &str, field: &str) -> Self {
        let schema = self
            .doc
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .and_then(|s| s.get_mut(name))
            .and_then(Value::as_mapping_mut);
        if let Some(schema) = schema {
            let required = schema
                .entry(s("required"))
                .or_insert(Value::Sequence(Vec::new()));
            if let Some(list) = required.as_sequence_mut()
                && !list.iter().any(|v| v.as_str() == Some(field))
            {
                list.push(s(field));
            }
        }
        self
    }

    /// The document as YAML (`/openapi.yaml`, `openapi/openapi.yaml`).
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.doc).unwrap_or_default()
    }

    /// The document as JSON (`/openapi.json`).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.doc).unwrap_or_default()
    }
}

/// `{"oauth2#a b": []}` becomes `{"oauth2": ["a", "b"]}`.
fn resolve_requirement(requirement: &mut Value) {
    let Some(map) = requirement.as_mapping_mut() else {
        return;
    };
    let markers: Vec<String> = map
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| k.starts_with(REQUIREMENT_PREFIX))
        .map(str::to_string)
        .collect();
    for marker in markers {
        map.remove(marker.as_str());
        let scopes = marker[REQUIREMENT_PREFIX.len()..]
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(s)
            .collect();
        map.insert(s(OAUTH2), Value::Sequence(scopes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_markers_become_oauth2_requirements_and_the_scheme_is_declared() {
        let generated = "openapi: 3.0.0\npaths:\n  /x:\n    get:\n      security:\n      - basic: []\n      - oauth2#a b: []\ncomponents:\n  securitySchemes:\n    basic:\n      type: http\n      scheme: basic\n";
        let scheme = OAuth2Scheme {
            description: "d".into(),
            authorization_url: "https://as.example/authorize".into(),
            token_url: "https://as.example/token".into(),
            scopes: vec![("a".into(), "A".into()), ("b".into(), "B".into())],
            client_credentials: true,
        };
        let spec = Spec::new(generated, &scheme).unwrap();
        let json: serde_json::Value = serde_json::from_str(&spec.json()).unwrap();
        assert_eq!(
            json["paths"]["/x"]["get"]["security"],
            serde_json::json!([{"basic": []}, {"oauth2": ["a", "b"]}])
        );
        let flows = &json["components"]["securitySchemes"]["oauth2"]["flows"];
        assert_eq!(
            flows["authorizationCode"]["authorizationUrl"],
            "https://as.example/authorize"
        );
        assert_eq!(flows["clientCredentials"]["scopes"]["b"], "B");
        assert!(spec.yaml().starts_with("openapi: 3.0.0\n"));
    }
}
