//! A resource server that trusts Gatehouse tokens knowing only the JWKS URL:
//! no database, no secret. Gatehouse must sign with an asymmetric key.
//!
//! ```sh
//! cargo run --release -- gen-key --alg EdDSA --out keys      # prints the key path
//! GATEHOUSE_SIGNING_KEY=keys/<kid>.private.pem cargo run --release -- demo
//! cargo run --example resource_server                        # this service on :9001
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:9001/reports
//! ```

use axum::{Router, routing::get};
use gatehouse::auth::{Authenticator, Scoped};

gatehouse::require_scopes!(
    /// Reports are part of the user's own data.
    ReadMe = ["me"]
);

async fn reports(Scoped(user, ..): Scoped<ReadMe>) -> String {
    format!("reports of {}\n", user.username())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("GATEHOUSE_ISSUER").unwrap_or("http://127.0.0.1:8000".into());
    let jwks_url = format!("{issuer}/.well-known/jwks.json");
    // Fetched now, cached, refreshed when a token names a key it has not seen.
    let auth = Authenticator::from_jwks(&jwks_url, &issuer, "gatehouse").await?;

    let app = Router::new()
        .route("/reports", get(reports))
        .with_state(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
    axum::serve(listener, app).await?;
    Ok(())
}
