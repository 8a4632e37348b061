//! The remote JWKS source against a real authorization server on `127.0.0.1:0`: coalescing,
//! rotation, unknown-`kid` cooldown, outages and the stale limit, HTTP caching, fetch limits,
//! discovery and several issuers. Durations are configured short (tens to hundreds of ms); tests
//! wait on the server's request counter or poll with a deadline, never sleep to synchronise.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bearer_guard::testing::SigningKey;
use bearer_guard::{
    Algorithm, BuildError, Guard, Issuer, JwksOptions, KeyFreshness, Rejection, TokenError,
    VerifyError,
};
use support::{Behaviour, CLIENT_MARKER, Idp};
use tokio::task::JoinSet;

const ISS: &str = "https://login.example.com/";
const AUD: &str = "api";
const PATIENCE: Duration = Duration::from_secs(5);

fn key() -> SigningKey {
    SigningKey::generate(Algorithm::ES256).expect("key")
}

fn token(key: &SigningKey) -> String {
    key.token(ISS, AUD).sign().expect("token")
}

/// A token signed by `key` that names a `kid` no server publishes.
fn token_with_made_up_kid(key: &SigningKey, n: usize) -> String {
    key.token(ISS, AUD)
        .kid(Some(&format!("made-up-{n}")))
        .sign()
        .expect("token")
}

/// Short limits so failures are quick; each test sets what it exercises.
fn quick() -> JwksOptions {
    JwksOptions::default()
        .fetch_timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
}

fn issuer(idp: &Idp, options: JwksOptions) -> Issuer {
    Issuer::new(ISS)
        .audience(AUD)
        .jwks_uri(idp.jwks_uri())
        .jwks_options(options)
}

async fn guard(idp: &Idp, options: JwksOptions) -> Guard {
    Guard::builder()
        .issuer(issuer(idp, options))
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("guard builds")
}

/// Poll `condition` until it holds; panic after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn unavailable(result: Result<impl Sized, VerifyError>) -> Option<Duration> {
    match result {
        Err(VerifyError::KeysUnavailable(unavailable)) => Some(unavailable.retry_after),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_coalesces_1000_concurrent_requests_into_one_fetch() {
    let key = SigningKey::generate(Algorithm::RS256).expect("key");
    let idp = Idp::start(&[&key]).await;
    let guard = Guard::builder()
        .issuer(issuer(&idp, quick().fetch_timeout(PATIENCE)))
        .startup_timeout(Duration::ZERO)
        .build()
        .await
        .expect("guard builds");
    assert_eq!(
        idp.fetches(),
        0,
        "a zero start-up timeout skips the prefetch"
    );

    // Hold the server's answer until every request is waiting on the cold cache.
    idp.hold();
    let token = Arc::new(token(&key));
    let started = Arc::new(AtomicUsize::new(0));
    let mut requests = JoinSet::new();
    for _ in 0..1000 {
        let (guard, token, started) = (guard.clone(), Arc::clone(&token), Arc::clone(&started));
        requests.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            guard.verify(&token).await.map(|_| ())
        });
    }
    eventually(PATIENCE, "1000 requests started", || {
        let started = started.load(Ordering::SeqCst);
        async move { started == 1000 }
    })
    .await;
    idp.wait_for_requests(1, PATIENCE).await;
    idp.release();

    let outcomes = requests.join_all().await;
    assert!(outcomes.iter().all(Result::is_ok), "every request verified");
    assert_eq!(idp.fetches(), 1, "1000 cold requests, exactly one fetch");
}

