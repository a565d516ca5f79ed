//! The PostgreSQL engine, for several Gatehouse instances sharing one
//! database. It mirrors the SQLite engine query for query (same columns,
//! same timestamps as unix seconds, same token-version rules); only the
//! placeholders (`$1`) and a few column types differ.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, FromRow, PgPool};
use tokio::time::Instant;

use super::{
    ConnectOptions, NewRefreshToken, RefreshToken, Rotation, StoreError, from_unix, join_scopes,
    split_scopes,
};
use crate::users::{NewUser, User};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The user columns, as a literal so every query stays a compile-time string.
macro_rules! user_columns {
    () => {
        "id, username, email, full_name, password_hash, disabled, scopes, token_version, \
         created_at, updated_at"
    };
}

/// Users in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    deadline: Duration,
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    username: String,
    email: Option<String>,
    full_name: Option<String>,
    password_hash: String,
    disabled: bool,
    scopes: String,
    token_version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            email: row.email,
            full_name: row.full_name,
            password_hash: row.password_hash,
            disabled: row.disabled,
            scopes: split_scopes(&row.scopes),
            token_version: row.token_version,
            created_at: from_unix(row.created_at),
            updated_at: from_unix(row.updated_at),
        }
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl PgStore {
    /// Opens one connection to prove the database is there (so start-up
    /// fails with the real cause), then a pool that connects on demand.
    pub(super) async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("invalid DATABASE_URL: {e}")))?
            .options([
                // Enforced by the server, so a runaway statement frees its
                // connection even if this process has gone.
                (
                    "statement_timeout",
                    format!("{}ms", options.statement_timeout.as_millis().max(1)),
                ),
                // Notices such as "relation _sqlx_migrations already exists,
                // skipping" at every start are noise in the server's log.
                ("client_min_messages", "warning".to_owned()),
            ]);
        if connect.get_application_name().is_none() {
            connect = connect.application_name("gatehouse");
        }
        first_connection(&connect, options.connect_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .connect_lazy_with(connect);
        Ok(Self {
            pool,
            deadline: options.operation_deadline(),
        })
    }

    pub(super) fn deadline(&self) -> Duration {
        self.deadline
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's PostgreSQL migrator holds `pg_advisory_lock` while it checks
        // and applies, so instances starting together apply each migration once.
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    pub(super) async fn create_user(
        &self,
        user: &NewUser,
        token_version: i64,
    ) -> Result<User, StoreError> {
        let now = now();
        let sql = concat!(
            "INSERT INTO users (username, email, full_name, password_hash, disabled, scopes, \
             token_version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING ",
            user_columns!(),
            ""
        );
        sqlx::query_as::<_, UserRow>(sql)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.full_name)
            .bind(&user.password_hash)
            .bind(user.disabled)
            .bind(join_scopes(&user.scopes))
            .bind(token_version)
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map(User::from)
            .map_err(|e| StoreError::from_sqlx(e, &format!("user {:?}", user.username)))
    }

    pub(super) async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        );
        sqlx::query_as::<_, UserRow>(sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(|e| StoreError::from_sqlx(e, "user"))
    }

    pub(super) async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
        sqlx::query_as::<_, UserRow>(sql)
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(User::from).collect())
            .map_err(|e| StoreError::from_sqlx(e, "user"))
    }

    pub(super) async fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> Result<User, StoreError> {
        // Disabling voids outstanding tokens; enabling does not revive them.
        let sql = concat!(
            "UPDATE users SET disabled = $1, updated_at = $2, \
             token_version = token_version + (CASE WHEN $1 AND NOT disabled THEN 1 ELSE 0 END) \
             WHERE username = $3 RETURNING ",
            user_columns!(),
            ""
        );
        self.update_one(
            sqlx::query_as::<_, UserRow>(sql)
                .bind(disabled)
                .bind(now())
                .bind(username),
        )
        .await
    }

    pub(super) async fn set_password_hash(
        &self,
        username: &str,
        hash: &str,
    ) -> Result<User, StoreError> {
        let sql = concat!(
            "UPDATE users SET password_hash = $1, token_version = token_version + 1, \
             updated_at = $2 WHERE username = $3 RETURNING ",
            user_columns!(),
            ""
        );
        self.update_one(
            sqlx::query_as::<_, UserRow>(sql)
                .bind(hash)
                .bind(now())
                .bind(username),
        )
        .await
    }

    pub(super) async fn upgrade_password_hash(
        &self,
        username: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 \
             WHERE username = $3 AND password_hash = $4",
        )
        .bind(new)
        .bind(now())
        .bind(username)
        .bind(old)
        .execute(&self.pool)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(|e| StoreError::from_sqlx(e, "user"))
    }

    pub(super) async fn bump_token_version(&self, username: &str) -> Result<User, StoreError> {
        let sql = concat!(
            "UPDATE users SET token_version = token_version + 1, updated_at = $1 \
             WHERE username = $2 RETURNING ",
            user_columns!(),
            ""
        );
        self.update_one(sqlx::query_as::<_, UserRow>(sql).bind(now()).bind(username))
            .await
    }

    pub(super) async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        sqlx::query_as::<_, UserRow>(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(User::from))
            .map_err(|e| StoreError::from_sqlx(e, "user"))
    }

    pub(super) async fn create_refresh_token(
        &self,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, scope, client_id, \
             token_version, created_at, expires_at, family_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&token.token_hash)
        .bind(&token.family_id)
        .bind(token.user_id)
        .bind(&token.scope)
        .bind(&token.client_id)
        .bind(token.token_version)
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.family_expires_at)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::from_sqlx(e, "refresh token"))
    }

    pub(super) async fn spend_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Rotation, StoreError> {
        // One statement: a concurrent UPDATE of the same row waits for the
        // first to commit and then re-checks `used_at IS NULL` (READ
        // COMMITTED), so exactly one caller sees the row still unused.
        let spent = sqlx::query_as::<_, RefreshToken>(
            "UPDATE refresh_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
               AND expires_at > $3 AND family_expires_at > $4 \
             RETURNING id, token_hash, family_id, user_id, scope, client_id, token_version, \
                       created_at, expires_at, family_expires_at, used_at, revoked_at",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refresh token"))?;
        if let Some(token) = spent {
            return Ok(Rotation::Spent(token));
        }
        let previous: Option<(String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT family_id, user_id, used_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "refresh token"))?;
        match previous {
            Some((family_id, user_id, Some(_))) => {
                self.revoke_family(&family_id, now).await?;
                Ok(Rotation::Reused { family_id, user_id })
            }
            _ => Ok(Rotation::Invalid),
        }
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| StoreError::from_sqlx(e, "refresh token"))
    }

    pub(super) async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let family: Option<String> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| StoreError::from_sqlx(e, "refresh token"))?;
        match family {
            Some(family_id) => {
                self.revoke_family(&family_id, now).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(super) async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "revoked token"))?;
        sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::from_sqlx(e, "revoked token"))
    }

    pub(super) async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_one(&self.pool)
            .await
            .map(|n| n > 0)
            .map_err(|e| StoreError::from_sqlx(e, "revoked token"))
    }

    pub(super) async fn prune_expired(&self, now: i64) -> Result<u64, StoreError> {
        let refresh = sqlx::query("DELETE FROM refresh_tokens WHERE family_expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "refresh token"))?;
        let access = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "revoked token"))?;
        // Counters idle for a day are long past any window or lock.
        let throttle = sqlx::query(
            "DELETE FROM login_failures WHERE last_failure_at <= $1 AND locked_until <= $2",
        )
        .bind(now - 86_400)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "login throttle"))?;
        Ok(refresh.rows_affected() + access.rows_affected() + throttle.rows_affected())
    }

    pub(super) async fn login_locked_until(
        &self,
        keys: [&str; 2],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(locked_until) FROM login_failures \
             WHERE throttle_key IN ($1, $2) AND locked_until >= $3",
        )
        .bind(keys[0])
        .bind(keys[1])
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "login throttle"))
    }

    pub(super) async fn record_login_failure(
        &self,
        key: &str,
        now: i64,
        window_start: i64,
    ) -> Result<i64, StoreError> {
        // One atomic upsert, so concurrent failures on several instances all count.
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO login_failures (throttle_key, failures, window_started_at, last_failure_at) \
             VALUES ($1, 1, $2, $3) \
             ON CONFLICT (throttle_key) DO UPDATE SET \
               failures = CASE WHEN login_failures.window_started_at < $4 \
                               THEN 1 ELSE login_failures.failures + 1 END, \
               window_started_at = CASE WHEN login_failures.window_started_at < $5 \
                               THEN excluded.window_started_at ELSE login_failures.window_started_at END, \
               last_failure_at = excluded.last_failure_at \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(now)
        .bind(window_start)
        .bind(window_start)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e, "login throttle"))
    }

    pub(super) async fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE login_failures SET locked_until = $1 WHERE throttle_key = $2")
            .bind(until)
            .bind(key)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::from_sqlx(e, "login throttle"))
    }

    pub(super) async fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(|e| StoreError::from_sqlx(e, "login throttle"))
    }

    pub(super) async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "user"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn update_one<'q>(
        &self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, UserRow, sqlx::postgres::PgArguments>,
    ) -> Result<User, StoreError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "user"))?
            .map(User::from)
            .ok_or(StoreError::NotFound)
    }
}

/// Connects once within `timeout`, retrying while the server refuses
/// connections or says it is starting up (as when the database and the
/// instances start together), and reports the last cause if it never
/// answers. The pool would only say "timed out".
async fn first_connection(options: &PgConnectOptions, timeout: Duration) -> Result<(), StoreError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(25);
    loop {
        let attempt = tokio::time::timeout_at(deadline, options.connect()).await;
        let error = match attempt {
            Ok(Ok(connection)) => {
                // Closing politely is a courtesy; the check has passed.
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(error)) if is_retryable_at_connect(&error) => error,
            Ok(Err(error)) => return Err(StoreError::Unavailable(error.to_string())),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no answer within the connect timeout of {}ms",
                    timeout.as_millis()
                )));
            }
        };
        if Instant::now() + pause >= deadline {
            return Err(StoreError::Unavailable(format!(
                "{error} (still failing at the end of the connect timeout of {}ms)",
                timeout.as_millis()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Refused (nothing listening yet), or the server is starting up or full.
fn is_retryable_at_connect(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("57P03" | "53300"))
        }
        _ => false,
    }
}
