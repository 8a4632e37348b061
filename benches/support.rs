//! Shared by the benches: tokens, guards, and the jsonwebtoken baseline for the same tokens.

#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer};
use serde::Deserialize;

pub const ISS: &str = "https://issuer.example";
pub const AUD: &str = "payments-api";

/// The claims jsonwebtoken decodes into: the same registered claims the guard reads.
#[derive(Deserialize)]
pub struct BaselineClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

/// `count` distinct, valid tokens signed by `key`.
pub fn tokens(key: &SigningKey, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            key.token(ISS, AUD)
                .claim("client_id", format!("client-{n}"))
                .scope("payments:read payments:write")
                .sign()
                .expect("token")
        })
        .collect()
}

/// A guard for `key`'s issuer; `cache` turns the verified-token cache on or off.
pub fn guard(key: &SigningKey, cache: bool) -> Guard {
    let algorithms = if key.algorithm().is_hmac() {
        vec![key.algorithm()]
    } else {
        Algorithm::DEFAULT_ALLOWED.to_vec()
    };
    ready(
        Guard::builder()
            .issuer(
                Issuer::new(ISS)
                    .audience(AUD)
                    .algorithms(algorithms)
                    .keys(key.key_set()),
            )
            .verified_token_cache(cache)
            .build(),
    )
    .expect("guard")
}

/// jsonwebtoken's decoding key and validation for the same issuer, built once.
pub fn baseline(key: &SigningKey) -> (jsonwebtoken::DecodingKey, jsonwebtoken::Validation) {
    let decoding = match key.algorithm() {
        alg if alg.is_hmac() => {
            let jwk = key.public_jwk();
            let secret = jwk["k"].as_str().expect("oct key");
            jsonwebtoken::DecodingKey::from_base64_secret(&to_standard_base64(secret))
                .expect("secret")
        }
        _ => {
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(key.public_jwk()).expect("jwk");
            jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key")
        }
    };
    let alg: jsonwebtoken::Algorithm = key.algorithm().name().parse().expect("alg");
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    (decoding, validation)
}

fn to_standard_base64(url_safe: &str) -> String {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(url_safe)
        .expect("base64url");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Poll a future that completes without waiting (static keys, in-process services) once.
pub fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("future was expected to complete without waiting"),
    }
}

/// Whether a `harness = false` bench named `name` should run: `cargo bench` passes harness flags
/// and filters, and a filter that does not match skips the bench as criterion would. Values of
/// criterion's options (`--measurement-time 5`) are not filters.
pub fn selected(name: &str) -> bool {
    const WITH_VALUE: &[&str] = &[
        "--measurement-time",
        "--warm-up-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--noise-threshold",
        "--significance-level",
        "--confidence-level",
        "--nresamples",
        "--profile-time",
        "--output-format",
        "--color",
        "--plotting-backend",
        "--format",
    ];
    let mut filters = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    filters.is_empty() || filters.iter().any(|filter| name.contains(filter.as_str()))
}

/// `target/bench-results` of this build (the bench binary lives in `target/<profile>/deps/`).
pub fn results_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("bench-results"))
}
