//! What this process changes in the store, told to whoever keeps copies of
//! it (the authentication cache), so a copy never outlives a local change.
//!
//! The hook lives in the [`Store`](super::Store) rather than at the call
//! sites that change users (the token endpoint, `/revoke`, the account
//! operations, the command line, tests that call the store directly): every
//! clone of a store shares one set of listeners, so no path that changes a
//! user through this process can forget to tell the cache. Changes made by
//! another process (another instance, the command line against the same
//! database) are not seen here; caches bound their age for those.

use std::sync::{Arc, RwLock, Weak};

/// Keeps copies of stored facts and must drop them when this process
/// changes the facts.
pub trait ChangeListener: Send + Sync {
    /// The user `username` was created, changed, or deleted.
    fn user_changed(&self, username: &str);

    /// The access token `jti` was revoked; it expires at `expires_at`
    /// (seconds since the epoch).
    fn access_token_revoked(&self, jti: &str, expires_at: i64);
}

/// The listeners of one store and its clones.
#[derive(Default)]
pub(super) struct Listeners {
    listeners: RwLock<Vec<Weak<dyn ChangeListener>>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").finish_non_exhaustive()
    }
}

impl Listeners {
    /// Adds a listener for as long as it lives elsewhere; dropped listeners
    /// are forgotten here.
    pub(super) fn add(&self, listener: Weak<dyn ChangeListener>) {
        let mut listeners = self
            .listeners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(listener);
    }

    fn each(&self, tell: impl Fn(&dyn ChangeListener)) {
        let listeners = self
            .listeners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for listener in listeners.iter().filter_map(Weak::upgrade) {
            tell(listener.as_ref());
        }
    }

    pub(super) fn user_changed(&self, username: &str) {
        self.each(|l| l.user_changed(username));
    }

    pub(super) fn access_token_revoked(&self, jti: &str, expires_at: i64) {
        self.each(|l| l.access_token_revoked(jti, expires_at));
    }
}

/// Shared by a store and its clones.
pub(super) type SharedListeners = Arc<Listeners>;
