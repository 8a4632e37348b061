//! The event stage: each decision is reported here, once. Events carry the issuer, the client, the
//! key and the outcome — never the token.

use super::VerifyError;
use crate::claims::Claims;
use crate::http::source::BearerError;

/// A token was decided (verified in full or found in the cache).
pub(super) fn token_decided(outcome: &Result<Claims, VerifyError>) {
    match outcome {
        Ok(claims) => tracing::debug!(
            issuer = claims.issuer(),
            client_id = claims.client_id(),
            kid = claims.key_id(),
            outcome = "accepted",
            "bearer token verified"
        ),
        Err(err @ VerifyError::KeysUnavailable(_)) => {
            tracing::warn!(outcome = "unavailable", reason = %err, "bearer token not verified")
        }
        Err(err) => tracing::debug!(outcome = "rejected", reason = %err, "bearer token rejected"),
    }
}

/// The request carried no token.
pub(super) fn no_credentials() {
    tracing::trace!(outcome = "no_credentials", "request without a bearer token");
}

/// The request was malformed as far as bearer authentication goes.
pub(super) fn malformed_request(err: &BearerError) {
    tracing::debug!(outcome = "rejected", reason = %err, "malformed bearer request");
}
