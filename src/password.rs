//! Password hashing: bcrypt by default, argon2id available, always off the
//! async executor and with bounded concurrency, so a burst of logins cannot
//! starve the requests that only verify tokens.
//!
//! Hashes are stored as modular-crypt (`$2b$…`) or PHC (`$argon2id$…`)
//! strings, so verification can tell the scheme and report when a hash should
//! be upgraded to the configured scheme or cost.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::{PasswordArgs, PasswordScheme};

/// bcrypt uses at most this many bytes of a password.
pub const BCRYPT_MAX_PASSWORD_BYTES: usize = 72;

/// No scheme accepts a longer password (hashing cost must stay bounded).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password cannot be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// The empty password.
    #[error("the password must not be empty")]
    Empty,
    /// Longer than the scheme can use without silently ignoring a part of it.
    #[error("the password is {len} bytes; at most {max} are allowed ({why})")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit.
        max: usize,
        /// The reason for the limit.
        why: &'static str,
    },
}

/// Why hashing did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the waiting line is full.
    #[error("password hashing is at capacity")]
    Overloaded,
    /// The hashing library or the blocking task failed.
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The hash uses another scheme or cost than configured and should be
    /// replaced now that the plain password is at hand.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords on a bounded pool of blocking threads.
///
/// Cloning is cheap; clones share the pool and its limits.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    scheme: PasswordScheme,
    bcrypt_cost: u32,
    /// Hashes running at once.
    workers: Semaphore,
    /// Hashes running or waiting; beyond this, callers are turned away.
    admitted: Semaphore,
    /// A hash of a random password, verified for unknown users so that their
    /// login costs the same time as a wrong password.
    dummy: OnceCell<String>,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("scheme", &self.inner.scheme)
            .field("bcrypt_cost", &self.inner.bcrypt_cost)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// A hasher with `workers` concurrent hashes and up to `queue` more waiting.
    pub fn new(settings: &PasswordArgs, workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            inner: Arc::new(Inner {
                scheme: settings.password_scheme,
                bcrypt_cost: settings.bcrypt_cost,
                workers: Semaphore::new(workers),
                admitted: Semaphore::new(workers + queue),
                dummy: OnceCell::new(),
            }),
        }
    }

    /// Checks that `password` can be hashed by the configured scheme without
    /// losing any of it.
    ///
    /// # Errors
    /// Empty, or longer than the scheme uses (72 bytes for bcrypt).
    pub fn check_policy(&self, password: &str) -> Result<(), PasswordPolicyError> {
        let len = password.len();
        if len == 0 {
            return Err(PasswordPolicyError::Empty);
        }
        let (max, why) = match self.inner.scheme {
            PasswordScheme::Bcrypt => (
                BCRYPT_MAX_PASSWORD_BYTES,
                "bcrypt ignores everything past 72 bytes",
            ),
            PasswordScheme::Argon2id => (MAX_PASSWORD_BYTES, "to keep hashing cost bounded"),
        };
        if len > max {
            return Err(PasswordPolicyError::TooLong { len, max, why });
        }
        Ok(())
    }

    /// Hashes a password with the configured scheme.
    ///
    /// # Errors
    /// [`HashError::Overloaded`] when the queue is full; the policy is not
    /// checked here (call [`Passwords::check_policy`] first).
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let scheme = self.inner.scheme;
        let cost = self.inner.bcrypt_cost;
        let password = password.to_owned();
        self.run(move || hash_blocking(scheme, cost, &password))
            .await?
    }

    /// Verifies `password` against `stored`, or against a dummy hash of the
    /// same cost when there is no stored hash (unknown user), so both cases
    /// take the same time. Never matches when `stored` is `None`.
    ///
    /// # Errors
    /// [`HashError::Overloaded`] when the queue is full.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, HashError> {
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash().await?.clone(), false),
        };
        let password = password.to_owned();
        let scheme = self.inner.scheme;
        let cost = self.inner.bcrypt_cost;
        let matches = self
            .run(move || verify_blocking(&password, &hash).map(|ok| (ok, hash)))
            .await??;
        let (matches, hash) = matches;
        Ok(Verification {
            matches: matches && real,
            needs_rehash: real && matches && needs_rehash(scheme, cost, &hash),
        })
    }

    async fn dummy_hash(&self) -> Result<&String, HashError> {
        self.inner
            .dummy
            .get_or_try_init(|| async {
                let scheme = self.inner.scheme;
                let cost = self.inner.bcrypt_cost;
                let random = crate::config::generate_secret();
                self.run_unqueued(move || hash_blocking(scheme, cost, random.expose()))
                    .await?
            })
            .await
    }

    /// Computes the dummy hash ahead of the first unknown-user login, without
    /// delaying start-up.
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.dummy_hash().await {
                tracing::warn!(error = %e, "could not precompute the dummy password hash");
            }
        });
    }

    /// Runs `job` on a blocking thread once a worker is free, or fails at once
    /// with [`HashError::Overloaded`] if too many are already waiting.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _admitted = self
            .inner
            .admitted
            .try_acquire()
            .map_err(|_| HashError::Overloaded)?;
        self.run_unqueued(job).await
    }

    async fn run_unqueued<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _worker = self
            .inner
            .workers
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

fn hash_blocking(scheme: PasswordScheme, cost: u32, password: &str) -> Result<String, HashError> {
    match scheme {
        PasswordScheme::Bcrypt => {
            bcrypt::hash(password, cost).map_err(|e| HashError::Failed(e.to_string()))
        }
        PasswordScheme::Argon2id => argon2::Argon2::default()
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .map_err(|e| HashError::Failed(e.to_string())),
    }
}

