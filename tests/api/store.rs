//! Every store operation, with the same assertions on whichever engine is
//! under test (SQLite, or PostgreSQL with `TEST_DATABASE_URL`): the two
//! engines must be indistinguishable to the rest of the code.

use chrono::Utc;
use gatehouse::store::{Store, StoreError};
use gatehouse::users::NewUser;

use crate::helpers::TestDatabase;

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.to_owned(),
        email: Some(format!("{name}@example.com")),
        full_name: Some("Zoë Ünïcode 🚀".to_owned()),
        password_hash: "$2b$04$hash-of-the-first-password".to_owned(),
        disabled: false,
        scopes: vec!["me".to_owned(), "items".to_owned()],
    }
}

async fn token_version(store: &Store, name: &str) -> i64 {
    store
        .user_by_name(name)
        .await
        .unwrap()
        .unwrap()
        .token_version
}

#[tokio::test]
async fn the_engine_under_test_is_the_one_asked_for() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let expected = if database.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(store.engine(), expected);
    store.ping().await.unwrap();
    // Migrating again finds nothing to do.
    store.migrate().await.unwrap();
}

#[tokio::test]
async fn a_created_user_reads_back_field_for_field() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let before = Utc::now().timestamp();
    let created = store.create_user(&new_user("alice")).await.unwrap();
    let after = Utc::now().timestamp();

    assert!(created.id > 0);
    assert_eq!(created.username, "alice");
    assert_eq!(created.email.as_deref(), Some("alice@example.com"));
    assert_eq!(created.full_name.as_deref(), Some("Zoë Ünïcode 🚀"));
    assert_eq!(created.password_hash, "$2b$04$hash-of-the-first-password");
    assert!(!created.disabled);
    assert_eq!(created.scopes, ["me", "items"]);
    assert!(
        (1..1_i64 << 53).contains(&created.token_version),
        "a random first version, exact in JavaScript: {}",
        created.token_version
    );
    let stamp = created.created_at.timestamp();
    assert!(
        (before..=after).contains(&stamp),
        "{stamp} not in {before}..={after}"
    );
    assert_eq!(created.updated_at, created.created_at);

    let read = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(read, created);

    let bare = store
        .create_user(&NewUser {
            email: None,
            full_name: None,
            disabled: true,
            scopes: Vec::new(),
            ..new_user("bob")
        })
        .await
        .unwrap();
    assert!(bare.id > created.id);
    let bare_read = store.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(bare_read, bare);
    assert_eq!(bare_read.email, None);
    assert_eq!(bare_read.full_name, None);
    assert!(bare_read.disabled);
    assert!(bare_read.scopes.is_empty());
}

#[tokio::test]
async fn a_taken_username_is_a_conflict_and_names_are_case_sensitive() {
    let database = TestDatabase::new();
    let store = database.store().await;
    store.create_user(&new_user("alice")).await.unwrap();
    let again = store.create_user(&new_user("alice")).await.unwrap_err();
    assert!(
        matches!(&again, StoreError::Conflict(what) if what.contains("alice")),
        "{again:?}"
    );
    // Exactly as stored: another case is another user.
    store.create_user(&new_user("Alice")).await.unwrap();
    assert_eq!(
        store.user_by_name("ALICE").await.unwrap(),
        None,
        "lookups are exact"
    );
    assert_eq!(store.list_users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn users_are_listed_in_byte_order_of_their_names() {
    let database = TestDatabase::new();
    let store = database.store().await;
    assert!(store.list_users().await.unwrap().is_empty());
    for name in ["bob", "alice", "_z", "Alice", "a.b", "Zed"] {
        store.create_user(&new_user(name)).await.unwrap();
    }
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    // Byte order, as SQLite's BINARY collation; not a locale's order.
    assert_eq!(names, ["Alice", "Zed", "_z", "a.b", "alice", "bob"]);
}

#[tokio::test]
async fn disabling_voids_tokens_once_and_enabling_does_not_revive_them() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let first = store
        .create_user(&new_user("alice"))
        .await
        .unwrap()
        .token_version;

    let disabled = store.set_disabled("alice", true).await.unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.token_version, first + 1);
    assert!(disabled.updated_at >= disabled.created_at);
    assert_eq!(
        store.user_by_name("alice").await.unwrap().unwrap(),
        disabled
    );

    let again = store.set_disabled("alice", true).await.unwrap();
    assert_eq!(
        again.token_version,
        first + 1,
        "already disabled: no second bump"
    );

    let enabled = store.set_disabled("alice", false).await.unwrap();
    assert!(!enabled.disabled);
    assert_eq!(
        enabled.token_version,
        first + 1,
        "enabling does not revive tokens"
    );
    assert_eq!(token_version(&store, "alice").await, first + 1);

    let missing = store.set_disabled("nobody", true).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound), "{missing:?}");
}

