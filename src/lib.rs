//! Gatehouse: OAuth2 password login and JWT bearer protection for HTTP APIs.
//!
//! A library that protects axum routes ([`auth::AuthUser`]) and the pieces
//! of the `gatehouse` server: the token endpoint, the user store, password
//! hashing, the command line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod error;
pub mod form;
pub mod http;
pub mod jwks;
pub mod keys;
pub mod password;
pub mod store;
pub mod throttle;
pub mod token;
pub mod users;
