//! # bearer-guard
//!
//! Protect APIs called by machines. Services obtain short-lived JWT access tokens from an OAuth 2.0
//! authorization server with the client-credentials grant and send them as
//! `Authorization: Bearer <jwt>`; bearer-guard verifies every token (signature, `iss`, `aud`,
//! `exp`, …) against the issuer's keys and lets each route declare the scopes it needs.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer, Rejection, ScopeRequirement};
//!
//! // In production the keys come from the issuer's JWKS; here a test key plays the issuer.
//! let issuer_key = SigningKey::generate(Algorithm::RS256)?;
//! let guard = Guard::builder()
//!     .issuer(
//!         Issuer::new("https://login.example.com/")
//!             .audience("https://payments.example.com")
//!             .keys(issuer_key.key_set()),
//!     )
//!     .realm("payments")
//!     .build()
//!     .await?;
//!
//! // A client-credentials access token, as the authorization server would issue it.
//! let token = issuer_key
//!     .token("https://login.example.com/", "https://payments.example.com")
//!     .claim("client_id", "invoice-job")
//!     .scope("payments:read")
//!     .sign()?;
//!
//! let claims = guard.verify(&token).await?;
//! assert_eq!(claims.client_id(), Some("invoice-job"));
//!
//! // Routes declare what they need; a missing scope is a 403 with an RFC 6750 challenge.
//! let write = ScopeRequirement::all_of(["payments:write"]);
//! let rejection = Rejection::from(write.check(claims.scopes()).unwrap_err());
//! assert_eq!(rejection.status(), 403);
//! assert_eq!(
//!     rejection.www_authenticate(guard.realm()).unwrap(),
//!     "Bearer realm=\"payments\", error=\"insufficient_scope\", \
//!      error_description=\"The access token lacks a required scope\", scope=\"payments:write\"",
//! );
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! ## What is checked, by default
//!
//! - The token comes from the `Authorization` header only, once, as a `b64token` of at most 8 KiB.
//! - `alg` must be on the issuer's allow-list (RS*, PS*, ES256, ES384, EdDSA); `none` never, HMAC
//!   only with an explicitly configured secret and never with published keys.
//! - The key is chosen by `kid` and must fit the algorithm (type, curve, the JWK's own `alg`);
//!   `jku`, `x5u`, `jwk` and `x5c` are never used; any `crit` header is rejected.
//! - `iss` must equal a configured issuer exactly; `aud` must contain a configured audience;
//!   `exp` is required; `nbf` and `iat` are honoured; 60 s leeway.
//! - Optional: RFC 9068 strict mode (`typ` = `at+jwt` and its required claims) and a maximum
//!   token lifetime.
//!
//! Every rejection is a typed error ([`Rejection`]) rendered as an RFC 6750 challenge, or as a
//! gRPC status for gRPC requests.
//!
//! ## Features
//! - `axum`: extractors and `IntoResponse` for rejections.
//! - `tonic`: gRPC helpers.
//! - `testing`: [`testing::SigningKey`] (real keys and tokens) and [`testing::TestIssuer`] (a real
//!   loopback authorization server) for your own tests.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod claims;
mod guard;
mod http;
mod jwks;
pub mod layer;
mod scope;
mod token;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "tonic")]
pub mod tonic;

pub use claims::Claims;
pub use guard::{
    BuildError, CacheStats, DEFAULT_LEEWAY, DEFAULT_STARTUP_TIMEOUT, Guard, GuardBuilder, Issuer,
    VerifyError,
};
pub use http::rejection::{EmptyBody, Protocol, Rejection, RejectionBody};
pub use http::source::BearerError;
pub use jwks::{JwksOptions, KeyError, KeyFreshness, KeySet, KeyStatus, KeysUnavailable};
pub use layer::{BearerLayer, BearerService, RequireScopeLayer, RequireScopeService};
pub use scope::{InsufficientScope, ScopeRequirement, ScopeSet, Scopes};
pub use token::{Algorithm, TokenError, UnknownAlgorithm};
