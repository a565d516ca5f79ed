//! Settings: every one comes from the environment (and `.env`), has a
//! `--flag` twin and a working default. This is the only module that reads
//! the process environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::keys::{AsymmetricKey, KeySet};
use crate::throttle::ThrottlePolicy;

/// The smallest HMAC secret accepted: 256 bits (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// The longest accepted leeway for clock skew.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// A secret string whose `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call sites are few and deliberate.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Loads `.env` from the working directory (or a parent) into the process
/// environment. Variables already set in the real environment win.
///
/// # Errors
/// A `.env` that exists but cannot be read or parsed.
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => Err(format!("could not read .env: {e}")),
    }
}

/// Parses a duration given as whole seconds (`1800`) or with units (`30m`, `14d`).
///
/// # Errors
/// Text that is neither.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write seconds, or a duration such as 30m, 12h, 14d)"))
}

/// Where users (and later tokens) are stored, and how connections behave.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (created on first start) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://gatehouse.db")]
    pub database_url: String,
    /// Most database connections this process holds open.
    #[arg(long, env = "GATEHOUSE_DB_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
    /// How long to wait for a database connection: at start-up (then the
    /// command fails), and per request (then it is answered with 503).
    #[arg(long, env = "GATEHOUSE_DB_CONNECT_TIMEOUT", default_value = "5s",
          value_parser = parse_positive_duration)]
    pub db_connect_timeout: Duration,
    /// How long one database statement may run before it is cancelled and
    /// the request answered with 503.
    #[arg(long, env = "GATEHOUSE_DB_STATEMENT_TIMEOUT", default_value = "5s",
          value_parser = parse_positive_duration)]
    pub db_statement_timeout: Duration,
}

impl DatabaseArgs {
    /// The connection settings for [`crate::store::Store::connect`].
    pub fn connect_options(&self) -> crate::store::ConnectOptions {
        crate::store::ConnectOptions {
            max_connections: self.db_max_connections,
            connect_timeout: self.db_connect_timeout,
            statement_timeout: self.db_statement_timeout,
        }
    }
}

/// Like [`parse_duration`], but zero is refused.
///
/// # Errors
/// Text that is not a duration, or a zero duration.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(
            "must be more than zero (write seconds, or a duration such as 500ms or 5s)".to_owned(),
        );
    }
    Ok(duration)
}

/// How passwords are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PasswordScheme {
    /// bcrypt (the default, compatible with the tutorial's hashes).
    Bcrypt,
    /// argon2id with the argon2 crate's default parameters.
    Argon2id,
}

/// Settings for hashing passwords, shared by the server and the user commands.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// bcrypt work factor (4 to 31); each step doubles the time of one hash.
    #[arg(long, env = "GATEHOUSE_BCRYPT_COST", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,
    /// Scheme for new hashes; existing hashes of the other scheme still verify
    /// and are upgraded at the next successful login.
    #[arg(
        long,
        env = "GATEHOUSE_PASSWORD_SCHEME",
        value_enum,
        default_value = "bcrypt"
    )]
    pub password_scheme: PasswordScheme,
}

