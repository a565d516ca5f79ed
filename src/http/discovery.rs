//! Published facts about this server: its public keys (JWKS) and its
//! authorization server metadata (RFC 8414), both true to the running
//! configuration.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::keys::Jwks;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(metadata))
}

/// The public keys that verify access tokens (never an HMAC secret; empty
/// when only HS256 is configured).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "The JSON Web Key Set", body = Jwks)))]
async fn jwks(State(state): State<AppState>) -> Json<Jwks> {
    Json(state.config.keys.jwks())
}

/// Authorization server metadata (RFC 8414).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    /// The `iss` of every token.
    pub issuer: String,
    /// `POST` here for tokens.
    pub token_endpoint: String,
    /// `POST` here to revoke a token.
    pub revocation_endpoint: String,
    /// The public keys.
    pub jwks_uri: String,
    /// Grant types `/token` accepts.
    pub grant_types_supported: Vec<String>,
    /// No authorization endpoint: no response types.
    pub response_types_supported: Vec<String>,
    /// Scopes this server grants.
    pub scopes_supported: Vec<String>,
    /// Client authentication at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Client authentication at the revocation endpoint.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms access tokens are verified with.
    pub access_token_signing_alg_values_supported: Vec<String>,
}

/// This server's OAuth2 metadata.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "Authorization server metadata", body = ServerMetadata)))]
async fn metadata(State(state): State<AppState>) -> Json<ServerMetadata> {
    let config = &state.config;
    let base = config.issuer.trim_end_matches('/');
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let auth_methods = strings(&["none", "client_secret_basic"]);
    Json(ServerMetadata {
        issuer: config.issuer.clone(),
        token_endpoint: format!("{base}/token"),
        revocation_endpoint: format!("{base}/revoke"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        grant_types_supported: strings(&["password", "refresh_token"]),
        response_types_supported: Vec::new(),
        scopes_supported: super::docs::SCOPES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect(),
        token_endpoint_auth_methods_supported: auth_methods.clone(),
        revocation_endpoint_auth_methods_supported: auth_methods,
        access_token_signing_alg_values_supported: config
            .keys
            .algorithms()
            .into_iter()
            .map(|alg| format!("{alg:?}"))
            .collect(),
    })
}
