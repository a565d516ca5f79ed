//! The OpenAPI document, Swagger UI, and the probes.

use serde_json::Value;

use crate::helpers::spawn_app;

async fn spec() -> Value {
    let app = spawn_app().await;
    let response = app.get("/openapi.json", None).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_declares_the_oauth2_password_flow() {
    let spec = spec().await;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let scheme = &spec["components"]["securitySchemes"]["OAuth2PasswordBearer"];
    assert_eq!(scheme["type"], "oauth2");
    let flow = &scheme["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/token");
    assert!(flow["scopes"]["me"].is_string());
    assert!(flow["scopes"]["items"].is_string());
}

#[tokio::test]
async fn every_route_is_documented_and_protected_ones_require_the_flow() {
    let spec = spec().await;
    let paths = spec["paths"].as_object().unwrap();
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    assert_eq!(
        documented,
        [
            "/.well-known/jwks.json",
            "/.well-known/oauth-authorization-server",
            "/healthz",
            "/readyz",
            "/revoke",
            "/token",
            "/users/me",
            "/users/me/items"
        ]
    );

    for (path, scopes) in [
        ("/users/me", vec!["me"]),
        ("/users/me/items", vec!["me", "items"]),
    ] {
        let security = &paths[path]["get"]["security"];
        assert_eq!(
            security[0]["OAuth2PasswordBearer"],
            serde_json::json!(scopes),
            "{path}"
        );
        assert!(paths[path]["get"]["responses"]["401"].is_object(), "{path}");
        assert!(paths[path]["get"]["responses"]["403"].is_object(), "{path}");
        assert!(paths[path]["get"]["responses"]["403"].is_object(), "{path}");
    }
    let token = &paths["/token"]["post"];
    assert!(
        token["security"].is_null(),
        "the token endpoint needs no token"
    );
    assert!(
        token["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object(),
        "{token}"
    );
}

#[tokio::test]
async fn the_openapi_command_prints_the_same_document() {
    let printed = gatehouse::http::openapi().to_json().unwrap();
    let printed: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed, spec().await);
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary() {
    let app = spawn_app().await;
    let response = app.get("/docs/", None).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = app.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("/openapi.json"));
    let bundle = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(bundle.status(), 200);
}

#[tokio::test]
async fn the_probes_answer() {
    let app = spawn_app().await;
    let health: Value = app.get("/healthz", None).await.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

/// The schema a documented response refers to, with its `$ref` resolved.
fn response_schema<'s>(spec: &'s Value, path: &str, status: &str) -> &'s Value {
    let schema =
        &spec["paths"][path]["get"]["responses"][status]["content"]["application/json"]["schema"];
    let reference = schema["$ref"].as_str().unwrap();
    let name = reference.strip_prefix("#/components/schemas/").unwrap();
    &spec["components"]["schemas"][name]
}

/// Asserts that `body` has every property `schema` requires and no other
/// than it lists, each a string (all error members are).
fn assert_body_fits(schema: &Value, body: &Value, what: &str) {
    let body = body.as_object().unwrap();
    let properties = schema["properties"].as_object().unwrap();
    for required in schema["required"].as_array().unwrap() {
        assert!(
            body.contains_key(required.as_str().unwrap()),
            "{what}: {body:?} lacks {required}"
        );
    }
    for (name, value) in body {
        assert!(
            properties.contains_key(name),
            "{what}: {name} is undocumented"
        );
        assert!(value.is_string(), "{what}: {name} is {value}");
        assert_eq!(properties[name]["type"], "string", "{what}: {name}");
    }
}

// RFC 6750 §3.1: no credentials get a challenge without an error code, so the
// documented 401 body must not require `error` (schemathesis found this).
#[tokio::test]
async fn the_documented_401_of_protected_routes_fits_both_challenges() {
    let app = spawn_app().await;
    let spec: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    for path in ["/users/me", "/users/me/items"] {
        let schema = response_schema(&spec, path, "401");

        let missing = app.get(path, None).await;
        assert_eq!(missing.status(), 401);
        let missing: Value = missing.json().await.unwrap();
        assert!(missing.get("error").is_none(), "{missing}");
        assert_body_fits(schema, &missing, "no credentials");

        let invalid = app.get(path, Some("not-a-token")).await;
        assert_eq!(invalid.status(), 401);
        let invalid: Value = invalid.json().await.unwrap();
        assert_eq!(invalid["error"], "invalid_token");
        assert_body_fits(schema, &invalid, "a bad token");
    }
}
