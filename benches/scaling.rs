//! Scaling: the same work on one thread, then on two, sharing one guard. No global lock on the
//! request path means two cores give about twice the throughput of one.
//!
//! ```text
//! cargo bench --bench scaling
//! SCALING_SECONDS=5 cargo bench --bench scaling
//! cargo bench --bench scaling -- "per thread"     # one workload
//! ```
//!
//! Two workloads: a repeated RS256 token through `BearerService` (the verified-token cache's hit
//! path) and distinct RS256 tokens through `Guard::verify` with the cache off (the signature
//! path). Each thread loops for a fixed time and counts completed requests; the result is also
//! written to `target/bench-results/scaling.json` for `benches/report.py`. The ratio only means
//! something on a machine whose cores are otherwise idle.

use std::convert::Infallible;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, BearerLayer, Guard};
use http::{Request, Response};
use tower::{Layer, ServiceExt, service_fn};

mod support;

/// Requests per second with `threads` threads each running `work` for `duration`.
fn throughput<W>(threads: usize, duration: Duration, work: W) -> f64
where
    W: Fn(usize, usize) + Sync,
{
    let start = Barrier::new(threads);
    let total: u64 = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    let mut done = 0u64;
                    while began.elapsed() < duration {
                        for _ in 0..64 {
                            work(thread, done as usize);
                            done += 1;
                        }
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("worker"))
            .sum()
    });
    total as f64 / duration.as_secs_f64()
}

const WORKLOADS: [&str; 4] = [
    "cached/RS256, one token",
    "cached/RS256, 64 clients per thread",
    "cached/RS256 Guard::verify only, 64 clients per thread",
    "distinct/RS256, cache off",
];

/// Distinct tokens each thread cycles through in the "clients" workloads.
const CLIENTS: usize = 64;

/// The token of request `n` on `thread`: threads never share one.
fn client(thread: usize, n: usize) -> usize {
    (thread % 2) * CLIENTS + n % CLIENTS
}

/// A filter naming the bench or one workload selects it.
fn selected(workload: &str) -> bool {
    support::selected(&format!("scaling {workload}"))
}

fn main() {
    if !WORKLOADS.into_iter().any(selected) {
        return;
    }
    let seconds = std::env::var("SCALING_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3.0);
    let duration = Duration::from_secs_f64(seconds);
    let key = SigningKey::generate(Algorithm::RS256).expect("key");

    let service =
        BearerLayer::new(support::guard(&key, true)).layer(service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
    // Static header values: cloning one copies a pointer. A `HeaderValue` built from a `String`
    // shares a reference count among its clones, and counts allocated side by side for the two
    // threads' headers shared cache lines; that was this bench's own contention, not the guard's
    // (on a server each connection's headers live in that connection's buffer).
    let authorizations: Vec<_> = support::tokens(&key, 2 * CLIENTS)
        .into_iter()
        .map(|token| {
            let value: &'static str = Box::leak(format!("Bearer {token}").into_boxed_str());
            http::HeaderValue::from_static(value)
        })
        .collect();
    let call = |authorization: &http::HeaderValue| {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, authorization.clone());
        let response = support::ready(service.clone().oneshot(request)).expect("response");
        assert_eq!(response.status(), 200);
    };
    // One client on many connections; then each thread serves its own `CLIENTS` clients in turn.
    let same_token = |_: usize, _: usize| call(&authorizations[0]);
    let own_token = |thread: usize, n: usize| call(&authorizations[client(thread, n)]);
    let cached_guard = support::guard(&key, true);
    let bare_tokens = support::tokens(&key, 2 * CLIENTS);
    let verify_only = |thread: usize, n: usize| {
        support::ready(cached_guard.verify(&bare_tokens[client(thread, n)])).expect("verifies");
    };

    let tokens = support::tokens(&key, 512);
    let uncached: Guard = support::guard(&key, false);
    let distinct = |_: usize, n: usize| {
        support::ready(uncached.verify(&tokens[n % tokens.len()])).expect("verifies");
    };

    println!("scaling: {seconds} s per run, requests/s");
    println!("| workload | 1 thread | 2 threads | ratio |");
    println!("|---|---:|---:|---:|");
    let mut results = serde_json::Map::new();
    for (name, work) in [
        (WORKLOADS[0], &same_token as &(dyn Fn(usize, usize) + Sync)),
        (WORKLOADS[1], &own_token),
        (WORKLOADS[2], &verify_only),
        (WORKLOADS[3], &distinct),
    ] {
        if !selected(name) {
            continue;
        }
        // Warm: the first call of each token verifies it and fills the cache.
        for n in 0..CLIENTS {
            work(0, n);
            work(1, n);
        }
        let one = throughput(1, duration, work);
        let two = throughput(2, duration, work);
        println!("| {name} | {one:.0} | {two:.0} | {:.2} |", two / one);
        results.insert(
            name.to_owned(),
            serde_json::json!({ "one_thread": one, "two_threads": two, "ratio": two / one }),
        );
    }

    if let Some(dir) = support::results_dir() {
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join("scaling.json"),
                serde_json::Value::Object(results).to_string(),
            )
        });
        if let Err(err) = written {
            eprintln!("scaling: could not write {}: {err}", dir.display());
        }
    }
}
