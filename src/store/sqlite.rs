//! The SQLite engine: one database file in WAL mode, created on first start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, SqlitePool};

use super::{ConnectOptions, StoreError, from_unix, join_scopes, split_scopes};
use crate::users::{NewUser, User};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The user columns, as a literal so every query stays a compile-time string.
macro_rules! user_columns {
    () => {
        "id, username, email, full_name, password_hash, disabled, scopes, token_version, \
         created_at, updated_at"
    };
}

/// Users in a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
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

impl SqliteStore {
    pub(super) async fn connect(url: &str, options: &ConnectOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("invalid DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(options.connect_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            deadline: options.operation_deadline(),
        })
    }

    pub(super) fn deadline(&self) -> Duration {
        self.deadline
    }

    pub(super) async fn migrate(&self) -> Result<(), StoreError> {
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

    pub(super) async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        let now = now();
        let sql = concat!(
            "INSERT INTO users (username, email, full_name, password_hash, disabled, scopes, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
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
            .bind(now)
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map(User::from)
            .map_err(|e| StoreError::from_sqlx(e, &format!("user {:?}", user.username)))
    }

    pub(super) async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
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
            "UPDATE users SET disabled = ?, updated_at = ?, \
             token_version = token_version + (CASE WHEN ? AND NOT disabled THEN 1 ELSE 0 END) \
             WHERE username = ? RETURNING ",
            user_columns!(),
            ""
        );
        self.update_one(
            sqlx::query_as::<_, UserRow>(sql)
                .bind(disabled)
                .bind(now())
                .bind(disabled)
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
            "UPDATE users SET password_hash = ?, token_version = token_version + 1, updated_at = ? \
             WHERE username = ? RETURNING ",
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
            "UPDATE users SET password_hash = ?, updated_at = ? \
             WHERE username = ? AND password_hash = ?",
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
            "UPDATE users SET token_version = token_version + 1, updated_at = ? \
             WHERE username = ? RETURNING ",
            user_columns!(),
            ""
        );
        self.update_one(sqlx::query_as::<_, UserRow>(sql).bind(now()).bind(username))
            .await
    }

    pub(super) async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM users WHERE username = ?")
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
        query: sqlx::query::QueryAs<'q, sqlx::Sqlite, UserRow, sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<User, StoreError> {
        query
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e, "user"))?
            .map(User::from)
            .ok_or(StoreError::NotFound)
    }
}