#[tokio::test]
async fn a_new_password_hash_voids_tokens() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let first = store
        .create_user(&new_user("alice"))
        .await
        .unwrap()
        .token_version;

    let changed = store
        .set_password_hash("alice", "$2b$04$second")
        .await
        .unwrap();
    assert_eq!(changed.password_hash, "$2b$04$second");
    assert_eq!(changed.token_version, first + 1);
    let read = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(read.password_hash, "$2b$04$second");
    assert_eq!(read.token_version, first + 1);

    let missing = store
        .set_password_hash("nobody", "$2b$04$x")
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound), "{missing:?}");
}

#[tokio::test]
async fn a_hash_upgrade_replaces_only_the_hash_it_was_computed_from() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let created = store.create_user(&new_user("alice")).await.unwrap();

    let upgraded = store
        .upgrade_password_hash("alice", &created.password_hash, "$2b$12$upgraded")
        .await
        .unwrap();
    assert!(upgraded);
    let read = store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(read.password_hash, "$2b$12$upgraded");
    assert_eq!(
        read.token_version, created.token_version,
        "an upgrade keeps tokens valid"
    );

    // The hash changed meanwhile: the stale upgrade must not overwrite it.
    let stale = store
        .upgrade_password_hash("alice", &created.password_hash, "$2b$12$stale")
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(
        store
            .user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$2b$12$upgraded"
    );

    let missing = store
        .upgrade_password_hash("nobody", "a", "b")
        .await
        .unwrap();
    assert!(!missing);
}

#[tokio::test]
async fn bumping_the_token_version_counts_up() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let alice = store
        .create_user(&new_user("alice"))
        .await
        .unwrap()
        .token_version;
    let bob = store
        .create_user(&new_user("bob"))
        .await
        .unwrap()
        .token_version;

    assert_eq!(
        store
            .bump_token_version("alice")
            .await
            .unwrap()
            .token_version,
        alice + 1
    );
    assert_eq!(
        store
            .bump_token_version("alice")
            .await
            .unwrap()
            .token_version,
        alice + 2
    );
    assert_eq!(token_version(&store, "alice").await, alice + 2);
    assert_eq!(token_version(&store, "bob").await, bob, "only that user");

    let missing = store.bump_token_version("nobody").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound), "{missing:?}");
}

#[tokio::test]
async fn a_deleted_user_is_gone_and_cannot_be_deleted_twice() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let first = store.create_user(&new_user("alice")).await.unwrap();
    store.create_user(&new_user("bob")).await.unwrap();

    store.delete_user("alice").await.unwrap();
    assert_eq!(store.user_by_name("alice").await.unwrap(), None);
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["bob"]);

    let twice = store.delete_user("alice").await.unwrap_err();
    assert!(matches!(twice, StoreError::NotFound), "{twice:?}");

    // The name is free again, for a new user with a new id whose tokens the
    // old account's tokens do not match.
    let again = store.create_user(&new_user("alice")).await.unwrap();
    assert_ne!(again.id, first.id);
    assert_ne!(again.token_version, first.token_version);
}

#[tokio::test]
async fn login_failures_count_within_a_window_lock_and_clear() {
    let database = TestDatabase::new();
    let store = database.store().await;
    let now = 1_800_000_000;
    assert_eq!(
        store
            .record_login_failure("k", now, now - 900)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .record_login_failure("k", now + 1, now - 899)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store.login_locked_until(["k", "other"], now).await.unwrap(),
        None
    );
    store.lock_login("k", now + 30).await.unwrap();
    assert_eq!(
        store
            .login_locked_until(["other", "k"], now + 1)
            .await
            .unwrap(),
        Some(now + 30)
    );
    assert_eq!(
        store
            .login_locked_until(["k", "other"], now + 30)
            .await
            .unwrap(),
        Some(now + 30)
    );
    assert_eq!(
        store
            .login_locked_until(["k", "other"], now + 31)
            .await
            .unwrap(),
        None,
        "a lock ends"
    );
    // A failure after the window starts the count again.
    assert_eq!(
        store
            .record_login_failure("k", now + 2000, now + 1100)
            .await
            .unwrap(),
        1
    );
    store.clear_login_failures("k").await.unwrap();
    assert_eq!(
        store
            .record_login_failure("k", now + 2001, now + 1101)
            .await
            .unwrap(),
        1
    );
}

