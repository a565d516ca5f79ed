//! A separate axum application protected by Gatehouse in a few lines.
//!
//! It shares the signing secret, issuer and audience with a running
//! Gatehouse server, which issues the tokens:
//!
//! ```sh
//! cargo run --release -- demo                       # terminal 1: the token server
//! SECRET_KEY_ENV=$(grep ^SECRET_KEY_ENV .env | cut -d= -f2) \
//!   cargo run --example protected_app               # terminal 2: this app on :9000
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9000/hello
//! ```

use axum::{Router, routing::get};
use gatehouse::auth::{AuthUser, Authenticator};

/// Only callers with a valid Gatehouse token get here.
async fn hello(user: AuthUser) -> String {
    format!(
        "hello, {} (scopes: {})\n",
        user.username(),
        user.claims().scope
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("SECRET_KEY_ENV")?;
    let issuer = std::env::var("GATEHOUSE_ISSUER").unwrap_or("http://127.0.0.1:8000".into());
    let auth = Authenticator::hs256(&secret, &issuer, "gatehouse")?;

    let app = Router::new().route("/hello", get(hello)).with_state(auth);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
