//! The [`Guard`]: the trusted issuers, their policies and key sources, shared by every request.
//!
//! A guard is cheap to clone (one `Arc`) and safe to share between tasks. It is built once, at
//! start-up, from one or more [`Issuer`]s; the token's `iss` picks the issuer by exact match before
//! any key is looked at, so a token from an unknown issuer costs no key lookup and no network.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer, TokenError};
//!
//! let key = SigningKey::generate(Algorithm::EdDSA)?;
//! let guard = Guard::builder()
//!     .issuer(
//!         Issuer::new("https://issuer.example")
//!             .audience("https://api.example")
//!             .keys(key.key_set())
//!             .max_token_lifetime(Duration::from_secs(3600)),
//!     )
//!     .realm("payments")
//!     .build()
//!     .await?;
//!
//! let token = key.token("https://issuer.example", "https://api.example").sign()?;
//! assert!(guard.verify(&token).await.is_ok());
//!
//! let wrong_audience = key.token("https://issuer.example", "https://other.example").sign()?;
//! assert_eq!(guard.verify(&wrong_audience).await.unwrap_err(), TokenError::AudienceMismatch);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::{HeaderMap, Response, Uri};

use crate::bearer::BearerPolicy;
use crate::challenge::{Rejection, is_grpc};
use crate::claims::{Claims, ClientIdClaims};
use crate::jwks::{JwksLocation, JwksOptions, KeySet, KeySource, KeyStatus, RemoteKeys};
use crate::scope::ScopeClaims;
use crate::validate::{self, Algorithm, AlgorithmSet, ClaimsPolicy, TokenError};
use crate::verified_cache::{CacheConfig, CachedToken, VerifiedCache};

/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Default for [`GuardBuilder::startup_timeout`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Verifies bearer tokens against a fixed set of trusted issuers.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    issuers: Box<[IssuerState]>,
    bearer: BearerPolicy,
    realm: Option<&'static str>,
    cache: Option<VerifiedCache>,
}

/// How full the verified-token cache is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Cached tokens.
    pub entries: u64,
    /// Their weight in bytes (tokens, payloads and a fixed per-entry overhead), which the
    /// configured size bounds.
    pub weighted_bytes: u64,
}

