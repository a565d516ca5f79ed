//! The integration tests: the real server, a real database, a real client.

// A failed step should fail the test loudly, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod cli;
mod helpers;
mod keys;
mod library;
mod lifecycle;
mod login;
mod openapi;
mod protected;
