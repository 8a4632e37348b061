//! Faults of the identity provider, seen from the API: the JWKS server hangs beyond the fetch
//! timeout, flaps between good and bad answers (500, garbage, oversized and endless bodies, sets
//! without usable keys), or disappears for longer than the keys' TTL. Through all of it the
//! `resource_server` example's router on `127.0.0.1:0` keeps accepting valid tokens on the keys it
//! already has, and every request's latency stays bounded — the fetches happen beside the requests,
//! never in front of them. Past the stale limit, or with no keys at all, the answer is a 503 with
//! `Retry-After`, never a 500 and never a hang.
//!
//! Each request carries a freshly signed token (a new `jti`), so the verified-token cache cannot
//! hide the key path. Durations are shortened through [`JwksOptions`].

use bearer_guard::testing::demo as example;
mod support;

use std::future::Future;
use std::time::Duration;

use axum::routing::get;
use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, GuardBuilder, Issuer, JwksOptions, KeyFreshness};
use reqwest::StatusCode;
use support::{Behaviour, Idp};
use tokio::time::Instant;

const ISSUER: &str = "https://login.example.com/";
const AUDIENCE: &str = example::DEMO_AUDIENCE;
/// The longest any request may take while the JWKS server misbehaves.
const BOUND: Duration = Duration::from_secs(1);
/// How long a test may wait for the faults it provokes to happen.
const PATIENCE: Duration = Duration::from_secs(10);

fn key() -> SigningKey {
    SigningKey::generate(Algorithm::ES256).expect("key")
}

