//! The OpenAPI document's frame (info, security scheme) and Swagger UI,
//! served from the binary with no download at build or run time.

use axum::Router;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, Object, Schema, Type};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;

/// The name of the security scheme every protected operation requires.
pub const SECURITY_SCHEME: &str = "OAuth2PasswordBearer";

/// Scopes the demo API defines, with what they allow.
pub const SCOPES: &[(&str, &str)] = &[
    ("me", "Read information about the current user."),
    ("items", "Read the current user's items."),
];

/// The document's frame; operations are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse",
        description = "OAuth2 password login and JWT bearer protection. \
                       Click **Authorize**, log in with a user, then try `/users/me`.",
    ),
    modifiers(&PasswordFlow),
    tags(
        (name = "auth", description = "Tokens"),
        (name = "users", description = "The demo API protected by Gatehouse"),
        (name = "discovery", description = "Keys and metadata"),
        (name = "operations", description = "Probes"),
    )
)]
pub struct ApiDoc;

struct PasswordFlow;

impl Modify for PasswordFlow {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let scopes = Scopes::from_iter(SCOPES.iter().map(|(n, d)| (*n, *d)));
        let scheme = SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
            "/token", scopes,
        ))]));
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(SECURITY_SCHEME, scheme);
    }
}

/// Finishes the document once every route has added its schemas: unknown
/// form parameters are ignored (RFC 6749 §3.2), but like every parameter
/// each may appear once with one value, so extras are documented as strings.
pub(super) fn describe_form_extras(openapi: &mut OpenApiDoc) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    for form in ["TokenForm", "RevokeForm"] {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(form) {
            object.additional_properties = Some(Box::new(AdditionalProperties::RefOr(RefOr::T(
                Schema::Object(Object::with_type(Type::String)),
            ))));
        }
    }
}

/// `/docs` (Swagger UI) and `/openapi.json`.
pub(super) fn router(spec: OpenApiDoc) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
}
