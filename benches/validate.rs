//! Distinct tokens (the cache off): the guard's full verification against raw
//! `jsonwebtoken::decode` of the same tokens with a prebuilt key, per algorithm.

use bearer_guard::Algorithm;
use bearer_guard::testing::SigningKey;
use criterion::{Criterion, criterion_group, criterion_main};

mod support;

const TOKENS: usize = 256;

fn validate(c: &mut Criterion) {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = SigningKey::generate(alg).expect("key");
        let tokens = support::tokens(&key, TOKENS);
        let guard = support::guard(&key, false);
        let (decoding, validation) = support::baseline(&key);
        // Both sides accept every token before anything is timed.
        for token in &tokens {
            support::ready(guard.verify(token)).expect("guard accepts");
            jsonwebtoken::decode::<support::BaselineClaims>(token, &decoding, &validation)
                .expect("jsonwebtoken accepts");
        }

        let mut group = c.benchmark_group(format!("validate/{alg}"));
        let mut next = 0;
        group.bench_function("jsonwebtoken", |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                jsonwebtoken::decode::<support::BaselineClaims>(
                    &tokens[next],
                    &decoding,
                    &validation,
                )
            })
        });
        group.bench_function("bearer-guard", |b| {
            b.iter(|| {
                next = (next + 1) % TOKENS;
                support::ready(guard.verify(&tokens[next]))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, validate);
criterion_main!(benches);
