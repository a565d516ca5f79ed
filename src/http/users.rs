//! The tutorial's business API, protected through the library exactly as an
//! outside application would protect its own routes: by taking [`AuthUser`].

use axum::Json;
use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::Scoped;
use crate::error::{ApiError, BearerErrorBody, ErrorBody};
use crate::users::User;

crate::require_scopes!(
    /// What `/users/me` needs.
    pub ReadMe = ["me"]
);
crate::require_scopes!(
    /// What `/users/me/items` needs.
    pub ReadItems = ["me", "items"]
);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_users_me))
        .routes(routes!(read_own_items))
}

/// The same handlers with a trailing slash: they answer the same, without
/// a redirect (a redirect would drop the `Authorization` header in some
/// clients). Not listed in the OpenAPI document.
pub(super) fn aliases() -> Router<AppState> {
    Router::new()
        .route("/users/me/", get(read_users_me))
        .route("/users/me/items/", get(read_own_items))
}

/// The current user as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    /// Login name.
    #[schema(example = "alice")]
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Whether the account is disabled (always false for a caller who got in).
    pub disabled: bool,
}

/// One item owned by the current user.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Item id.
    #[schema(example = "Foo")]
    pub item_id: String,
    /// The owner's username.
    #[schema(example = "alice")]
    pub owner: String,
}

/// [`UserView`]'s JSON, written straight from the stored user without
/// copying its strings (this is the answer of every `/users/me`).
#[derive(Serialize)]
struct UserViewOf<'a> {
    username: &'a str,
    email: Option<&'a str>,
    full_name: Option<&'a str>,
    disabled: bool,
}

impl<'a> From<&'a User> for UserViewOf<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            username: &user.username,
            email: user.email.as_deref(),
            full_name: user.full_name.as_deref(),
            disabled: user.disabled,
        }
    }
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            email: user.email.clone(),
            full_name: user.full_name.clone(),
            disabled: user.disabled,
        }
    }
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    security(("OAuth2PasswordBearer" = ["me"])),
    responses(
        (status = 200, description = "The current user", body = UserView),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = BearerErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 403, description = "The token lacks the `me` scope", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 503, description = "The user database is unavailable", body = ErrorBody),
    )
)]
async fn read_users_me(Scoped(user, ..): Scoped<ReadMe>) -> Result<Response, ApiError> {
    // The server's authenticator is built over the store (`AppState::new`),
    // so every token it accepts comes with the account it read.
    let account = user.account().ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the authenticator was built without the user store"
        ))
    })?;
    Ok(Json(UserViewOf::from(account)).into_response())
}

/// The signed-in user's items.
#[utoipa::path(
    get,
    path = "/users/me/items",
    tag = "users",
    security(("OAuth2PasswordBearer" = ["me", "items"])),
    responses(
        (status = 200, description = "The current user's items", body = [Item]),
        (status = 401, description = "Missing, invalid, expired or revoked token", body = BearerErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 403, description = "The token lacks the `me` or `items` scope", body = ErrorBody,
         headers(("WWW-Authenticate" = String))),
        (status = 503, description = "The user database is unavailable", body = ErrorBody),
    )
)]
async fn read_own_items(Scoped(user, ..): Scoped<ReadItems>) -> Json<Vec<Item>> {
    Json(vec![Item {
        item_id: "Foo".to_owned(),
        owner: user.username().to_owned(),
    }])
}
