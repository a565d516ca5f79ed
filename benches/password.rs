//! Password verification at the configured cost: the time of one login's
//! hash, which bounds the login rate at `cores / time` (bench/run.sh uses it).
//!
//! `GATEHOUSE_BCRYPT_COST` sets the cost as it does for the server (12 by
//! default). The hash runs through [`Passwords`], as a login's does: on the
//! blocking pool, behind the concurrency limit. `verify-all-cores` times one
//! hash on every core at once (an iteration is `cores` hashes).

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
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = PasswordArgs {
        bcrypt_cost: cost,
        password_scheme: PasswordScheme::Bcrypt,
    };
    // As the server sets it up: one hash per core at a time.
    let passwords = Passwords::new(&settings, cores, cores * 8);
    let hash = runtime.block_on(passwords.hash(PASSWORD)).unwrap();

    let mut group = c.benchmark_group("password");
    // One hash takes a quarter of a second at cost 12: a few flat samples
    // measure it well.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    // One login's hash, the machine otherwise idle.
    group.bench_function(format!("verify/bcrypt-{cost}"), |b| {
        b.iter(|| {
            let verdict = runtime
                .block_on(passwords.verify(PASSWORD, Some(&hash)))
                .unwrap();
            assert!(verdict.matches);
        });
    });
    // One hash on every core at once, as during a login storm: on a shared
    // or virtual machine the cores rarely all deliver what one core alone
    // does, and this is what the server can actually reach.
    group.bench_function(format!("verify-all-cores/bcrypt-{cost}"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let running: Vec<_> = (0..cores)
                    .map(|_| {
                        let passwords = passwords.clone();
                        let hash = hash.clone();
                        tokio::spawn(async move { passwords.verify(PASSWORD, Some(&hash)).await })
                    })
                    .collect();
                for hash in running {
                    assert!(hash.await.unwrap().unwrap().matches);
                }
            });
        });
    });
    group.finish();
}

const PASSWORD: &str = "correct horse battery staple";

criterion_group!(benches, password);
criterion_main!(benches);
