//! Remote JWKS: an issuer's published keys, fetched, cached and kept fresh.
//!
//! Each remote key set lives in a `moka` cache as one entry: the parsed [`KeySet`], its `ETag`
//! and when to refresh it. The request path only reads that entry (an `Arc` clone, no lock held
//! across an await, no network); everything else happens in spawned tasks:
//!
//! - **Lifetime.** A fetched set is fresh for its TTL: `Cache-Control: max-age` clamped to
//!   [`JwksOptions::ttl_bounds`] (1 min to 24 h), or [`JwksOptions::ttl`] (10 min) without one.
//!   Revalidation sends `If-None-Match`, so an unchanged set costs a `304`.
//! - **Refresh ahead.** The first request after 80 % of the TTL starts one background refresh;
//!   requests keep using the cached set meanwhile.
//! - **Coalescing.** At most one fetch per key set is in flight; every caller that needs its result
//!   (a cold cache, an unknown `kid`) waits on that one fetch, never on a fetch of its own.
//! - **Unknown `kid`.** A token naming a key the set lacks triggers a refetch at most once per
//!   [`JwksOptions::unknown_kid_cooldown`] (30 s); during the cooldown it is rejected at once.
//! - **Stale-if-error.** A failed fetch (timeout, status other than 200/304, redirect, body over
//!   1 MiB, not a JWK Set) keeps the last good set for up to [`JwksOptions::stale_limit`] (24 h)
//!   past its TTL, logs a warning, and retries on a timer with exponential backoff
//!   ([`JwksOptions::retry_backoff`]). Past the stale limit, or before any key arrived, requests
//!   fail with [`TokenError::KeysUnavailable`] (503 with `Retry-After`) without waiting on the
//!   failing server.
//! - **A JWK Set is authoritative.** Every JWK Set document fetched replaces the previous set, even
//!   one with no usable key (`{"keys":[]}`, or only encryption keys or unsupported curves): a key
//!   absent from it stops verifying at once, tokens already in the verified-token cache included.
//!   While the issuer's current set holds no usable key its tokens get
//!   [`TokenError::KeysUnavailable`] (a server-side problem, logged as a warning with the issuer),
//!   and the set is fetched again on the retry schedule, so keys published again are picked up.
//! - **Unchanged sets.** A refetch that brings the same keys (same `kid`s, material and
//!   algorithms) keeps the current set, so tokens verified against it are not verified again.
//! - **Status.** [`Guard::key_status`](crate::Guard::key_status) reports, per issuer, the age of
//!   the keys, the last success and the last error.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use axum::{Json, Router, routing::get};
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer, JwksOptions, KeyFreshness};
//!
//! // The authorization server publishes its public keys.
//! let key = SigningKey::generate(Algorithm::RS256)?;
//! let jwks = SigningKey::jwks([&key]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let jwks_uri = format!("http://{}/jwks.json", listener.local_addr()?);
//! let idp = Router::new().route("/jwks.json", get(move || async move { Json(jwks) }));
//! tokio::spawn(async move { axum::serve(listener, idp).await });
//!
//! let guard = Guard::builder()
//!     .issuer(
//!         Issuer::new("https://login.example.com/")
//!             .audience("https://api.example.com")
//!             .jwks_uri(&jwks_uri)
//!             .jwks_options(JwksOptions::default().unknown_kid_cooldown(Duration::from_secs(60))),
//!     )
//!     .build() // fetches the keys before returning
//!     .await?;
//!
//! let token = key.token("https://login.example.com/", "https://api.example.com").sign()?;
//! assert!(guard.verify(&token).await.is_ok());
//!
//! let status = &guard.key_status()[0];
//! assert_eq!(status.freshness, KeyFreshness::Fresh);
//! assert_eq!(status.key_count, 1);
//! assert_eq!(status.jwks_uri.as_deref(), Some(jwks_uri.as_str()));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::error::Error as _;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use headers::{CacheControl, HeaderMapExt as _};
use reqwest::header::{ACCEPT, ETAG, HeaderMap, HeaderValue, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use super::discovery::{self, parse_http_url};
use super::key_set::KeySet;
use super::{KeyFreshness, KeyStatus};
use crate::token::TokenError;

/// No configured duration may exceed this (100 years), so that `Instant` arithmetic cannot overflow.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a remote key set is cached, refreshed and fetched. Every duration has a production default;
/// tests can shorten them.
///
/// ```
/// use std::time::Duration;
/// use bearer_guard::JwksOptions;
///
/// let options = JwksOptions::default()
///     .ttl(Duration::from_secs(300))
///     .unknown_kid_cooldown(Duration::from_secs(10))
///     .stale_limit(Duration::from_secs(6 * 3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct JwksOptions {
    ttl: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    refresh_ahead: f64,
    unknown_kid_cooldown: Duration,
    stale_limit: Duration,
    pub(crate) limits: FetchLimits,
    retry_initial: Duration,
    retry_max: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            ttl: Duration::from_secs(10 * 60),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refresh_ahead: 0.8,
            unknown_kid_cooldown: Duration::from_secs(30),
            stale_limit: Duration::from_secs(24 * 3600),
            limits: FetchLimits {
                timeout: Duration::from_secs(5),
                max_body_bytes: 1024 * 1024,
                allow_insecure_http: false,
            },
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(5 * 60),
        }
    }
}

