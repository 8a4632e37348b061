//! The example's axum router, driven in-process (`oneshot` on a cloned `Router`), with and
//! without the layer: what the guard adds to a real route, for a repeated token (cache on) and
//! for distinct tokens (cache off, RS256).
//!
//! "Without the layer" is a router built here with the same shape as the example's protected
//! part — `GET /payments` returning the same JSON body, behind the same kind of per-request
//! logging middleware, merged next to `/healthz` with the same fallback — but no `BearerLayer`
//! and no `RequireScope` extractor. The difference between the two is therefore the guard's
//! whole cost: header extraction, verification or cache lookup, the extensions it inserts and
//! the scope check. The example's public `/healthz` (same router as the guarded one) is measured
//! too, for reference: it skips the middleware and the JSON body, so it is not the baseline.

use bearer_guard::Algorithm;
use bearer_guard::testing::SigningKey;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request};
use tower::ServiceExt;

#[path = "support.rs"]
mod support;

#[path = "../examples/resource_server.rs"]
#[allow(dead_code)]
mod example;

/// Distinct tokens cycled through in the cache-off group.
const TOKENS: usize = 256;

mod unguarded {
    //! The example's `/payments` route without the guard (see the module docs).

    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::{self, Next};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::{Value, json};

    async fn healthz() -> &'static str {
        "ok"
    }

    async fn list_payments() -> Json<Value> {
        Json(json!({
            "payments": [{"id": "pay_0", "amount_cents": 1250, "currency": "EUR"}],
            "requested_by": "client-0",
        }))
    }

    /// The example's logging middleware minus the client id (there are no claims here).
    async fn log_decision(request: Request, next: Next) -> Response {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let response = next.run(request).await;
        let status = response.status();
        tracing::info!(%method, path, status = status.as_u16(), "request");
        response
    }

    pub fn app() -> Router {
        let payments = Router::new()
            .route("/payments", get(list_payments))
            .layer(middleware::from_fn(log_decision));
        Router::new()
            .route("/healthz", get(healthz))
            .merge(payments)
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found").into_response() })
    }
}

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
