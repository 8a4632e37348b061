//! Remote JWKS: an issuer's published keys, fetched, cached and kept fresh. (One file of about
//! 900 lines with its unit tests: the refresh state machine below is one piece of logic around
//! one lock, and splitting it would spread each rule over several files.)
//!
//! Each remote key source holds one [`Snapshot`] of its state, swapped whole: the parsed
//! [`KeySet`], its `ETag`, when to refresh it, until when it may be used, and when the next
//! attempt is due while fetches fail. The request path only loads that snapshot (no lock, no
//! network); writers build the next one under the source's lock, and fetches run in spawned
//! tasks:
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
//!   fail with [`KeysUnavailable`] (503 with `Retry-After`) without waiting on the
//!   failing server.
//! - **A JWK Set is authoritative.** Every JWK Set document fetched replaces the previous set, even
//!   one with no usable key (`{"keys":[]}`, or only encryption keys or unsupported curves): a key
//!   absent from it stops verifying at once, tokens already in the verified-token cache included.
//!   While the issuer's current set holds no usable key its tokens get
//!   [`KeysUnavailable`] (a server-side problem, logged as a warning with the issuer),
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

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use reqwest::header::{ETAG, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use super::discovery;
use super::fetch::{FetchError, get_document, max_age, parse_http_url};
use super::key_set::KeySet;
use super::options::{JwksLocation, JwksOptions};
use super::{KeyFreshness, KeyStatus, KeysUnavailable, StartupError};

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
    /// What requests read: replaced whole, only under `control`'s lock.
    state: ArcSwap<Snapshot>,
    /// A retry timer task is waiting. Not in `control`: the timer's drop guard clears it, and
    /// tokio may drop a task inside `spawn` (runtime shut down) while `control` is locked.
    retry_timer_pending: AtomicBool,
    /// What start-up waits for: a stored set that holds a usable key, or discovery metadata that
    /// names another issuer.
    startup: watch::Sender<StartupState>,
    control: Mutex<Control>,
}

#[derive(Default)]
struct StartupState {
    keys_stored: bool,
    /// The `issuer` of discovery metadata that did not match the configured issuer.
    issuer_mismatch: Option<String>,
}

/// The source's state as requests see it.
#[derive(Default)]
struct Snapshot {
    /// The current set, until the end of its stale limit.
    keys: Option<CurrentKeys>,
    /// Set while fetches fail: when the next attempt is due and the current backoff.
    retry: Option<Retry>,
}

#[derive(Clone)]
struct CurrentKeys {
    keys: Arc<KeySet>,
    etag: Option<HeaderValue>,
    refresh_at: Instant,
    /// TTL plus stale limit after the fetch; `None`: beyond what an `Instant` holds.
    usable_until: Option<Instant>,
}

impl Snapshot {
    /// The current set if it may still be used at `now`.
    fn usable_keys(&self, now: Instant) -> Option<&CurrentKeys> {
        self.keys
            .as_ref()
            .filter(|current| current.usable_until.is_none_or(|until| now < until))
    }

    /// Whether a refresh may start at `now`: not while backing off after a failure.
    fn backing_off(&self, now: Instant) -> bool {
        self.retry.is_some_and(|retry| now < retry.at)
    }
}

/// The writers' bookkeeping, always locked briefly and never across an await.
#[derive(Default)]
struct Control {
    /// The fetch in flight, if any: everyone who needs its result subscribes here.
    flight: Option<watch::Receiver<Flight>>,
    /// Configured, or found by discovery.
    jwks_uri: Option<Url>,
    /// The discovered `jwks_uri` failed: read the metadata again on the next attempt, in case
    /// the issuer moved its keys.
    rediscover: bool,
    last_unknown_kid_fetch: Option<Instant>,
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

/// What a successful fetch brought: the set to use from now on.
struct Fetched {
    keys: Arc<KeySet>,
    etag: Option<HeaderValue>,
    max_age: Option<Duration>,
    status: u16,
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
        Ok(RemoteKeys {
            shared: Arc::new(Shared {
                issuer: issuer.into(),
                location,
                client,
                options,
                state: ArcSwap::from_pointee(Snapshot::default()),
                retry_timer_pending: AtomicBool::new(false),
                startup: watch::Sender::new(StartupState::default()),
                control: Mutex::new(Control {
                    jwks_uri,
                    ..Control::default()
                }),
            }),
        })
    }

