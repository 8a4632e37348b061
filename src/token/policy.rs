//! The claim checks of an issuer's policy: algorithm allow-list, time, audience, `typ`, RFC 9068 and
//! lifetime.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{AlgorithmSet, RawClaims, TokenError, UnverifiedToken};

/// The claim checks an issuer asks for. Built once by the guard builder.
#[derive(Clone, Debug)]
pub(crate) struct ClaimsPolicy {
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) leeway: f64,
    pub(crate) rfc9068: bool,
    pub(crate) max_lifetime: Option<f64>,
    /// `typ` values accepted besides absent, `JWT` and `at+jwt`, normalised (lower case, no
    /// `application/` prefix).
    pub(crate) extra_token_types: Box<[Box<str>]>,
}

/// The current time as fractional NumericDate seconds.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// Step 2: the issuer's algorithm allow-list.
pub(crate) fn check_algorithm(
    token: &UnverifiedToken<'_>,
    policy: &ClaimsPolicy,
) -> Result<(), TokenError> {
    if policy.algorithms.contains(token.algorithm) {
        Ok(())
    } else {
        Err(TokenError::AlgorithmNotAllowed(token.algorithm))
    }
}

/// Step 4b: the claim checks of the issuer's policy, at time `now`, for a token whose signature
/// verified.
pub(crate) fn check_claims(
    token: &UnverifiedToken<'_>,
    claims: &RawClaims,
    policy: &ClaimsPolicy,
    now: f64,
) -> Result<(), TokenError> {
    let leeway = policy.leeway;
    let exp = claims.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if now >= exp.0 + leeway {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && nbf.0 > now + leeway
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(iat) = claims.iat
        && iat.0 > now + leeway
    {
        return Err(TokenError::IssuedInFuture);
    }

    let aud = claims.aud.as_ref().ok_or(TokenError::MissingClaim("aud"))?;
    if !aud.iter().any(|candidate| {
        policy
            .audiences
            .iter()
            .any(|allowed| **allowed == *candidate)
    }) {
        return Err(TokenError::AudienceMismatch);
    }

    check_type(token.typ.as_deref(), policy)?;
    if policy.rfc9068 {
        check_rfc9068(claims)?;
    }

    if let Some(max_lifetime) = policy.max_lifetime {
        let iat = claims.iat.ok_or(TokenError::MissingClaim("iat"))?;
        if exp.0 - iat.0 > max_lifetime {
            return Err(TokenError::LifetimeTooLong);
        }
    }
    Ok(())
}

/// RFC 8725 §3.11, RFC 9068 §4: `typ` is an allow-list. Accepted: absent, `JWT` and `at+jwt`, plus
/// the issuer's own additions; in RFC 9068 mode only `at+jwt`. Compared as a media type without
/// its optional `application/` prefix, case-insensitively (RFC 7515 §4.1.9). A value with
/// parameters or whitespace (`logout+jwt; charset=utf-8`, `at+jwt `) is refused: no issuer types
/// access tokens that way, and reading past such decorations is how other JWT kinds slip through.
fn check_type(typ: Option<&str>, policy: &ClaimsPolicy) -> Result<(), TokenError> {
    let Some(typ) = typ else {
        return if policy.rfc9068 {
            Err(TokenError::WrongType)
        } else {
            Ok(())
        };
    };
    let media_type = media_type(typ);
    let accepted = if policy.rfc9068 {
        media_type.eq_ignore_ascii_case("at+jwt")
    } else {
        ["jwt", "at+jwt"]
            .into_iter()
            .chain(policy.extra_token_types.iter().map(|typ| &**typ))
            .any(|accepted| media_type.eq_ignore_ascii_case(accepted))
    };
    if accepted {
        Ok(())
    } else {
        Err(TokenError::WrongType)
    }
}

/// A `typ` value without its optional `application/` prefix (RFC 7515 §4.1.9). Compared on bytes:
/// `typ` is client input and may hold multi-byte characters anywhere.
pub(crate) fn media_type(typ: &str) -> &str {
    match typ.as_bytes().get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"application/") => &typ[12..],
        _ => typ,
    }
}

/// RFC 9068 §2.2: the claims an access token must carry.
fn check_rfc9068(claims: &RawClaims) -> Result<(), TokenError> {
    if claims.sub.is_none() {
        return Err(TokenError::MissingClaim("sub"));
    }
    if claims.client_id.is_none() {
        return Err(TokenError::MissingClaim("client_id"));
    }
    if claims.iat.is_none() {
        return Err(TokenError::MissingClaim("iat"));
    }
    if claims.jti.is_none() {
        return Err(TokenError::MissingClaim("jti"));
    }
    Ok(())
}
