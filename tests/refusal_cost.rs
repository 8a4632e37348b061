//! What refusing a token costs before its signature verifies, measured with a counting allocator:
//! a client that cannot sign tokens can make the guard allocate only the decoded segments of its
//! token and a few small values, however its claims are shaped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bearer_guard::testing::{SigningKey, b64};
use bearer_guard::{Algorithm, Guard, Issuer, TokenError, VerifyError};
use serde_json::json;

/// Counts this thread's allocations and its peak of live bytes while `COUNTING` is set.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(bytes: isize, allocation: bool) {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            if allocation {
                ALLOCATIONS.with(|count| count.set(count.get() + 1));
            }
            LIVE.with(|live| {
                live.set(live.get() + bytes);
                PEAK.with(|peak| peak.set(peak.get().max(live.get())));
            });
        }
    });
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size() as isize, true);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        record(-(layout.size() as isize), false);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size as isize - layout.size() as isize, true);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations and peak live bytes of `work` on this thread.
fn measure<T>(work: impl FnOnce() -> T) -> (T, usize, usize) {
    ALLOCATIONS.with(|count| count.set(0));
    LIVE.with(|live| live.set(0));
    PEAK.with(|peak| peak.set(0));
    COUNTING.with(|counting| counting.set(true));
    let result = work();
    COUNTING.with(|counting| counting.set(false));
    let peak = PEAK.with(Cell::get).max(0) as usize;
    (result, ALLOCATIONS.with(Cell::get), peak)
}

const ISS: &str = "https://issuer.example";
const AUD: &str = "api";

/// The bound `SECURITY.md` states: a refusal before the signature verifies makes at most this many
/// allocations, whose live bytes never exceed twice the token's length.
const MAX_REFUSAL_ALLOCATIONS: usize = 16;

#[test]
fn refusing_an_unsigned_token_allocates_a_bounded_amount() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let key = SigningKey::generate(Algorithm::ES256).expect("key");
    let guard = runtime
        .block_on(
            Guard::builder()
                .issuer(Issuer::new(ISS).audience(AUD).keys(key.key_set()))
                .build(),
        )
        .expect("guard");

    // Claims shaped to cost the most per byte: hundreds of one-character strings in each array,
    // and nested objects, in a token just under the 8 KiB limit.
    let strings = |n: usize| {
        (0..n)
            .map(|i| ((b'a' + (i % 26) as u8) as char).to_string())
            .collect::<Vec<_>>()
    };
    let nested: Vec<_> = (0..60).map(|i| json!({ "k": i })).collect();
    let payload = json!({
        "iss": ISS,
        "aud": strings(400),
        "scp": strings(400),
        "permissions": strings(400),
        "nested": nested,
        "exp": 4_000_000_000u64,
    })
    .to_string();
    let forger = SigningKey::generate(Algorithm::ES256).expect("key");
    let header = json!({"alg": "ES256", "kid": key.kid()}).to_string();
    let forged = forger.sign_raw(&header, &payload).expect("signs");
    let unsigned = format!("{}.{}.AAAA", b64(&header), b64(&payload));
    for token in [forged, unsigned] {
        assert!(token.len() <= 8 * 1024, "{} bytes", token.len());
        let (outcome, allocations, peak) = measure(|| runtime.block_on(guard.verify(&token)));
        assert!(
            matches!(
                outcome,
                Err(VerifyError::InvalidToken(
                    TokenError::InvalidSignature | TokenError::Malformed(_)
                ))
            ),
            "{outcome:?}"
        );
        println!(
            "refusal of a {}-byte token: {allocations} allocations, peak {peak} live bytes",
            token.len()
        );
        assert!(
            allocations <= MAX_REFUSAL_ALLOCATIONS,
            "{allocations} allocations"
        );
        assert!(peak <= 2 * token.len(), "peak {peak} bytes");
    }
}