    /// The keys to verify with now: the current set (starting a background refresh when it is
    /// due), or the result of the one fetch that fills an empty source. Never waits on a server
    /// that is known to be failing, and never longer than the fetch limits.
    pub(crate) async fn current(&self) -> Result<Arc<KeySet>, KeysUnavailable> {
        let shared = &self.shared;
        let now = Instant::now();
        let keys = {
            let state = shared.state.load();
            state.usable_keys(now).map(|current| {
                if now >= current.refresh_at && !state.backing_off(now) {
                    shared.refresh_ahead();
                }
                Arc::clone(&current.keys)
            })
        };
        let keys = match keys {
            Some(keys) => keys,
            None => shared.keys_for_empty_source().await?,
        };
        shared.usable(keys)
    }

    /// The generation of the usable set, without waiting (`None` when there is none). Starts a
    /// background refresh when one is due, like [`current`](Self::current).
    pub(crate) fn current_generation(&self) -> Option<u64> {
        let shared = &self.shared;
        let now = Instant::now();
        let state = shared.state.load();
        let current = state.usable_keys(now)?;
        if now >= current.refresh_at && !state.backing_off(now) {
            shared.refresh_ahead();
        }
        Some(current.keys.generation())
    }

    /// A token named a key that `seen` lacks: a newer set if one is (or can now be) had, `None`
    /// if not, [`KeysUnavailable`] if the newer set holds no usable key.
    pub(crate) async fn refresh_for_unknown_key(
        &self,
        seen: &Arc<KeySet>,
    ) -> Result<Option<Arc<KeySet>>, KeysUnavailable> {
        match self.newer_set(seen).await {
            Some(fresh) => self.shared.usable(fresh).map(Some),
            None => Ok(None),
        }
    }

