//! The committed spec is what the code generates. `UPDATE_OPENAPI=1` rewrites it.

use hallpass::{api::spec, config::Config, state::spec_state};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.yaml");

#[tokio::test]
async fn committed_openapi_yaml_matches_the_generated_spec() {
    let state = spec_state(Config::default()).await.unwrap();
    let generated = spec(&state).unwrap().yaml();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(PATH, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.yaml is out of date: run `UPDATE_OPENAPI=1 cargo test --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn every_operation_has_an_id_a_tag_and_a_summary() {
    let state = spec_state(Config::default()).await.unwrap();
    let spec: serde_json::Value = serde_json::from_str(&spec(&state).unwrap().json()).unwrap();
    let mut count = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path}"
            );
            assert!(op["summary"].is_string(), "{method} {path}");
        }
    }
    assert!(count >= 12, "{count} operations");
    let schemes = spec["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("clientSecretBasic") && schemes.contains_key("bearerToken"));
}

/// Generators (openapi-python-client) cannot read an `allOf` around an enum `$ref`.
#[tokio::test]
async fn the_spec_declares_oauth2_and_exact_error_statuses_and_no_all_of() {
    let state = spec_state(Config::default()).await.unwrap();
    let json = spec(&state).unwrap().json();
    assert!(!json.contains("allOf"), "an allOf is left in the spec");
    let spec: serde_json::Value = serde_json::from_str(&json).unwrap();
    let oauth2 = &spec["components"]["securitySchemes"]["oauth2"];
    let code = &oauth2["flows"]["authorizationCode"];
    assert_eq!(
        code["authorizationUrl"],
        format!("{}/oauth2/authorize", state.config.issuer)
    );
    assert_eq!(
        code["tokenUrl"],
        format!("{}/oauth2/token", state.config.issuer)
    );
    for s in &state.config.scopes {
        assert_eq!(code["scopes"][&s.name], s.description.as_str());
    }
    assert!(oauth2["flows"]["clientCredentials"]["tokenUrl"].is_string());
    let list = &spec["paths"]["/api/clients"]["get"];
    assert_eq!(
        list["security"],
        serde_json::json!([{"userBasic": []}, {"bearerToken": []}, {"oauth2": ["hallpass:manage"]}])
    );
    let statuses = |op: &serde_json::Value| -> Vec<String> {
        op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(statuses(list), ["200", "401", "403", "429", "500", "503"]);
    let token = &spec["paths"]["/oauth2/token"]["post"];
    assert!(!statuses(token).contains(&"404".to_string()));
    let error = &spec["components"]["schemas"]["ErrorBody"]["properties"]["error"];
    assert_eq!(error["$ref"], "#/components/schemas/ErrorCode");
    let form = &spec["components"]["schemas"]["TokenForm"];
    assert_eq!(form["required"], serde_json::json!(["grant_type"]));
    assert_eq!(form["example"]["grant_type"], "client_credentials");
    let reg = &spec["components"]["schemas"]["ClientRegistration"]["properties"];
    assert_eq!(
        reg["grant_types"]["items"]["$ref"],
        "#/components/schemas/GrantType"
    );
}
