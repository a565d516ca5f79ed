//! The `gatehouse` command line: run the server, manage users and secrets.
//! Every command exits non-zero with one clear line on bad input.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::config::{
    self, DatabaseArgs, PasswordArgs, ServerArgs, check_secret, generate_secret,
    write_secret_to_env_file,
};
use crate::password::Passwords;
use crate::store::{Store, StoreError};
use crate::users::{AccountDetails, AccountError, Accounts, User};

/// OAuth2 password login and JWT bearer protection for HTTP APIs.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `gatehouse=debug,tower_http=debug`.
    /// (default: `info` for the server; audit events and warnings for the
    /// other commands).
    #[arg(long, env = "RUST_LOG", global = true)]
    log: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Quick start: create .env with a secret if needed, create the demo
    /// users alice and mike with fresh passwords, and serve.
    Demo(ServerArgs),
    /// Run the server.
    Serve(ServerArgs),
    /// Print a fresh 256-bit secret key, or write it to .env.
    GenSecret {
        /// Write `SECRET_KEY_ENV=…` to this file (default `.env`, mode 0600);
        /// refuses to overwrite an existing key.
        #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = ".env")]
        write_env: Option<PathBuf>,
    },
    /// Generate an EdDSA (Ed25519) or ES256 (P-256) key pair for signing tokens.
    GenKey {
        /// The key's algorithm.
        #[arg(long, value_enum)]
        alg: crate::keys::KeyAlgorithm,
        /// Directory for `<kid>.private.pem` (mode 0600) and `<kid>.public.pem`.
        #[arg(long, value_name = "DIR", default_value = "keys")]
        out: PathBuf,
    },
    /// Create or update the database schema.
    Migrate(DatabaseArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Manage users.
    User {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        passwords: PasswordArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; the password is prompted for, or read with --password-stdin.
    Add {
        /// Login name.
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
        /// Scopes the user may be granted (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "me,items")]
        scopes: Vec<String>,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Show one user.
    Show {
        /// Login name.
        name: String,
    },
    /// Disable a user: no logins, and their tokens stop working.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Login name.
        name: String,
    },
    /// Set a new password (voids the user's tokens).
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user.
    Delete {
        /// Login name.
        name: String,
    },
    /// Void every outstanding token of a user.
    Revoke {
        /// Login name.
        name: String,
    },
}

/// Parses the command line, runs the command, and maps failure to exit code 1.
pub fn main() -> ExitCode {
    if let Err(message) = config::load_dotenv() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version print as clap renders them; a usage mistake prints
/// its first line only (one clear line, like every other error) and exits 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return if error.use_stderr() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("error: invalid arguments");
    eprintln!("{first} (see --help)");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => {
            init_logging(cli.log.as_deref().unwrap_or("info"))?;
            serve(args).await
        }
        Command::Demo(args) => {
            init_logging(cli.log.as_deref().unwrap_or("info"))?;
            demo(args).await
        }
        Command::GenSecret { write_env } => gen_secret(write_env),
        Command::GenKey { alg, out } => {
            let (key, private, public) = crate::keys::generate_key_files(alg, &out)?;
            println!("kid:         {}", key.kid());
            println!("private key: {} (mode 0600)", private.display());
            println!("public key:  {}", public.display());
            println!("Sign with it: GATEHOUSE_SIGNING_KEY={}", private.display());
            Ok(())
        }
        Command::Migrate(database) => {
            open_store(&database).await?;
            println!("the database is up to date");
            Ok(())
        }
        Command::Openapi => {
            let json = crate::http::openapi()
                .to_pretty_json()
                .map_err(|e| format!("could not render the OpenAPI document: {e}"))?;
            println!("{json}");
            Ok(())
        }
        Command::User {
            database,
            passwords,
            command,
        } => {
            init_logging(cli.log.as_deref().unwrap_or("warn,gatehouse::audit=info"))?;
            let store = open_store(&database).await?;
            let accounts = Accounts::new(store, Passwords::new(&passwords, 1, 0));
            user_command(&accounts, command).await
        }
    }
}