impl JwksOptions {
    /// How long a set is fresh when the response has no `Cache-Control: max-age` (default 10 min).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.min(LONGEST);
        self
    }

    /// The range a `Cache-Control: max-age` is clamped to (default 1 min to 24 h), so that a server
    /// can neither make the guard fetch on every request nor pin a key set for weeks.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min.min(LONGEST);
        self.max_ttl = max.min(LONGEST).max(self.min_ttl);
        self
    }

    /// The fraction of the TTL after which a background refresh starts (default 0.8). Values are
    /// kept within 0.1 to 1.0.
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        if fraction.is_finite() {
            self.refresh_ahead = fraction.clamp(0.1, 1.0);
        }
        self
    }

    /// The shortest time between two refetches caused by tokens naming an unknown `kid` (default
    /// 30 s). Within it such tokens are rejected at once, so a flood of made-up `kid`s costs at
    /// most one fetch per cooldown.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown.min(LONGEST);
        self
    }

    /// How long past its TTL the last good set keeps being used while fetches fail (default 24 h).
    pub fn stale_limit(mut self, limit: Duration) -> Self {
        self.stale_limit = limit.min(LONGEST);
        self
    }

    /// The time limit of one HTTP request, body included (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout.min(LONGEST);
        self
    }

    /// The largest response body accepted (default 1 MiB); reading stops as soon as it is passed.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.limits.max_body_bytes = limit;
        self
    }

    /// Allow plain `http://` issuer, metadata and JWKS URLs on hosts other than loopback (default:
    /// refused, since anyone on the path could then substitute the keys). Loopback addresses
    /// (`127.0.0.0/8`, `::1`, `localhost`) are always allowed, for tests and sidecars; note that
    /// the default HTTP client honours `HTTP_PROXY`, so list them in `NO_PROXY` (or pass a client
    /// built with `no_proxy()`) if a proxy is set and plain `http` must not leave the host.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.limits.allow_insecure_http = allow;
        self
    }

    /// The wait before retrying a failed fetch: `initial` (default 1 s), doubled after each further
    /// failure up to `max` (default 5 min).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial.min(LONGEST);
        self.retry_max = max.min(LONGEST).max(self.retry_initial);
        self
    }

    /// How long a set fetched with this `max-age` stays fresh.
    fn ttl_for(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            Some(max_age) => max_age.max(self.min_ttl).min(self.max_ttl),
            None => self.ttl,
        }
    }

    /// How long the guard waits on one fetch: discovery (up to two metadata documents) plus the
    /// JWKS request, with some slack.
    fn longest_fetch(&self) -> Duration {
        self.limits.timeout.saturating_mul(3) + Duration::from_millis(100)
    }
}

/// The limits every request for keys or metadata is held to.
#[derive(Debug, Clone)]
pub(crate) struct FetchLimits {
    timeout: Duration,
    max_body_bytes: usize,
    /// Plain `http` to hosts other than loopback (keys could be swapped on the way).
    pub(crate) allow_insecure_http: bool,
}

/// Where the keys of an issuer are published, as configured.
#[derive(Debug, Clone)]
pub(crate) enum JwksLocation {
    /// A JWK Set URL given directly.
    Uri(String),
    /// Read the issuer's metadata to find its `jwks_uri`.
    Discover,
}

/// Why a fetch failed. The text becomes [`KeyStatus::last_error`] and the log line.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("redirect refused")]
    Redirected,
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotAJwkSet(String),
    #[error("JWK Set holds no usable key")]
    NoUsableKeys,
    #[error("304 Not Modified without a cached set")]
    UnexpectedNotModified,
    #[error("discovery failed: {0}")]
    Discovery(String),
}

impl FetchError {
    fn transport(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return FetchError::Timeout;
        }
        // reqwest's own message is terse ("error sending request"); the causes say what happened.
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError::Transport(text)
    }
}

