//! Where an issuer's verification keys come from.
//!
//! The guard asks a key source for the current [`KeySet`] and, when a token names a key the set does
//! not hold, whether a fresher set can be had. A static source (PEM, JWK, JWKS JSON, HMAC secret)
//! never changes; the remote JWKS source fetches, caches and refreshes.

pub(crate) mod keys;

use std::sync::Arc;

pub use keys::{KeyError, KeySet};

use crate::validate::TokenError;

/// The key source of one issuer.
#[derive(Debug)]
pub(crate) enum KeySource {
    /// Keys given at build time.
    Static(Arc<KeySet>),
}

impl KeySource {
    /// The keys to verify with now. Never waits on the network for longer than the source's own
    /// limits, and fails with [`TokenError::KeysUnavailable`] rather than hang.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, TokenError> {
        match self {
            KeySource::Static(keys) => Ok(Arc::clone(keys)),
        }
    }

    /// The generation of the current key set, without waiting; `None` when there is no usable
    /// set right now.
    pub(crate) fn current_generation(&self) -> Option<u64> {
        match self {
            KeySource::Static(keys) => Some(keys.generation()),
        }
    }

    /// A token named a key that `seen` does not hold: a newer set if the source can get one now,
    /// `None` when it cannot (static keys, or a refetch already happened within the cooldown).
    pub(crate) async fn refresh_for_unknown_key(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        match self {
            KeySource::Static(_) => {
                let _ = seen;
                None
            }
        }
    }
}
