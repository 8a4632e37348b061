//! The token stage: a compact JWS in, verified claims out. Nothing here knows about HTTP, key
//! fetching or the verified-token cache.
//!
//! This is the only module that knows how a compact JWS is laid out and how a signature is checked.
//!
//! - [`jws`]: segments, header, `iss`; [`json`]: strict JSON walking (no duplicate members);
//! - [`policy`]: the issuer's checks; [`claims`]: the typed claims and the verified payload;
//! - [`verifier`]: keys parsed once, one aws-lc-rs algorithm per JWS algorithm;
//! - [`algorithm`] and [`error`]: the public vocabulary.
//!
//! A token goes through four steps. Nothing a client learns from a refusal before the signature has
//! verified depends on the configuration, and an unsigned token costs only the decoding of its
//! segments:
//!
//! 1. [`parse`]: split the three segments, decode the header and the payload (strict base64url,
//!    strict JSON), reject `none`, unknown algorithms and any `crit` header, and read `iss` alone.
//! 2. [`check_algorithm`]: the `alg` allow-list of the issuer the token names (chosen by exact `iss`
//!    match before this step).
//! 3. [`verify_signature`]: the key chosen by `kid` and algorithm checks the signature with aws-lc-rs.
//! 4. [`parse_claims`] and [`check_claims`], only for a token whose signature verified: every member
//!    of the payload unique at every depth, claim arrays bounded, then `exp`, `nbf`, `iat`, `aud`,
//!    `typ`, RFC 9068 and the lifetime policy.
//!
//! Refusals in steps 1–3 other than the token's own syntax (malformed, a member twice, `crit`, a
//! missing or non-string `iss`) share one description ("not accepted"), so a probe with unsigned
//! tokens cannot tell a trusted issuer, algorithm, audience or `kid` from an untrusted one. (While
//! a trusted issuer's keys cannot be had at all, its tokens get 503 rather than 401.)
//!
//! Header parameters that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never read: keys only ever
//! come from the issuer's configured key source.
//!
//! The signature step calls aws-lc-rs directly on keys parsed once when the key set was loaded
//! ([`Verifier`]). Each JWS `alg` maps to exactly one aws-lc-rs algorithm in the table in
//! [`verifier`]; `jsonwebtoken` stays in charge of the JWK/PEM models and of minting in the test kit.

mod algorithm;
mod claims;
mod error;
mod json;
mod jws;
mod policy;
mod verifier;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub(crate) use algorithm::{AlgorithmSet, KeyFamily};
pub(crate) use claims::{
    ClaimNames, MAX_CLAIM_VALUES, OneOrMany, Payload, RawClaims, parse_claims,
};
pub use error::TokenError;
pub(crate) use jws::{UnverifiedToken, parse, verify_signature};
pub(crate) use policy::{ClaimsPolicy, check_algorithm, check_claims, media_type, now};
pub(crate) use verifier::{KeyMaterial, Verifier};
