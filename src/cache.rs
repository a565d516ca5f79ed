//! The authentication cache: what a protected request needs to know about
//! its token (that it verified, that its user exists, is enabled and is still
//! at the token's generation, and that it was not revoked), kept for a short
//! time so that the hot path does no database work and, for a token it has
//! seen, no signature or JSON work either.
//!
//! Verified tokens are remembered only after they passed every check, and
//! found again only by the whole token, compared in full without an early
//! exit; their times (`exp`, `nbf`, `iat`) are checked again on every use.
//! Failures are not remembered.
//!
//! # How stale an answer can be
//!
//! - A change made through this process (through the [`Store`] the cache
//!   listens to, or any clone of it: the token endpoint, `/revoke`, the
//!   account operations) is seen at once: the store tells the cache, which
//!   drops the user's snapshot or records the revoked `jti`.
//! - A change made elsewhere (another instance on the same database, or
//!   `gatehouse user …` in another process) is seen within `max_age`: a
//!   snapshot older than that is never used. The default is one second. The
//!   same bound holds for a verified token whose key was removed from a
//!   remote key set.
//! - A snapshot is never used for a token issued in the second it was read
//!   or later, so a token newer than the snapshot (a login after the user
//!   was enabled or re-created elsewhere) is never judged on older facts.
//!
//! A read from the database that overlaps a local change is used for the
//! request that made it but not kept: the cache counts local changes
//! ([`Ticket`]) and keeps a read only if none happened while it ran.
//! Revocations are final, so a recorded revocation is never replaced by an
//! older "not revoked" read.
//!
//! [`Store`]: crate::store::Store

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::store::ChangeListener;
use crate::token::AccessClaims;
use crate::users::User;

/// How long a snapshot may be used unless configured otherwise.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);

/// The longest `max_age` the server accepts: the bound its documentation
/// promises for changes made by another process.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(1);

/// Entries kept before the first sweep of expired ones.
const FIRST_SWEEP: usize = 1024;

/// Verified tokens, and users and token revocations as last read from the
/// store.
pub struct AuthCache {
    max_age: Duration,
    /// Keyed by [`AuthCache::token_key`].
    verified: RwLock<Table<u64, VerifiedToken>>,
    token_hasher: RandomState,
    users: RwLock<Table<String, UserSnapshot>>,
    tokens: RwLock<Table<String, TokenStatus>>,
    /// Local user changes so far; see [`Ticket`].
    changes: AtomicU64,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthCache")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// A map that sweeps out expired entries when it has doubled since the last
/// sweep, so it stays proportional to the users and tokens in use.
struct Table<K, V> {
    entries: HashMap<K, V>,
    sweep_at: usize,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            sweep_at: FIRST_SWEEP,
        }
    }
}

impl<K: Hash + Eq, V> Table<K, V> {
    fn insert(&mut self, key: K, value: V, live: impl Fn(&V) -> bool) {
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, v| live(v));
            self.sweep_at = (self.entries.len() * 2).max(FIRST_SWEEP);
        }
        self.entries.insert(key, value);
    }
}

/// The claims of a token that passed verification at `verified_at`.
struct VerifiedToken {
    token: Box<str>,
    claims: Arc<AccessClaims>,
    verified_at: Instant,
}

/// Whether `a` and `b` are equal, looking at every byte whatever the answer.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |differ, (x, y)| differ | (x ^ y))
            == 0
}

/// A user (or the fact that there is none) as read at a given time.
#[derive(Clone)]
struct UserSnapshot {
    user: Option<Arc<User>>,
    read_at: Instant,
    /// The wall-clock second the read started, to compare with `iat`.
    read_at_unix: i64,
}

/// Whether a token is revoked.
#[derive(Clone, Copy)]
enum TokenStatus {
    /// Not revoked as of this time.
    Live(Instant),
    /// Revoked; kept until the token expires (seconds since the epoch).
    Revoked(i64),
}

/// Taken before reading the store; the read may be kept only if no local
/// change happened since (a change that the read may have missed).
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

