//! The verified token as handlers see it.
//!
//! The guard inserts [`Claims`] into the request extensions. `Claims` is a handle to shared,
//! immutable data: cloning it is a reference-count bump. The registered claims are typed; everything else in the payload can be read as JSON or
//! deserialized into the caller's own type.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer};
//! use serde::Deserialize;
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let guard = Guard::builder()
//!     .issuer(Issuer::new("https://issuer.example").audience("api").keys(key.key_set()))
//!     .build()
//!     .await?;
//! let token = key
//!     .token("https://issuer.example", "api")
//!     .claim("client_id", "billing-job")
//!     .claim("tenant", "acme")
//!     .scope("payments:read")
//!     .sign()?;
//!
//! let claims = guard.verify(&token).await?;
//! assert_eq!(claims.client_id(), Some("billing-job"));
//! assert!(claims.scopes().contains("payments:read"));
//!
//! #[derive(Deserialize)]
//! struct Tenant { tenant: String }
//! assert_eq!(claims.deserialize::<Tenant>()?.tenant, "acme");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::scope::{InsufficientScope, ScopeClaims, ScopeRequirement, Scopes};
use crate::token::{Algorithm, ClaimNames, Payload, RawClaims, TokenError};

/// A verified access token: its registered claims, its scopes and its full payload.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Claims {
    inner: Arc<ClaimsInner>,
}

#[derive(Clone)]
struct ClaimsInner {
    issuer: String,
    subject: Option<String>,
    audiences: Vec<String>,
    expires_at: f64,
    issued_at: Option<f64>,
    not_before: Option<f64>,
    jwt_id: Option<String>,
    client_id: Option<String>,
    scopes: Scopes,
    algorithm: Algorithm,
    key_id: Option<String>,
    payload: Payload,
    /// The payload as the first application type asked for with [`Claims::typed`], kept with the
    /// claims (and so in the verified-token cache) for every later request with the same token.
    typed: OnceLock<TypedPayload>,
}

/// A deserialized payload and the type it was deserialized into.
#[derive(Clone)]
struct TypedPayload {
    type_id: TypeId,
    value: Arc<dyn Any + Send + Sync>,
}

impl Claims {
    /// The claims of a token whose signature and policy checks passed: the client id and the
    /// scopes are read from the claims the issuer names, custom ones from one parse of the payload.
    pub(crate) fn from_verified(
        mut claims: RawClaims,
        payload: Vec<u8>,
        scope_claims: &ScopeClaims,
        client_id_claims: &ClientIdClaims,
        algorithm: Algorithm,
        key_id: Option<String>,
    ) -> Result<Self, TokenError> {
        let payload = Payload::new(payload);
        let client_id = client_id_claims.resolve(&claims, &payload);
        let scopes = scope_claims.collect(&mut claims, &payload)?;
        let inner = ClaimsInner {
            issuer: claims.iss.unwrap_or_default(),
            subject: claims.sub,
            audiences: claims
                .aud
                .map(|aud| aud.iter().map(str::to_owned).collect())
                .unwrap_or_default(),
            expires_at: claims.exp.map_or(0.0, |exp| exp.0),
            issued_at: claims.iat.map(|iat| iat.0),
            not_before: claims.nbf.map(|nbf| nbf.0),
            jwt_id: claims.jti,
            client_id,
            scopes: Scopes::from_iter(scopes),
            algorithm,
            key_id,
            payload,
            typed: OnceLock::new(),
        };
        Ok(Claims {
            inner: Arc::new(inner),
        })
    }

    /// A copy that shares nothing with `self`, so that threads handing out the same claims do
    /// not contend on one reference count.
    pub(crate) fn detached(&self) -> Self {
        Claims {
            inner: Arc::new(ClaimsInner::clone(&self.inner)),
        }
    }

    /// Heap bytes these claims hold (payload, strings, scope set), counting each allocation's
    /// bookkeeping. A payload of many short scopes or audiences holds far more than its length.
    pub(crate) fn heap_bytes(&self) -> usize {
        /// Pointer and length in the owner, plus the allocator's header and rounding.
        const PER_STRING: usize = 40;
        let inner = &*self.inner;
        let strings = [
            Some(&inner.issuer),
            inner.subject.as_ref(),
            inner.jwt_id.as_ref(),
            inner.client_id.as_ref(),
            inner.key_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(&inner.audiences)
        .map(|text| text.len() + PER_STRING)
        .sum::<usize>();
        let scopes = inner
            .scopes
            .iter()
            .map(|scope| scope.len() + PER_STRING)
            .sum::<usize>();
        std::mem::size_of::<ClaimsInner>()
            + inner.payload.bytes.len()
            + inner.payload.document_heap_bytes()
            + strings
            + scopes
    }

    /// Whether both are the same allocation.
    #[cfg(test)]
    pub(crate) fn shares_with(&self, other: &Claims) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// `iss`: the issuer that signed the token (exactly as configured).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// `sub`, if present. For client-credentials tokens it usually names the client.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// The calling client: `client_id`, else `azp`, else `sub` — or the claims the issuer was
    /// configured with ([`Issuer::client_id_claims`](crate::Issuer::client_id_claims)).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// `aud`, as a list whether the token carried a string or an array.
    pub fn audiences(&self) -> &[String] {
        &self.inner.audiences
    }

    /// `exp` (saturating for dates `SystemTime` cannot hold).
    pub fn expires_at(&self) -> SystemTime {
        numeric_date(self.inner.expires_at)
    }

    /// `iat`, if present.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.inner.issued_at.map(numeric_date)
    }