#[tokio::test]
async fn rotation_with_overlap_never_rejects_a_valid_token() {
    let (old, new) = (key(), key());
    let idp = Idp::start(&[&old]).await;
    let guard = guard(&idp, quick()).await;
    guard.verify(&token(&old)).await.expect("old key");

    // The authorization server publishes the next key, then starts signing with it.
    idp.publish(&[&old, &new]);
    for _ in 0..20 {
        guard.verify(&token(&new)).await.expect("new key accepted");
        guard
            .verify(&token(&old))
            .await
            .expect("old key accepted during the overlap");
    }
    assert_eq!(
        idp.fetches(),
        2,
        "the first new kid caused the only refetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kid_requests_share_one_refetch() {
    let (old, new) = (key(), key());
    let idp = Idp::start(&[&old]).await;
    let guard = guard(&idp, quick().fetch_timeout(PATIENCE)).await;
    idp.publish(&[&old, &new]);
    idp.hold();

    let token = Arc::new(token(&new));
    let mut requests = JoinSet::new();
    for _ in 0..100 {
        let (guard, token) = (guard.clone(), Arc::clone(&token));
        requests.spawn(async move { guard.verify(&token).await.map(|_| ()) });
    }
    idp.wait_for_requests(2, PATIENCE).await;
    idp.release();
    let outcomes = requests.join_all().await;
    let failed: Vec<_> = outcomes.iter().filter(|outcome| outcome.is_err()).collect();
    assert!(
        failed.is_empty(),
        "all waited on the one refetch: {failed:?}"
    );
    assert_eq!(idp.fetches(), 2);
}

#[tokio::test]
async fn a_token_that_expires_while_keys_are_fetched_is_rejected() {
    let (old, new) = (key(), key());
    let idp = Idp::start(&[&old]).await;
    let guard = Guard::builder()
        .issuer(issuer(&idp, quick().fetch_timeout(PATIENCE)).leeway(Duration::ZERO))
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("guard builds");
    idp.publish(&[&old, &new]);
    idp.hold();

    // Valid on arrival; its new key sends it to a refetch that the server holds past `exp`.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    // A second of margin, so that a loaded machine still makes the first check before `exp`.
    let exp = now + Duration::from_secs(1);
    let token = new
        .token(ISS, AUD)
        .claim("exp", exp.as_secs_f64())
        .sign()
        .expect("token");
    let request = tokio::spawn({
        let guard = guard.clone();
        async move { guard.verify(&token).await.map(|_| ()) }
    });
    idp.wait_for_requests(2, PATIENCE).await;
    // Waiting for the clock is the point of this test, not synchronisation.
    let expiry = std::time::UNIX_EPOCH + exp + Duration::from_millis(20);
    if let Ok(left) = expiry.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    idp.release();
    assert_eq!(
        request.await.expect("request task").err(),
        Some(VerifyError::InvalidToken(TokenError::Expired)),
        "the token expired while its key was fetched"
    );
    assert_eq!(idp.fetches(), 2, "the refetch did happen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_refetches_once_per_cooldown() {
    let cooldown = Duration::from_millis(1000);
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let guard = guard(&idp, quick().unknown_kid_cooldown(cooldown)).await;
    assert_eq!(idp.fetches(), 1);
    let tokens: Vec<String> = (0..400).map(|n| token_with_made_up_kid(&key, n)).collect();

    // A burst of made-up kids, all at once: one refetch.
    let burst = Instant::now();
    let mut requests = JoinSet::new();
    for token in &tokens[..200] {
        let (guard, token) = (guard.clone(), token.clone());
        requests.spawn(async move { guard.verify(&token).await.map(|_| ()) });
    }
    for outcome in requests.join_all().await {
        assert_eq!(
            outcome.err(),
            Some(VerifyError::InvalidToken(TokenError::UnknownKey))
        );
    }
    assert_eq!(idp.fetches(), 2, "200 unknown kids, one refetch");

    // More during the cooldown: rejected at once, no fetch.
    for token in &tokens[200..] {
        let rejected = Instant::now();
        let outcome = guard.verify(token).await;
        assert_eq!(outcome.unwrap_err(), TokenError::UnknownKey);
        assert!(
            rejected.elapsed() < Duration::from_millis(100),
            "no wait on the network"
        );
    }
    assert!(
        burst.elapsed() < cooldown,
        "the cooldown outlasted the burst"
    );
    assert_eq!(idp.fetches(), 2, "no fetch during the cooldown");

    // Once the cooldown is over, the next unknown kid refetches again — once.
    let mut n = 400;
    eventually(PATIENCE, "a refetch after the cooldown", || {
        n += 1;
        let (guard, token, idp) = (guard.clone(), token_with_made_up_kid(&key, n), idp.clone());
        async move {
            let _ = guard.verify(&token).await;
            idp.fetches() == 3
        }
    })
    .await;
    assert!(
        burst.elapsed() >= cooldown,
        "refetched before the cooldown ended"
    );
    assert_eq!(idp.fetches(), 3);
}

#[tokio::test]
async fn outage_serves_the_last_good_keys() {
    let ttl = Duration::from_millis(100);
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let guard = guard(&idp, quick().ttl(ttl)).await;
    let token = token(&key);

    idp.behave(Behaviour::Status(500));
    eventually(PATIENCE, "failed refreshes", || async {
        guard
            .verify(&token)
            .await
            .expect("the last good keys still verify");
        guard.key_status()[0].consecutive_failures >= 2
    })
    .await;
    let status = &guard.key_status()[0];
    assert_eq!(status.freshness, KeyFreshness::Stale);
    assert_eq!(status.key_count, 1);
    assert!(status.age.expect("age") >= ttl);
    let error = status.last_error.as_deref().expect("last error");
    assert!(error.contains("500"), "{error}");
    assert!(status.last_error_at.is_some() && status.last_success.is_some());

    idp.behave(Behaviour::Serve);
    eventually(PATIENCE, "recovery", || async {
        let _ = guard.verify(&token).await;
        guard.key_status()[0].freshness == KeyFreshness::Fresh
    })
    .await;
    assert_eq!(guard.key_status()[0].consecutive_failures, 0);
}

#[tokio::test]
async fn past_the_stale_limit_requests_get_503_with_retry_after() {
    let (ttl, stale_limit) = (Duration::from_millis(100), Duration::from_millis(200));
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let built = Instant::now();
    let guard = guard(&idp, quick().ttl(ttl).stale_limit(stale_limit)).await;
    let token = token(&key);
    guard.verify(&token).await.expect("fresh keys");

    idp.behave(Behaviour::Status(503));
    eventually(PATIENCE, "keys past the stale limit", || async {
        unavailable(guard.verify(&token).await).is_some()
    })
    .await;
    assert!(
        built.elapsed() >= ttl + stale_limit,
        "keys dropped before the stale limit"
    );

    let error = guard.verify(&token).await.unwrap_err();
    let retry_after = unavailable(Err::<(), _>(error.clone())).expect("keys unavailable");
    assert!(retry_after >= Duration::from_secs(1));
    let rejection = Rejection::from(error);
    let response = rejection.to_response::<()>(None, bearer_guard::Protocol::Http);
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let status = &guard.key_status()[0];
    assert_eq!(
        (status.freshness, status.key_count),
        (KeyFreshness::Unavailable, 0)
    );

    // The background retries bring the keys back without any request's help.
    idp.behave(Behaviour::Serve);
    eventually(PATIENCE, "keys back", || async {
        guard.key_status()[0].freshness == KeyFreshness::Fresh
    })
    .await;
    guard.verify(&token).await.expect("verifies again");
}

#[tokio::test]
async fn a_key_removed_from_the_set_stops_verifying_after_the_refresh() {
    let (kept, removed) = (key(), key());
    let idp = Idp::start(&[&kept, &removed]).await;
    let guard = guard(&idp, quick().ttl(Duration::from_millis(100))).await;
    guard.verify(&token(&removed)).await.expect("published");

    idp.publish(&[&kept]);
    eventually(PATIENCE, "the refreshed set", || async {
        guard.verify(&token(&kept)).await.expect("kept key");
        guard.key_status()[0].key_count == 1
    })
    .await;
    assert_eq!(
        guard.verify(&token(&removed)).await.unwrap_err(),
        TokenError::UnknownKey
    );
}

#[tokio::test]
async fn a_cached_verification_ends_when_its_key_is_removed() {
    let (kept, removed) = (key(), key());
    let idp = Idp::start(&[&kept, &removed]).await;
    let guard = guard(&idp, quick().ttl(Duration::from_millis(100))).await;
    // The same tokens again and again: verified once, then served from the verified-token cache,
    // whose hits alone must keep the keys refreshed.
    let (kept_token, removed_token) = (token(&kept), token(&removed));
    guard.verify(&removed_token).await.expect("published");

    idp.publish(&[&kept]);
    eventually(PATIENCE, "the refreshed set", || async {
        guard.verify(&kept_token).await.expect("kept key");
        guard.key_status()[0].key_count == 1
    })
    .await;
    assert_eq!(
        guard.verify(&removed_token).await.unwrap_err(),
        TokenError::UnknownKey
    );
}

/// A key published, a token verified and cached; then the server publishes `withdrawn` (a valid
/// JWK Set without a usable key). Once refetched, the cached token is refused with 503, and the
/// retry schedule brings the key back when it is published again.
async fn withdrawn_key_stops_verifying(withdrawn: serde_json::Value) {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let options = quick().unknown_kid_cooldown(Duration::ZERO);
    let guard = guard(&idp, options).await;
    let cached = token(&key);
    guard.verify(&cached).await.expect("published");
    guard.verify(&cached).await.expect("cached");

    idp.publish_document(withdrawn);
    // A token naming a key the set lacks makes the guard refetch now.
    let error = guard
        .verify(&token_with_made_up_kid(&key, 0))
        .await
        .unwrap_err();
    assert!(
        unavailable(Err::<(), _>(error.clone())).is_some(),
        "{error}"
    );
    assert_eq!(idp.answered(200), 2, "the refetch was answered");
    let retry_after = unavailable(guard.verify(&cached).await).expect("503 for the cached token");
    assert!(retry_after >= Duration::from_secs(1));
    let status = &guard.key_status()[0];
    assert_eq!(
        (status.freshness, status.key_count),
        (KeyFreshness::Unavailable, 0)
    );
    let error = status.last_error.as_deref().expect("last error");
    assert!(error.contains("no usable key"), "{error}");

    // Keys published again come back through the retry schedule.
    idp.publish(&[&key]);
    eventually(PATIENCE, "the key published again", || async {
        guard.verify(&cached).await.is_ok()
    })
    .await;
    assert_eq!(guard.key_status()[0].freshness, KeyFreshness::Fresh);
}

#[tokio::test]
async fn withdrawn_key_stops_verifying_when_new_set_is_empty() {
    withdrawn_key_stops_verifying(serde_json::json!({"keys": []})).await;
}

#[tokio::test]
async fn withdrawn_key_stops_verifying_when_new_set_holds_only_unusable_keys() {
    let encryption = {
        let mut jwk = SigningKey::generate(Algorithm::RS256)
            .expect("key")
            .public_jwk();
        jwk["use"] = "enc".into();
        jwk["alg"] = "RSA-OAEP".into();
        jwk
    };
    let unusable = serde_json::json!({"keys": [
        {"kty": "EC", "crv": "P-521", "kid": "p521",
         "x": bearer_guard::testing::b64([1u8; 66]), "y": bearer_guard::testing::b64([2u8; 66])},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": bearer_guard::testing::b64([3u8; 57])},
        encryption,
    ]});
    withdrawn_key_stops_verifying(unusable).await;
}

#[tokio::test]
async fn withdrawn_key_stops_verifying_at_the_next_refresh() {
    // No token asks for a refetch: the refresh ahead of the TTL, started by cache hits, finds
    // the empty set.
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let guard = guard(&idp, quick().ttl(Duration::from_millis(100))).await;
    let cached = token(&key);
    guard.verify(&cached).await.expect("published");

    idp.behave(Behaviour::EmptySet);
    eventually(PATIENCE, "the cached token refused", || async {
        unavailable(guard.verify(&cached).await).is_some()
    })
    .await;
    idp.behave(Behaviour::Serve);
    eventually(PATIENCE, "the key published again", || async {
        guard.verify(&cached).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn every_key_under_a_duplicate_kid_is_tried() {
    // Two ES256 keys and an RS256 key under one kid (a rotation that kept the name), and a key
    // under another kid.
    let shared = |alg| {
        SigningKey::generate(alg)
            .expect("key")
            .with_kid(Some("shared"))
    };
    let (first, second, rsa) = (
        shared(Algorithm::ES256),
        shared(Algorithm::ES256),
        shared(Algorithm::RS256),
    );
    let other = key();
    let idp = Idp::start(&[&first, &second, &rsa, &other]).await;
    let guard = guard(&idp, quick()).await;
    for signer in [&first, &second, &rsa, &other] {
        guard
            .verify(&token(signer))
            .await
            .unwrap_or_else(|err| panic!("{:?} {:?}: {err}", signer.kid(), signer.algorithm()));
    }
    // A key nobody published, under the shared kid: every candidate is tried, none verifies.
    let stranger = shared(Algorithm::ES256);
    assert_eq!(
        guard.verify(&token(&stranger)).await.unwrap_err(),
        TokenError::InvalidSignature
    );
    assert_eq!(idp.fetches(), 1, "a known kid never refetches");
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_and_clamped() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let cases = [
        (Some("public, max-age=120"), Duration::from_secs(120)),
        (Some("max-age=5"), Duration::from_secs(60)),
        (Some("max-age=9999999"), Duration::from_secs(24 * 3600)),
        (Some("no-store"), Duration::from_secs(60)),
        (None, Duration::from_secs(600)),
    ];
    for (cache_control, ttl) in cases {
        idp.cache_control(cache_control);
        let guard = guard(&idp, JwksOptions::default()).await;
        assert_eq!(guard.key_status()[0].ttl, Some(ttl), "{cache_control:?}");
    }

    // The clamp decides when the refresh happens: an hour's max-age, at most 200 ms here.
    idp.cache_control(Some("max-age=3600"));
    let bounds = (Duration::from_millis(100), Duration::from_millis(200));
    let guard = guard(&idp, quick().ttl_bounds(bounds.0, bounds.1)).await;
    let fetched = Instant::now();
    assert_eq!(guard.key_status()[0].ttl, Some(bounds.1));
    let before = idp.fetches();
    eventually(PATIENCE, "a refresh at the clamped TTL", || async {
        guard.verify(&token(&key)).await.expect("verifies");
        idp.fetches() > before
    })
    .await;
    assert!(fetched.elapsed() >= bounds.1.mul_f64(0.8) - Duration::from_millis(20));
}

#[tokio::test]
async fn an_unchanged_set_costs_a_304() {
    let (first, second) = (key(), key());
    let idp = Idp::start(&[&first]).await;
    idp.etag(Some("\"v1\""));
    let guard = guard(&idp, quick().ttl(Duration::from_millis(50))).await;

    eventually(PATIENCE, "a 304 revalidation", || async {
        guard.verify(&token(&first)).await.expect("verifies");
        idp.answered(304) >= 1
    })
    .await;
    assert!(
        idp.hits()
            .iter()
            .any(|hit| hit.status == 304 && hit.if_none_match.as_deref() == Some("\"v1\""))
    );
    assert_eq!(idp.answered(200), 1, "only the first fetch carried a body");

    // A changed set comes back whole, with its new ETag used from then on.
    idp.publish(&[&second]);
    idp.etag(Some("\"v2\""));
    guard
        .verify(&token(&second))
        .await
        .expect("the new set was fetched");
    eventually(PATIENCE, "revalidation of the new set", || async {
        let _ = guard.verify(&token(&second)).await;
        idp.hits()
            .iter()
            .any(|hit| hit.status == 304 && hit.if_none_match.as_deref() == Some("\"v2\""))
    })
    .await;
    guard
        .verify(&token(&second))
        .await
        .expect("still verifies after 304s");
}

#[tokio::test]
async fn oversized_slow_and_garbage_responses_are_failed_fetches() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let options = quick()
        .ttl(Duration::from_millis(30))
        .fetch_timeout(Duration::from_millis(300))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(10));
    let guard = guard(&idp, options).await;
    let token = token(&key);
    let cases = [
        (Behaviour::Huge, "larger than 1048576 bytes"),
        (Behaviour::Endless, "larger than 1048576 bytes"),
        (Behaviour::Hang, "timed out"),
        (Behaviour::Garbage, "not a JWK Set"),
        (Behaviour::NotAJwkSet, "not a JWK Set"),
        (Behaviour::Status(502), "HTTP status 502"),
        (Behaviour::Status(404), "HTTP status 404"),
    ];
    for (behaviour, expected) in cases {
        idp.behave(behaviour.clone());
        eventually(PATIENCE, expected, || async {
            guard
                .verify(&token)
                .await
                .expect("stale keys keep verifying");
            let status = &guard.key_status()[0];
            status.consecutive_failures > 0
                && status
                    .last_error
                    .as_deref()
                    .is_some_and(|error| error.contains(expected))
        })
        .await;
        // Back to normal before the next case, so each error is this case's own.
        idp.behave(Behaviour::Serve);
        eventually(PATIENCE, "recovery", || async {
            guard.verify(&token).await.expect("verifies");
            guard.key_status()[0].consecutive_failures == 0
        })
        .await;
    }
}

#[tokio::test]
async fn redirects_are_refused() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.behave(Behaviour::Redirect);
    let build = |client: Option<reqwest::Client>| {
        let mut builder = Guard::builder()
            .issuer(issuer(&idp, quick()))
            .startup_timeout(Duration::from_millis(200))
            .require_keys_at_startup(true);
        if let Some(client) = client {
            builder = builder.http_client(client);
        }
        builder.build()
    };

    match build(None).await {
        Err(BuildError::KeysUnavailable { reason, .. }) => {
            assert!(reason.contains("redirect"), "{reason}")
        }
        other => panic!("expected no keys, got {other:?}"),
    }
    assert_eq!(
        idp.count("/jwks-moved"),
        0,
        "the default client does not follow"
    );

    // A user's client that follows redirects still gets no keys from elsewhere.
    match build(Some(reqwest::Client::new())).await {
        Err(BuildError::KeysUnavailable { reason, .. }) => {
            assert!(reason.contains("redirect"), "{reason}")
        }
        other => panic!("expected no keys, got {other:?}"),
    }
}

#[tokio::test]
async fn oidc_discovery_finds_the_jwks_uri() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.discovery(true, false);
    let issuer = format!("{}/tenant", idp.base());
    let guard = Guard::builder()
        .issuer(Issuer::new(&issuer).audience(AUD).discover())
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("discovered");
    guard
        .verify(&key.token(&issuer, AUD).sign().unwrap())
        .await
        .expect("verifies");
    assert_eq!(idp.count("/tenant/.well-known/openid-configuration"), 1);
    assert_eq!(idp.fetches(), 1);
    assert_eq!(guard.key_status()[0].jwks_uri, Some(idp.jwks_uri()));
}

#[tokio::test]
async fn rfc8414_discovery_inserts_the_well_known_path() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.discovery(false, true);
    let issuer = format!("{}/tenant/v1", idp.base());
    let guard = Guard::builder()
        .issuer(Issuer::new(&issuer).audience(AUD).discover())
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("discovered");
    guard
        .verify(&key.token(&issuer, AUD).sign().unwrap())
        .await
        .expect("verifies");
    assert_eq!(
        idp.count("/tenant/v1/.well-known/openid-configuration"),
        1,
        "OIDC tried first"
    );
    assert_eq!(
        idp.count("/.well-known/oauth-authorization-server/tenant/v1"),
        1
    );
    assert_eq!(idp.fetches(), 1);
}