    async fn newer_set(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let shared = &self.shared;
        // A fetch already in flight may have been answered before the key was published; if it
        // brings nothing newer than `seen`, it does not count as this token's refetch.
        for attempt in 0..2 {
            let (flight, joined) = {
                let mut control = lock(&shared.control);
                let state = shared.state.load();
                // Generations only grow: an older set must never be handed back, or a
                // just-removed key would verify.
                if let Some(current) = &state.keys
                    && current.keys.generation() > seen.generation()
                {
                    return Some(Arc::clone(&current.keys));
                }
                if state.retry.is_some() {
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
        let state = shared.state.load();
        let idle = control.live_flight().is_none() && state.retry.is_none();
        if idle && state.keys.is_none() {
            shared.start_flight(&mut control, FetchReason::Startup);
        }
    }

    /// Wait until keys arrive (failed fetches are retried with backoff by the source itself),
    /// discovery metadata names another issuer, or `deadline` passes.
    pub(crate) async fn wait_for_keys(&self, deadline: Instant) -> Result<(), StartupError> {
        let shared = &self.shared;
        let mut startup = shared.startup.subscribe();
        let settled = tokio::time::timeout_at(
            deadline.into(),
            startup.wait_for(|state| state.keys_stored || state.issuer_mismatch.is_some()),
        )
        .await;
        if let Ok(Ok(state)) = settled {
            return match &state.issuer_mismatch {
                Some(metadata_issuer) if !state.keys_stored => Err(StartupError::IssuerMismatch {
                    metadata_issuer: metadata_issuer.clone(),
                }),
                _ => Ok(()),
            };
        }
        let control = lock(&shared.control);
        Err(StartupError::Unavailable(match &control.last_error {
            Some((error, _)) => error.clone(),
            None => "no response within the start-up time limit".to_owned(),
        }))
    }

    /// The state of this source, for [`Guard::key_status`](crate::Guard::key_status).
    pub(crate) fn status(&self) -> KeyStatus {
        let shared = &self.shared;
        let control = lock(&shared.control);
        let key_count = shared
            .state
            .load()
            .keys
            .as_ref()
            .map_or(0, |current| current.keys.len());
        let age = control.fetched_at.map(|(at, _)| at.elapsed());
        let freshness = match age {
            // The issuer's current set holds no usable key.
            Some(_) if key_count == 0 => KeyFreshness::Unavailable,
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
                key_count
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
    /// Start a background refresh unless another request is already looking after it.
    fn refresh_ahead(self: &Arc<Self>) {
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
        let reason = match self.state.load().retry {
            Some(retry) if retry.at > Instant::now() => return None,
            Some(_) => FetchReason::Retry,
            None => reason,
        };
        Some(self.start_flight(control, reason))
    }

    async fn keys_for_empty_source(self: &Arc<Self>) -> Result<Arc<KeySet>, KeysUnavailable> {
        let flight = {
            let mut control = lock(&self.control);
            let state = self.state.load();
            if let Some(current) = state.usable_keys(Instant::now())
                && control.live_flight().is_none()
            {
                // A fetch stored a set between our read and the lock.
                return Ok(Arc::clone(&current.keys));
            }
            let failing = state.retry.is_some();
            match self.start_due_fetch(&mut control, FetchReason::NoKeys) {
                Some(flight) if !failing => flight,
                // Failing: a due retry runs in the background, and this request is answered at
                // once rather than made to wait on a server known to fail.
                _ => return Err(unavailable(&state)),
            }
        };
        self.wait(flight)
            .await
            .ok_or_else(|| unavailable(&self.state.load()))
    }

    /// `keys`, unless the issuer's set holds no usable key: then its tokens cannot be verified
    /// until keys are published again (the retry schedule fetches the set meanwhile).
    fn usable(&self, keys: Arc<KeySet>) -> Result<Arc<KeySet>, KeysUnavailable> {
        if keys.is_empty() {
            return Err(unavailable(&self.state.load()));
        }
        Ok(keys)
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
        let keys = match self.fetch().await {
            Ok(fetched) => Some(self.store(fetched, reason, own)),
            Err(error) => {
                self.record_failure(&error, reason, own);
                None
            }
        };
        drop(cancel_guard); // already ended by `store` or `record_failure`: a no-op
        sender.send_replace(Flight::Done(keys));
    }

    /// One fetch of the set: its URL (discovered when needed), then the JWK Set, revalidated with
    /// the current `ETag`.
    async fn fetch(&self) -> Result<Fetched, FetchError> {
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
        let previous = self
            .state
            .load()
            .keys
            .as_ref()
            .map(|current| (Arc::clone(&current.keys), current.etag.clone()));
        let etag = previous.as_ref().and_then(|(_, etag)| etag.as_ref());
        let document = get_document(&self.client, &jwks_uri, etag, limits).await?;
        let max_age = max_age(&document.headers);
        let new_etag = document.headers.get(ETAG).cloned();
        match (document.status, previous) {
            (StatusCode::OK, previous) => {
                // Authoritative even when it holds no usable key (see the module docs).
                let keys = KeySet::from_jwks_json(&document.body)
                    .map_err(|err| FetchError::NotAJwkSet(err.to_string()))?;
                // The same keys again (a server without ETags): the current set and its
                // generation stay, so cached verifications stay valid.
                let keys = match previous {
                    Some((previous, _)) if previous.same_keys(&keys) => previous,
                    _ => Arc::new(keys),
                };
                Ok(Fetched {
                    keys,
                    etag: new_etag,
                    max_age,
                    status: 200,
                })
            }
            (StatusCode::NOT_MODIFIED, Some((keys, etag))) => Ok(Fetched {
                keys,
                etag: new_etag.or(etag),
                max_age,
                status: 304,
            }),
            (StatusCode::NOT_MODIFIED, None) => Err(FetchError::UnexpectedNotModified),
            (other, _) => Err(FetchError::Status(other.as_u16())),
        }
    }

    /// Make `fetched` the current set, in one swap of the snapshot under the lock.
    fn store(
        self: &Arc<Self>,
        fetched: Fetched,
        reason: FetchReason,
        own: &watch::Receiver<Flight>,
    ) -> Arc<KeySet> {
        let Fetched {
            keys,
            etag,
            max_age,
            status,
        } = fetched;
        let ttl = self.options.ttl_for(max_age);
        let now = Instant::now();
        let current = CurrentKeys {
            keys: Arc::clone(&keys),
            etag,
            // A set without a usable key is due again at once: requests then start the retry
            // when it is due, even if the retry timer's task is gone.
            refresh_at: if keys.is_empty() {
                now
            } else {
                now + ttl.mul_f64(self.options.refresh_ahead)
            },
            usable_until: now.checked_add(ttl.saturating_add(self.options.stale_limit)),
        };
        let mut control = lock(&self.control);
        end_flight(&mut control, own);
        control.fetched_at = Some((now, SystemTime::now()));
        control.ttl = ttl;
        let jwks_uri = control.jwks_uri.as_ref().map(Url::to_string);
        if keys.is_empty() {
            // Stored all the same (the previous keys are withdrawn), and fetched again on the
            // retry schedule until keys are published.
            let error = FetchError::NoUsableKeys;
            let retry = self.back_off(&mut control, &error, now);
            self.state.store(Arc::new(Snapshot {
                keys: Some(current),
                retry: Some(retry),
            }));
            drop(control);
            tracing::warn!(
                issuer = %self.issuer,
                jwks_uri,
                status,
                reason = reason.as_str(),
                retry_in_ms = retry.backoff.as_millis() as u64,
                "JWK Set holds no usable key: tokens of this issuer get 503 until keys are published"
            );
            return keys;
        }
        self.state.store(Arc::new(Snapshot {
            keys: Some(current),
            retry: None,
        }));
        let recovered_after = std::mem::take(&mut control.consecutive_failures);
        drop(control);
        self.startup.send_modify(|state| state.keys_stored = true);
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
        own: &watch::Receiver<Flight>,
    ) {
        let now = Instant::now();
        let mut control = lock(&self.control);
        // Ended under the same lock that schedules the retry, so the retry timer can never
        // see this finished fetch as still running and skip its attempt.
        end_flight(&mut control, own);
        let retry = self.back_off(&mut control, error, now);
        if let FetchError::IssuerMismatch { metadata_issuer } = error {
            self.startup.send_modify(|state| {
                state.issuer_mismatch = Some(metadata_issuer.clone());
            });
        }
        let state = self.state.load();
        let had_keys = state.usable_keys(now).is_some();
        self.state.store(Arc::new(Snapshot {
            keys: state.keys.clone(),
            retry: Some(retry),
        }));
        tracing::warn!(
            issuer = %self.issuer,
            jwks_uri = control.jwks_uri.as_ref().map(Url::as_str),
            reason = reason.as_str(),
            error = %error,
            serving = if had_keys { "last good keys" } else { "no keys" },
            retry_in_ms = retry.backoff.as_millis() as u64,
            "JWKS fetch failed"
        );
    }

    /// Record `error` and schedule the next attempt (backoff doubling up to the maximum); the
    /// retry for the next snapshot. Called under the lock that ended the fetch.
    fn back_off(
        self: &Arc<Self>,
        control: &mut Control,
        error: &FetchError,
        now: Instant,
    ) -> Retry {
        if matches!(self.location, Location::Discover(_))
            && !matches!(
                error,
                FetchError::Discovery(_) | FetchError::IssuerMismatch { .. }
            )
        {
            control.rediscover = true;
        }
        control.last_error = Some((error.to_string(), SystemTime::now()));
        control.consecutive_failures = control.consecutive_failures.saturating_add(1);
        let backoff = match self.state.load().retry {
            Some(retry) => retry.backoff.saturating_mul(2).min(self.options.retry_max),
            None => self.options.retry_initial,
        };
        let at = now + backoff;
        if !self.retry_timer_pending.swap(true, Ordering::AcqRel) {
            self.schedule_retry(at);
        }
        Retry { at, backoff }
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
            let retry = shared.state.load().retry;
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

/// When a request refused for want of keys may try again: when the next fetch is due.
fn unavailable(state: &Snapshot) -> KeysUnavailable {
    let at = state.retry.map_or_else(Instant::now, |retry| retry.at);
    KeysUnavailable {
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

    use std::sync::atomic::AtomicU64;

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
            assert!(
                remote
                    .refresh_for_unknown_key(&first)
                    .await
                    .expect("keys")
                    .is_none(),
                "nothing newer"
            );
            assert_eq!(server.fetches(), fetched + 1, "the set was fetched again");
            assert_eq!(remote.current_generation(), Some(generation));
            let current = remote.current().await.expect("keys");
            assert!(Arc::ptr_eq(&current, &first));
        }
        assert_eq!(remote.status().key_count, 2);

        // A changed set is a new generation.
        server.serve(json!({"keys": [a, ed25519_jwk("b")]}));
        let fresh = remote
            .refresh_for_unknown_key(&first)
            .await
            .expect("keys")
            .expect("a newer set");
        assert!(fresh.generation() > generation);
        assert_eq!(remote.current_generation(), Some(fresh.generation()));
    }
}