    /// `nbf`, if present.
    pub fn not_before(&self) -> Option<SystemTime> {
        self.inner.not_before.map(numeric_date)
    }

    /// `jti`, if present.
    pub fn jwt_id(&self) -> Option<&str> {
        self.inner.jwt_id.as_deref()
    }

    /// The scopes the token grants, from the claims the issuer is configured to read.
    pub fn scopes(&self) -> &Scopes {
        &self.inner.scopes
    }

    /// The algorithm the token was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The `kid` of the key that verified the token, if the token named one.
    pub fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
    }

    /// Check `requirement` against these scopes for a request to `path`, logging a refusal.
    pub(crate) fn check_scopes(
        &self,
        requirement: &ScopeRequirement,
        path: &str,
    ) -> Result<(), InsufficientScope> {
        requirement.check(self.scopes()).inspect_err(|_| {
            tracing::debug!(
                client_id = self.client_id(),
                path,
                required = %requirement.describe(),
                outcome = "insufficient_scope",
                "scope check failed"
            );
        })
    }

    /// The raw JSON payload, exactly as signed.
    pub fn payload_json(&self) -> &[u8] {
        &self.inner.payload.bytes
    }

    /// The whole payload as the application's own type, deserialized once per token: the first
    /// type asked for is kept with the claims, so later requests carrying the same token (served
    /// from the verified-token cache) get the same value without deserializing again. Other types
    /// are deserialized on each call, from the same single parse of the payload.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use bearer_guard::testing::SigningKey;
    /// use bearer_guard::{Algorithm, Guard, Issuer};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Tenant { tenant: String }
    ///
    /// let key = SigningKey::generate(Algorithm::ES256)?;
    /// let guard = Guard::builder()
    ///     .issuer(Issuer::new("https://issuer.example").audience("api").keys(key.key_set()))
    ///     .build()
    ///     .await?;
    /// let token = key.token("https://issuer.example", "api").claim("tenant", "acme").sign()?;
    ///
    /// let first = guard.verify(&token).await?.typed::<Tenant>()?;
    /// let again = guard.verify(&token).await?.typed::<Tenant>()?;
    /// assert_eq!(again.tenant, "acme");
    /// assert!(std::sync::Arc::ptr_eq(&first, &again)); // deserialized once
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn typed<T>(&self) -> Result<Arc<T>, serde_json::Error>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        if let Some(kept) = self.inner.typed.get()
            && kept.type_id == TypeId::of::<T>()
            && let Ok(value) = Arc::clone(&kept.value).downcast::<T>()
        {
            return Ok(value);
        }
        let value = Arc::new(self.deserialize::<T>()?);
        let _ = self.inner.typed.set(TypedPayload {
            type_id: TypeId::of::<T>(),
            value: Arc::clone(&value) as Arc<dyn Any + Send + Sync>,
        });
        Ok(value)
    }

    /// One claim of the payload, by name, as JSON. The payload is parsed once, on the first call
    /// of this or [`deserialize`](Self::deserialize), and the parse is kept with the claims.
    pub fn get(&self, name: &str) -> Option<serde_json::Value> {
        self.inner.payload.document()?.get(name).cloned()
    }

    /// The whole payload deserialized into the caller's own type, from the same single parse as
    /// [`get`](Self::get). No member of a verified payload appears twice, so the result cannot
    /// disagree with the typed claims.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match self.inner.payload.document() {
            Some(document) => T::deserialize(document),
            None => serde_json::from_slice(&self.inner.payload.bytes),
        }
    }
}

/// Never prints the payload: it may carry personal data.
impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("issuer", &self.inner.issuer)
            .field("subject", &self.inner.subject)
            .field("client_id", &self.inner.client_id)
            .field("audiences", &self.inner.audiences)
            .field("scopes", &self.inner.scopes)
            .field("expires_at", &self.inner.expires_at)
            .finish_non_exhaustive()
    }
}

/// The claims that name the calling client, first present wins (configured per issuer).
#[derive(Clone, Debug)]
pub(crate) struct ClientIdClaims(pub(crate) ClaimNames);

impl Default for ClientIdClaims {
    /// `client_id` (RFC 9068) first, then `azp` (OIDC-style issuers), then `sub`: in the
    /// client-credentials grant the subject is the client itself.
    fn default() -> Self {
        ClientIdClaims(ClaimNames::from_iter(["client_id", "azp", "sub"]))
    }
}

impl ClientIdClaims {
    /// The first configured claim that holds a string. Other claims than the registered ones are
    /// read from the payload's document, which is parsed only when such a claim is configured.
    pub(crate) fn resolve(&self, claims: &RawClaims, payload: &Payload) -> Option<String> {
        self.0.iter().find_map(|name| match name {
            "client_id" => claims.client_id.clone(),
            "azp" => claims.azp.clone(),
            "sub" => claims.sub.clone(),
            other => payload.document()?.get(other)?.as_str().map(str::to_owned),
        })
    }
}

/// Seconds since the epoch → `SystemTime`, clamped to what every platform can represent.
fn numeric_date(seconds: f64) -> SystemTime {
    // Year 9999: past any token's life, and inside SystemTime's range everywhere.
    const MAX_SECONDS: f64 = 253_402_300_799.0;
    if seconds <= 0.0 {
        return UNIX_EPOCH;
    }
    UNIX_EPOCH + Duration::from_secs_f64(seconds.min(MAX_SECONDS))
}
