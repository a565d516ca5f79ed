//! Storage: the [`Store`] exposes domain operations and hides SQL. The
//! engine is chosen by the URL scheme; each engine lives in its own module
//! with its own embedded migrations, and both behave the same.
//!
//! Every operation except [`Store::migrate`] is bounded in time: a pooled
//! connection must be had within the connect timeout and the statement must
//! finish within the statement timeout, or the operation fails with
//! [`StoreError::Unavailable`] (which the HTTP layer answers with 503).
//!
//! Changes made through a store are told to its [`ChangeListener`]s (see
//! [`Store::subscribe`]), whatever the engine.

mod changes;
mod postgres;
mod sqlite;

use std::future::Future;
use std::sync::Weak;
use std::time::Duration;

use rand::Rng;

use crate::users::{NewUser, User};

pub use changes::ChangeListener;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// No such row.
    #[error("no such user")]
    NotFound,
    /// The database cannot be reached right now.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The URL is not one this build understands.
    #[error("{0}")]
    BadUrl(String),
    /// Anything else the database said.
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    /// Maps a driver error, telling apart the cases callers act on.
    pub(crate) fn from_sqlx(error: sqlx::Error, what: &str) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(what.to_owned())
            }
            sqlx::Error::Database(db)
                if db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some_and(|pg| is_unavailable(pg.code())) =>
            {
                Self::Unavailable(error.to_string())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error.to_string()),
            _ => Self::Other(error.to_string()),
        }
    }
}

/// A refresh token to store (its hash only).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NewRefreshToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// The login this token descends from.
    pub family_id: String,
    /// Owner.
    pub user_id: i64,
    /// Space-separated scopes the family was granted.
    pub scope: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user's token generation when issued.
    pub token_version: i64,
    /// When it was issued (seconds since the epoch).
    pub created_at: i64,
    /// When it expires.
    pub expires_at: i64,
    /// When its family expires, whatever the rotations.
    pub family_expires_at: i64,
}

/// A stored refresh token.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshToken {
    /// Row id.
    pub id: i64,
    /// What was stored when it was issued.
    #[sqlx(flatten)]
    pub issued: NewRefreshToken,
    /// When it was spent.
    pub used_at: Option<i64>,
    /// When its family was revoked.
    pub revoked_at: Option<i64>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was live and is now spent; the caller may issue its successor.
    Spent(RefreshToken),
    /// It had been spent before: its whole family is now revoked.
    Reused {
        /// The revoked family.
        family_id: String,
        /// Its owner.
        user_id: i64,
    },
    /// Unknown, expired, or revoked.
    Invalid,
}

/// Whether a PostgreSQL SQLSTATE says the database cannot serve right now,
/// as opposed to refusing this statement: a lost connection (class 08), a
/// server shutting down or starting up (57P01-57P03), too many connections
/// (53300), or a statement cancelled by `statement_timeout` (57014).
fn is_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08")
        || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300" | "57014")
}

/// Connection settings shared by the engines.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections held open by this process.
    pub max_connections: u32,
    /// How long to wait for a connection: at start-up for the first one,
    /// and on every operation for one from the pool (opening a new one if
    /// needed). Also SQLite's busy timeout.
    pub connect_timeout: Duration,
    /// How long one statement may run. PostgreSQL enforces it on the server
    /// (`statement_timeout`); on both engines an operation is also abandoned
    /// when connect timeout plus statement timeout have passed.
    pub statement_timeout: Duration,
}

impl ConnectOptions {
    /// The longest any operation other than migration may take.
    fn operation_deadline(&self) -> Duration {
        self.connect_timeout + self.statement_timeout
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// The user database. Cloning is cheap: clones share the connections and
/// the change listeners.
#[derive(Debug, Clone)]
pub struct Store {
    engine: Engine,
    listeners: changes::SharedListeners,
}

/// The database engine behind a [`Store`].
#[derive(Debug, Clone)]
enum Engine {
    /// Embedded SQLite (the default).
    Sqlite(SqliteStore),
    /// PostgreSQL, for several instances sharing one database.
    Postgres(PgStore),
}

/// Runs `$call` on whichever engine `$self` is, within the engine's
/// operation deadline (so a database that stops answering yields
/// [`StoreError::Unavailable`], never a hang).
macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match &$self.engine {
            Engine::Sqlite($store) => within($store.deadline(), $call).await,
            Engine::Postgres($store) => within($store.deadline(), $call).await,
        }
    };
}

