//! Users: the domain type, the rules a username, e-mail and scope list must
//! follow, and the account operations shared by the command line and the
//! server (so both hash and validate the same way).

use chrono::{DateTime, Utc};

use crate::password::{PasswordPolicyError, Passwords};
use crate::store::{Store, StoreError};

/// Longest accepted username, in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;

/// Scopes a new user gets unless told otherwise.
pub const DEFAULT_SCOPES: &[&str] = &["me", "items"];

/// A stored user.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Database id.
    pub id: i64,
    /// Unique login name, compared exactly (case-sensitive, not normalised).
    pub username: String,
    /// E-mail address, if known.
    pub email: Option<String>,
    /// Display name, if known.
    pub full_name: Option<String>,
    /// bcrypt or argon2 hash string.
    pub password_hash: String,
    /// A disabled user cannot sign in and their tokens stop working.
    pub disabled: bool,
    /// Scopes the user may be granted.
    pub scopes: Vec<String>,
    /// Bumped to void every outstanding token of the user.
    pub token_version: i64,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .field("scopes", &self.scopes)
            .field("token_version", &self.token_version)
            .finish_non_exhaustive()
    }
}

/// What is needed to create a user; the password is already hashed.
#[derive(Clone)]
pub struct NewUser {
    /// Login name (validated by [`validate_username`]).
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Hash of the password.
    pub password_hash: String,
    /// Created disabled.
    pub disabled: bool,
    /// Allowed scopes.
    pub scopes: Vec<String>,
}

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A field breaks a rule; the text says which and how.
    #[error("{0}")]
    Invalid(String),
    /// The password cannot be used.
    #[error(transparent)]
    Password(#[from] PasswordPolicyError),
    /// Hashing failed or is overloaded.
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a username: 1 to 64 bytes of letters, digits and `. _ - @ +`.
///
/// Usernames are compared exactly as stored: `Alice` and `alice` are two
/// users, and no Unicode normalisation is applied, which is why only these
/// unambiguous characters are allowed when a user is created.
///
/// # Errors
/// A line saying what is wrong.
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the username must not be empty".to_owned());
    }
    if name.len() > MAX_USERNAME_BYTES {
        return Err(format!(
            "the username is {} bytes; at most {MAX_USERNAME_BYTES} are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+')))
    {
        return Err(format!(
            "the username contains {bad:?}; use letters, digits and . _ - @ + only"
        ));
    }
    Ok(())
}

/// Checks a scope token (RFC 6749 §3.3: printable ASCII without space, `"` or `\`).
///
/// # Errors
/// A line naming the bad scope.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    let ok = !scope.is_empty()
        && scope.len() <= 64
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("{scope:?} is not a valid scope name"))
    }
}

/// Checks an optional e-mail address loosely (one `@`, no spaces, at most 254 bytes).
///
/// # Errors
/// A line saying what is wrong.
pub fn validate_email(email: &str) -> Result<(), String> {
    let parts: Vec<&str> = email.split('@').collect();
    let ok = email.len() <= 254
        && parts.len() == 2
        && !parts[0].is_empty()
        && parts[1].contains('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(format!("{email:?} is not a valid e-mail address"))
    }
}

/// The details of a user to create.
#[derive(Debug, Clone, Default)]
pub struct AccountDetails {
    /// Login name.
    pub username: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Display name.
    pub full_name: Option<String>,
    /// Allowed scopes; `None` means [`DEFAULT_SCOPES`].
    pub scopes: Option<Vec<String>>,
    /// Create disabled.
    pub disabled: bool,
}

/// Account operations: validation, hashing and storage in one place.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    passwords: Passwords,
}

impl Accounts {
    /// Account operations over a store and a hasher.
    pub fn new(store: Store, passwords: Passwords) -> Self {
        Self { store, passwords }
    }

    /// Validates and creates a user with the given password.
    ///
    /// # Errors
    /// A rule broken, a password the scheme cannot take, or a duplicate username.
    pub async fn create(
        &self,
        details: AccountDetails,
        password: &str,
    ) -> Result<User, AccountError> {
        validate_username(&details.username).map_err(AccountError::Invalid)?;
        let email = details.email.filter(|e| !e.trim().is_empty());
        if let Some(email) = &email {
            validate_email(email).map_err(AccountError::Invalid)?;
        }
        let full_name = details.full_name.filter(|n| !n.trim().is_empty());
        if full_name
            .as_ref()
            .is_some_and(|n| n.len() > 200 || n.chars().any(char::is_control))
        {
            return Err(AccountError::Invalid(
                "the full name must be at most 200 bytes without control characters".to_owned(),
            ));
        }
        let scopes = match details.scopes {
            Some(scopes) => normalise_scopes(&scopes)?,
            None => DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        };
        self.passwords.check_policy(password)?;
        let password_hash = self.passwords.hash(password).await?;
        let user = self
            .store
            .create_user(&NewUser {
                username: details.username,
                email,
                full_name,
                password_hash,
                disabled: details.disabled,
                scopes,
            })
            .await?;
        Ok(user)
    }

    /// Sets a new password and voids the user's outstanding tokens.
    ///
    /// # Errors
    /// A password the scheme cannot take, or an unknown user.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<User, AccountError> {
        self.passwords.check_policy(password)?;
        // Fail fast on an unknown user before spending a hash on it.
        if self.store.user_by_name(username).await?.is_none() {
            return Err(StoreError::NotFound.into());
        }
        let hash = self.passwords.hash(password).await?;
        Ok(self.store.set_password_hash(username, &hash).await?)
    }

    /// The store behind these operations.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Validates scope names and removes duplicates, keeping their order.
///
/// # Errors
/// A scope name that RFC 6749 §3.3 does not allow.
pub fn normalise_scopes(scopes: &[String]) -> Result<Vec<String>, AccountError> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        validate_scope(scope).map_err(AccountError::Invalid)?;
        if !out.iter().any(|s| s == scope) {
            out.push(scope.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_documented_rules() {
        assert!(validate_username("alice").is_ok());
        assert!(validate_username("Alice.B-c_d@example.com+x").is_ok());
        assert!(validate_username("").is_err());
        assert!(validate_username(&"a".repeat(65)).is_err());
        for bad in ["al ice", "alice\0", "bob'--", "é", "a/b", "a\u{301}"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_follow_rfc_6749() {
        assert!(validate_scope("me").is_ok());
        assert!(validate_scope("items:read").is_ok());
        assert!(validate_scope("a b").is_err());
        assert!(validate_scope("a\"b").is_err());
        assert!(validate_scope("").is_err());
        let scopes = normalise_scopes(&["me".into(), " items ".into(), "me".into()]).unwrap();
        assert_eq!(scopes, ["me", "items"]);
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(validate_email("a@example.com").is_ok());
        assert!(validate_email("no-at-sign").is_err());
        assert!(validate_email("a@b@c.d").is_err());
        assert!(validate_email("a b@c.d").is_err());
    }
}