struct IssuerState {
    issuer: Box<str>,
    policy: ClaimsPolicy,
    scope_claims: ScopeClaims,
    client_id_claims: ClientIdClaims,
    keys: KeySource,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|issuer| &issuer.issuer)
                    .collect::<Vec<_>>(),
            )
            .field("realm", &self.inner.realm)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Start configuring a guard.
    pub fn builder() -> GuardBuilder {
        GuardBuilder::default()
    }

    /// Verify one token (the string after `Bearer `): structure, issuer, claims, key and signature.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let outcome = match self.verify_cached(token) {
            Some(decided) => decided,
            None => self.verify_in_full(token).await,
        };
        log_outcome(&outcome);
        outcome
    }

    /// What can be decided without waiting: an oversized token, or a verified-token cache hit
    /// that is still valid or has expired. `None`: the token needs a full verification.
    fn verify_cached(&self, token: &str) -> Option<Result<Claims, TokenError>> {
        if token.len() > self.inner.bearer.max_token_bytes {
            return Some(Err(TokenError::Malformed(
                "token is larger than the size limit",
            )));
        }
        let cache = self.inner.cache.as_ref()?;
        let now = validate::now();
        let hit = cache.get(token, now)?;
        let issuer = self.inner.issuers.get(hit.issuer)?;
        // The cache stops serving an entry at `exp`; this check does not rely on that.
        if now >= hit.expires_at + issuer.policy.leeway {
            return Some(Err(TokenError::Expired));
        }
        // A key set change (rotation, removal) sends the token through full verification again.
        (issuer.keys.current_generation() == Some(hit.key_generation)).then_some(Ok(hit.claims))
    }

    async fn verify_in_full(&self, token: &str) -> Result<Claims, TokenError> {
        let now = validate::now();
        let unverified = validate::parse(token)?;
        let issuer = unverified
            .claims
            .iss
            .as_deref()
            .ok_or(TokenError::MissingClaim("iss"))?;
        let (issuer_index, issuer) = self
            .inner
            .issuers
            .iter()
            .enumerate()
            .find(|(_, candidate)| *candidate.issuer == *issuer)
            .ok_or(TokenError::UnknownIssuer)?;
        validate::check_claims(&unverified, &issuer.policy, now)?;

        let kid = unverified.kid.as_deref();
        let mut keys = issuer.keys.current().await?;
        let mut candidates = match keys.select(kid, unverified.algorithm) {
            Err(TokenError::UnknownKey) => {
                // The issuer may have rotated keys since the set was loaded.
                keys = issuer.keys.refresh_for_unknown_key(&keys).await?;
                keys.select(kid, unverified.algorithm)?
            }
            selected => selected?,
        };
        // Waiting for keys can take seconds: the token must be unexpired now, not only on arrival.
        let now = validate::now();
        validate::check_expiry(&unverified, &issuer.policy, now)?;
        // Keys sharing the token's `kid` are each tried: any one of them may have signed it.
        if !candidates.any(|verifier| validate::verify_signature(&unverified, verifier).is_ok()) {
            return Err(TokenError::InvalidSignature);
        }

        let algorithm = unverified.algorithm;
        let key_id = unverified.kid.clone();
        let expires_at = unverified.claims.exp.map_or(0.0, |exp| exp.0);
        let parts =
            validate::into_verified(unverified, &issuer.scope_claims, &issuer.client_id_claims)?;
        let claims = Claims::new(parts, algorithm, key_id);
        if let Some(cache) = &self.inner.cache
            && expires_at > now
        {
            cache.insert(
                token,
                CachedToken {
                    claims: claims.clone(),
                    issuer: issuer_index,
                    key_generation: keys.generation(),
                    expires_at,
                },
            );
        }
        Ok(claims)
    }

    /// Authenticate a request: find its bearer token and verify it. `Ok(None)` when the request
    /// carries no token at all; whether that is acceptable is the caller's decision.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<Claims>, Rejection> {
        let token = match self.inner.bearer.extract(headers, uri) {
            Ok(Some(token)) => token,
            Ok(None) => return Ok(None),
            Err(err) => {
                tracing::debug!(outcome = "rejected", reason = %err, "malformed bearer request");
                return Err(err.into());
            }
        };
        match token {
            Cow::Borrowed(token) => self.verify(token).await,
            Cow::Owned(token) => self.verify(&token).await,
        }
        .map(Some)
        .map_err(Rejection::from)
    }

    /// [`authenticate`](Self::authenticate) when it can finish without waiting (no token, a
    /// malformed request, a cache hit); `None` when the token needs a full verification. Lets
    /// the layer serve repeated tokens without allocating a future.
    pub(crate) fn authenticate_cached(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Option<Result<Option<Claims>, Rejection>> {
        let token = match self.inner.bearer.extract(headers, uri) {
            Ok(Some(token)) => token,
            Ok(None) => return Some(Ok(None)),
            Err(err) => {
                tracing::debug!(outcome = "rejected", reason = %err, "malformed bearer request");
                return Some(Err(err.into()));
            }
        };
        let outcome = self.verify_cached(&token)?;
        log_outcome(&outcome);
        Some(outcome.map(Some).map_err(Rejection::from))
    }

    /// The response for a rejection: a gRPC status when the request is gRPC, an RFC 6750
    /// challenge otherwise.
    pub fn reject<B: Default>(
        &self,
        rejection: &Rejection,
        request_headers: &HeaderMap,
    ) -> Response<B> {
        rejection.to_response(self.realm(), is_grpc(request_headers))
    }

    /// Size of the verified-token cache, or `None` when it is off.
    pub fn verified_token_cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache.as_ref().map(|cache| CacheStats {
            entries: cache.entry_count(),
            weighted_bytes: cache.weighted_size(),
        })
    }

    /// The `realm` sent in challenges.
    pub fn realm(&self) -> Option<&str> {
        self.inner.realm
    }

    pub(crate) fn static_realm(&self) -> Option<&'static str> {
        self.inner.realm
    }

    /// The state of each issuer's keys, in configuration order: how fresh they are, when they were
    /// last fetched and what the last failure was. Cheap; no network.
    pub fn key_status(&self) -> Vec<KeyStatus> {
        self.inner
            .issuers
            .iter()
            .map(|issuer| issuer.keys.status(&issuer.issuer))
            .collect()
    }
}