/// Every setting of the token server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub passwords: PasswordArgs,
    /// HMAC signing secret, at least 32 bytes (`gatehouse gen-secret` makes one).
    #[arg(long, env = "SECRET_KEY_ENV", hide_env_values = true)]
    pub secret_key: Option<Secret>,
    /// PEM file of an Ed25519 or P-256 private key that signs tokens instead
    /// of the HMAC secret (`gatehouse gen-key` makes one).
    #[arg(long, env = "GATEHOUSE_SIGNING_KEY")]
    pub signing_key: Option<std::path::PathBuf>,
    /// Comma-separated PEM files of keys that still verify tokens but no
    /// longer sign (keys being rotated out).
    #[arg(long, env = "GATEHOUSE_VERIFICATION_KEYS", value_delimiter = ',')]
    pub verification_keys: Vec<std::path::PathBuf>,
    /// The same setting under Gatehouse's own name.
    #[arg(
        long = "gatehouse-secret-key",
        env = "GATEHOUSE_SECRET_KEY",
        hide = true,
        hide_env_values = true
    )]
    pub gatehouse_secret_key: Option<Secret>,
    /// Address to listen on.
    #[arg(long, env = "GATEHOUSE_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// `iss` of issued tokens; defaults to `http://` + the bind address.
    #[arg(long, env = "GATEHOUSE_ISSUER")]
    pub issuer: Option<String>,
    /// `aud` of issued tokens, required of every presented token.
    #[arg(long, env = "GATEHOUSE_AUDIENCE", default_value = "gatehouse")]
    pub audience: String,
    /// Lifetime of access tokens.
    #[arg(long, env = "GATEHOUSE_ACCESS_TOKEN_TTL", default_value = "30m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    #[arg(long, env = "GATEHOUSE_REFRESH_TOKEN_TTL", default_value = "14d", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,
    /// Absolute lifetime of a refresh token family (a login), however often
    /// it is refreshed.
    #[arg(long, env = "GATEHOUSE_REFRESH_FAMILY_TTL", default_value = "90d", value_parser = parse_duration)]
    pub refresh_family_ttl: Duration,
    /// Allowed clock skew when checking `exp`, `nbf` and `iat` (at most 5m).
    #[arg(long, env = "GATEHOUSE_LEEWAY", default_value = "0", value_parser = parse_duration)]
    pub leeway: Duration,
    /// Failed logins of one account from one address before that pair is
    /// throttled (429 with Retry-After).
    #[arg(long, env = "GATEHOUSE_THROTTLE_ACCOUNT_FAILURES", default_value_t = 5,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub throttle_account_failures: i64,
    /// Failed logins from one address, any accounts, before it is throttled.
    #[arg(long, env = "GATEHOUSE_THROTTLE_ADDRESS_FAILURES", default_value_t = 50,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub throttle_address_failures: i64,
    /// How long failures are remembered.
    #[arg(long, env = "GATEHOUSE_THROTTLE_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub throttle_window: Duration,
    /// The longest lock; locks start at one second and double per failure.
    #[arg(long, env = "GATEHOUSE_THROTTLE_MAX_BACKOFF", default_value = "15m", value_parser = parse_duration)]
    pub throttle_max_backoff: Duration,
    /// Header a trusted reverse proxy sets to the client's address (e.g.
    /// `x-forwarded-for`; its last entry is used). Unset: the connection's
    /// address. Set it only behind a proxy that overwrites the header.
    #[arg(long, env = "GATEHOUSE_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Password hashes computed at once (default: the number of cores).
    #[arg(long, env = "GATEHOUSE_HASH_WORKERS")]
    pub hash_workers: Option<usize>,
    /// Logins allowed to wait for a hashing worker before `/token` answers 503
    /// (default: 8 per worker).
    #[arg(long, env = "GATEHOUSE_HASH_QUEUE")]
    pub hash_queue: Option<usize>,
    /// How long protected requests may reuse what was read of a user and a
    /// token (at most 1s; 0 reads the database on every request). A user
    /// disabled, deleted or changed by another process is refused at most
    /// this long after; through this server, at once.
    #[arg(long, env = "GATEHOUSE_AUTH_CACHE_TTL", default_value = "1s", value_parser = parse_duration)]
    pub auth_cache_ttl: Duration,
}

/// The validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The keys that sign and verify tokens.
    pub keys: std::sync::Arc<KeySet>,
    /// Listen address.
    pub bind: SocketAddr,
    /// Token issuer.
    pub issuer: String,
    /// Token audience.
    pub audience: String,
    /// Access token lifetime.
    pub access_token_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_token_ttl: Duration,
    /// Refresh token family lifetime.
    pub refresh_family_ttl: Duration,
    /// Clock skew allowance.
    pub leeway: Duration,
    /// Password settings.
    pub passwords: PasswordArgs,
    /// Brute-force throttling.
    pub throttle: ThrottlePolicy,
    /// Trusted proxy header carrying the client address (lower case).
    pub client_ip_header: Option<String>,
    /// Concurrent hashes.
    pub hash_workers: usize,
    /// Waiting logins beyond the workers.
    pub hash_queue: usize,
    /// How long what was read of a user and a token may be reused.
    pub auth_cache_ttl: Duration,
    /// Database URL.
    pub database_url: String,
}