impl AuthCache {
    /// A cache whose snapshots are used for at most `max_age`; zero turns
    /// it off (every request reads the store).
    pub fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            verified: RwLock::default(),
            token_hasher: RandomState::new(),
            users: RwLock::default(),
            tokens: RwLock::default(),
            changes: AtomicU64::new(0),
        }
    }

    /// How long a snapshot may be used.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    fn fresh(&self, read_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(read_at) < self.max_age
    }

    /// Where `token` is filed: a hash, keyed for this process, of its last
    /// 32 bytes (which lie in the signature, so differ between tokens). It
    /// only spreads tokens: a lookup compares the whole token.
    fn token_key(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        self.token_hasher
            .hash_one(&bytes[bytes.len().saturating_sub(32)..])
    }

    /// The claims of `token`, if it passed verification less than
    /// `max_age` before `now`. Its times are not checked here.
    pub fn verified(&self, token: &str, now: Instant) -> Option<Arc<AccessClaims>> {
        let key = self.token_key(token);
        let verified = self.verified.read().unwrap_or_else(PoisonError::into_inner);
        let entry = verified.entries.get(&key)?;
        (self.fresh(entry.verified_at, now) && same_token(&entry.token, token))
            .then(|| entry.claims.clone())
    }

    /// Remembers that `token` passed verification at `now`.
    pub fn keep_verified(&self, token: &str, claims: Arc<AccessClaims>, now: Instant) {
        if self.max_age.is_zero() {
            return;
        }
        let key = self.token_key(token);
        let entry = VerifiedToken {
            token: token.into(),
            claims,
            verified_at: now,
        };
        self.verified
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, entry, |e| self.fresh(e.verified_at, now));
    }

    /// The user named `username` (`Some(None)`: there is none) if a snapshot
    /// usable at `now` for a token issued at `issued_at` is at hand.
    pub fn user(&self, username: &str, issued_at: i64, now: Instant) -> Option<Option<Arc<User>>> {
        let users = self.users.read().unwrap_or_else(PoisonError::into_inner);
        let snapshot = users.entries.get(username)?;
        (self.fresh(snapshot.read_at, now) && issued_at < snapshot.read_at_unix)
            .then(|| snapshot.user.clone())
    }

    /// To take before reading a user from the store.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.changes.load(Ordering::SeqCst))
    }

    /// Keeps what a read that started at `read_at` (`read_at_unix` on the
    /// wall clock), after `ticket` was taken, found of `username`.
    pub fn keep_user(
        &self,
        username: &str,
        user: Option<Arc<User>>,
        ticket: Ticket,
        read_at: Instant,
        read_at_unix: i64,
    ) {
        if self.max_age.is_zero() {
            return;
        }
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `user_changed` also takes, so a change
        // either comes first and is seen here, or comes after and drops this.
        if self.changes.load(Ordering::SeqCst) != ticket.0 {
            return;
        }
        let snapshot = UserSnapshot {
            user,
            read_at,
            read_at_unix,
        };
        users.insert(username.to_owned(), snapshot, |s| {
            self.fresh(s.read_at, read_at)
        });
    }

    /// Whether the token `jti` is revoked, if known at `now`.
    pub fn token_revoked(&self, jti: &str, now: Instant) -> Option<bool> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        match tokens.entries.get(jti)? {
            TokenStatus::Revoked(_) => Some(true),
            TokenStatus::Live(read_at) => self.fresh(*read_at, now).then_some(false),
        }
    }

    /// Keeps what a read that started at `read_at` found of the token `jti`,
    /// which expires at `expires_at`.
    pub fn keep_token(&self, jti: &str, revoked: bool, expires_at: i64, read_at: Instant) {
        if self.max_age.is_zero() {
            return;
        }
        let status = if revoked {
            TokenStatus::Revoked(expires_at)
        } else {
            TokenStatus::Live(read_at)
        };
        self.keep_token_status(jti, status);
    }

    fn keep_token_status(&self, jti: &str, status: TokenStatus) {
        let now_unix = crate::token::now();
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if let (Some(TokenStatus::Revoked(_)), TokenStatus::Live(_)) =
            (tokens.entries.get(jti), status)
        {
            // A revocation is final; this read started before it.
            return;
        }
        let now = Instant::now();
        tokens.insert(jti.to_owned(), status, |s| match s {
            TokenStatus::Live(read_at) => self.fresh(*read_at, now),
            TokenStatus::Revoked(expires_at) => *expires_at > now_unix,
        });
    }
}

impl ChangeListener for AuthCache {
    fn user_changed(&self, username: &str) {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        self.changes.fetch_add(1, Ordering::SeqCst);
        users.entries.remove(username);
    }

