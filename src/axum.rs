//! axum integration (feature `axum`): extractors for the verified token and per-route scopes.
//!
//! - [`Claims`] (and `Option<Claims>` for routes behind [`BearerLayer::optional`]) hands the
//!   verified token to a handler.
//! - [`RequireScope<S>`] does the same and first checks the scopes a [`scopes!`](crate::scopes)
//!   type names; a token without them gets `403 insufficient_scope` with `scope="…"`.
//! - Rejections are [`AuthRejection`]s: RFC 6750 challenges (or gRPC statuses), never a 500. An
//!   extractor used on a route the [`BearerLayer`] does not cover is a misconfiguration: it is
//!   logged as an error and answered with a 401, so a forgotten layer fails closed.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use bearer_guard::axum::RequireScope;
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, BearerLayer, Claims, Guard, Issuer};
//! use tower::ServiceExt;
//!
//! bearer_guard::scopes! {
//!     PaymentsRead = "payments:read";
//! }
//!
//! async fn list_payments(scoped: RequireScope<PaymentsRead>) -> String {
//!     format!("payments for {}", scoped.client_id().unwrap_or("?"))
//! }
//! async fn whoami(claims: Claims) -> String {
//!     claims.client_id().unwrap_or("?").to_owned()
//! }
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let guard = Guard::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api").keys(key.key_set()))
//!     .build()
//!     .await?;
//! let app = Router::new()
//!     .route("/payments", get(list_payments))
//!     .route("/whoami", get(whoami))
//!     .layer(BearerLayer::new(guard));
//!
//! let token = key.token("https://issuer.example", "api").scope("payments:write").sign()?;
//! let request = http::Request::get("/payments")
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(axum::body::Body::empty())?;
//! let response = app.oneshot(request).await?;
//! assert_eq!(response.status(), 403);
//! assert!(response.headers()["www-authenticate"].to_str()?.contains(r#"scope="payments:read""#));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! [`BearerLayer`]: crate::BearerLayer
//! [`BearerLayer::optional`]: crate::BearerLayer::optional

/// What an axum application uses next to the extractors, so that one import path serves:
/// `use bearer_guard::axum::{Claims, RequireScope, BearerLayer, Guard, Issuer};`.
pub use crate::{
    BearerLayer, Claims, Guard, Issuer, Rejection, RequireScopeLayer, ScopeRequirement, ScopeSet,
    Scopes,
};

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::http::rejection::Protocol;
use crate::http::{Admitted, RenderContext};

/// Why an extractor refused the request, ready to be sent as the response (with the realm, the
/// protocol and the rejection body of the guard the request went through).
#[derive(Debug, Clone)]
pub struct AuthRejection {
    rejection: Rejection,
    render: RenderContext<axum::body::Body>,
}

impl AuthRejection {
    fn new(rejection: Rejection, parts: &Parts) -> Self {
        AuthRejection {
            rejection,
            render: RenderContext::of_request(&parts.headers, &parts.extensions),
        }
    }

    /// What went wrong.
    pub fn rejection(&self) -> &Rejection {
        &self.rejection
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.rejection.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.render.render(&self.rejection)
    }
}

/// Renders as HTTP without a realm; prefer [`Guard::reject`](crate::Guard::reject) when the guard
/// is at hand.
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.to_response(None, Protocol::Http)
    }
}

/// The claims the layer left in the request, or the rejection to send when it never ran.
fn claims_in(parts: &Parts) -> Result<Option<Claims>, AuthRejection> {
    if parts.extensions.get::<Admitted>().is_none() {
        tracing::error!(
            path = parts.uri.path(),
            "bearer-guard extractor used on a route without BearerLayer: request refused"
        );
        return Err(AuthRejection::new(Rejection::MissingToken, parts));
    }
    Ok(parts.extensions.get::<Claims>().cloned())
}

fn required(parts: &Parts) -> Result<Claims, AuthRejection> {
    claims_in(parts)?.ok_or_else(|| AuthRejection::new(Rejection::MissingToken, parts))
}

/// What an extractor makes of the request's claims (and its path), its refusal rendered for the
/// request.
fn with_claims<T, R: Into<Rejection>>(
    parts: &Parts,
    extract: impl FnOnce(&Claims, &str) -> Result<T, R>,
) -> Result<T, AuthRejection> {
    let claims = required(parts)?;
    extract(&claims, parts.uri.path()).map_err(|refused| AuthRejection::new(refused.into(), parts))
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        required(parts)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        claims_in(parts)
    }
}

/// The verified token, after checking it grants the scopes `S` names. Derefs to [`Claims`].
pub struct RequireScope<S> {
    claims: Claims,
    scopes: PhantomData<fn() -> S>,
}

impl<S> RequireScope<S> {
    /// The verified claims.
    pub fn into_claims(self) -> Claims {
        self.claims
    }
}

impl<S> Deref for RequireScope<S> {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl<S> fmt::Debug for RequireScope<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequireScope").field(&self.claims).finish()
    }
}

impl<S: ScopeSet, State: Send + Sync> FromRequestParts<State> for RequireScope<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Self, Self::Rejection> {
        with_claims(parts, |claims, path| {
            claims.check_scopes(S::requirement(), path)?;
            Ok::<_, crate::InsufficientScope>(RequireScope {
                claims: claims.clone(),
                scopes: PhantomData,
            })
        })
    }
}

/// The verified token's payload as the application's own type `T`, deserialized once per token
/// when `T` is the first type asked of that token ([`Claims::typed`]). Derefs to `T`. A payload that does not fit `T` is refused with
/// `401 invalid_token` (the token lacks claims this API needs).
///
/// ```
/// use bearer_guard::axum::ClaimsOf;
///
/// #[derive(serde::Deserialize)]
/// struct Tenant {
///     tenant: String,
/// }
///
/// async fn handler(caller: ClaimsOf<Tenant>) -> String {
///     format!("tenant {}", caller.tenant)
/// }
/// let app: axum::Router = axum::Router::new().route("/tenant", axum::routing::get(handler));
/// # let _ = app;
/// ```
pub struct ClaimsOf<T>(pub std::sync::Arc<T>);

impl<T> Deref for ClaimsOf<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for ClaimsOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimsOf(..)")
    }
}

impl<T, State> FromRequestParts<State> for ClaimsOf<T>
where
    T: serde::de::DeserializeOwned + Send + Sync + 'static,
    State: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &State,
    ) -> Result<Self, Self::Rejection> {
        with_claims(parts, |claims, _| {
            claims.typed::<T>().map(ClaimsOf).map_err(|err| {
                tracing::debug!(
                    client_id = claims.client_id(),
                    reason = %err,
                    outcome = "rejected",
                    "token payload does not fit the handler's claims type"
                );
                Rejection::InvalidToken(crate::TokenError::InvalidClaim("claims"))
            })
        })
    }
}
