//! The policy stage: what every request's token must satisfy after it was verified, whether the
//! verification happened now or was found in the verified-token cache. Anything that can change
//! after a token was issued is decided here (revocation, client allow-lists and token binding
//! belong here too), so a cached verification can never skip it.

use super::issuer::IssuerState;
use crate::token::TokenError;

/// Admit a verified token of `issuer` that expires at `expires_at` (NumericDate seconds) at time
/// `now`: it must still be unexpired, with the issuer's leeway.
pub(super) fn admit(issuer: &IssuerState, expires_at: f64, now: f64) -> Result<(), TokenError> {
    if now >= expires_at + issuer.policy.leeway {
        return Err(TokenError::Expired);
    }
    Ok(())
}
