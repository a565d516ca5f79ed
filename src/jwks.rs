//! Keys for a resource server that has only the issuer's JWKS URL: fetched
//! at start, cached, and refreshed when a token names an unknown `kid`
//! (at most once per interval, so forged `kid`s cannot make it hammer the
//! issuer) or when the cached set is older than its maximum age.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::keys::{Jwks, KeySet};

/// Default shortest time between two refreshes caused by unknown `kid`s.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Default age after which the set is fetched again on the next use.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// A JWKS fetched from an issuer, cached.
#[derive(Debug)]
pub struct RemoteKeySet {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    fetched: Mutex<Instant>,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    max_age: Duration,
}

impl RemoteKeySet {
    /// Fetches the key set at `url` once; fails if it cannot be fetched.
    ///
    /// # Errors
    /// The URL cannot be fetched or is not a JWKS.
    pub async fn fetch(url: &str) -> Result<Self, String> {
        Self::fetch_with(url, DEFAULT_MIN_REFRESH_INTERVAL, DEFAULT_MAX_AGE).await
    }

    /// As [`RemoteKeySet::fetch`], with explicit refresh limits.
    ///
    /// # Errors
    /// The URL cannot be fetched or is not a JWKS.
    pub async fn fetch_with(
        url: &str,
        min_refresh_interval: Duration,
        max_age: Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("could not build an HTTP client: {e}"))?;
        let keys = download(&client, url).await?;
        Ok(Self {
            url: url.to_owned(),
            client,
            keys: RwLock::new(Arc::new(keys)),
            fetched: Mutex::new(Instant::now()),
            last_attempt: tokio::sync::Mutex::new(None),
            min_refresh_interval,
            max_age,
        })
    }

    /// The keys as last fetched.
    pub fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the cached set is older than its maximum age.
    pub fn is_stale(&self) -> bool {
        self.fetched
            .lock()
            .map_or(true, |fetched| fetched.elapsed() >= self.max_age)
    }

    /// Fetches the set again unless one was fetched (or tried) within the
    /// minimum interval. Returns whether the set was replaced.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let mut last = self.last_attempt.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh().await
    }

    /// Fetches the set now. Returns whether it was replaced; on failure the
    /// old set stays in use.
    pub async fn refresh(&self) -> bool {
        match download(&self.client, &self.url).await {
            Ok(keys) => {
                if let Ok(mut current) = self.keys.write() {
                    *current = Arc::new(keys);
                }
                if let Ok(mut fetched) = self.fetched.lock() {
                    *fetched = Instant::now();
                }
                tracing::info!(url = %self.url, "refreshed the JWKS");
                true
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "could not refresh the JWKS");
                false
            }
        }
    }
}

async fn download(client: &reqwest::Client, url: &str) -> Result<KeySet, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("could not fetch the JWKS at {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the JWKS at {url} answered {}", response.status()));
    }
    let jwks: Jwks = response
        .json()
        .await
        .map_err(|e| format!("the JWKS at {url} is not a key set: {e}"))?;
    Ok(KeySet::from_jwks(&jwks))
}