/// `operation`, unless it takes longer than `deadline`.
async fn within<T>(
    deadline: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, operation)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "no answer within {}ms",
                deadline.as_millis()
            )))
        })
}

impl Store {
    /// Connects to the database named by `url`: `sqlite://PATH` (the file is
    /// created if it does not exist) or `postgres://…` / `postgresql://…`.
    /// Does not migrate.
    ///
    /// # Errors
    /// [`StoreError::BadUrl`] for an unknown scheme or a malformed URL;
    /// [`StoreError::Unavailable`] when no connection could be made within
    /// the connect timeout, with the cause.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::over(Engine::Sqlite(
                SqliteStore::connect(url, options).await?,
            )))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::over(Engine::Postgres(
                PgStore::connect(url, options).await?,
            )))
        } else {
            Err(StoreError::BadUrl(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }

    fn over(engine: Engine) -> Self {
        Self {
            engine,
            listeners: changes::SharedListeners::default(),
        }
    }

    /// Tells `listener` of every change made through this store or any of
    /// its clones, for as long as the listener lives. Changes made by other
    /// processes are not seen.
    pub fn subscribe(&self, listener: Weak<dyn ChangeListener>) {
        self.listeners.add(listener);
    }

    /// The engine's name, for messages and logs.
    pub fn engine(&self) -> &'static str {
        match &self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// Applies the embedded migrations that are not applied yet. Safe to run
    /// from several processes at once on PostgreSQL: the migrator holds an
    /// advisory lock, so one applies and the others then find nothing to do.
    /// Not bounded by the operation deadline (a migration may be slow).
    ///
    /// # Errors
    /// A migration failed or the database is unreachable.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.migrate().await,
            Engine::Postgres(s) => s.migrate().await,
        }
    }

    /// Answers when the database answers (for readiness).
    ///
    /// # Errors
    /// The database does not answer.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping())
    }

    /// Creates a user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the username is taken.
    pub async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let version = first_token_version();
        let result = dispatch!(self, s => s.create_user(user, version));
        self.listeners.user_changed(&user.username);
        result
    }

    /// The user with exactly this username.
    ///
    /// # Errors
    /// The database failed.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user_by_name(username))
    }

    /// Every user, by username.
    ///
    /// # Errors
    /// The database failed.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        dispatch!(self, s => s.list_users())
    }

    /// Enables or disables a user; disabling voids their tokens.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn set_disabled(&self, username: &str, disabled: bool) -> Result<User, StoreError> {
        let result = dispatch!(self, s => s.set_disabled(username, disabled));
        self.listeners.user_changed(username);
        result
    }

    /// Replaces the password hash and voids the user's tokens.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn set_password_hash(&self, username: &str, hash: &str) -> Result<User, StoreError> {
        let result = dispatch!(self, s => s.set_password_hash(username, hash));
        self.listeners.user_changed(username);
        result
    }

    /// Replaces `old` with an upgraded hash of the same password, unless the
    /// hash changed meanwhile. Tokens stay valid. Returns whether it replaced.
    ///
    /// # Errors
    /// The database failed.
    pub async fn upgrade_password_hash(
        &self,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        let result = dispatch!(self, s => s.upgrade_password_hash(username, old, new));
        self.listeners.user_changed(username);
        result
    }

    /// Voids every outstanding token of the user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn bump_token_version(&self, username: &str) -> Result<User, StoreError> {
        let result = dispatch!(self, s => s.bump_token_version(username));
        self.listeners.user_changed(username);
        result
    }

    /// The user with this id.
    ///
    /// # Errors
    /// The database failed.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        dispatch!(self, s => s.user_by_id(id))
    }

    /// Stores a new refresh token.
    ///
    /// # Errors
    /// The database failed (a hash collision is a conflict).
    pub async fn create_refresh_token(&self, token: &NewRefreshToken) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_refresh_token(token))
    }

    /// Spends the refresh token with this hash, atomically: of concurrent
    /// callers with the same token exactly one gets [`Rotation::Spent`].
    /// Presenting a spent token revokes its family ([`Rotation::Reused`]).
    ///
    /// # Errors
    /// The database failed.
    pub async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        dispatch!(self, s => s.spend_refresh_token(token_hash, now))
    }

    /// Revokes the family of the refresh token with this hash. Returns
    /// whether such a token exists.
    ///
    /// # Errors
    /// The database failed.
    pub async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_refresh_family(token_hash, now))
    }

    /// Denies the access token `jti` until `expires_at`, and prunes entries
    /// that have expired.
    ///
    /// # Errors
    /// The database failed.
    pub async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let result = dispatch!(self, s => s.revoke_access_token(jti, expires_at, now));
        self.listeners.access_token_revoked(jti, expires_at);
        result
    }

    /// Whether the access token `jti` was revoked.
    ///
    /// # Errors
    /// The database failed.
    pub async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.is_access_token_revoked(jti))
    }

    /// Deletes refresh tokens whose family has expired and denylist entries
    /// whose token has expired. Returns how many rows went.
    ///
    /// # Errors
    /// The database failed.
    pub async fn prune_expired(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.prune_expired(now))
    }

    /// The latest `locked_until` not before `now` among these throttle keys.
    ///
    /// # Errors
    /// The database failed.
    pub async fn login_locked_until(
        &self,
        keys: [&str; 2],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.login_locked_until(keys, now))
    }

    /// Counts one failed login against `key` and returns the failures in the
    /// current window (a window older than `window_start` starts again at 1).
    ///
    /// # Errors
    /// The database failed.
    pub async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        window_start: i64,
    ) -> Result<i64, StoreError> {
        dispatch!(self, s => s.record_login_failure(key, now, window_start))
    }

    /// Refuses attempts against `key` until `until`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.lock_login(key, until))
    }

    /// Forgets the failures counted against `key`.
    ///
    /// # Errors
    /// The database failed.
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        dispatch!(self, s => s.clear_login_failures(key))
    }

    /// Deletes a user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown user.
    pub async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let result = dispatch!(self, s => s.delete_user(username));
        self.listeners.user_changed(username);
        result
    }
}

