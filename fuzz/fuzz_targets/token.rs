//! Arbitrary bytes as a compact token through the full validation.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "fixture.rs"]
mod fixture;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture::fixture();
    let token = String::from_utf8_lossy(data);
    let outcome = fixture.runtime.block_on(fixture.guard.verify(&token));
    // Nothing a fuzzer can write is signed by our keys.
    assert!(outcome.is_err(), "accepted an unsigned token");
});