impl ServerArgs {
    /// The secret from either of its two names.
    ///
    /// # Errors
    /// Both names set to different values.
    pub fn secret(&self) -> Result<Option<Secret>, String> {
        match (&self.secret_key, &self.gatehouse_secret_key) {
            (Some(a), Some(b)) if a != b => Err(
                "SECRET_KEY_ENV and GATEHOUSE_SECRET_KEY are both set, to different values; keep one"
                    .to_owned(),
            ),
            (Some(a), _) => Ok(Some(a.clone())),
            (None, b) => Ok(b.clone()),
        }
    }

    /// Loads the signing and verification keys. The HMAC secret is required
    /// unless an asymmetric signing key is configured; when both are, HS256
    /// tokens still verify, so a switch of algorithm logs nobody out.
    ///
    /// # Errors
    /// A missing or short secret, an unreadable or unsupported key file.
    pub fn keys(&self) -> Result<KeySet, String> {
        let secret = match (self.secret()?, &self.signing_key) {
            (None, Some(_)) => None,
            (secret, _) => Some(check_secret(secret)?),
        };
        let signing = self
            .signing_key
            .as_deref()
            .map(AsymmetricKey::from_file)
            .transpose()?;
        if signing.as_ref().is_some_and(|k| !k.can_sign()) {
            return Err("GATEHOUSE_SIGNING_KEY must be a private key file".to_owned());
        }
        let verifying = self
            .verification_keys
            .iter()
            .map(|path| AsymmetricKey::from_file(path))
            .collect::<Result<Vec<_>, _>>()?;
        let verifying: Vec<&AsymmetricKey> = verifying.iter().collect();
        KeySet::new(secret.as_ref(), signing.as_ref(), &verifying)
    }

    /// Checks every setting and fills in derived defaults.
    ///
    /// # Errors
    /// One line saying what is wrong and how to fix it: a missing or short
    /// secret, a leeway above five minutes, a zero lifetime.
    pub fn validate(&self) -> Result<ServerConfig, String> {
        let keys = self.keys()?;
        if self.leeway > MAX_LEEWAY {
            return Err(format!(
                "GATEHOUSE_LEEWAY is {}s; at most {}s is allowed",
                self.leeway.as_secs(),
                MAX_LEEWAY.as_secs()
            ));
        }
        if self.access_token_ttl.as_secs() == 0 || self.refresh_token_ttl.as_secs() == 0 {
            return Err("token lifetimes must be at least one second".to_owned());
        }
        if self.refresh_family_ttl < self.refresh_token_ttl {
            return Err(
                "GATEHOUSE_REFRESH_FAMILY_TTL must be at least GATEHOUSE_REFRESH_TOKEN_TTL"
                    .to_owned(),
            );
        }
        if self.auth_cache_ttl > crate::cache::MAX_MAX_AGE {
            return Err(format!(
                "GATEHOUSE_AUTH_CACHE_TTL is {:?}; at most {}s is allowed",
                self.auth_cache_ttl,
                crate::cache::MAX_MAX_AGE.as_secs()
            ));
        }
        if self.audience.trim().is_empty() {
            return Err("GATEHOUSE_AUDIENCE must not be empty".to_owned());
        }
        let client_ip_header = match self.client_ip_header.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(
                axum::http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| {
                        format!("GATEHOUSE_CLIENT_IP_HEADER {name:?} is not a header name")
                    })?
                    .as_str()
                    .to_owned(),
            ),
        };
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let hash_workers = self.hash_workers.unwrap_or(cores).max(1);
        Ok(ServerConfig {
            keys: std::sync::Arc::new(keys),
            bind: self.bind,
            issuer: self
                .issuer
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| format!("http://{}", self.bind)),
            audience: self.audience.clone(),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            refresh_family_ttl: self.refresh_family_ttl,
            leeway: self.leeway,
            passwords: self.passwords.clone(),
            throttle: ThrottlePolicy {
                account_failures: self.throttle_account_failures,
                address_failures: self.throttle_address_failures,
                window: self.throttle_window,
                base_backoff: Duration::from_secs(1),
                max_backoff: self.throttle_max_backoff.max(Duration::from_secs(1)),
            },
            client_ip_header,
            hash_workers,
            hash_queue: self.hash_queue.unwrap_or(hash_workers * 8),
            auth_cache_ttl: self.auth_cache_ttl,
            database_url: self.database.database_url.clone(),
        })
    }
}