/// A response read within the limits.
pub(crate) struct Document {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// GET `url` within `limits`: one request, no redirect followed, the body read chunk by chunk and
/// abandoned as soon as it passes the size limit. Statuses other than 200 and 304 come back with
/// an empty body for the caller to judge.
pub(crate) async fn get_document(
    client: &reqwest::Client,
    url: &Url,
    if_none_match: Option<&HeaderValue>,
    limits: &FetchLimits,
) -> Result<Document, FetchError> {
    let exchange = async {
        let mut request = client.get(url.clone()).header(ACCEPT, "application/json");
        if let Some(etag) = if_none_match {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        let mut response = request.send().await.map_err(FetchError::transport)?;
        let status = response.status();
        // A user's own client may follow redirects; a moved key set is refused all the same.
        let redirected = status.is_redirection() && status != StatusCode::NOT_MODIFIED;
        if redirected || response.url() != url {
            return Err(FetchError::Redirected);
        }
        let headers = std::mem::take(response.headers_mut());
        if status != StatusCode::OK {
            return Ok(Document {
                status,
                headers,
                body: Vec::new(),
            });
        }
        let limit = limits.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::transport)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Document {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(limits.timeout, exchange)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

/// The remote key source of one issuer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RemoteKeys {
    shared: Arc<Shared>,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("issuer", &self.shared.issuer)
            .field("location", &self.shared.location)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Location {
    Jwks(Url),
    Discover(Url),
}

struct Shared {
    issuer: Box<str>,
    location: Location,
    client: reqwest::Client,
    options: JwksOptions,
    /// One entry: the current key set. It expires (is evicted) at the end of its stale limit.
    cache: moka::future::Cache<(), Arc<CachedKeys>>,
    /// Mirrors `control.retry`: when the next attempt is due, in nanoseconds since `epoch` (0: no
    /// failure pending), so the request path can skip the lock while fetches back off.
    retry_due: AtomicU64,
    /// A retry timer task is waiting. Not in `control`: the timer's drop guard clears it, and
    /// tokio may drop a task inside `spawn` (runtime shut down) while `control` is locked.
    retry_timer_pending: AtomicBool,
    /// Counts stored sets that hold a usable key; start-up waits on it.
    stored: watch::Sender<u64>,
    /// The cached set as the verified-token cache sees it, without touching `cache`: its
    /// generation, and (in nanoseconds since `epoch`) when it must be refreshed and when it
    /// stops being usable (0: no set).
    epoch: Instant,
    generation: AtomicU64,
    refresh_due: AtomicU64,
    usable_until: AtomicU64,
    control: Mutex<Control>,
}

/// The cache entry.
struct CachedKeys {
    keys: Arc<KeySet>,
    etag: Option<HeaderValue>,
    refresh_at: Instant,
    /// From insertion until eviction: TTL plus stale limit.
    usable_for: Duration,
}

/// Bookkeeping behind the cache, always locked briefly and never across an await.
#[derive(Default)]
struct Control {
    /// The fetch in flight, if any: everyone who needs its result subscribes here.
    flight: Option<watch::Receiver<Flight>>,
    /// Configured, or found by discovery.
    jwks_uri: Option<Url>,
    /// The discovered `jwks_uri` failed: read the metadata again on the next attempt, in case
    /// the issuer moved its keys.
    rediscover: bool,
    /// The set most recently stored, to tell whether a caller's set is outdated.
    latest: Weak<KeySet>,
    last_unknown_kid_fetch: Option<Instant>,
    /// Set while fetches fail: when the next attempt is due and the current backoff.
    retry: Option<Retry>,
    key_count: usize,
    fetched_at: Option<(Instant, SystemTime)>,
    ttl: Duration,
    last_error: Option<(String, SystemTime)>,
    consecutive_failures: u32,
}

#[derive(Clone, Copy)]
struct Retry {
    at: Instant,
    backoff: Duration,
}

#[derive(Clone)]
enum Flight {
    Running,
    Done(Option<Arc<KeySet>>),
}

#[derive(Clone, Copy, Debug)]
enum FetchReason {
    Startup,
    NoKeys,
    RefreshAhead,
    UnknownKey,
    Retry,
}

impl FetchReason {
    fn as_str(self) -> &'static str {
        match self {
            FetchReason::Startup => "startup",
            FetchReason::NoKeys => "no keys cached",
            FetchReason::RefreshAhead => "refresh ahead of expiry",
            FetchReason::UnknownKey => "unknown kid",
            FetchReason::Retry => "retry after failure",
        }
    }
}

/// What a successful fetch brought.
enum Fetched {
    Modified {
        keys: KeySet,
        etag: Option<HeaderValue>,
        max_age: Option<Duration>,
    },
    NotModified {
        etag: Option<HeaderValue>,
        max_age: Option<Duration>,
    },
}

struct EntryExpiry;

impl moka::Expiry<(), Arc<CachedKeys>> for EntryExpiry {
    fn expire_after_create(&self, _: &(), entry: &Arc<CachedKeys>, _: Instant) -> Option<Duration> {
        Some(entry.usable_for)
    }

    fn expire_after_update(
        &self,
        _: &(),
        entry: &Arc<CachedKeys>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.usable_for)
    }
}

fn lock(control: &Mutex<Control>) -> MutexGuard<'_, Control> {
    // The lock guards plain bookkeeping; a panic elsewhere leaves nothing half-updated worth refusing.
    control.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RemoteKeys {
    /// A key source for `issuer`; `Err` says why its URL cannot be used.
    pub(crate) fn new(
        issuer: &str,
        location: &JwksLocation,
        options: JwksOptions,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let location = match location {
            JwksLocation::Uri(uri) => Location::Jwks(parse_http_url(uri, &options.limits)?),
            JwksLocation::Discover => {
                let url = parse_http_url(issuer, &options.limits)?;
                if url.query().is_some() {
                    return Err(format!(
                        "issuer {issuer:?} has a query; it cannot be discovered"
                    ));
                }
                Location::Discover(url)
            }
        };
        let jwks_uri = match &location {
            Location::Jwks(url) => Some(url.clone()),
            Location::Discover(_) => None,
        };
        let cache = moka::future::Cache::builder()
            .expire_after(EntryExpiry)
            .build();
        Ok(RemoteKeys {
            shared: Arc::new(Shared {
                issuer: issuer.into(),
                location,
                client,
                options,
                cache,
                retry_due: AtomicU64::new(0),
                retry_timer_pending: AtomicBool::new(false),
                stored: watch::Sender::new(0),
                epoch: Instant::now(),
                generation: AtomicU64::new(0),
                refresh_due: AtomicU64::new(0),
                usable_until: AtomicU64::new(0),
                control: Mutex::new(Control {
                    jwks_uri,
                    ..Control::default()
                }),
            }),
        })
    }

    /// The keys to verify with now: the cached set (starting a background refresh when it is due),
    /// or the result of the one fetch that fills an empty cache. Never waits on a server that is
    /// known to be failing, and never longer than the fetch limits.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, TokenError> {
        let shared = &self.shared;
        let keys = match shared.cache.get(&()).await {
            Some(entry) => {
                let now = Instant::now();
                if now >= entry.refresh_at {
                    shared.refresh_ahead(shared.nanos_since_epoch(now));
                }
                Arc::clone(&entry.keys)
            }
            None => shared.keys_for_empty_cache().await?,
        };
        shared.usable(keys)
    }

    /// The generation of the usable set, without waiting (`None` when there is none). Starts a
    /// background refresh when one is due, like [`current`](Self::current).
    pub(crate) fn current_generation(&self) -> Option<u64> {
        let shared = &self.shared;
        let now = shared.nanos_since_epoch(Instant::now());
        if now >= shared.usable_until.load(Ordering::Acquire) {
            return None;
        }
        if now >= shared.refresh_due.load(Ordering::Relaxed) {
            shared.refresh_ahead(now);
        }
        Some(shared.generation.load(Ordering::Acquire))
    }

    /// A token named a key that `seen` lacks: a newer set if one is (or can now be) had,
    /// [`TokenError::UnknownKey`] if not, [`TokenError::KeysUnavailable`] if the newer set holds
    /// no usable key.
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        seen: &Arc<KeySet>,
    ) -> Result<Arc<KeySet>, TokenError> {
        let fresh = self.newer_set(seen).await.ok_or(TokenError::UnknownKey)?;
        self.shared.usable(fresh)
    }

