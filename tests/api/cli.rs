//! The `gatehouse` command line, run as a process in a scratch directory
//! with a clean environment, against a fresh database of the engine under
//! test.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::helpers::TestDatabase;

struct Cli {
    dir: tempfile::TempDir,
    database: TestDatabase,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            database: TestDatabase::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .env("DATABASE_URL", &self.database.url)
            .env("GATEHOUSE_BCRYPT_COST", "4")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn add_user(&self, name: &str, password: &str) -> Output {
        self.run_with_stdin(
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        )
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Asserts failure with exactly one line on standard error, and returns it.
fn one_line_error(output: &Output) -> String {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn gen_secret_prints_a_fresh_256_bit_key() {
    let cli = Cli::new();
    let first = stdout(&cli.run(&["gen-secret"]));
    let second = stdout(&cli.run(&["gen-secret"]));
    assert_eq!(first.trim().len(), 64);
    assert!(first.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, second);
}

#[test]
fn gen_secret_writes_a_private_env_file_and_never_overwrites_a_key() {
    let cli = Cli::new();
    let output = cli.run(&["gen-secret", "--write-env"]);
    assert!(output.status.success(), "{output:?}");
    let env = cli.path().join(".env");
    let text = std::fs::read_to_string(&env).unwrap();
    assert!(
        text.starts_with("SECRET_KEY_ENV=") && text.trim().len() == 15 + 64,
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let again = one_line_error(&cli.run(&["gen-secret", "--write-env"]));
    assert!(again.contains("refusing to overwrite"), "{again}");
    assert_eq!(std::fs::read_to_string(&env).unwrap(), text);

    let custom = cli.run(&["gen-secret", "--write-env", "other.env"]);
    assert!(custom.status.success());
    assert!(cli.path().join("other.env").exists());
}

#[test]
fn serve_refuses_to_start_without_a_strong_secret() {
    let cli = Cli::new();
    let missing = one_line_error(&cli.run(&["serve", "--bind", "127.0.0.1:0"]));
    assert!(
        missing.contains("SECRET_KEY_ENV is not set") && missing.contains("gen-secret"),
        "{missing}"
    );

    let short = one_line_error(
        &cli.command(&["serve", "--bind", "127.0.0.1:0"])
            .env("SECRET_KEY_ENV", "too-short")
            .output()
            .unwrap(),
    );
    assert!(
        short.contains("9 bytes") && short.contains("at least 32"),
        "{short}"
    );

    // From .env as well, under the other name.
    std::fs::write(cli.path().join(".env"), "GATEHOUSE_SECRET_KEY=short\n").unwrap();
    let from_file = one_line_error(&cli.run(&["serve", "--bind", "127.0.0.1:0"]));
    assert!(from_file.contains("5 bytes"), "{from_file}");
}

#[test]
fn a_real_environment_variable_wins_over_env() {
    let cli = Cli::new();
    std::fs::write(cli.path().join(".env"), "SECRET_KEY_ENV=short\n").unwrap();
    let output = cli
        .command(&[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            "bogus://x",
        ])
        .env("SECRET_KEY_ENV", "x".repeat(40))
        .output()
        .unwrap();
    // The secret passed; it failed later, on the database URL.
    let error = one_line_error(&output);
    assert!(error.contains("DATABASE_URL"), "{error}");
}

#[test]
fn users_are_added_listed_shown_and_deleted() {
    let cli = Cli::new();
    let output = cli
        .command(&[
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.com",
            "--full-name",
            "Carol C",
            "--scopes",
            "me",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(b"pw-of-carol\n")?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(cli.add_user("dave", "pw-of-dave").status.success());

    let list = stdout(&cli.run(&["user", "list"]));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[1].starts_with("carol")
            && lines[1].contains("active")
            && lines[1].contains("carol@example.com")
    );
    assert!(lines[2].starts_with("dave"));

    let show = stdout(&cli.run(&["user", "show", "carol"]));
    assert!(
        show.contains("full name:  Carol C") && show.contains("scopes:     me\n"),
        "{show}"
    );
    assert!(!show.contains("$2b$"), "the hash is never shown");

    assert!(cli.run(&["user", "disable", "carol"]).status.success());
    assert!(stdout(&cli.run(&["user", "show", "carol"])).contains("status:     disabled"));
    assert!(cli.run(&["user", "enable", "carol"]).status.success());
    assert!(stdout(&cli.run(&["user", "show", "carol"])).contains("status:     active"));
    let passwd = cli.run_with_stdin(&["user", "passwd", "carol", "--password-stdin"], "new-pw\n");
    assert!(passwd.status.success(), "{passwd:?}");
    assert!(cli.run(&["user", "revoke", "carol"]).status.success());
    assert!(cli.run(&["user", "delete", "carol"]).status.success());
    assert_eq!(stdout(&cli.run(&["user", "list"])).lines().count(), 2);
}

#[test]
fn user_commands_refuse_bad_input_with_one_line() {
    let cli = Cli::new();
    assert!(cli.add_user("erin", "pw").status.success());
    let duplicate = one_line_error(&cli.add_user("erin", "pw"));
    assert!(duplicate.contains("already exists"), "{duplicate}");
    for command in ["show", "disable", "enable", "delete", "revoke"] {
        let error = one_line_error(&cli.run(&["user", command, "nobody"]));
        assert!(
            error.contains("no user named \"nobody\""),
            "{command}: {error}"
        );
    }
    let passwd = one_line_error(
        &cli.run_with_stdin(&["user", "passwd", "nobody", "--password-stdin"], "x\n"),
    );
    assert!(passwd.contains("no user named"), "{passwd}");
    let long = one_line_error(&cli.add_user("frank", &"x".repeat(73)));
    assert!(long.contains("at most 72"), "{long}");
    let empty = one_line_error(&cli.add_user("frank", ""));
    assert!(empty.contains("must not be empty"), "{empty}");
    let name = one_line_error(&cli.add_user("bad name", "pw"));
    assert!(name.contains("username"), "{name}");
    let email = one_line_error(&cli.run_with_stdin(
        &["user", "add", "gina", "--email", "nope", "--password-stdin"],
        "pw\n",
    ));
    assert!(email.contains("e-mail"), "{email}");
    // No terminal and no --password-stdin: refuse rather than read argv or hang.
    let no_tty = one_line_error(&cli.run(&["user", "add", "hank"]));
    assert!(no_tty.contains("--password-stdin"), "{no_tty}");
    assert_eq!(
        stdout(&cli.run(&["user", "list"])).lines().count(),
        2,
        "nothing else was created"
    );
}

#[test]
fn an_unreachable_database_is_one_clear_line() {
    let cli = Cli::new();
    let output = cli
        .command(&["migrate"])
        .env("DATABASE_URL", "sqlite:///nonexistent-dir/sub/users.db")
        .output()
        .unwrap();
    let error = one_line_error(&output);
    assert!(error.contains("could not open the database"), "{error}");
    let scheme = one_line_error(
        &cli.command(&["migrate"])
            .env("DATABASE_URL", "mysql://x")
            .output()
            .unwrap(),
    );
    assert!(scheme.contains("DATABASE_URL must start with"), "{scheme}");
}

#[test]
fn migrate_creates_the_database_and_openapi_prints_json() {
    let cli = Cli::new();
    if let Some(path) = cli.database.sqlite_path() {
        assert!(!path.exists());
    }
    let output = cli.run(&["migrate"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "the database is up to date\n");
    if let Some(path) = cli.database.sqlite_path() {
        assert!(path.exists());
    }
    // The schema is there: listing users works and finds none.
    let list = cli.run(&["user", "list"]);
    assert!(list.status.success(), "{list:?}");
    assert_eq!(stdout(&list).lines().count(), 1, "only the header");
    let spec: serde_json::Value = serde_json::from_slice(&cli.run(&["openapi"]).stdout).unwrap();
    assert_eq!(spec["info"]["title"], "Gatehouse");
}

#[test]
fn gen_key_writes_a_private_and_a_public_pem() {
    let cli = Cli::new();
    for alg in ["EdDSA", "ES256"] {
        let output = cli.run(&["gen-key", "--alg", alg, "--out", "keys"]);
        assert!(output.status.success(), "{output:?}");
        let text = stdout(&output);
        let kid = text
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("kid:")
            .trim()
            .to_owned();
        let private = cli.path().join("keys").join(format!("{kid}.private.pem"));
        let public = cli.path().join("keys").join(format!("{kid}.public.pem"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            std::fs::read_to_string(&private)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(
            std::fs::read_to_string(&public)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );

        // A public key cannot sign: the server refuses to start with one line.
        let error = one_line_error(
            &cli.command(&["serve", "--bind", "127.0.0.1:0"])
                .env("GATEHOUSE_SIGNING_KEY", &public)
                .output()
                .unwrap(),
        );
        assert!(error.contains("must be a private key"), "{error}");
    }
    let bad = cli.run(&["gen-key", "--alg", "RS256"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap rejects an unknown algorithm"
    );
    let missing = one_line_error(
        &cli.command(&["serve", "--bind", "127.0.0.1:0"])
            .env("GATEHOUSE_SIGNING_KEY", "no-such.pem")
            .output()
            .unwrap(),
    );
    assert!(missing.contains("could not read the key file"), "{missing}");
}

#[test]
fn an_unreachable_postgres_server_is_one_line_naming_the_cause() {
    let cli = Cli::new();
    // A port nothing listens on: refused at once, retried until the timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let output = cli
        .command(&["migrate"])
        .env(
            "DATABASE_URL",
            format!("postgres://app:s3cret@127.0.0.1:{port}/gatehouse"),
        )
        .env("GATEHOUSE_DB_CONNECT_TIMEOUT", "300ms")
        .output()
        .unwrap();
    let error = one_line_error(&output);
    assert!(
        error.contains("could not open the database")
            && error.contains(&format!("postgres://app:***@127.0.0.1:{port}/gatehouse"))
            && error.to_lowercase().contains("refused"),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn a_postgres_server_that_never_answers_fails_at_the_connect_timeout() {
    let cli = Cli::new();
    // Accepts connections (the backlog does) but never speaks.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let output = cli
        .command(&["serve", "--bind", "127.0.0.1:0"])
        .env("SECRET_KEY_ENV", "x".repeat(40))
        .env(
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{port}/gatehouse"),
        )
        .env("GATEHOUSE_DB_CONNECT_TIMEOUT", "300ms")
        .output()
        .unwrap();
    let error = one_line_error(&output);
    assert!(
        error.contains("could not open the database") && error.contains("connect timeout"),
        "{error}"
    );
    drop(silent);
}

#[test]
fn database_settings_out_of_range_are_refused_before_connecting() {
    let cli = Cli::new();
    let zero = cli
        .command(&["migrate"])
        .env("GATEHOUSE_DB_STATEMENT_TIMEOUT", "0")
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2), "clap's usage error: {zero:?}");
    let stderr = String::from_utf8(zero.stderr).unwrap();
    assert!(
        stderr.starts_with("error: ") && stderr.contains("more than zero"),
        "{stderr}"
    );
    let pool = cli.run(&["migrate", "--db-max-connections", "0"]);
    assert_eq!(pool.status.code(), Some(2), "clap's usage error: {pool:?}");
    if let Some(path) = cli.database.sqlite_path() {
        assert!(!path.exists(), "refused before touching the database");
    }
}

#[test]
fn a_usage_mistake_is_one_line_and_exit_status_2() {
    let cli = Cli::new();
    for args in [
        &["serve", "--bcrypt-cost", "99"][..],
        &["nope"],
        &["user", "add"],
    ] {
        let output = cli.run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
        assert!(
            stderr.starts_with("error: ") && stderr.trim_end().ends_with("(see --help)"),
            "{stderr}"
        );
    }
    let bad_cost = String::from_utf8(cli.run(&["serve", "--bcrypt-cost", "99"]).stderr).unwrap();
    assert!(bad_cost.contains("99 is not in 4..=31"), "{bad_cost}");
}
