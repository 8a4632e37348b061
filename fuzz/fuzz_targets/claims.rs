//! Arbitrary JOSE header and claims JSON, correctly encoded and signed: exercises header
//! parsing, claim types and checks, key selection and scope extraction past the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "fixture.rs"]
mod fixture;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture::fixture();
    let Some(selector) = data.first() else { return };
    let rest = &data[1..];
    let split = rest.iter().position(|byte| *byte == 0xFF).unwrap_or(rest.len());
    let header = String::from_utf8_lossy(&rest[..split]);
    let payload = String::from_utf8_lossy(rest.get(split + 1..).unwrap_or_default());
    let key = &fixture.keys[usize::from(*selector) % fixture.keys.len()];
    let Ok(token) = key.sign_raw(&header, &payload) else { return };
    if let Ok(claims) = fixture.runtime.block_on(fixture.guard.verify(&token)) {
        // Anything accepted satisfies the policy.
        assert_eq!(claims.issuer(), fixture::ISS);
        assert!(claims.audiences().iter().any(|aud| aud == fixture::AUD));
        assert!(claims.expires_at() > std::time::SystemTime::now() - std::time::Duration::from_secs(61));
        let _ = claims.get("scope");
    }
});