    async fn newer_set(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let shared = &self.shared;
        // A fetch already in flight may have been answered before the key was published; if it
        // brings nothing newer than `seen`, it does not count as this token's refetch.
        for attempt in 0..2 {
            let (flight, joined) = {
                let mut control = lock(&shared.control);
                // Generations only grow: an older set (still referenced while a newer one is
                // being stored) must never be handed back, or a just-removed key would verify.
                if let Some(latest) = control.latest.upgrade()
                    && latest.generation() > seen.generation()
                {
                    return Some(latest);
                }
                if control.retry.is_some() {
                    // The server is failing; the retry timer owns the next attempt.
                    tracing::debug!(issuer = %shared.issuer, outcome = "skipped", reason = "fetches failing", "unknown kid: no refetch");
                    return None;
                }
                match control.live_flight().cloned() {
                    Some(flight) => (flight, true),
                    None => {
                        let now = Instant::now();
                        let cooling = control.last_unknown_kid_fetch.is_some_and(|last| {
                            now.duration_since(last) < shared.options.unknown_kid_cooldown
                        });
                        if cooling {
                            tracing::debug!(issuer = %shared.issuer, outcome = "skipped", reason = "cooldown", "unknown kid: no refetch");
                            return None;
                        }
                        control.last_unknown_kid_fetch = Some(now);
                        (
                            shared.start_flight(&mut control, FetchReason::UnknownKey),
                            false,
                        )
                    }
                }
            };
            let fresh = shared.wait(flight).await?;
            if fresh.generation() > seen.generation() {
                return Some(fresh);
            }
            if !joined || attempt > 0 {
                return None;
            }
        }
        None
    }

    /// Start the first fetch without waiting for it.
    pub(crate) fn start_prefetch(&self) {
        let shared = &self.shared;
        let mut control = lock(&shared.control);
        let idle = control.live_flight().is_none() && control.retry.is_none();
        if idle && !shared.cache.contains_key(&()) {
            shared.start_flight(&mut control, FetchReason::Startup);
        }
    }

    /// Wait until keys arrive (failed fetches are retried with backoff by the source itself) or
    /// `deadline` passes; `Err` carries the last error.
    pub(crate) async fn wait_for_keys(&self, deadline: Instant) -> Result<(), String> {
        let shared = &self.shared;
        let mut stored = shared.stored.subscribe();
        let arrived =
            tokio::time::timeout_at(deadline.into(), stored.wait_for(|count| *count > 0)).await;
        if let Ok(Ok(_)) = arrived {
            return Ok(());
        }
        let control = lock(&shared.control);
        Err(match &control.last_error {
            Some((error, _)) => error.clone(),
            None => "no response within the start-up time limit".to_owned(),
        })
    }