#[tokio::test]
async fn a_trailing_slash_mismatch_fails_the_build_at_once() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let configured = format!("{}/", idp.base());
    // A long start-up timeout: the mismatch must end the build, not the timeout.
    let built = Guard::builder()
        .issuer(Issuer::new(&configured).audience(AUD).discover())
        .startup_timeout(Duration::from_secs(120))
        .build()
        .await;
    match built {
        Err(err @ BuildError::IssuerMismatch { .. }) => {
            let message = err.to_string();
            assert!(message.contains(&format!("{:?}", idp.base())), "{message}");
            assert!(message.contains(&format!("{configured:?}")), "{message}");
        }
        other => panic!("expected the mismatch as a build error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_rejects_metadata_naming_another_issuer() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.metadata_issuer("https://evil.example");
    let issuer = idp.base().to_owned();
    let required = Guard::builder()
        .issuer(
            Issuer::new(&issuer)
                .audience(AUD)
                .discover()
                .jwks_options(quick()),
        )
        .startup_timeout(Duration::from_millis(200))
        .require_keys_at_startup(true)
        .build()
        .await;
    match required {
        Err(BuildError::IssuerMismatch {
            metadata_issuer, ..
        }) => assert_eq!(metadata_issuer, "https://evil.example"),
        other => panic!("expected the mismatch as a build error, got {other:?}"),
    }

    // Without the start-up prefetch the mismatch shows at the first request: 503, and the
    // mismatched issuer's JWKS is still never fetched.
    let guard = Guard::builder()
        .issuer(
            Issuer::new(&issuer)
                .audience(AUD)
                .discover()
                .jwks_options(quick()),
        )
        .startup_timeout(Duration::ZERO)
        .build()
        .await
        .expect("builds without keys by default");
    let outcome = guard.verify(&key.token(&issuer, AUD).sign().unwrap()).await;
    assert!(unavailable(outcome).is_some());
    assert_eq!(
        idp.fetches(),
        0,
        "the JWKS of a mismatched issuer is never fetched"
    );
}

#[tokio::test]
async fn two_issuers_side_by_side() {
    let (key_a, key_b) = (key(), key());
    let (idp_a, idp_b) = (Idp::start(&[&key_a]).await, Idp::start(&[&key_b]).await);
    let (iss_a, iss_b) = ("https://a.example", "https://b.example");
    let guard = Guard::builder()
        .issuer(
            Issuer::new(iss_a)
                .audience("api-a")
                .jwks_uri(idp_a.jwks_uri()),
        )
        .issuer(
            Issuer::new(iss_b)
                .audience("api-b")
                .jwks_uri(idp_b.jwks_uri()),
        )
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("builds");

    let claims = guard
        .verify(&key_a.token(iss_a, "api-a").sign().unwrap())
        .await
        .expect("a");
    assert_eq!(claims.issuer(), iss_a);
    let claims = guard
        .verify(&key_b.token(iss_b, "api-b").sign().unwrap())
        .await
        .expect("b");
    assert_eq!(claims.issuer(), iss_b);

    // Each issuer has its own keys and audiences.
    let b_key_claims_a = key_b.token(iss_a, "api-a").sign().unwrap();
    assert_eq!(
        guard.verify(&b_key_claims_a).await.unwrap_err(),
        TokenError::UnknownKey
    );
    let a_audience_at_b = key_b.token(iss_b, "api-a").sign().unwrap();
    assert_eq!(
        guard.verify(&a_audience_at_b).await.unwrap_err(),
        TokenError::AudienceMismatch
    );

    let issuers: Vec<_> = guard
        .key_status()
        .into_iter()
        .map(|status| status.issuer)
        .collect();
    assert_eq!(issuers, [iss_a, iss_b]);
    assert_eq!(
        (idp_a.fetches(), idp_b.fetches()),
        (2, 1),
        "only a's keys were refetched"
    );
}

#[tokio::test]
async fn unknown_issuer_causes_no_fetch() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let guard = guard(&idp, quick()).await;
    assert_eq!(idp.hits().len(), 1);
    for n in 0..50 {
        let token = key
            .token(&format!("https://other-{n}.example"), AUD)
            .kid(Some(&format!("made-up-{n}")))
            .sign()
            .unwrap();
        assert_eq!(
            guard.verify(&token).await.unwrap_err(),
            TokenError::UnknownIssuer
        );
    }
    assert_eq!(idp.hits().len(), 1, "no request for an unknown issuer");
}

