//! Where an issuer's verification keys come from.
//!
//! The guard asks a key source for the current [`KeySet`] and, when a token names a key the set does
//! not hold, whether a fresher set can be had. A static source (PEM, JWK, JWKS JSON, HMAC secret)
//! never changes; the remote JWKS source ([`remote`]) fetches, caches and refreshes, finding its
//! URL by [`discovery`] when asked to.

mod discovery;
mod fetch;
mod jwk;
mod key;
mod key_set;
mod options;
mod remote;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use key::KeyError;
pub use key_set::KeySet;
pub(crate) use options::JwksLocation;
pub use options::JwksOptions;
pub(crate) use remote::RemoteKeys;

/// The issuer's keys cannot be had right now: nothing is known to be wrong with the token, and
/// the request can be retried. Rendered as `503` with `Retry-After` (gRPC: 14 UNAVAILABLE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signing keys unavailable")]
pub struct KeysUnavailable {
    /// When a retry makes sense.
    pub retry_after: Duration,
}

/// Why a source had no keys at start-up.
#[derive(Debug)]
pub(crate) enum StartupError {
    /// Fetches failed (or took too long); the last error.
    Unavailable(String),
    /// Discovery found metadata naming another issuer: a configuration error, not an outage.
    IssuerMismatch { metadata_issuer: String },
}

/// The key source of one issuer.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// Keys given at build time.
    Static(Arc<KeySet>),
    /// Keys published by the issuer (a JWK Set URL), cached and refreshed.
    Remote(RemoteKeys),
}

impl KeySource {
    /// The keys to verify with now. Never waits on the network for longer than the source's own
    /// limits, and fails with [`KeysUnavailable`] rather than hang.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        match self {
            KeySource::Static(keys) => Ok(Arc::clone(keys)),
            KeySource::Remote(remote) => remote.current().await,
        }
    }

    /// The generation of the current key set, without waiting; `None` when there is no usable
    /// set right now.
    pub(crate) fn current_generation(&self) -> Option<u64> {
        match self {
            KeySource::Static(keys) => Some(keys.generation()),
            KeySource::Remote(remote) => remote.current_generation(),
        }
    }

    /// A token named a key that `seen` does not hold: a newer set if the source can get one now;
    /// `None` when it cannot (static keys, or a refetch already happened within the cooldown),
    /// [`KeysUnavailable`] when the newer set holds no usable key.
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        seen: &Arc<KeySet>,
    ) -> Result<Option<Arc<KeySet>>, KeysUnavailable> {
        match self {
            KeySource::Static(_) => Ok(None),
            KeySource::Remote(remote) => remote.refresh_for_unknown_key(seen).await,
        }
    }

    /// Start fetching remote keys ahead of the first request.
    pub(crate) fn start_prefetch(&self) {
        if let KeySource::Remote(remote) = self {
            remote.start_prefetch();
        }
    }

    /// Wait until the source has keys, or `deadline`, or it is found misconfigured.
    pub(crate) async fn wait_for_keys(&self, deadline: Instant) -> Result<(), StartupError> {
        match self {
            KeySource::Static(_) => Ok(()),
            KeySource::Remote(remote) => remote.wait_for_keys(deadline).await,
        }
    }

    /// The state of the keys of `issuer`.
    pub(crate) fn status(&self, issuer: &str) -> KeyStatus {
        match self {
            KeySource::Static(keys) => KeyStatus {
                issuer: issuer.to_owned(),
                jwks_uri: None,
                freshness: KeyFreshness::Static,
                key_count: keys.len(),
                age: None,
                ttl: None,
                last_success: None,
                last_error: None,
                last_error_at: None,
                consecutive_failures: 0,
            },
            KeySource::Remote(remote) => remote.status(),
        }
    }
}

/// The state of one issuer's keys, from [`Guard::key_status`](crate::Guard::key_status): for a
/// health endpoint, metrics or an alert on an identity provider that stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStatus {
    /// The issuer, as configured.
    pub issuer: String,
    /// The JWK Set URL, configured or discovered; `None` for static keys or before discovery
    /// succeeded.
    pub jwks_uri: Option<String>,
    /// Whether tokens can be verified, and with how current a set.
    pub freshness: KeyFreshness,
    /// How many usable keys the current set holds (0 when [`KeyFreshness::Unavailable`]).
    pub key_count: usize,
    /// Time since the set was last fetched or revalidated (`None` before the first success).
    pub age: Option<Duration>,
    /// How long the set is fresh after a fetch: `Cache-Control: max-age` clamped, or the default
    /// TTL (`None` before the first success).
    pub ttl: Option<Duration>,
    /// When the last fetch or revalidation succeeded.
    pub last_success: Option<SystemTime>,
    /// What went wrong with the last failed fetch, if any fetch ever failed. A JWK Set without a
    /// usable key counts as a failure here (`JWK Set holds no usable key`), though it replaces
    /// the keys.
    pub last_error: Option<String>,
    /// When the last failed fetch happened.
    pub last_error_at: Option<SystemTime>,
    /// Failed fetches since the last success (0 when the last fetch succeeded), JWK Sets without
    /// a usable key included.
    pub consecutive_failures: u32,
}

/// How current an issuer's keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFreshness {
    /// Keys configured at build time; they never change.
    Static,
    /// Fetched within their TTL.
    Fresh,
    /// Past their TTL (a refresh is due or failing); still used up to the stale limit.
    Stale,
    /// No usable keys (never fetched, past the stale limit, or the issuer's current JWK Set holds
    /// none it can use): tokens get 503.
    Unavailable,
}