fn refresh(hash: &str, family: &str, user_id: i64, now: i64) -> gatehouse::store::NewRefreshToken {
    gatehouse::store::NewRefreshToken {
        token_hash: hash.to_owned(),
        family_id: family.to_owned(),
        user_id,
        scope: "me items".to_owned(),
        client_id: "public".to_owned(),
        token_version: 0,
        created_at: now,
        expires_at: now + 60,
        family_expires_at: now + 600,
    }
}

#[tokio::test]
async fn a_refresh_token_is_spent_once_and_its_reuse_revokes_the_family() {
    use gatehouse::store::Rotation;
    let database = TestDatabase::new();
    let store = database.store().await;
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let now = Utc::now().timestamp();
    store
        .create_refresh_token(&refresh("h1", "fam", user.id, now))
        .await
        .unwrap();
    let duplicate = store
        .create_refresh_token(&refresh("h1", "fam", user.id, now))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    let Rotation::Spent(spent) = store.spend_refresh_token("h1", now).await.unwrap() else {
        panic!("a live token is spent");
    };
    assert_eq!(
        (
            spent.issued.family_id.as_str(),
            spent.issued.user_id,
            spent.used_at
        ),
        ("fam", user.id, Some(now))
    );
    store
        .create_refresh_token(&refresh("h2", "fam", user.id, now))
        .await
        .unwrap();
    assert_eq!(
        store.spend_refresh_token("h1", now).await.unwrap(),
        Rotation::Reused {
            family_id: "fam".into(),
            user_id: user.id
        }
    );
    assert_eq!(
        store.spend_refresh_token("h2", now).await.unwrap(),
        Rotation::Invalid,
        "family revoked"
    );
    assert_eq!(
        store.spend_refresh_token("unknown", now).await.unwrap(),
        Rotation::Invalid
    );
}

#[tokio::test]
async fn concurrent_spends_of_one_refresh_token_let_exactly_one_through() {
    use gatehouse::store::Rotation;
    let database = TestDatabase::new();
    let store = database.store().await;
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let now = Utc::now().timestamp();
    store
        .create_refresh_token(&refresh("race", "fam", user.id, now))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.spend_refresh_token("race", now).await.unwrap() })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Rotation::Spent(_)) {
            spent += 1;
        }
    }
    assert_eq!(spent, 1);
}

#[tokio::test]
async fn revocations_and_expired_rows_are_pruned() {
    use gatehouse::store::Rotation;
    let database = TestDatabase::new();
    let store = database.store().await;
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let now = Utc::now().timestamp();
    store
        .create_refresh_token(&refresh("h", "fam", user.id, now))
        .await
        .unwrap();
    assert!(store.revoke_refresh_family("h", now).await.unwrap());
    assert!(!store.revoke_refresh_family("nope", now).await.unwrap());
    assert_eq!(
        store.spend_refresh_token("h", now).await.unwrap(),
        Rotation::Invalid
    );

    store
        .revoke_access_token("jti-1", now + 60, now)
        .await
        .unwrap();
    store
        .revoke_access_token("jti-1", now + 60, now)
        .await
        .unwrap();
    assert!(store.is_access_token_revoked("jti-1").await.unwrap());
    assert!(!store.is_access_token_revoked("jti-2").await.unwrap());
    // After the token would have expired, its entry and the dead family go.
    assert_eq!(store.prune_expired(now + 601).await.unwrap(), 2);
    assert!(!store.is_access_token_revoked("jti-1").await.unwrap());
    // Deleting the user removes their refresh tokens with them.
    store
        .create_refresh_token(&refresh("h3", "fam3", user.id, now))
        .await
        .unwrap();
    store.delete_user("alice").await.unwrap();
    assert_eq!(
        store.spend_refresh_token("h3", now).await.unwrap(),
        Rotation::Invalid
    );
}
