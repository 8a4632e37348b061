//! One token repeated through the full `BearerService` (in-process, `oneshot` on a trivial
//! service): the verified-token cache's hot path, against the RS256 signature baseline.

use std::convert::Infallible;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, BearerLayer};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

mod support;

fn cached(c: &mut Criterion) {
    let key = SigningKey::generate(Algorithm::RS256).expect("key");
    let token = support::tokens(&key, 1).remove(0);
    let (decoding, validation) = support::baseline(&key);
    let guard = support::guard(&key, true);
    let service = BearerLayer::new(guard).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    let authorization = http::HeaderValue::try_from(format!("Bearer {token}")).expect("header");
    let request = || {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, authorization.clone());
        request
    };
    // Warm the cache and check the path is the accepting one.
    let response = support::ready(service.clone().oneshot(request())).expect("response");
    assert_eq!(response.status(), 200);

    let mut group = c.benchmark_group("cached/RS256");
    group.bench_function("jsonwebtoken", |b| {
        b.iter(|| jsonwebtoken::decode::<support::BaselineClaims>(&token, &decoding, &validation))
    });
    group.bench_function("bearer-guard", |b| {
        b.iter(|| support::ready(service.clone().oneshot(request())))
    });
    group.bench_function("request-only", |b| b.iter(request));
    group.finish();
}

criterion_group!(benches, cached);
criterion_main!(benches);