/// Refuses a missing or short secret with a line that says how to make one.
///
/// # Errors
/// The secret is absent or under [`MIN_SECRET_BYTES`].
pub fn check_secret(secret: Option<Secret>) -> Result<Secret, String> {
    let hint = "run `gatehouse gen-secret --write-env` to create .env with a fresh key";
    match secret {
        None => Err(format!("SECRET_KEY_ENV is not set; {hint}")),
        Some(s) if s.expose().len() < MIN_SECRET_BYTES => Err(format!(
            "SECRET_KEY_ENV is {} bytes; at least {MIN_SECRET_BYTES} are required (RFC 7518 §3.2); {hint}",
            s.expose().len()
        )),
        Some(s) => Ok(s),
    }
}

/// A fresh 256-bit key as 64 hex characters.
pub fn generate_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret(hex::encode(bytes))
}

/// Writes `SECRET_KEY_ENV=<secret>` to the `.env` at `path`: creates the file
/// with mode 0600, or appends to an existing file that holds no key yet.
///
/// # Errors
/// The file already holds a key (it is never overwritten), or cannot be written.
pub fn write_secret_to_env_file(path: &Path, secret: &Secret) -> Result<(), String> {
    use std::io::Write;
    let shown = path.display();
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("could not read {shown}: {e}")),
    };
    if let Some(text) = &existing {
        let has_key = text.lines().any(|line| {
            let line = line.trim_start().trim_start_matches("export ").trim_start();
            line.starts_with("SECRET_KEY_ENV=") || line.starts_with("GATEHOUSE_SECRET_KEY=")
        });
        if has_key {
            return Err(format!(
                "{shown} already holds a secret key; refusing to overwrite it (remove the line first to replace the key)"
            ));
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("could not write {shown}: {e}"))?;
    let separator = match &existing {
        Some(text) if !text.is_empty() && !text.ends_with('\n') => "\n",
        _ => "",
    };
    writeln!(file, "{separator}SECRET_KEY_ENV={}", secret.expose())
        .map_err(|e| format!("could not write {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("1800"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86400)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_positive_duration("500ms"),
            Ok(Duration::from_millis(500))
        );
        assert!(parse_positive_duration("0").is_err());
    }

    #[test]
    fn short_or_missing_secret_is_refused_with_a_hint() {
        let short = check_secret(Some(Secret::new("x".repeat(31)))).unwrap_err();
        assert!(
            short.contains("31 bytes") && short.contains("gen-secret"),
            "{short}"
        );
        let missing = check_secret(None).unwrap_err();
        assert!(
            missing.contains("not set") && missing.contains("gen-secret"),
            "{missing}"
        );
        assert!(check_secret(Some(Secret::new("x".repeat(32)))).is_ok());
    }

    #[test]
    fn secret_debug_is_redacted() {
        let secret = Secret::new("hunter2-hunter2-hunter2-hunter2-x");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn generated_secret_is_256_bits_of_hex() {
        let secret = generate_secret();
        assert_eq!(secret.expose().len(), 64);
        assert!(secret.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(secret, generate_secret());
    }

    #[test]
    fn env_file_is_created_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "DATABASE_URL=sqlite://x.db").unwrap();
        let secret = generate_secret();
        write_secret_to_env_file(&path, &secret).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!(
                "DATABASE_URL=sqlite://x.db\nSECRET_KEY_ENV={}\n",
                secret.expose()
            )
        );
        let again = write_secret_to_env_file(&path, &generate_secret()).unwrap_err();
        assert!(again.contains("refusing to overwrite"), "{again}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

        let fresh = dir.path().join("fresh.env");
        write_secret_to_env_file(&fresh, &secret).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