    fn access_token_revoked(&self, jti: &str, expires_at: i64) {
        if !self.max_age.is_zero() {
            self.keep_token_status(jti, TokenStatus::Revoked(expires_at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, version: i64) -> Arc<User> {
        Arc::new(User {
            id: 1,
            username: name.to_owned(),
            email: None,
            full_name: None,
            password_hash: String::new(),
            disabled: false,
            scopes: vec!["me".to_owned()],
            token_version: version,
            created_at: chrono::DateTime::default(),
            updated_at: chrono::DateTime::default(),
        })
    }

    const READ_SECOND: i64 = 1_800_000_000;
    const ISSUED_BEFORE: i64 = READ_SECOND - 10;

    fn warm(cache: &AuthCache, t0: Instant) {
        let ticket = cache.ticket();
        cache.keep_user("alice", Some(user("alice", 1)), ticket, t0, READ_SECOND);
    }

    #[test]
    fn a_snapshot_is_used_until_it_is_max_age_old() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        warm(&cache, t0);
        let seen = cache.user("alice", ISSUED_BEFORE, t0 + Duration::from_millis(999));
        assert_eq!(seen.flatten().map(|u| u.token_version), Some(1));
        assert!(
            cache
                .user("alice", ISSUED_BEFORE, t0 + Duration::from_secs(1))
                .is_none(),
            "a snapshot of exactly max_age is not used"
        );
        assert!(cache.user("bob", ISSUED_BEFORE, t0).is_none());
    }

    #[test]
    fn a_snapshot_is_not_used_for_a_token_issued_in_its_second_or_later() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        warm(&cache, t0);
        assert!(cache.user("alice", READ_SECOND - 1, t0).is_some());
        assert!(cache.user("alice", READ_SECOND, t0).is_none());
        assert!(cache.user("alice", READ_SECOND + 1, t0).is_none());
    }

    #[test]
    fn a_missing_user_is_remembered_too() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        cache.keep_user("ghost", None, cache.ticket(), t0, READ_SECOND);
        assert_eq!(cache.user("ghost", ISSUED_BEFORE, t0), Some(None));
    }

    #[test]
    fn a_local_change_drops_the_snapshot_at_once() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        warm(&cache, t0);
        cache.user_changed("alice");
        assert!(cache.user("alice", ISSUED_BEFORE, t0).is_none());
    }

    #[test]
    fn a_read_that_overlaps_a_local_change_is_not_kept() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let ticket = cache.ticket();
        // The read saw the user before a change committed by this process...
        cache.user_changed("alice");
        // ...and finishes after the change was told.
        cache.keep_user("alice", Some(user("alice", 1)), ticket, t0, READ_SECOND);
        assert!(cache.user("alice", ISSUED_BEFORE, t0).is_none());
        // A read that starts after the change is kept.
        warm(&cache, t0);
        assert!(cache.user("alice", ISSUED_BEFORE, t0).is_some());
    }

    #[test]
    fn a_revocation_is_final_and_live_tokens_age_out() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let exp = crate::token::now() + 60;
        cache.keep_token("live", false, exp, t0);
        assert_eq!(cache.token_revoked("live", t0), Some(false));
        assert_eq!(
            cache.token_revoked("live", t0 + Duration::from_secs(1)),
            None
        );
        cache.access_token_revoked("live", exp);
        assert_eq!(cache.token_revoked("live", t0), Some(true));
        // An older "not revoked" read finishing late changes nothing.
        cache.keep_token("live", false, exp, t0);
        assert_eq!(
            cache.token_revoked("live", t0 + Duration::from_secs(3600)),
            Some(true)
        );
    }

    #[test]
    fn a_zero_max_age_keeps_nothing() {
        let cache = AuthCache::new(Duration::ZERO);
        let t0 = Instant::now();
        warm(&cache, t0);
        assert!(cache.user("alice", ISSUED_BEFORE, t0).is_none());
        cache.keep_token("j", false, crate::token::now() + 60, t0);
        assert_eq!(cache.token_revoked("j", t0), None);
    }

    #[test]
    fn a_verified_token_is_remembered_by_all_of_it_for_max_age() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let claims = Arc::new(AccessClaims {
            iss: "i".into(),
            sub: "alice".into(),
            aud: "a".into(),
            exp: READ_SECOND + 60,
            iat: READ_SECOND,
            nbf: None,
            jti: "j".into(),
            scope: "me".into(),
            client_id: "c".into(),
            ver: Some(1),
        });
        cache.keep_verified("h.p.s", claims, t0);
        assert!(cache.verified("h.p.s", t0).is_some());
        for other in ["h.p.t", "h.q.s", "h.p.s ", "h.p", ""] {
            assert!(cache.verified(other, t0).is_none(), "{other}");
        }
        assert!(
            cache
                .verified("h.p.s", t0 + Duration::from_secs(1))
                .is_none()
        );
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd") && !same_token("abc", "ab"));
    }

    #[test]
    fn expired_entries_are_swept_as_the_table_grows() {
        let cache = AuthCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let exp = crate::token::now() + 60;
        for i in 0..FIRST_SWEEP {
            cache.keep_token(&format!("old-{i}"), false, exp, t0 - Duration::from_secs(5));
        }
        cache.keep_token("new", false, exp, t0);
        let tokens = cache.tokens.read().unwrap();
        assert_eq!(tokens.entries.len(), 1, "only the fresh entry is left");
    }
}