/// Checks a password against a bcrypt or argon2 hash string.
///
/// A bcrypt hash never matches a password longer than 72 bytes: bcrypt would
/// compare only the first 72, so the work is done (for equal timing) and the
/// answer is no.
fn verify_blocking(password: &str, hash: &str) -> Result<bool, HashError> {
    if hash.starts_with("$2") {
        let bytes = password.as_bytes();
        let used = &bytes[..bytes.len().min(BCRYPT_MAX_PASSWORD_BYTES)];
        let matches = bcrypt::verify(used, hash).map_err(|e| HashError::Failed(e.to_string()))?;
        Ok(matches && bytes.len() <= BCRYPT_MAX_PASSWORD_BYTES)
    } else if hash.starts_with("$argon2") {
        let parsed = PasswordHash::new(hash).map_err(|e| HashError::Failed(e.to_string()))?;
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        Ok(argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    } else {
        Err(HashError::Failed(
            "unrecognised password hash format".to_owned(),
        ))
    }
}

/// Whether `hash` differs from what the configured scheme would produce now.
fn needs_rehash(scheme: PasswordScheme, cost: u32, hash: &str) -> bool {
    match scheme {
        PasswordScheme::Bcrypt => bcrypt_cost_of(hash) != Some(cost),
        PasswordScheme::Argon2id => match PasswordHash::new(hash) {
            Ok(parsed) => {
                let wanted = argon2::Params::default();
                parsed.algorithm.as_str() != "argon2id"
                    || argon2::Params::try_from(&parsed).map_or(true, |p| {
                        p.m_cost() != wanted.m_cost()
                            || p.t_cost() != wanted.t_cost()
                            || p.p_cost() != wanted.p_cost()
                    })
            }
            Err(_) => true,
        },
    }
}

fn bcrypt_cost_of(hash: &str) -> Option<u32> {
    let mut parts = hash.split('$').skip(1);
    let version = parts.next()?;
    if !version.starts_with('2') {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(scheme: PasswordScheme) -> Passwords {
        let settings = PasswordArgs {
            bcrypt_cost: 4,
            password_scheme: scheme,
        };
        Passwords::new(&settings, 2, 2)
    }

    #[tokio::test]
    async fn bcrypt_hash_verifies_only_the_right_password() {
        let passwords = hasher(PasswordScheme::Bcrypt);
        let hash = passwords.hash("correct horse").await.unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        let ok = passwords
            .verify("correct horse", Some(&hash))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = passwords
            .verify("correct horsf", Some(&hash))
            .await
            .unwrap();
        assert!(!wrong.matches);
    }

    #[tokio::test]
    async fn unknown_user_never_matches_even_the_dummy_password() {
        let passwords = hasher(PasswordScheme::Bcrypt);
        let result = passwords.verify("anything", None).await.unwrap();
        assert!(!result.matches);
    }

    #[tokio::test]
    async fn a_password_longer_than_72_bytes_never_matches_by_truncation() {
        let passwords = hasher(PasswordScheme::Bcrypt);
        let first72 = "a".repeat(72);
        let hash = passwords.hash(&first72).await.unwrap();
        assert!(
            passwords
                .verify(&first72, Some(&hash))
                .await
                .unwrap()
                .matches
        );
        let longer = format!("{first72}tail");
        assert!(
            !passwords
                .verify(&longer, Some(&hash))
                .await
                .unwrap()
                .matches
        );
    }

    #[test]
    fn policy_refuses_empty_and_over_long_passwords() {
        let passwords = hasher(PasswordScheme::Bcrypt);
        assert_eq!(passwords.check_policy(""), Err(PasswordPolicyError::Empty));
        assert!(passwords.check_policy(&"é".repeat(36)).is_ok());
        let err = passwords.check_policy(&"é".repeat(37)).unwrap_err();
        assert!(err.to_string().contains("74 bytes"), "{err}");
        let argon = hasher(PasswordScheme::Argon2id);
        assert!(argon.check_policy(&"a".repeat(500)).is_ok());
        assert!(argon.check_policy(&"a".repeat(1025)).is_err());
    }

    #[tokio::test]
    async fn argon2_hashes_verify_and_bcrypt_hashes_are_flagged_for_upgrade() {
        let argon = hasher(PasswordScheme::Argon2id);
        let hash = argon.hash("pw").await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let ok = argon.verify("pw", Some(&hash)).await.unwrap();
        assert!(ok.matches && !ok.needs_rehash);

        let bcrypt_hash = hasher(PasswordScheme::Bcrypt).hash("pw").await.unwrap();
        let old = argon.verify("pw", Some(&bcrypt_hash)).await.unwrap();
        assert!(old.matches && old.needs_rehash);
    }

    #[tokio::test]
    async fn a_changed_bcrypt_cost_asks_for_a_rehash() {
        let old = hasher(PasswordScheme::Bcrypt).hash("pw").await.unwrap();
        let settings = PasswordArgs {
            bcrypt_cost: 5,
            password_scheme: PasswordScheme::Bcrypt,
        };
        let result = Passwords::new(&settings, 1, 0)
            .verify("pw", Some(&old))
            .await
            .unwrap();
        assert!(result.matches && result.needs_rehash);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let settings = PasswordArgs {
            bcrypt_cost: 4,
            password_scheme: PasswordScheme::Bcrypt,
        };
        let passwords = Passwords::new(&settings, 1, 0);
        let hold = passwords.inner.admitted.try_acquire().unwrap();
        assert!(matches!(
            passwords.hash("pw").await,
            Err(HashError::Overloaded)
        ));
        drop(hold);
        assert!(passwords.hash("pw").await.is_ok());
    }
}
