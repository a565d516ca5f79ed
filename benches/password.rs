//! Password verification at the configured cost: the time of one login's
//! hash, which bounds the login rate at `cores / time` (bench/run.sh uses it).
//!
//! `GATEHOUSE_BCRYPT_COST` sets the cost as it does for the server (12 by
//! default). The hash runs through [`Passwords`], as a login's does: on the
//! blocking pool, behind the concurrency limit.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use gatehouse::config::{PasswordArgs, PasswordScheme};
use gatehouse::password::Passwords;

fn configured_cost() -> u32 {
    std::env::var("GATEHOUSE_BCRYPT_COST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn password(c: &mut Criterion) {
    let cost = configured_cost();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = PasswordArgs {
        bcrypt_cost: cost,
        password_scheme: PasswordScheme::Bcrypt,
    };
    let passwords = Passwords::new(&settings, 1, 0);
    let hash = runtime
        .block_on(passwords.hash("correct horse battery staple"))
        .unwrap();

    let mut group = c.benchmark_group("password");
    // One hash takes a quarter of a second at cost 12: a few flat samples
    // measure it well.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    group.bench_function(format!("verify/bcrypt-{cost}"), |b| {
        b.iter(|| {
            let verdict = runtime
                .block_on(passwords.verify("correct horse battery staple", Some(&hash)))
                .unwrap();
            assert!(verdict.matches);
        });
    });
    group.finish();
}

criterion_group!(benches, password);
criterion_main!(benches);
