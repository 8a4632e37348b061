//! Arbitrary `Authorization` headers and query strings through `Guard::authenticate`.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;

#[path = "fixture.rs"]
mod fixture;

fuzz_target!(|data: &[u8]| {
    let fixture = fixture::fixture();
    // 0xFF separates header values; a leading '?' segment becomes the query string.
    let mut headers = HeaderMap::new();
    let mut uri = Uri::from_static("/");
    for segment in data.split(|byte| *byte == 0xFF) {
        if let Some(query) = segment.strip_prefix(b"?") {
            if let Ok(parsed) = Uri::try_from(format!("/?{}", String::from_utf8_lossy(query))) {
                uri = parsed;
            }
        } else if let Ok(value) = HeaderValue::from_bytes(segment) {
            headers.append(http::header::AUTHORIZATION, value);
        }
    }
    let outcome = fixture.runtime.block_on(fixture.guard.authenticate(&headers, &uri));
    if let Err(rejection) = outcome {
        // Rendering must never fail or panic either.
        let _ = rejection.www_authenticate(Some("fuzz"));
        let _: http::Response<()> = fixture.guard.reject(&rejection, &headers);
    }
});