fn init_logging(filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("RUST_LOG is not a valid filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| format!("could not start logging: {e}"))
}

/// Connects and migrates, with one clear line on failure.
async fn open_store(database: &DatabaseArgs) -> Result<Store, String> {
    let url = &database.database_url;
    let store = Store::connect(url, &database.connect_options())
        .await
        .map_err(|e| match e {
            StoreError::BadUrl(m) => m,
            other => format!("could not open the database {}: {other}", redact_url(url)),
        })?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// A database URL without its password (in the authority or as a
/// `password=` parameter), for messages.
fn redact_url(url: &str) -> String {
    let Some(authority_start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let mut redacted = url[..authority_start].to_owned();
    let authority = &url[authority_start..authority_end];
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            match credentials.split_once(':') {
                Some((user, _)) => redacted.push_str(&format!("{user}:***")),
                None => redacted.push_str(credentials),
            }
            redacted.push('@');
            redacted.push_str(host);
        }
        None => redacted.push_str(authority),
    }
    let rest = &url[authority_end..];
    let Some((path, query)) = rest.split_once('?') else {
        redacted.push_str(rest);
        return redacted;
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{redacted}{path}?{}", parameters.join("&"))
}

async fn serve(args: ServerArgs) -> Result<(), String> {
    let config = args.validate()?;
    let store = open_store(&args.database).await?;
    run_server(config, store).await
}

async fn run_server(config: config::ServerConfig, store: Store) -> Result<(), String> {
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("could not listen on {}: {e}", config.bind))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("could not read the listening address: {e}"))?;
    let engine = store.engine();
    let state = AppState::new(config, store);
    state.spawn_maintenance();
    tracing::info!(%address, engine, "gatehouse listening; Swagger UI at http://{address}/docs");
    crate::http::serve(
        listener,
        crate::http::router(state),
        crate::http::shutdown_signal(),
    )
    .await
    .map_err(|e| format!("the server failed: {e}"))
}

const DEMO_USERS: &[(&str, &str, &str)] = &[
    ("alice", "Alice Wonderson", "alice@example.com"),
    ("mike", "Mike Lennon", "mike@example.com"),
];

async fn demo(mut args: ServerArgs) -> Result<(), String> {
    if args.secret()?.is_none() {
        let secret = generate_secret();
        write_secret_to_env_file(std::path::Path::new(".env"), &secret)?;
        println!("Wrote a fresh SECRET_KEY_ENV to .env (mode 0600).");
        args.secret_key = Some(secret);
    }
    check_secret(args.secret()?)?;
    let config = args.validate()?;
    let store = open_store(&args.database).await?;
    let accounts = Accounts::new(store.clone(), Passwords::new(&config.passwords, 2, 0));
    println!("Demo users (passwords are new on every `gatehouse demo`):");
    let mut alice_password = String::new();
    for (name, full_name, email) in DEMO_USERS {
        let password = demo_password();
        if *name == "alice" {
            alice_password.clone_from(&password);
        }
        let existing = store.user_by_name(name).await.map_err(|e| e.to_string())?;
        let result = match existing {
            Some(_) => accounts.set_password(name, &password).await,
            None => {
                let details = AccountDetails {
                    username: (*name).to_owned(),
                    email: Some((*email).to_owned()),
                    full_name: Some((*full_name).to_owned()),
                    scopes: None,
                    disabled: false,
                };
                accounts.create(details, &password).await
            }
        };
        result.map_err(|e| account_error(e, name))?;
        println!("  {name:<6} {password}");
    }
    let base = format!("http://{}", config.bind);
    println!();
    println!("Swagger UI:  {base}/docs  (click Authorize and log in as alice)");
    println!("Try it (the README's curl walkthrough continues from here):");
    println!("  GATEHOUSE_URL={base}");
    println!("  DEMO_PASSWORD='{alice_password}'");
    println!(
        "  TOKEN=$(curl -s -X POST \"$GATEHOUSE_URL/token\" --data-urlencode username=alice \\\n      --data-urlencode \"password=$DEMO_PASSWORD\" | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
    );
    println!("  curl -s \"$GATEHOUSE_URL/users/me\" -H \"Authorization: Bearer $TOKEN\"");
    println!();
    run_server(config, store).await
}

fn demo_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn gen_secret(write_env: Option<PathBuf>) -> Result<(), String> {
    let secret = generate_secret();
    match write_env {
        None => println!("{}", secret.expose()),
        Some(path) => {
            write_secret_to_env_file(&path, &secret)?;
            println!("wrote a fresh SECRET_KEY_ENV to {}", path.display());
        }
    }
    Ok(())
}

