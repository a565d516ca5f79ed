//! The server's shared state, built once at start-up from validated settings.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Authenticator;
use crate::config::ServerConfig;
use crate::password::Passwords;
use crate::store::Store;
use crate::token::{TokenIssuer, TokenVerifier};
use crate::users::Accounts;

/// Everything a request handler may need; its parts are reached through
/// [`Deref`] (`state.store`, `state.config`, …).
///
/// One shared allocation: axum clones the state for every request, and a
/// clone is a single reference-count increment.
#[derive(Debug, Clone)]
pub struct AppState {
    parts: Arc<AppParts>,
}

/// The parts of an [`AppState`].
#[derive(Debug)]
pub struct AppParts {
    /// The settings the server runs with.
    pub config: ServerConfig,
    /// The user database.
    pub store: Store,
    /// Password hashing.
    pub passwords: Passwords,
    /// Access token signing.
    pub issuer: TokenIssuer,
    /// Access token checking for protected routes.
    pub auth: Authenticator,
    /// Account operations.
    pub accounts: Accounts,
}

impl AppState {
    /// Builds the state over a connected, migrated store.
    pub fn new(config: ServerConfig, store: Store) -> Self {
        let keys = config.keys.clone();
        let issuer = TokenIssuer::new(
            keys.clone(),
            &config.issuer,
            &config.audience,
            config.access_token_ttl,
        );
        let verifier = TokenVerifier::new(keys, &config.issuer, &config.audience, config.leeway);
        let passwords = Passwords::new(&config.passwords, config.hash_workers, config.hash_queue);
        passwords.warm_up();
        let parts = AppParts {
            auth: Authenticator::with_store_and_max_age(
                verifier,
                store.clone(),
                config.auth_cache_ttl,
            ),
            accounts: Accounts::new(store.clone(), passwords.clone()),
            config,
            store,
            passwords,
            issuer,
        };
        Self {
            parts: Arc::new(parts),
        }
    }
}

impl Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.parts
    }
}

impl AppState {
    /// Prunes expired refresh tokens and denylist entries every ten minutes.
    pub fn spawn_maintenance(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tick.tick().await;
                match store.prune_expired(crate::token::now()).await {
                    Ok(0) => {}
                    Ok(rows) => tracing::debug!(rows, "pruned expired tokens"),
                    Err(error) => tracing::warn!(%error, "could not prune expired tokens"),
                }
            }
        });
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