/// Short lifetimes: a fetch gives up after 200 ms, failed fetches are retried after 20–100 ms.
fn quick(ttl: Duration) -> JwksOptions {
    JwksOptions::default()
        .ttl(ttl)
        .fetch_timeout(Duration::from_millis(200))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// The payments API, and the guard behind it (a clone, for its key status).
struct Api {
    base: String,
    http: reqwest::Client,
    guard: Guard,
}

impl Api {
    async fn start(issuer: Issuer, configure: impl FnOnce(GuardBuilder) -> GuardBuilder) -> Api {
        let guard = configure(Guard::builder().issuer(issuer).realm("payments"))
            .build()
            .await
            .expect("guard builds");
        let base = support::serve(example::app(guard.clone())).await;
        let http = reqwest::Client::builder()
            .timeout(BOUND * 5)
            .build()
            .expect("client");
        Api { base, http, guard }
    }

    /// `GET /payments` with a freshly signed token; the status and how long it took.
    async fn call(&self, key: &SigningKey) -> (StatusCode, Duration, reqwest::header::HeaderMap) {
        let token = key
            .token(ISSUER, AUDIENCE)
            .scope("payments:read")
            .sign()
            .expect("token");
        let started = Instant::now();
        let response = self
            .http
            .get(format!("{}/payments", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the API answers within the client timeout");
        let (status, headers) = (response.status(), response.headers().clone());
        response.bytes().await.expect("body");
        (status, started.elapsed(), headers)
    }

    /// A valid token is accepted, within [`BOUND`].
    async fn accepts(&self, key: &SigningKey) {
        let (status, elapsed, _) = self.call(key).await;
        assert_eq!(status, StatusCode::OK);
        assert!(elapsed < BOUND, "a request took {elapsed:?}");
    }

    fn consecutive_failures(&self) -> u32 {
        self.guard.key_status()[0].consecutive_failures
    }
}

/// Keep sending valid tokens (each accepted within [`BOUND`]) until `done` holds; panic after
/// [`PATIENCE`]. Returns how many requests were sent.
async fn keep_accepting_until<F, Fut>(api: &Api, key: &SigningKey, what: &str, mut done: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut requests = 0;
    loop {
        api.accepts(key).await;
        requests += 1;
        if done().await {
            return requests;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

#[tokio::test]
async fn hanging_jwks_server_keeps_valid_tokens_flowing_with_bounded_latency() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let ttl = Duration::from_millis(150);
    let api = Api::start(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(idp.jwks_uri())
            .jwks_options(quick(ttl).unknown_kid_cooldown(Duration::from_millis(50))),
        |builder| builder.require_keys_at_startup(true),
    )
    .await;
    api.accepts(&key).await;

    idp.behave(Behaviour::Hang);
    let before = idp.fetches();
    // Several refreshes time out while requests keep coming.
    keep_accepting_until(&api, &key, "three timed-out refreshes", || async {
        api.consecutive_failures() >= 3
    })
    .await;
    assert!(idp.fetches() >= before + 3);
    let status = &api.guard.key_status()[0];
    assert_eq!(status.freshness, KeyFreshness::Stale);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("timed out")),
        "{status:?}"
    );

    // A token naming an unknown key waits at most for one (timed-out) fetch, then gets its 401.
    let stranger = key_with_kid("rotated-in-but-unreachable");
    let (status, elapsed, headers) = api.call(&stranger).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    assert!(
        elapsed < BOUND,
        "unknown kid during the outage took {elapsed:?}"
    );

    // Back to normal: the next refresh succeeds.
    idp.behave(Behaviour::Serve);
    keep_accepting_until(&api, &key, "recovery", || async {
        api.guard.key_status()[0].freshness == KeyFreshness::Fresh
    })
    .await;
}

fn key_with_kid(kid: &str) -> SigningKey {
    key().with_kid(Some(kid))
}

#[tokio::test]
async fn flapping_jwks_server_never_interrupts_valid_tokens() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let api = Api::start(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(idp.jwks_uri())
            .jwks_options(quick(Duration::from_millis(60))),
        |builder| builder.require_keys_at_startup(true),
    )
    .await;
    api.accepts(&key).await;

    let faults = [
        Behaviour::Status(500),
        Behaviour::Garbage,
        Behaviour::Serve,
        Behaviour::Huge,
        Behaviour::NotAJwkSet,
        Behaviour::Serve,
        Behaviour::Endless,
        // Not `EmptySet`: an empty JWK Set is a valid answer that withdraws the keys (see
        // `jwks_remote::withdrawn_key_stops_verifying_when_new_set_is_empty`).
        Behaviour::Status(503),
        Behaviour::Redirect,
        Behaviour::Status(404),
        Behaviour::Serve,
    ];
    for behaviour in faults {
        idp.behave(behaviour.clone());
        let seen = idp.fetches();
        // Each behaviour is met by at least one answered fetch (refresh-ahead or retry).
        keep_accepting_until(
            &api,
            &key,
            &format!("a fetch answered with {behaviour:?}"),
            || {
                let answered = idp
                    .hits()
                    .iter()
                    .skip(seen)
                    .any(|hit| hit.path == "/jwks" && hit.status != 0);
                async move { answered }
            },
        )
        .await;
    }
    let status = &api.guard.key_status()[0];
    assert_eq!(status.key_count, 1);
    assert_ne!(status.freshness, KeyFreshness::Unavailable);
}

/// A JWK Set server that can be made to vanish: its listener closes and new connections are
/// refused.
struct VanishingJwks {
    uri: String,
    server: tokio::task::JoinHandle<()>,
}

impl VanishingJwks {
    async fn start(key: &SigningKey) -> VanishingJwks {
        let jwks = SigningKey::jwks([key]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let uri = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        let app = axum::Router::new().route(
            "/jwks",
            get(move || {
                let jwks = jwks.clone();
                async move { axum::Json(jwks) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        VanishingJwks { uri, server }
    }

    /// Stop listening (the listener is dropped with the server task).
    async fn vanish(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

/// No connection reuse, so that a vanished server means refused connections.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

#[tokio::test]
async fn jwks_server_gone_longer_than_the_ttl_keeps_cached_keys_serving() {
    let key = key();
    let jwks = VanishingJwks::start(&key).await;
    let ttl = Duration::from_millis(100);
    let api = Api::start(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(&jwks.uri)
            .jwks_options(quick(ttl)),
        |builder| {
            builder
                .http_client(fresh_connections())
                .require_keys_at_startup(true)
        },
    )
    .await;
    api.accepts(&key).await;

    jwks.vanish().await;
    // Keys five TTLs old, and refreshes failing all along.
    keep_accepting_until(&api, &key, "an outage several TTLs long", || async {
        let status = &api.guard.key_status()[0];
        status.age.is_some_and(|age| age > ttl * 5) && status.consecutive_failures >= 3
    })
    .await;
    let status = &api.guard.key_status()[0];
    assert_eq!(
        (status.freshness, status.key_count),
        (KeyFreshness::Stale, 1)
    );
    assert!(status.last_error.is_some());
}

#[tokio::test]
async fn jwks_server_gone_past_the_stale_limit_answers_503_never_500() {
    let key = key();
    let jwks = VanishingJwks::start(&key).await;
    let (ttl, stale_limit) = (Duration::from_millis(100), Duration::from_millis(300));
    let api = Api::start(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(&jwks.uri)
            .jwks_options(quick(ttl).stale_limit(stale_limit)),
        |builder| {
            builder
                .http_client(fresh_connections())
                .require_keys_at_startup(true)
        },
    )
    .await;
    api.accepts(&key).await;
    // The keys expire `ttl + stale_limit` after their last successful fetch (or later, if a
    // refresh succeeds before the server vanishes).
    let age = api.guard.key_status()[0].age.expect("fetched");
    let earliest_expiry = Instant::now() + (ttl + stale_limit).saturating_sub(age);

    jwks.vanish().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, elapsed, headers) = api.call(&key).await;
        assert!(elapsed < BOUND, "a request took {elapsed:?}");
        match status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(headers.contains_key("retry-after"));
                assert!(!headers.contains_key("www-authenticate"));
                assert!(
                    Instant::now() >= earliest_expiry,
                    "keys dropped before the stale limit"
                );
                break;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(Instant::now() < deadline, "keys never expired");
    }
    assert_eq!(
        api.guard.key_status()[0].freshness,
        KeyFreshness::Unavailable
    );
}

#[tokio::test]
async fn cold_start_against_a_hanging_jwks_server_answers_503_within_the_fetch_timeout() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.behave(Behaviour::Hang);
    let api = Api::start(
        Issuer::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(idp.jwks_uri())
            .jwks_options(quick(Duration::from_secs(60))),
        |builder| builder.startup_timeout(Duration::ZERO),
    )
    .await;
    let replies = futures_util::future::join_all((0..50).map(|_| api.call(&key))).await;
    for (status, elapsed, headers) in replies {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.contains_key("retry-after"));
        assert!(elapsed < BOUND, "a request took {elapsed:?}");
    }
    // Once the server answers, keys arrive and the same API accepts tokens.
    idp.behave(Behaviour::Serve);
    let deadline = Instant::now() + PATIENCE;
    while api.call(&key).await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "keys never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