async fn user_command(accounts: &Accounts, command: UserCommand) -> Result<(), String> {
    let store = accounts.store();
    match command {
        UserCommand::Add {
            name,
            email,
            full_name,
            scopes,
            disabled,
            password_stdin,
        } => {
            // Check the cheap things before asking for a password.
            crate::users::validate_username(&name)?;
            if store
                .user_by_name(&name)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                return Err(format!("user {name:?} already exists"));
            }
            let password = read_password(password_stdin)?;
            let details = AccountDetails {
                username: name.clone(),
                email,
                full_name,
                scopes: Some(scopes),
                disabled,
            };
            let user = accounts
                .create(details, &password)
                .await
                .map_err(|e| account_error(e, &name))?;
            audit_user_change("user_added", &user.username);
            println!("created user {:?}", user.username);
        }
        UserCommand::List => {
            let users = store.list_users().await.map_err(|e| e.to_string())?;
            println!(
                "{:<24} {:<8} {:<20} {:<28} FULL NAME",
                "USERNAME", "STATUS", "SCOPES", "EMAIL"
            );
            for user in users {
                println!(
                    "{:<24} {:<8} {:<20} {:<28} {}",
                    user.username,
                    status(&user),
                    user.scopes.join(","),
                    user.email.as_deref().unwrap_or("-"),
                    user.full_name.as_deref().unwrap_or("-"),
                );
            }
        }
        UserCommand::Show { name } => {
            let user = store
                .user_by_name(&name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user named {name:?}"))?;
            println!("username:   {}", user.username);
            println!("email:      {}", user.email.as_deref().unwrap_or("-"));
            println!("full name:  {}", user.full_name.as_deref().unwrap_or("-"));
            println!("status:     {}", status(&user));
            println!("scopes:     {}", user.scopes.join(" "));
            println!("created:    {}", user.created_at.to_rfc3339());
            println!("updated:    {}", user.updated_at.to_rfc3339());
        }
        UserCommand::Disable { name } => {
            store
                .set_disabled(&name, true)
                .await
                .map_err(|e| store_error(e, &name))?;
            audit_user_change("user_disabled", &name);
            println!("disabled user {name:?}; their tokens no longer work");
        }
        UserCommand::Enable { name } => {
            store
                .set_disabled(&name, false)
                .await
                .map_err(|e| store_error(e, &name))?;
            audit_user_change("user_enabled", &name);
            println!("enabled user {name:?}");
        }
        UserCommand::Passwd {
            name,
            password_stdin,
        } => {
            if store
                .user_by_name(&name)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("no user named {name:?}"));
            }
            let password = read_password(password_stdin)?;
            accounts
                .set_password(&name, &password)
                .await
                .map_err(|e| account_error(e, &name))?;
            audit_user_change("password_changed", &name);
            println!("changed the password of {name:?}; their tokens no longer work");
        }
        UserCommand::Delete { name } => {
            store
                .delete_user(&name)
                .await
                .map_err(|e| store_error(e, &name))?;
            audit_user_change("user_deleted", &name);
            println!("deleted user {name:?}");
        }
        UserCommand::Revoke { name } => {
            store
                .bump_token_version(&name)
                .await
                .map_err(|e| store_error(e, &name))?;
            audit_user_change("tokens_revoked", &name);
            println!("revoked every token of {name:?}");
        }
    }
    Ok(())
}

/// Records a change to an account made from the command line.
fn audit_user_change(event: &'static str, username: &str) {
    tracing::info!(target: "gatehouse::audit", event, outcome = "success", username,
                   source = "cli", "user changed");
}

fn status(user: &User) -> &'static str {
    if user.disabled { "disabled" } else { "active" }
}

fn store_error(error: StoreError, name: &str) -> String {
    match error {
        StoreError::NotFound => format!("no user named {name:?}"),
        StoreError::Conflict(_) => format!("user {name:?} already exists"),
        other => other.to_string(),
    }
}

fn account_error(error: AccountError, name: &str) -> String {
    match error {
        AccountError::Store(e) => store_error(e, name),
        other => other.to_string(),
    }
}

/// Reads a new password from standard input (`--password-stdin`, one line)
/// or from an interactive prompt with confirmation; never from argv.
fn read_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("could not read the password from standard input: {e}"))?;
        let password = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if password.contains('\n') {
            return Err("the password on standard input must be a single line".to_owned());
        }
        return Ok(password.to_owned());
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no terminal to prompt for the password; pipe it in with --password-stdin".to_owned(),
        );
    }
    let first = rpassword::prompt_password("Password: ")
        .map_err(|e| format!("could not read the password: {e}"))?;
    let second = rpassword::prompt_password("Repeat password: ")
        .map_err(|e| format!("could not read the password: {e}"))?;
    if first != second {
        return Err("the passwords do not match".to_owned());
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_hidden_in_messages() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/gh"),
            "postgres://app:***@db:5432/gh"
        );
        assert_eq!(redact_url("sqlite://gatehouse.db"), "sqlite://gatehouse.db");
        // An @ further on is not the end of the credentials.
        assert_eq!(
            redact_url("postgres://app:s3cret@db/gh?sslrootcert=/etc/a@b.pem"),
            "postgres://app:***@db/gh?sslrootcert=/etc/a@b.pem"
        );
        assert_eq!(
            redact_url("postgres://app:p@ss@db/gh"),
            "postgres://app:***@db/gh"
        );
        assert_eq!(
            redact_url("postgres://db/gh?sslmode=require&Password=s3cret&user=app"),
            "postgres://db/gh?sslmode=require&Password=***&user=app"
        );
        assert_eq!(redact_url("postgres://app@db/gh"), "postgres://app@db/gh");
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
