//! The example's axum router, driven in-process (`oneshot` on a cloned `Router`), with and
//! without the layer: what the guard adds to a real route, for a repeated token (cache on) and
//! for distinct tokens (cache off, RS256).
//!
//! "Without the layer" is `benches/unguarded.rs`: a router with the same shape as the example's
//! — `GET /payments` returning the same JSON body, behind the same kind of per-request logging
//! middleware, merged next to `/healthz` with the same fallback — but no `BearerLayer` and no
//! `RequireScope` extractor. The difference between the two is therefore the guard's
//! whole cost: header extraction, verification or cache lookup, the extensions it inserts and
//! the scope check. The example's public `/healthz` (same router as the guarded one) is measured
//! too, for reference: it skips the middleware and the JSON body, so it is not the baseline.

use bearer_guard::Algorithm;
use bearer_guard::testing::SigningKey;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request};
use tower::ServiceExt;

mod support;

use bearer_guard::testing::demo as example;

mod unguarded;

/// Distinct tokens cycled through in the cache-off group.
const TOKENS: usize = 256;

fn get(path: &str, authorization: Option<&HeaderValue>) -> Request<axum::body::Body> {
    let mut request = Request::get(path)
        .body(axum::body::Body::empty())
        .expect("request");
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.clone());
    }
    request
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Bearer {token}")).expect("header")
}

/// Both routers answer 200 before anything is timed.
fn expect_ok(router: &axum::Router, path: &str, authorization: Option<&HeaderValue>) {
    let response = support::ready(router.clone().oneshot(get(path, authorization))).expect("call");
    assert_eq!(response.status(), 200, "{path}");
}

fn layer(c: &mut Criterion) {
    let unguarded = unguarded::app();
    expect_ok(&unguarded, "/payments", None);

    // Repeated token, cache on (the default): the common M2M request.
    let key = SigningKey::generate(Algorithm::RS256).expect("key");
    let guarded = example::app(support::guard(&key, true));
    let token = bearer(&support::tokens(&key, 1)[0]);
    expect_ok(&guarded, "/payments", Some(&token));
    expect_ok(&guarded, "/healthz", None);

    let mut group = c.benchmark_group("layer/repeated");
    group.bench_function("without-layer", |b| {
        b.iter_batched(
            || get("/payments", Some(&token)),
            |request| support::ready(unguarded.clone().oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("healthz", |b| {
        b.iter_batched(
            || get("/healthz", Some(&token)),
            |request| support::ready(guarded.clone().oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("with-layer", |b| {
        b.iter_batched(
            || get("/payments", Some(&token)),
            |request| support::ready(guarded.clone().oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Distinct tokens, cache off: every request pays the RS256 signature.
    let guarded = example::app(support::guard(&key, false));
    let tokens: Vec<HeaderValue> = support::tokens(&key, TOKENS)
        .iter()
        .map(|token| bearer(token))
        .collect();
    for token in &tokens {
        expect_ok(&guarded, "/payments", Some(token));
    }
    let mut group = c.benchmark_group("layer/distinct-RS256");
    let mut next = 0;
    group.bench_function("without-layer", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % TOKENS;
                get("/payments", Some(&tokens[next]))
            },
            |request| support::ready(unguarded.clone().oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("with-layer", |b| {
        b.iter_batched(
            || {
                next = (next + 1) % TOKENS;
                get("/payments", Some(&tokens[next]))
            },
            |request| support::ready(guarded.clone().oneshot(request)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
