//! Access tokens: signing and verifying with each algorithm, and the whole
//! check a protected request makes (`Authenticator::authenticate_token`),
//! with the authentication cache and without it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::auth::Authenticator;
use gatehouse::config::Secret;
use gatehouse::keys::{KeyAlgorithm, generate_key_files};
use gatehouse::store::{ConnectOptions, Store};
use gatehouse::token::{Grant, KeySet, TokenIssuer, TokenVerifier, now};
use gatehouse::users::NewUser;

const ISSUER: &str = "http://127.0.0.1:8000";
const AUDIENCE: &str = "gatehouse";

fn grant() -> Grant<'static> {
    Grant {
        subject: "alice",
        scope: "me items",
        client_id: "public",
        version: 0,
    }
}

fn key_sets(dir: &std::path::Path) -> Vec<(&'static str, Arc<KeySet>)> {
    let secret = Secret::new("0123456789abcdef0123456789abcdef0123456789abcdef");
    let mut sets = vec![("HS256", Arc::new(KeySet::hs256(&secret)))];
    for (name, alg) in [
        ("EdDSA", KeyAlgorithm::EdDsa),
        ("ES256", KeyAlgorithm::Es256),
    ] {
        let (key, _, _) = generate_key_files(alg, dir).unwrap();
        sets.push((name, Arc::new(KeySet::new(None, Some(&key), &[]).unwrap())));
    }
    sets
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("token");
    for (name, keys) in key_sets(dir.path()) {
        let ttl = Duration::from_secs(1800);
        let issuer = TokenIssuer::new(keys.clone(), ISSUER, AUDIENCE, ttl);
        let verifier = TokenVerifier::new(keys, ISSUER, AUDIENCE, Duration::ZERO);
        let t = now();
        group.bench_function(format!("issue/{name}"), |b| {
            b.iter(|| issuer.issue(black_box(&grant()), t).unwrap());
        });
        let token = issuer.issue(&grant(), t).unwrap().token;
        group.bench_function(format!("verify/{name}"), |b| {
            b.iter(|| verifier.verify(black_box(&token), t).unwrap());
        });
    }
    group.finish();
}

/// The check of a protected request against a real SQLite database: with
/// the cache (what the server does) and with it off (a database read of
/// the user and of the revocation list every time).
fn authenticate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (store, alice) = runtime.block_on(async {
        let store = Store::connect(&url, &ConnectOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let alice = store
            .create_user(&NewUser {
                username: "alice".to_owned(),
                email: None,
                full_name: None,
                password_hash: "$2b$04$unused".to_owned(),
                disabled: false,
                scopes: vec!["me".to_owned(), "items".to_owned()],
            })
            .await
            .unwrap();
        (store, alice)
    });
    let keys = Arc::new(KeySet::hs256(&Secret::new(
        "0123456789abcdef0123456789abcdef",
    )));
    let issuer = TokenIssuer::new(keys.clone(), ISSUER, AUDIENCE, Duration::from_secs(1800));
    // Issued a while ago, as a token in use is (a token issued this very
    // second is always checked against the database).
    // Of the user's current generation, as the server issues it.
    let current = Grant {
        version: alice.token_version,
        ..grant()
    };
    let token = issuer.issue(&current, now() - 10).unwrap().token;
    let mut group = c.benchmark_group("authenticate");
    for (name, max_age) in [
        ("cached", Duration::from_secs(1)),
        ("uncached", Duration::ZERO),
    ] {
        let verifier = TokenVerifier::new(keys.clone(), ISSUER, AUDIENCE, Duration::ZERO);
        let auth = Authenticator::with_store_and_max_age(verifier, store.clone(), max_age);
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(auth.authenticate_token(black_box(&token)))
                    .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, authenticate);
criterion_main!(benches);