/// Where an issuer's keys come from, as configured.
#[derive(Debug)]
enum KeyConfig {
    Static(KeySet),
    Remote(JwksLocation),
}

/// The decision event: issuer, client, key and outcome — never the token.
fn log_outcome(outcome: &Result<Claims, TokenError>) {
    match outcome {
        Ok(claims) => tracing::debug!(
            issuer = claims.issuer(),
            client_id = claims.client_id(),
            kid = claims.key_id(),
            outcome = "accepted",
            "bearer token verified"
        ),
        Err(err @ TokenError::KeysUnavailable { .. }) => {
            tracing::warn!(outcome = "unavailable", reason = %err, "bearer token not verified")
        }
        Err(err) => tracing::debug!(outcome = "rejected", reason = %err, "bearer token rejected"),
    }
}

/// One trusted authorization server and what its tokens must satisfy.
#[derive(Debug)]
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    keys: Option<KeyConfig>,
    jwks_options: JwksOptions,
    leeway: Duration,
    rfc9068: bool,
    max_lifetime: Option<Duration>,
    scope_claims: ScopeClaims,
    client_id_claims: ClientIdClaims,
}

impl Issuer {
    /// An issuer identified by its exact `iss` value (no normalisation: a trailing `/` matters).
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: Algorithm::DEFAULT_ALLOWED.into_iter().collect(),
            keys: None,
            jwks_options: JwksOptions::default(),
            leeway: DEFAULT_LEEWAY,
            rfc9068: false,
            max_lifetime: None,
            scope_claims: ScopeClaims::default(),
            client_id_claims: ClientIdClaims::default(),
        }
    }

    /// Accept tokens whose `aud` contains `audience`. At least one audience is required; call
    /// again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Replace the algorithm allow-list (default: [`Algorithm::DEFAULT_ALLOWED`]). HMAC algorithms
    /// additionally need a key set made with [`KeySet::hmac_secret`].
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Verify with these keys (PEM, JWK, JWK Set JSON or an HMAC secret). Replaces any earlier
    /// key source of this issuer.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(KeyConfig::Static(keys));
        self
    }

    /// Verify with the keys published at this JWK Set URL (`http` or `https`), fetched and cached
    /// as [`JwksOptions`] says. Replaces any earlier key source of this issuer. HMAC algorithms
    /// cannot be allowed with published keys.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.keys = Some(KeyConfig::Remote(JwksLocation::Uri(url.into())));
        self
    }

    /// Verify with the keys named by the issuer's own metadata: its `jwks_uri` is read from
    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery) or, failing that,
    /// from the RFC 8414 document (`/.well-known/oauth-authorization-server` inserted before the
    /// issuer's path). The metadata's `issuer` must equal this issuer exactly. The issuer must
    /// then be an `http(s)` URL. After a failed key fetch the metadata is read again, so an issuer
    /// that moves its `jwks_uri` is followed; if the metadata cannot be read, the last known
    /// `jwks_uri` is fetched. Replaces any earlier key source of this issuer.
    pub fn discover(mut self) -> Self {
        self.keys = Some(KeyConfig::Remote(JwksLocation::Discover));
        self
    }

    /// Caching, refresh and fetch limits for this issuer's published keys (see [`JwksOptions`]
    /// for the defaults). Ignored for static keys.
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.jwks_options = options;
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// RFC 9068 strict mode: `typ` must be `at+jwt` (or `application/at+jwt`) and `iss`, `exp`,
    /// `aud`, `sub`, `client_id`, `iat` and `jti` are required.
    pub fn require_rfc9068(mut self, strict: bool) -> Self {
        self.rfc9068 = strict;
        self
    }

    /// Reject tokens whose `exp - iat` exceeds `lifetime` (and tokens without `iat`).
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// The claims scopes are read from (default `scope`, `scp`, `permissions`). Each is a claim
    /// name or a dotted path into nested objects, e.g. `realm_access.roles`; the scopes of all of
    /// them are combined. Each may hold a space-separated string or an array of strings.
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = ScopeClaims::new(claims);
        self
    }

    /// The claims that name the calling client, first present wins (default `client_id`, `azp`,
    /// `sub`). For example `["cid", "sub"]` for Okta, `["appid", "azp"]` for Entra ID v1/v2.
    pub fn client_id_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_id_claims = ClientIdClaims::new(claims);
        self
    }

    fn into_state(self, client: &mut HttpClient) -> Result<IssuerState, BuildError> {
        let issuer = self.issuer;
        if issuer.is_empty() {
            return Err(BuildError::EmptyIssuer);
        }
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience { issuer });
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms { issuer });
        }
        let Some(keys) = self.keys else {
            return Err(BuildError::NoKeySource { issuer });
        };
        let wants_hmac = self.algorithms.iter().any(Algorithm::is_hmac);
        let keys = match keys {
            KeyConfig::Static(keys) => {
                if wants_hmac && !keys.has_secret() {
                    return Err(BuildError::HmacWithoutSecret { issuer });
                }
                // A JWK Set whose every key was skipped (encryption keys, unsupported curves, weak
                // RSA), or whose keys fit no allowed algorithm, would answer every client 401 for
                // a server-side mistake.
                if !keys.verifies_any(self.algorithms) {
                    return Err(BuildError::NoUsableKeys { issuer });
                }
                KeySource::Static(Arc::new(keys))
            }
            KeyConfig::Remote(_) if wants_hmac => {
                return Err(BuildError::HmacWithPublishedKeys { issuer });
            }
            KeyConfig::Remote(location) => {
                let client = client.get()?;
                match RemoteKeys::new(&issuer, &location, self.jwks_options, client) {
                    Ok(remote) => KeySource::Remote(remote),
                    Err(reason) => return Err(BuildError::InvalidUrl { issuer, reason }),
                }
            }
        };
        Ok(IssuerState {
            issuer: issuer.into_boxed_str(),
            policy: ClaimsPolicy {
                audiences: self
                    .audiences
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                algorithms: self.algorithms,
                leeway: self.leeway.as_secs_f64(),
                rfc9068: self.rfc9068,
                max_lifetime: self.max_lifetime.map(|lifetime| lifetime.as_secs_f64()),
            },
            scope_claims: self.scope_claims,
            client_id_claims: self.client_id_claims,
            keys,
        })
    }
}

