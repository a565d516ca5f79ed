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