    /// The state of this source, for [`Guard::key_status`](crate::Guard::key_status).
    pub(crate) fn status(&self) -> KeyStatus {
        let shared = &self.shared;
        let control = lock(&shared.control);
        let age = control.fetched_at.map(|(at, _)| at.elapsed());
        let freshness = match age {
            // The issuer's current set holds no usable key.
            Some(_) if control.key_count == 0 => KeyFreshness::Unavailable,
            Some(age) if age < control.ttl => KeyFreshness::Fresh,
            Some(age) if age < control.ttl.saturating_add(shared.options.stale_limit) => {
                KeyFreshness::Stale
            }
            _ => KeyFreshness::Unavailable,
        };
        KeyStatus {
            issuer: shared.issuer.to_string(),
            jwks_uri: control.jwks_uri.as_ref().map(Url::to_string),
            freshness,
            key_count: if freshness == KeyFreshness::Unavailable {
                0
            } else {
                control.key_count
            },
            age,
            ttl: control.fetched_at.map(|_| control.ttl),
            last_success: control.fetched_at.map(|(_, at)| at),
            last_error: control.last_error.as_ref().map(|(error, _)| error.clone()),
            last_error_at: control.last_error.as_ref().map(|(_, at)| *at),
            consecutive_failures: control.consecutive_failures,
        }
    }
}

impl Shared {
    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// `now`: nanoseconds since `epoch`.
    fn refresh_ahead(self: &Arc<Self>, now: u64) {
        if now < self.retry_due.load(Ordering::Relaxed) {
            return; // backing off after a failure
        }
        // Contended: another request is already looking after it.
        let Ok(mut control) = self.control.try_lock() else {
            return;
        };
        self.start_due_fetch(&mut control, FetchReason::RefreshAhead);
    }

    /// Start a fetch unless one is running or a failure's backoff has not yet passed. A due
    /// retry is normally started by its timer; a request starts it too, so that the keys come
    /// back even if the timer's task is gone (its runtime shut down). Whoever locks first wins.
    fn start_due_fetch(
        self: &Arc<Self>,
        control: &mut Control,
        reason: FetchReason,
    ) -> Option<watch::Receiver<Flight>> {
        if let Some(flight) = control.live_flight() {
            return Some(flight.clone());
        }
        let reason = match control.retry {
            Some(retry) if retry.at > Instant::now() => return None,
            Some(_) => FetchReason::Retry,
            None => reason,
        };
        Some(self.start_flight(control, reason))
    }

    async fn keys_for_empty_cache(self: &Arc<Self>) -> Result<Arc<KeySet>, TokenError> {
        let flight = {
            let mut control = lock(&self.control);
            if control.live_flight().is_none() && self.cache.contains_key(&()) {
                // A fetch stored a set between our read and the lock.
                None
            } else {
                let failing = control.retry.is_some();
                match self.start_due_fetch(&mut control, FetchReason::NoKeys) {
                    Some(flight) if !failing => Some(flight),
                    // Failing: a due retry runs in the background, and this request is answered
                    // at once rather than made to wait on a server known to fail.
                    _ => return Err(self.unavailable_locked(&control)),
                }
            }
        };
        let keys = match flight {
            Some(flight) => self.wait(flight).await,
            None => self
                .cache
                .get(&())
                .await
                .map(|entry| Arc::clone(&entry.keys)),
        };
        keys.ok_or_else(|| self.unavailable())
    }

    fn unavailable(&self) -> TokenError {
        self.unavailable_locked(&lock(&self.control))
    }

    /// `keys`, unless the issuer's set holds no usable key: then its tokens cannot be verified
    /// until keys are published again (the retry schedule fetches the set meanwhile).
    fn usable(&self, keys: Arc<KeySet>) -> Result<Arc<KeySet>, TokenError> {
        if keys.is_empty() {
            return Err(self.unavailable());
        }
        Ok(keys)
    }

    fn unavailable_locked(&self, control: &Control) -> TokenError {
        match control.retry {
            Some(retry) => unavailable_until(retry.at),
            None => unavailable_until(Instant::now()),
        }
    }

    /// The result of a fetch in flight, waited on for no longer than a fetch may take.
    async fn wait(&self, mut flight: watch::Receiver<Flight>) -> Option<Arc<KeySet>> {
        let done = flight.wait_for(|state| matches!(state, Flight::Done(_)));
        match tokio::time::timeout(self.options.longest_fetch(), done).await {
            Ok(Ok(state)) => match &*state {
                Flight::Done(keys) => keys.clone(),
                Flight::Running => None,
            },
            // Timed out, or the fetch task is gone (runtime shutting down).
            _ => None,
        }
    }