/// The HTTP client for key and metadata fetches: the user's, or one made on first need.
enum HttpClient {
    Pending(Option<reqwest::Client>),
    Ready(reqwest::Client),
}

impl HttpClient {
    fn get(&mut self) -> Result<reqwest::Client, BuildError> {
        let client = match self {
            HttpClient::Ready(client) => return Ok(client.clone()),
            HttpClient::Pending(Some(client)) => client.clone(),
            HttpClient::Pending(None) => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|err| BuildError::HttpClient(err.to_string()))?,
        };
        *self = HttpClient::Ready(client.clone());
        Ok(client)
    }
}

/// Configures a [`Guard`].
#[derive(Debug, Default)]
pub struct GuardBuilder {
    issuers: Vec<Issuer>,
    bearer: BearerPolicy,
    realm: Option<String>,
    http_client: Option<reqwest::Client>,
    startup_timeout: Option<Duration>,
    require_keys_at_startup: bool,
    cache: CacheSettings,
}

#[derive(Debug, Default)]
struct CacheSettings {
    disabled: bool,
    config: CacheConfig,
}

impl GuardBuilder {
    /// Trust tokens from this issuer. Call once per issuer.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The `realm` of the challenges (default: none). A fixed configuration value: each distinct
    /// realm string is kept for the life of the process.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Largest accepted token in bytes (default 8 KiB); larger ones are refused before parsing.
    pub fn max_token_bytes(mut self, limit: usize) -> Self {
        self.bearer.max_token_bytes = limit;
        self
    }