/// Joins scopes for storage (space-separated, as in the `scope` claim).
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Splits stored scopes.
pub(crate) fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split_ascii_whitespace().map(str::to_owned).collect()
}

/// Seconds since the epoch to a UTC time (the epoch itself if out of range).
pub(crate) fn from_unix(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// A new account's first token version. Random rather than 0, so that the
/// unexpired tokens of a deleted account never match a new account that takes
/// its name (tokens name their user by username and carry its version). Kept
/// below 2^53 so that JavaScript clients read the `ver` claim exactly.
fn first_token_version() -> i64 {
    rand::thread_rng().gen_range(1..(1_i64 << 53))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_past_its_deadline_is_unavailable() {
        let stuck = within(
            Duration::from_millis(10),
            std::future::pending::<Result<(), StoreError>>(),
        )
        .await;
        assert!(
            matches!(&stuck, Err(StoreError::Unavailable(m)) if m.contains("10ms")),
            "{stuck:?}"
        );
        let quick = within(Duration::from_secs(60), async { Ok(7) }).await;
        assert!(matches!(quick, Ok(7)));
    }

    #[test]
    fn lost_connections_and_shutdowns_are_unavailable_other_errors_are_not() {
        for code in [
            "08006", "08001", "57P01", "57P02", "57P03", "53300", "57014",
        ] {
            assert!(is_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "22001", "40001"] {
            assert!(!is_unavailable(code), "{code}");
        }
    }
}
