//! Arbitrary JWK Set, JWK and PEM documents through the key loaders.
#![no_main]

use bearer_guard::KeySet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = KeySet::from_jwks_json(data) {
        let _ = keys.key_ids().count();
        let _ = format!("{keys:?}");
    }
    let _ = KeySet::from_jwk_json(data);
    let _ = KeySet::from_rsa_pem(data, None);
    let _ = KeySet::from_ec_pem(data, None);
    let _ = KeySet::from_ed_pem(data, None);
});