#[tokio::test]
async fn custom_http_client_is_used_for_every_fetch() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        CLIENT_MARKER,
        reqwest::header::HeaderValue::from_static("custom"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let issuer = idp.base().to_owned();
    let guard = Guard::builder()
        .issuer(Issuer::new(&issuer).audience(AUD).discover())
        .http_client(client)
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("builds");
    guard
        .verify(&key.token(&issuer, AUD).sign().unwrap())
        .await
        .expect("verifies");
    let hits = idp.hits();
    assert_eq!(hits.len(), 2, "metadata and JWKS: {hits:?}");
    assert!(
        hits.iter()
            .all(|hit| hit.marker.as_deref() == Some("custom")),
        "{hits:?}"
    );
}

#[tokio::test]
async fn startup_without_keys_builds_and_answers_503_until_keys_arrive() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.behave(Behaviour::Status(500));
    let started = Instant::now();
    let guard = Guard::builder()
        .issuer(issuer(&idp, quick()))
        .startup_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("builds without keys");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "start-up is bounded"
    );
    assert!(idp.fetches() >= 2, "start-up retried");
    assert_eq!(guard.key_status()[0].freshness, KeyFreshness::Unavailable);

    let token = token(&key);
    let asked = Instant::now();
    let retry_after = unavailable(guard.verify(&token).await).expect("503");
    assert!(
        asked.elapsed() < Duration::from_millis(100),
        "answered without waiting"
    );
    assert!(retry_after >= Duration::from_secs(1));

    idp.behave(Behaviour::Serve);
    eventually(PATIENCE, "keys from the background retries", || async {
        guard.verify(&token).await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn startup_can_require_keys() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.behave(Behaviour::Status(500));
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let outcome = Guard::builder()
        .issuer(issuer(&idp, quick()))
        .startup_timeout(timeout)
        .require_keys_at_startup(true)
        .build()
        .await;
    match outcome {
        Err(BuildError::KeysUnavailable { issuer, reason }) => {
            assert_eq!(issuer, ISS);
            assert!(reason.contains("500"), "{reason}");
        }
        other => panic!("expected a start-up failure, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    assert!(idp.fetches() >= 2, "retried with backoff");
}

#[tokio::test]
async fn a_hanging_server_never_hangs_a_request() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    idp.behave(Behaviour::Hang);
    let fetch_timeout = Duration::from_millis(200);
    let guard = Guard::builder()
        .issuer(issuer(&idp, quick().fetch_timeout(fetch_timeout)))
        .startup_timeout(Duration::ZERO)
        .build()
        .await
        .expect("builds");
    let token = token(&key);

    let first = Instant::now();
    assert!(unavailable(guard.verify(&token).await).is_some());
    let waited = first.elapsed();
    assert!(
        waited >= fetch_timeout && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    // The server is known to be failing now: answered at once, also while the retries (due
    // every 20-100 ms, each hanging for the fetch timeout) run in the background.
    let deadline = Instant::now() + PATIENCE;
    while guard.key_status()[0].consecutive_failures < 3 {
        assert!(Instant::now() < deadline, "timed out waiting for retries");
        let asked = Instant::now();
        assert!(unavailable(guard.verify(&token).await).is_some());
        assert!(
            asked.elapsed() < Duration::from_millis(100),
            "{:?}",
            asked.elapsed()
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn misconfigured_remote_sources_are_build_errors() {
    let hmac = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::RS256, Algorithm::HS256])
                .jwks_uri("https://login.example.com/jwks"),
        )
        .build()
        .await;
    assert!(
        matches!(hmac, Err(BuildError::HmacWithPublishedKeys { .. })),
        "{hmac:?}"
    );

    for uri in ["not a url", "ftp://login.example.com/jwks"] {
        let built = Guard::builder()
            .issuer(Issuer::new(ISS).audience(AUD).jwks_uri(uri))
            .build()
            .await;
        assert!(
            matches!(built, Err(BuildError::InvalidUrl { .. })),
            "{uri}: {built:?}"
        );
    }
    let built = Guard::builder()
        .issuer(Issuer::new("urn:example:issuer").audience(AUD).discover())
        .build()
        .await;
    assert!(
        matches!(built, Err(BuildError::InvalidUrl { .. })),
        "{built:?}"
    );
}

/// A plain-`http` key URL lets anyone on the path substitute keys: refused unless it is loopback
/// or the operator opts in. The opt-in case resolves a non-loopback name to the test server.
#[tokio::test]
async fn plain_http_key_urls_are_refused_unless_loopback_or_allowed() {
    let key = key();
    let idp = Idp::start(&[&key]).await;
    let port = idp
        .base()
        .rsplit(':')
        .next()
        .and_then(|port| port.parse::<u16>().ok())
        .expect("port");
    let remote = format!("http://keys.internal:{port}/jwks");

    for source in [
        Issuer::new(ISS).jwks_uri(&remote),
        Issuer::new("http://idp.internal/").discover(),
    ] {
        let built = Guard::builder().issuer(source.audience(AUD)).build().await;
        assert!(
            matches!(built, Err(BuildError::InvalidUrl { .. })),
            "{built:?}"
        );
    }

    let client = reqwest::Client::builder()
        .resolve("keys.internal", ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let guard = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .jwks_uri(&remote)
                .jwks_options(quick().allow_insecure_http(true)),
        )
        .http_client(client)
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("opted-in plain http builds");
    guard.verify(&token(&key)).await.expect("verifies");
    assert_eq!(idp.hits().len(), 1);
}

/// The retry after a failed fetch normally runs on a timer task. If the runtime that held that
/// task is gone (a guard built in one runtime and used in another), requests start the due retry
/// themselves: the keys come back once the server does.
#[test]
fn keys_come_back_when_the_retry_timers_runtime_is_gone() {
    let key = key();
    let token = token(&key);
    let server = tokio::runtime::Runtime::new().expect("server runtime");
    let idp = server.block_on(Idp::start(&[&key]));
    idp.behave(Behaviour::Status(500));

    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let guard = first.block_on(async {
        let guard = Guard::builder()
            .issuer(issuer(&idp, quick()))
            .startup_timeout(Duration::from_millis(200))
            .build()
            .await
            .expect("builds without keys");
        eventually(PATIENCE, "a failed fetch", || async {
            guard.key_status()[0].last_error.is_some()
        })
        .await;
        guard
    });
    drop(first); // the retry timer (and any fetch in flight) goes with it

    idp.behave(Behaviour::Serve);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    second.block_on(async {
        eventually(PATIENCE, "keys after the server recovers", || async {
            guard.verify(&token).await.is_ok()
        })
        .await;
    });
}

/// A refresh spawned on a runtime that is then dropped before the fetch ever runs must not stay
/// "in flight" for ever: the next runtime's requests start a fetch of their own.
#[test]
fn a_fetch_dropped_with_its_runtime_does_not_block_later_fetches() {
    let key = key();
    let token = token(&key);
    let server = tokio::runtime::Runtime::new().expect("server runtime");
    let idp = server.block_on(Idp::start(&[&key]));
    // TTL zero: every request finds the set due for a refresh.
    idp.cache_control(Some("no-store"));
    let options = quick().ttl_bounds(Duration::ZERO, Duration::from_secs(3600));

    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let guard = first.block_on(guard(&idp, options));
    let fetched = idp.fetches();
    // Verifies on the cached set and spawns a refresh; `block_on` returns before the spawned
    // task is polled, and dropping the runtime drops the task unrun.
    first
        .block_on(guard.verify(&token))
        .expect("verifies on the cached set");
    drop(first);
    assert_eq!(idp.fetches(), fetched, "the refresh never ran");

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    second.block_on(async {
        eventually(PATIENCE, "a refetch on the second runtime", || async {
            guard.verify(&token).await.is_ok() && idp.fetches() > fetched
        })
        .await;
    });
}

/// An issuer that moves its keys (the metadata names a new `jwks_uri`, the old one answers 404)
/// is followed: a failed fetch of a discovered `jwks_uri` reads the metadata again.
#[tokio::test]
async fn a_moved_jwks_uri_is_rediscovered() {
    let (old, new) = (key(), key());
    let idp = Idp::start(&[&old]).await;
    let issuer = idp.base().to_owned();
    let guard = Guard::builder()
        .issuer(
            Issuer::new(&issuer)
                .audience(AUD)
                .discover()
                .jwks_options(quick().unknown_kid_cooldown(Duration::ZERO)),
        )
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("builds");
    let old_token = old.token(&issuer, AUD).sign().unwrap();
    guard.verify(&old_token).await.expect("verifies");

    idp.publish(&[&new]);
    idp.move_keys();
    idp.behave(Behaviour::Status(404));
    let new_token = new.token(&issuer, AUD).sign().unwrap();
    eventually(PATIENCE, "the new key from the moved jwks_uri", || async {
        guard.verify(&new_token).await.is_ok()
    })
    .await;
    assert!(idp.count("/jwks-moved") >= 1);
    assert!(
        guard.key_status()[0]
            .jwks_uri
            .as_deref()
            .is_some_and(|uri| uri.ends_with("/jwks-moved"))
    );
}

/// Reading the metadata again after a failed fetch must not make the keys depend on the metadata
/// endpoint: when it is down, the last known `jwks_uri` is fetched.
#[tokio::test]
async fn an_unreachable_metadata_endpoint_falls_back_to_the_known_jwks_uri() {
    let (old, new) = (key(), key());
    let idp = Idp::start(&[&old]).await;
    let issuer = idp.base().to_owned();
    let guard = Guard::builder()
        .issuer(
            Issuer::new(&issuer)
                .audience(AUD)
                .discover()
                .jwks_options(quick().unknown_kid_cooldown(Duration::ZERO)),
        )
        .require_keys_at_startup(true)
        .build()
        .await
        .expect("builds");

    idp.discovery(false, false);
    idp.behave(Behaviour::Status(500));
    idp.publish(&[&new]);
    let new_token = new.token(&issuer, AUD).sign().unwrap();
    assert!(guard.verify(&new_token).await.is_err());
    eventually(PATIENCE, "a failed fetch", || async {
        guard.key_status()[0].consecutive_failures >= 1
    })
    .await;

    idp.behave(Behaviour::Serve);
    eventually(PATIENCE, "the new key from the known jwks_uri", || async {
        guard.verify(&new_token).await.is_ok()
    })
    .await;
}
