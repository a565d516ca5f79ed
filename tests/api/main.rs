//! The integration tests: the real server, a real database, a real client.

// A failed step should fail the test loudly, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod cli;
mod fuzz_corpus;
mod hardening;
mod helpers;
mod hostile;
mod instances;
mod keys;
mod library;
mod lifecycle;
mod login;
mod openapi;
mod postgres;
mod protected;
mod store;
