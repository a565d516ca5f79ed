//! HTTP: each area has its own module with a `router()`; this module merges
//! them, adds the layers every route shares, and serves.

mod discovery;
mod docs;
mod health;
mod limits;
mod revoke;
mod token;
mod users;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::error::ApiError;

pub use discovery::ServerMetadata;
pub use docs::ApiDoc;
pub use token::{DEFAULT_CLIENT_ID, GrantType, TokenForm, TokenRequest, TokenResponse};
pub use users::{Item, UserView};

pub use limits::{MAX_BODY_BYTES, MAX_HEADER_BYTES, REQUEST_TIMEOUT};

/// Every documented route, with the OpenAPI document built from the same
/// registrations (so the spec cannot drift from the routes).
pub fn api() -> (Router<AppState>, OpenApi) {
    let (router, mut spec) = OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .merge(token::router())
        .merge(revoke::router())
        .merge(users::router())
        .merge(discovery::router())
        .merge(health::router())
        .split_for_parts();
    docs::describe_form_extras(&mut spec);
    (router, spec)
}

/// The OpenAPI document alone.
pub fn openapi() -> OpenApi {
    api().1
}

/// The whole application: documented routes, their undocumented aliases,
/// Swagger UI, and the shared layers.
pub fn router(state: AppState) -> Router {
    let (routes, spec) = api();
    routes
        .merge(users::aliases())
        .merge(docs::router(spec))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state)
        // Layers run outermost last: sensitive-header marking, tracing, the
        // response headers every answer carries, the limits, panic catching.
        .layer(CatchPanicLayer::custom(|_| panic_response()))
        .layer(axum::middleware::from_fn(limits::enforce))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
}

fn panic_response() -> Response {
    ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
}

/// Serves `router` on an already bound listener until `shutdown` completes,
/// then finishes the requests in flight.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
