//! Brute-force throttling of password logins.
//!
//! Failures are counted in the store (so every instance shares them) under
//! two keys: one account at one client address, and one client address
//! across all accounts. Past a threshold, a key is locked for a backoff that
//! doubles with each further failure. Only the pair is keyed by account, so
//! an attacker guessing from one address cannot lock the real user out from
//! another address. A successful login clears its pair.

use std::net::IpAddr;
use std::time::Duration;

use crate::store::{Store, StoreError};

/// When throttling engages and how hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account from one address before it is locked.
    pub account_failures: i64,
    /// Failures from one address (any accounts) before it is locked.
    pub address_failures: i64,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// The first lock's length; each further failure doubles it.
    pub base_backoff: Duration,
    /// The longest lock.
    pub max_backoff: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_failures: 5,
            address_failures: 50,
            window: Duration::from_secs(15 * 60),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

/// The two counters a login attempt touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKeys {
    pair: String,
    address: String,
}

impl ThrottleKeys {
    /// Keys for `username` from `address`.
    pub fn new(username: &str, address: Option<IpAddr>) -> Self {
        let address = address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        Self {
            // Escaped: a login may name anything, NUL bytes included, and
            // PostgreSQL text cannot hold those.
            pair: format!("pair|{address}|{}", username.escape_debug()),
            address: format!("addr|{address}"),
        }
    }

    /// The account-at-address key.
    pub fn pair(&self) -> &str {
        &self.pair
    }

    /// The address key.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl ThrottlePolicy {
    /// Seconds until an attempt with these keys may be made, if it is locked
    /// (a key is locked while `now <= locked_until`).
    ///
    /// # Errors
    /// The store failed.
    pub async fn locked_for(
        &self,
        store: &Store,
        keys: &ThrottleKeys,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        let until = store
            .login_locked_until([keys.pair(), keys.address()], now)
            .await?;
        // Time is in whole seconds and a lock includes its last second, so
        // a lock of n seconds lasts at least n and the retry is due after it.
        Ok(until.map(|until| u64::try_from(until + 1 - now).unwrap_or(1).max(1)))
    }

    /// Counts a failed attempt and locks the keys whose count passed the
    /// threshold.
    ///
    /// # Errors
    /// The store failed.
    pub async fn record_failure(
        &self,
        store: &Store,
        keys: &ThrottleKeys,
        now: i64,
    ) -> Result<(), StoreError> {
        let window_start = now - seconds(self.window);
        for (key, threshold) in [
            (keys.pair(), self.account_failures),
            (keys.address(), self.address_failures),
        ] {
            let failures = store.record_login_failure(key, now, window_start).await?;
            if let Some(backoff) = self.backoff(failures, threshold) {
                store.lock_login(key, now + backoff).await?;
            }
        }
        Ok(())
    }

    /// Clears the account-at-address counter after a successful login.
    ///
    /// # Errors
    /// The store failed.
    pub async fn record_success(
        &self,
        store: &Store,
        keys: &ThrottleKeys,
    ) -> Result<(), StoreError> {
        store.clear_login_failures(keys.pair()).await
    }

    /// The lock after `failures` failures, in seconds: none below the
    /// threshold, then the base backoff doubling per failure, capped.
    pub fn backoff(&self, failures: i64, threshold: i64) -> Option<i64> {
        if failures < threshold.max(1) {
            return None;
        }
        let doublings = u32::try_from(failures - threshold)
            .unwrap_or(u32::MAX)
            .min(30);
        let backoff = seconds(self.base_backoff)
            .max(1)
            .saturating_mul(1 << doublings);
        Some(backoff.min(seconds(self.max_backoff).max(1)))
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_the_threshold_doubles_and_is_capped() {
        let policy = ThrottlePolicy {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            ..ThrottlePolicy::default()
        };
        let backoffs: Vec<Option<i64>> = (1..=9).map(|n| policy.backoff(n, 3)).collect();
        assert_eq!(
            backoffs,
            [
                None,
                None,
                Some(1),
                Some(2),
                Some(4),
                Some(8),
                Some(16),
                Some(32),
                Some(60)
            ]
        );
        assert_eq!(policy.backoff(i64::MAX, 3), Some(60));
    }

    #[test]
    fn keys_separate_accounts_and_addresses() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let a = ThrottleKeys::new("alice", Some(ip));
        let b = ThrottleKeys::new("bob", Some(ip));
        assert_ne!(a.pair(), b.pair());
        assert_eq!(a.address(), b.address());
        let elsewhere = ThrottleKeys::new("alice", Some("198.51.100.1".parse().unwrap()));
        assert_ne!(a.pair(), elsewhere.pair());
    }
}