    /// Also read the token from the `access_token` query parameter (RFC 6750 §2.3). Off by
    /// default: URLs end up in logs. A token in both the header and the query is rejected.
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.bearer.allow_query = allow;
        self
    }

    /// The HTTP client for every JWKS and metadata request (proxies, root certificates, …).
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a redirected response is
    /// refused in any case, but a following client has already made the second request. Its own
    /// timeouts apply on top of [`JwksOptions::fetch_timeout`]. Default: a client with no redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// How long [`build`](Self::build) waits for the first keys of issuers with published keys,
    /// failed attempts included (default [`DEFAULT_STARTUP_TIMEOUT`]). Fetches are retried with
    /// [`JwksOptions::retry_backoff`]. `Duration::ZERO` skips the prefetch: the first request
    /// fetches (all requests arriving meanwhile share that one fetch).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = Some(timeout);
        self
    }

    /// Whether [`build`](Self::build) fails with [`BuildError::KeysUnavailable`] when an issuer's
    /// keys could not be fetched within the [startup timeout](Self::startup_timeout). Default
    /// `false`: the guard is built, requests get 503 with `Retry-After`, and fetches are retried in
    /// the background until keys arrive.
    pub fn require_keys_at_startup(mut self, require: bool) -> Self {
        self.require_keys_at_startup = require;
        self
    }

    /// Keep verified tokens in memory so a repeated token costs a lookup, not a signature check
    /// (default: on). Cached tokens are still checked on every request for expiry and for a
    /// change of the issuer's keys; see the crate docs.
    pub fn verified_token_cache(mut self, enabled: bool) -> Self {
        self.cache.disabled = !enabled;
        self
    }

    /// Bound on the verified-token cache in bytes (default 16 MiB): each entry counts its token,
    /// everything its claims hold and a measured fixed overhead, so the bound is real memory.
    ///
    /// Each thread that verifies tokens also keeps up to 256 recently used entries of its own in
    /// front of the shared cache, only ones the shared cache held and only entries counted at up
    /// to 4 KiB. They share the shared entries' memory until an entry is hit often, then
    /// hold a copy of its claims; with typical tokens this is a few hundred KiB per thread, at
    /// most ~2 MiB, outside this bound.
    pub fn verified_token_cache_size(mut self, max_bytes: u64) -> Self {
        self.cache.config.max_bytes = max_bytes;
        self
    }

    /// Longest time one verified token stays cached, whatever its `exp` (default 1 hour).
    pub fn verified_token_cache_lifetime(mut self, lifetime: Duration) -> Self {
        self.cache.config.max_entry_lifetime = lifetime;
        self
    }

    /// Check the configuration, fetch published keys (see
    /// [`startup_timeout`](Self::startup_timeout)) and build the guard.
    pub async fn build(self) -> Result<Guard, BuildError> {
        if self.issuers.is_empty() {
            return Err(BuildError::NoIssuers);
        }
        let mut client = HttpClient::Pending(self.http_client);
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for issuer in self.issuers {
            let state = issuer.into_state(&mut client)?;
            if issuers
                .iter()
                .any(|seen: &IssuerState| seen.issuer == state.issuer)
            {
                return Err(BuildError::DuplicateIssuer {
                    issuer: state.issuer.into(),
                });
            }
            issuers.push(state);
        }
        let startup_timeout = self.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT);
        if !startup_timeout.is_zero() {
            let deadline = Instant::now() + startup_timeout.min(Duration::from_secs(24 * 3600));
            // Every source fetches in its own task, so the fetches run side by side and the waits
            // below share one deadline.
            for issuer in &issuers {
                issuer.keys.start_prefetch();
            }
            for issuer in &issuers {
                let prefetched = issuer.keys.wait_for_keys(deadline).await;
                if let Err(reason) = prefetched {
                    if self.require_keys_at_startup {
                        return Err(BuildError::KeysUnavailable {
                            issuer: issuer.issuer.to_string(),
                            reason,
                        });
                    }
                    tracing::warn!(issuer = %issuer.issuer, %reason, "starting without keys; retrying in the background");
                }
            }
        }
        Ok(Guard {
            inner: Arc::new(GuardInner {
                issuers: issuers.into_boxed_slice(),
                bearer: self.bearer,
                realm: self.realm.map(intern),
                cache: (!self.cache.disabled).then(|| VerifiedCache::new(self.cache.config)),
            }),
        })
    }
}

