//! The verified-token cache is an optimisation only: it never admits what a full verification
//! would reject.

use std::time::Duration;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, GuardBuilder, Issuer, TokenError};

const ISS: &str = "https://issuer.example";
const AUD: &str = "api";

fn builder(key: &SigningKey) -> GuardBuilder {
    Guard::builder().issuer(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(key.key_set())
            .leeway(Duration::ZERO),
    )
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn repeated_token_is_served_from_the_cache() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key).build().await.unwrap();
    let token = key.token(ISS, AUD).scope("a").sign().unwrap();
    let first = guard.verify(&token).await.unwrap();
    let second = guard.verify(&token).await.unwrap();
    assert_eq!(guard.verified_token_cache_stats().unwrap().entries, 1);
    assert_eq!(first.scopes(), second.scopes());
}

#[tokio::test]
async fn cached_token_is_rejected_once_expired() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key).build().await.unwrap();
    let exp = unix_now() + 0.4;
    let token = key.token(ISS, AUD).claim("exp", exp).sign().unwrap();
    guard.verify(&token).await.expect("valid while not expired");
    assert_eq!(guard.verified_token_cache_stats().unwrap().entries, 1);
    // Wait for the wall clock to pass `exp` (what is being tested is time itself).
    while unix_now() <= exp {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(guard.verify(&token).await.unwrap_err(), TokenError::Expired);
}

#[tokio::test]
async fn rejected_tokens_are_never_cached() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key).build().await.unwrap();
    let forged = attacker.token(ISS, AUD).kid(key.kid()).sign().unwrap();
    for _ in 0..3 {
        assert_eq!(
            guard.verify(&forged).await.unwrap_err(),
            TokenError::InvalidSignature
        );
    }
    let expired = key
        .token(ISS, AUD)
        .expired_for(Duration::from_secs(5))
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&expired).await.unwrap_err(),
        TokenError::Expired
    );
    assert_eq!(guard.verified_token_cache_stats().unwrap().entries, 0);
}

#[tokio::test]
async fn cache_is_keyed_by_the_full_token() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key).build().await.unwrap();
    let token = key.token(ISS, AUD).sign().unwrap();
    guard.verify(&token).await.unwrap();
    // Same header and payload, another signature: not a hit, and rejected.
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    let other_signature = key.sign_bytes(b"something else").unwrap();
    let tampered = format!(
        "{signing_input}.{}",
        bearer_guard::testing::b64(other_signature)
    );
    assert_eq!(
        guard.verify(&tampered).await.unwrap_err(),
        TokenError::InvalidSignature
    );
}

#[tokio::test]
async fn cache_never_exceeds_its_bound() {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let bound = 64 * 1024;
    let guard = builder(&key)
        .verified_token_cache_size(bound)
        .build()
        .await
        .unwrap();
    for n in 0..2_000 {
        let token = key.token(ISS, AUD).claim("n", n).sign().unwrap();
        guard.verify(&token).await.unwrap();
    }
    let stats = guard.verified_token_cache_stats().unwrap();
    assert!(stats.weighted_bytes <= bound, "{stats:?}");
    assert!(stats.entries > 10, "the cache was used: {stats:?}");
    assert!(stats.entries < 2_000, "entries were evicted: {stats:?}");
}

#[tokio::test]
async fn cache_can_be_turned_off() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key)
        .verified_token_cache(false)
        .build()
        .await
        .unwrap();
    let token = key.token(ISS, AUD).sign().unwrap();
    guard.verify(&token).await.unwrap();
    guard.verify(&token).await.unwrap();
    assert!(guard.verified_token_cache_stats().is_none());
}

#[tokio::test]
async fn unbounded_cache_lifetime_and_far_future_exp_do_not_panic() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let guard = builder(&key)
        .verified_token_cache_lifetime(Duration::MAX)
        .build()
        .await
        .unwrap();
    let token = key.token(ISS, AUD).claim("exp", 1e20).sign().unwrap();
    guard.verify(&token).await.unwrap();
    guard.verify(&token).await.unwrap();
    assert_eq!(guard.verified_token_cache_stats().unwrap().entries, 1);
}

#[tokio::test]
async fn a_token_cached_by_one_guard_is_never_a_hit_for_another() {
    // Same issuer and keys, different audiences; one thread serves both guards. Two things keep
    // the guards apart (each cache's identity in a thread's front, and each key set's
    // generation); the unit test `caches_never_see_each_others_entries` pins the first alone.
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let payments = builder(&key).build().await.unwrap();
    let reports = Guard::builder()
        .issuer(Issuer::new(ISS).audience("reports").keys(key.key_set()))
        .build()
        .await
        .unwrap();
    let token = key.token(ISS, AUD).sign().unwrap();
    for _ in 0..3 {
        payments.verify(&token).await.expect("meant for this API");
    }
    for _ in 0..3 {
        assert_eq!(
            reports.verify(&token).await.unwrap_err(),
            TokenError::AudienceMismatch
        );
    }
}
