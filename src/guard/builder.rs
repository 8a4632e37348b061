//! Building a [`Guard`]: [`GuardBuilder`], the checks a configuration must pass ([`BuildError`]),
//! and the key prefetch at start-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderName;

use super::build_error::BuildError;
use super::http_client::HttpClient;
use super::issuer::{Issuer, IssuerState};
use super::realm::intern;
use super::verified_cache::{CacheConfig, VerifiedCache};
use super::{Guard, GuardInner};
use crate::http::source::TokenSources;
use crate::jwks::StartupError;

/// Default for [`GuardBuilder::startup_timeout`].
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures a [`Guard`].
#[derive(Debug, Default)]
pub struct GuardBuilder {
    issuers: Vec<Issuer>,
    sources: TokenSources,
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
        self.sources.max_token_bytes = limit;
        self
    }

    /// Also read the token from the `access_token` query parameter (RFC 6750 §2.3). Off by
    /// default: URLs end up in logs. A token in both the header and the query is rejected.
    pub fn allow_query_token(mut self, allow: bool) -> Self {
        self.sources.allow_query = allow;
        self
    }

    /// Also read the token from this header, which carries the bare token (no scheme), for
    /// example `x-forwarded-access-token` set by a proxy in front of the API. A request with a
    /// token here and in another source, or with this header twice, is refused with 400. Naming
    /// `authorization` itself is a build error ([`BuildError::TokenHeaderIsAuthorization`]).
    pub fn token_header(mut self, name: HeaderName) -> Self {
        self.sources.header = Some(name);
        self
    }

    /// Also read the token from the cookie `name` (off by default). Browsers send cookies on
    /// their own, so an API that reads tokens from a cookie must defend against cross-site request
    /// forgery (SameSite cookies, a CSRF token): machine clients rarely need this. A token in the
    /// cookie and in another source, or the cookie twice, is refused with 400.
    pub fn token_cookie(mut self, name: impl Into<String>) -> Self {
        self.sources.cookie = Some(name.into().into_boxed_str());
        self
    }

    /// The HTTP client for every JWKS and metadata request (proxies, root certificates, …).
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a redirected response is
    /// refused in any case, but a following client has already made the second request. Its own
    /// timeouts apply on top of [`JwksOptions::fetch_timeout`](crate::JwksOptions::fetch_timeout). Default: a client with no redirects.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// How long [`build`](Self::build) waits for the first keys of issuers with published keys,
    /// failed attempts included (default [`DEFAULT_STARTUP_TIMEOUT`]). Fetches are retried with
    /// [`JwksOptions::retry_backoff`](crate::JwksOptions::retry_backoff). `Duration::ZERO` skips the prefetch: the first request
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
    /// everything its claims hold when it is cached and a fixed overhead, so the bound is real
    /// memory. Not counted: what handlers add to cached claims later (the payload's JSON document
    /// once `Claims::get`, `deserialize` or `typed` ran, a typed value), and up to ~2 MiB per thread
    /// that verifies tokens of recently used entries (a few hundred KiB with typical tokens).
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
        if self.sources.header == Some(http::header::AUTHORIZATION) {
            // Read twice, every request would carry "two tokens".
            return Err(BuildError::TokenHeaderIsAuthorization);
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
                match issuer.keys.wait_for_keys(deadline).await {
                    Ok(()) => {}
                    // A configuration error, not an outage: waiting longer cannot fix it.
                    Err(StartupError::IssuerMismatch { metadata_issuer }) => {
                        return Err(BuildError::IssuerMismatch {
                            issuer: issuer.issuer.to_string(),
                            metadata_issuer,
                        });
                    }
                    Err(StartupError::Unavailable(reason)) if self.require_keys_at_startup => {
                        return Err(BuildError::KeysUnavailable {
                            issuer: issuer.issuer.to_string(),
                            reason,
                        });
                    }
                    Err(StartupError::Unavailable(reason)) => {
                        tracing::warn!(issuer = %issuer.issuer, %reason, "starting without keys; retrying in the background");
                    }
                }
            }
        }
        Ok(Guard {
            inner: Arc::new(GuardInner {
                issuers: issuers.into_boxed_slice(),
                sources: self.sources,
                realm: self.realm.map(intern),
                cache: (!self.cache.disabled).then(|| VerifiedCache::new(self.cache.config)),
            }),
        })
    }
}