    /// Start the one fetch in flight. The fetch runs in its own task, so it completes (and its
    /// waiters hear of it) even when the request that started it is dropped.
    fn start_flight(
        self: &Arc<Self>,
        control: &mut Control,
        reason: FetchReason,
    ) -> watch::Receiver<Flight> {
        let (sender, receiver) = watch::channel(Flight::Running);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            control.flight = Some(receiver.clone());
            let shared = Arc::clone(self);
            runtime.spawn(async move { shared.run_flight(sender, reason).await });
        }
        // Without a runtime the sender is dropped here and waiters see a failed fetch.
        receiver
    }

    async fn run_flight(self: Arc<Self>, sender: watch::Sender<Flight>, reason: FetchReason) {
        // If this task is dropped mid-fetch (its runtime shutting down), the next request must be
        // able to start a new fetch rather than wait on this one forever.
        struct ClearOnCancel<'a> {
            control: &'a Mutex<Control>,
            own: watch::Receiver<Flight>,
        }
        impl Drop for ClearOnCancel<'_> {
            fn drop(&mut self) {
                end_flight(&mut lock(self.control), &self.own);
            }
        }
        let cancel_guard = ClearOnCancel {
            control: &self.control,
            own: sender.subscribe(),
        };
        let own = &cancel_guard.own;
        let previous = self.cache.get(&()).await;
        let keys = match self.fetch(previous.as_deref()).await {
            Ok((fetched, status)) => Some(
                self.store(fetched, previous.as_deref(), status, reason, own)
                    .await,
            ),
            Err(error) => {
                self.record_failure(&error, reason, previous.is_some(), own);
                None
            }
        };
        drop(cancel_guard); // already ended by `store` or `record_failure`: a no-op
        sender.send_replace(Flight::Done(keys));
    }

    async fn fetch(&self, previous: Option<&CachedKeys>) -> Result<(Fetched, u16), FetchError> {
        let limits = &self.options.limits;
        let (known, rediscover) = {
            let control = lock(&self.control);
            (control.jwks_uri.clone(), control.rediscover)
        };
        let jwks_uri = match (&self.location, known) {
            (Location::Discover(_), Some(uri)) if !rediscover => uri,
            (Location::Discover(issuer_url), known) => {
                match discovery::discover_jwks_uri(&self.client, &self.issuer, issuer_url, limits)
                    .await
                {
                    Ok(uri) => {
                        let mut control = lock(&self.control);
                        control.jwks_uri = Some(uri.clone());
                        control.rediscover = false;
                        uri
                    }
                    // The metadata cannot be read now; the last known key location may answer.
                    Err(error) => match known {
                        Some(uri) => {
                            tracing::debug!(issuer = %self.issuer, %error, "rediscovery failed; fetching the last known jwks_uri");
                            uri
                        }
                        None => return Err(error),
                    },
                }
            }
            (Location::Jwks(uri), _) => uri.clone(),
        };
        let etag = previous.and_then(|entry| entry.etag.as_ref());
        let document = get_document(&self.client, &jwks_uri, etag, limits).await?;
        let max_age = max_age(&document.headers);
        let new_etag = document.headers.get(ETAG).cloned();
        match document.status {
            StatusCode::OK => {
                // Authoritative even when it holds no usable key (see the module docs).
                let keys = KeySet::from_jwks_json(&document.body)
                    .map_err(|err| FetchError::NotAJwkSet(err.to_string()))?;
                Ok((
                    Fetched::Modified {
                        keys,
                        etag: new_etag,
                        max_age,
                    },
                    200,
                ))
            }
            StatusCode::NOT_MODIFIED if previous.is_some() => Ok((
                Fetched::NotModified {
                    etag: new_etag,
                    max_age,
                },
                304,
            )),
            StatusCode::NOT_MODIFIED => Err(FetchError::UnexpectedNotModified),
            other => Err(FetchError::Status(other.as_u16())),
        }
    }

    async fn store(
        self: &Arc<Self>,
        fetched: Fetched,
        previous: Option<&CachedKeys>,
        status: u16,
        reason: FetchReason,
        own: &watch::Receiver<Flight>,
    ) -> Arc<KeySet> {
        let (keys, etag, max_age) = match (fetched, previous) {
            // The same keys again (a server without ETags): the current set and its generation
            // stay, so cached verifications stay valid.
            (
                Fetched::Modified {
                    keys,
                    etag,
                    max_age,
                },
                Some(previous),
            ) if previous.keys.same_keys(&keys) => (Arc::clone(&previous.keys), etag, max_age),
            (
                Fetched::Modified {
                    keys,
                    etag,
                    max_age,
                },
                _,
            ) => (Arc::new(keys), etag, max_age),
            (Fetched::NotModified { etag, max_age }, Some(previous)) => (
                Arc::clone(&previous.keys),
                etag.or_else(|| previous.etag.clone()),
                max_age,
            ),
            // `fetch` only reports 304 when there is a previous set.
            (Fetched::NotModified { .. }, None) => (Arc::new(KeySet::default()), None, None),
        };
        let ttl = self.options.ttl_for(max_age);
        let now = Instant::now();
        let entry_refresh_at = now + ttl.mul_f64(self.options.refresh_ahead);
        let entry = CachedKeys {
            keys: Arc::clone(&keys),
            etag,
            refresh_at: entry_refresh_at,
            usable_for: ttl.saturating_add(self.options.stale_limit),
        };
        // Record the newest set before the cache can hand it out, so that no request that got it
        // from the cache can then be given an older set as "fresher".
        lock(&self.control).latest = Arc::downgrade(&keys);
        self.cache.insert((), Arc::new(entry)).await;
        self.generation.store(keys.generation(), Ordering::Release);
        self.refresh_due
            .store(self.nanos_since_epoch(entry_refresh_at), Ordering::Relaxed);
        let usable_until = now.checked_add(ttl.saturating_add(self.options.stale_limit));
        let usable_until = usable_until.map_or(u64::MAX, |at| self.nanos_since_epoch(at));
        self.usable_until.store(usable_until, Ordering::Release);

        let recovered_after = {
            let mut control = lock(&self.control);
            end_flight(&mut control, own);
            control.key_count = keys.len();
            control.fetched_at = Some((now, SystemTime::now()));
            control.ttl = ttl;
            if keys.is_empty() {
                // Stored all the same (the previous keys are withdrawn), and fetched again on
                // the retry schedule until keys are published.
                let error = FetchError::NoUsableKeys;
                let backoff = self.back_off(&mut control, &error, now);
                tracing::warn!(
                    issuer = %self.issuer,
                    jwks_uri = control.jwks_uri.as_ref().map(Url::as_str),
                    status,
                    reason = reason.as_str(),
                    retry_in_ms = backoff.as_millis() as u64,
                    "JWK Set holds no usable key: tokens of this issuer get 503 until keys are published"
                );
                return keys;
            }
            control.retry = None;
            self.retry_due.store(0, Ordering::Relaxed);
            std::mem::take(&mut control.consecutive_failures)
        };
        self.stored.send_modify(|count| *count += 1);
        let jwks_uri = lock(&self.control).jwks_uri.as_ref().map(Url::to_string);
        if recovered_after > 0 {
            tracing::info!(issuer = %self.issuer, jwks_uri, status, keys = keys.len(), failures = recovered_after, "JWKS fetch recovered");
        } else {
            tracing::debug!(issuer = %self.issuer, jwks_uri, status, keys = keys.len(), ttl_secs = ttl.as_secs_f64(), reason = reason.as_str(), outcome = "stored", "JWKS fetched");
        }
        keys
    }

    fn record_failure(
        self: &Arc<Self>,
        error: &FetchError,
        reason: FetchReason,
        had_keys: bool,
        own: &watch::Receiver<Flight>,
    ) {
        let now = Instant::now();
        let mut control = lock(&self.control);
        // Ended under the same lock that schedules the retry, so the retry timer can never
        // see this finished fetch as still running and skip its attempt.
        end_flight(&mut control, own);
        let backoff = self.back_off(&mut control, error, now);
        tracing::warn!(
            issuer = %self.issuer,
            jwks_uri = control.jwks_uri.as_ref().map(Url::as_str),
            reason = reason.as_str(),
            error = %error,
            serving = if had_keys { "last good keys" } else { "no keys" },
            retry_in_ms = backoff.as_millis() as u64,
            "JWKS fetch failed"
        );
    }

    /// Record `error` and schedule the next attempt (backoff doubling up to the maximum); the
    /// wait before it. Called under the lock that ended the fetch.
    fn back_off(
        self: &Arc<Self>,
        control: &mut Control,
        error: &FetchError,
        now: Instant,
    ) -> Duration {
        if matches!(self.location, Location::Discover(_))
            && !matches!(error, FetchError::Discovery(_))
        {
            control.rediscover = true;
        }
        control.last_error = Some((error.to_string(), SystemTime::now()));
        control.consecutive_failures = control.consecutive_failures.saturating_add(1);
        let backoff = match control.retry {
            Some(retry) => retry.backoff.saturating_mul(2).min(self.options.retry_max),
            None => self.options.retry_initial,
        };
        let at = now + backoff;
        control.retry = Some(Retry { at, backoff });
        self.retry_due
            .store(self.nanos_since_epoch(at).max(1), Ordering::Relaxed);
        if !self.retry_timer_pending.swap(true, Ordering::AcqRel) {
            self.schedule_retry(at);
        }
        backoff
    }

    /// Retry on a timer, so the keys come back even when no request arrives. The timer holds the
    /// source weakly: dropping the guard ends the retries.
    fn schedule_retry(self: &Arc<Self>, at: Instant) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Dropped before it fires (its runtime shutting down), the timer must not stay "pending",
        // or no later failure could schedule another one.
        struct PendingTimer {
            source: Weak<Shared>,
            armed: bool,
        }
        impl Drop for PendingTimer {
            fn drop(&mut self) {
                // No lock here: this may run inside `spawn`, under the caller's lock.
                if let (true, Some(shared)) = (self.armed, self.source.upgrade()) {
                    shared.retry_timer_pending.store(false, Ordering::Release);
                }
            }
        }
        let mut pending = PendingTimer {
            source: Arc::downgrade(self),
            armed: true,
        };
        runtime.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            pending.armed = false;
            let Some(shared) = pending.source.upgrade() else {
                return;
            };
            let mut control = lock(&shared.control);
            let retry = control.retry;
            match retry {
                Some(retry) if retry.at > Instant::now() => {
                    // A later failure pushed the attempt back; this timer stays the pending one.
                    shared.schedule_retry(retry.at);
                }
                Some(_) => {
                    shared.retry_timer_pending.store(false, Ordering::Release);
                    if control.live_flight().is_none() {
                        shared.start_flight(&mut control, FetchReason::Retry);
                    }
                }
                None => shared.retry_timer_pending.store(false, Ordering::Release),
            }
        });
    }
}