/// The guard's configuration is incomplete or unsafe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No issuer was configured.
    #[error("no issuer configured")]
    NoIssuers,
    /// An issuer with an empty identifier.
    #[error("issuer identifier is empty")]
    EmptyIssuer,
    /// The same issuer was configured twice.
    #[error("issuer {issuer} configured twice")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
    /// An issuer without an audience: every token must be checked against one.
    #[error("issuer {issuer} has no audience")]
    NoAudience {
        /// The issuer.
        issuer: String,
    },
    /// An issuer with an empty algorithm allow-list.
    #[error("issuer {issuer} allows no algorithm")]
    NoAlgorithms {
        /// The issuer.
        issuer: String,
    },
    /// An issuer without keys.
    #[error("issuer {issuer} has no key source")]
    NoKeySource {
        /// The issuer.
        issuer: String,
    },
    /// A static key set with no key for the allowed algorithms, for example a JWK Set whose keys
    /// are all for encryption, too weak or of an unsupported type, or RSA keys when only ECDSA is
    /// allowed.
    #[error("issuer {issuer} has no static key for its allowed algorithms")]
    NoUsableKeys {
        /// The issuer.
        issuer: String,
    },
    /// HMAC algorithms allowed without an explicitly configured shared secret.
    #[error("issuer {issuer} allows HMAC algorithms but has no shared secret")]
    HmacWithoutSecret {
        /// The issuer.
        issuer: String,
    },
    /// HMAC algorithms allowed for an issuer whose keys are published (JWKS): a shared secret is
    /// never taken from a JWK Set.
    #[error("issuer {issuer} allows HMAC algorithms with published keys")]
    HmacWithPublishedKeys {
        /// The issuer.
        issuer: String,
    },
    /// A JWK Set URL, or an issuer to discover, that is not an `http(s)` URL.
    #[error("issuer {issuer}: {reason}")]
    InvalidUrl {
        /// The issuer.
        issuer: String,
        /// What is wrong with the URL.
        reason: String,
    },
    /// The HTTP client for key fetches could not be created.
    #[error("HTTP client: {0}")]
    HttpClient(String),
    /// An issuer's keys could not be fetched at start-up and
    /// [`GuardBuilder::require_keys_at_startup`] was set.
    #[error("issuer {issuer}: keys unavailable at start-up: {reason}")]
    KeysUnavailable {
        /// The issuer.
        issuer: String,
        /// The last fetch error.
        reason: String,
    },
}

/// A realm as a `&'static str`: the guard marks every request it admits with its realm, and a
/// static string is copied there without the reference counting that two cores contend on. Each
/// distinct realm is leaked once per process (guards built again with the same realm reuse it).
fn intern(realm: String) -> &'static str {
    static REALMS: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut realms = REALMS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = realms.get(realm.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(realm.into_boxed_str());
    realms.insert(leaked);
    leaked
}