impl Control {
    /// The fetch in flight, forgetting one whose task is gone without ending itself (dropped with
    /// its runtime, possibly before it ever ran): its sender is gone, so nobody will answer.
    fn live_flight(&mut self) -> Option<&watch::Receiver<Flight>> {
        if self
            .flight
            .as_ref()
            .is_some_and(|flight| flight.has_changed().is_err())
        {
            self.flight = None;
        }
        self.flight.as_ref()
    }
}

/// A fetch has ended: it is no longer the one in flight, unless another has taken its place.
fn end_flight(control: &mut Control, own: &watch::Receiver<Flight>) {
    if control
        .flight
        .as_ref()
        .is_some_and(|flight| flight.same_channel(own))
    {
        control.flight = None;
    }
}

/// `Cache-Control: max-age`; `no-cache`/`no-store` count as zero (then clamped to the minimum TTL).
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let cache_control = headers.typed_get::<CacheControl>()?;
    match cache_control.max_age() {
        Some(max_age) => Some(max_age),
        None if cache_control.no_cache() || cache_control.no_store() => Some(Duration::ZERO),
        None => None,
    }
}

fn unavailable_until(at: Instant) -> TokenError {
    TokenError::KeysUnavailable {
        retry_after: at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1)),
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;

    /// A JWK Set server on `127.0.0.1:0` that answers 200 without an `ETag` (so every refetch
    /// brings the whole set), serving whatever document the test sets.
    struct JwksServer {
        url: String,
        document: Arc<Mutex<Value>>,
        fetches: Arc<AtomicU64>,
    }

    impl JwksServer {
        async fn start(document: Value) -> JwksServer {
            let document = Arc::new(Mutex::new(document));
            let fetches = Arc::new(AtomicU64::new(0));
            let (served, counted) = (Arc::clone(&document), Arc::clone(&fetches));
            let app = axum::Router::new().route(
                "/jwks",
                axum::routing::get(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let body = served
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    async move { axum::Json(body) }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
            tokio::spawn(async move { axum::serve(listener, app).await });
            JwksServer {
                url,
                document,
                fetches,
            }
        }

        fn fetches(&self) -> u64 {
            self.fetches.load(Ordering::SeqCst)
        }

        fn serve(&self, document: Value) {
            *self.document.lock().unwrap_or_else(PoisonError::into_inner) = document;
        }
    }

    fn ed25519_jwk(kid: &str) -> Value {
        let pair = Ed25519KeyPair::generate().expect("key");
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x})
    }

    /// What a refetch for an unknown `kid` does to the generation the verified-token cache
    /// compares against.
    #[tokio::test]
    async fn identical_refetch_keeps_the_key_set_generation() {
        let (a, b) = (ed25519_jwk("a"), ed25519_jwk("b"));
        let server = JwksServer::start(json!({"keys": [a, b]})).await;
        let options = JwksOptions::default().unknown_kid_cooldown(Duration::ZERO);
        let remote = RemoteKeys::new(
            "https://issuer.example",
            &JwksLocation::Uri(server.url.clone()),
            options,
            reqwest::Client::new(),
        )
        .expect("a loopback URL");
        let first = remote.current().await.expect("keys");
        let generation = remote.current_generation().expect("a usable set");

        // The same keys, even reordered: the refetch keeps the set, so nothing cached against
        // it is verified again.
        for same in [json!({"keys": [a, b]}), json!({"keys": [b, a]})] {
            server.serve(same);
            let fetched = server.fetches();
            assert_eq!(
                remote.refresh_for_unknown_key(&first).await.err(),
                Some(TokenError::UnknownKey),
                "nothing newer"
            );
            assert_eq!(server.fetches(), fetched + 1, "the set was fetched again");
            assert_eq!(remote.current_generation(), Some(generation));
            let current = remote.current().await.expect("keys");
            assert!(Arc::ptr_eq(&current, &first));
        }
        assert_eq!(lock(&remote.shared.control).key_count, 2);

        // A changed set is a new generation.
        server.serve(json!({"keys": [a, ed25519_jwk("b")]}));
        let fresh = remote
            .refresh_for_unknown_key(&first)
            .await
            .expect("a newer set");
        assert!(fresh.generation() > generation);
        assert_eq!(remote.current_generation(), Some(fresh.generation()));
    }

    #[test]
    fn max_age_is_clamped_and_absent_max_age_uses_the_default() {
        let options = JwksOptions::default();
        assert_eq!(options.ttl_for(None), Duration::from_secs(600));
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(30 * 24 * 3600))),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn cache_control_is_read_with_its_directives() {
        let mut headers = HeaderMap::new();
        assert_eq!(max_age(&headers), None);
        headers.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=120"),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(120)));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        assert_eq!(max_age(&headers), Some(Duration::ZERO));
        headers.insert("cache-control", HeaderValue::from_static("max-age=banana"));
        assert_eq!(max_age(&headers), None);
    }

    #[test]
    fn options_never_overflow_instants() {
        let options = JwksOptions::default()
            .ttl(Duration::MAX)
            .stale_limit(Duration::MAX)
            .ttl_bounds(Duration::MAX, Duration::ZERO)
            .retry_backoff(Duration::MAX, Duration::MAX)
            .refresh_ahead(f64::NAN);
        let ttl = options.ttl_for(None);
        let _ = Instant::now()
            + ttl.mul_f64(options.refresh_ahead)
            + ttl.saturating_add(options.stale_limit);
        assert!(options.min_ttl <= options.max_ttl);
        assert_eq!(options.refresh_ahead, 0.8);
    }
}
