//! Loading keys: JWK Sets that survive bad entries, JWKs without `alg`, PEM, HMAC secrets.

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer, KeyError, KeySet};
use serde_json::json;

const ISS: &str = "https://issuer.example";
const AUD: &str = "api";

async fn verifies(keys: KeySet, key: &SigningKey) -> bool {
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(keys))
        .build()
        .await
        .expect("guard builds");
    guard
        .verify(&key.token(ISS, AUD).sign().unwrap())
        .await
        .is_ok()
}

#[tokio::test]
async fn one_unusable_jwk_is_skipped_not_the_whole_set() {
    let good = SigningKey::generate(Algorithm::ES256).unwrap();
    let weak_rsa_n = bearer_guard::testing::b64([0xC5u8; 128]); // 1024-bit modulus
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "weak", "n": weak_rsa_n, "e": "AQAB"},
        {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "RSA", "kid": "ops", "key_ops": ["encrypt"], "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "secret", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
        {"kty": "XYZ", "kid": "unknown-kty"},
        {"kty": "EC", "kid": "bad-b64", "crv": "P-256", "x": "!!", "y": "??"},
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "AA"},
        {"kty": "RSA", "kid": "n-number", "n": 5, "e": "AQAB"},
        {"kty": "EC", "kid": "not-on-curve", "crv": "P-256",
         "x": bearer_guard::testing::b64([1u8; 32]), "y": bearer_guard::testing::b64([2u8; 32])},
        {"kty": "RSA", "kid": "enc-alg", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"},
        "not an object",
        good.public_jwk(),
    ]});
    let keys = KeySet::from_jwks_json(jwks.to_string()).unwrap();
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), [good.kid().unwrap()]);
    assert!(verifies(keys, &good).await);
}

#[test]
fn a_document_that_is_not_a_jwk_set_is_an_error() {
    for doc in ["", "[]", "{}", r#"{"keys": {}}"#, "not json"] {
        assert!(
            matches!(KeySet::from_jwks_json(doc), Err(KeyError::NotAJwkSet(_))),
            "{doc}"
        );
    }
}

#[tokio::test]
async fn jwks_without_alg_work_by_key_type() {
    // As Entra ID and Cognito publish them.
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let mut jwk = key.public_jwk();
        let object = jwk.as_object_mut().unwrap();
        object.remove("alg");
        object.remove("use");
        let keys = KeySet::from_jwks_json(json!({ "keys": [jwk] }).to_string()).unwrap();
        assert!(verifies(keys, &key).await, "{alg}");
    }
}

#[tokio::test]
async fn jwk_alg_must_match_key_type() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut jwk = key.public_jwk();
    jwk["alg"] = "RS256".into();
    assert!(KeySet::from_jwk_json(jwk.to_string()).is_err());
}

#[tokio::test]
async fn rsa_keys_shorter_than_2048_bits_are_refused() {
    let n = bearer_guard::testing::b64([0xFFu8; 255]); // 2040 bits
    let jwk = json!({"kty": "RSA", "n": n, "e": "AQAB"});
    assert!(matches!(
        KeySet::from_jwk_json(jwk.to_string()),
        Err(KeyError::Unusable(_))
    ));
}

#[tokio::test]
async fn rsa_modulus_with_leading_zero_is_accepted() {
    let key = SigningKey::generate(Algorithm::RS256).unwrap();
    let mut jwk = key.public_jwk();
    let n = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut raw = engine.decode(jwk["n"].as_str().unwrap()).unwrap();
        raw.insert(0, 0);
        engine.encode(raw)
    };
    jwk["n"] = n.into();
    assert!(verifies(KeySet::from_jwk_json(jwk.to_string()).unwrap(), &key).await);
}

#[tokio::test]
async fn loads_pem_public_keys() {
    let rsa = SigningKey::generate(Algorithm::PS256).unwrap();
    let p256 = SigningKey::generate(Algorithm::ES256).unwrap();
    let p384 = SigningKey::generate(Algorithm::ES384).unwrap();
    let ed = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let keys = KeySet::from_rsa_pem(rsa.public_pem().unwrap(), rsa.kid()).unwrap();
    assert!(verifies(keys, &rsa).await);
    let keys = KeySet::from_ec_pem(p256.public_pem().unwrap(), p256.kid()).unwrap();
    assert!(verifies(keys, &p256).await);
    let keys = KeySet::from_ec_pem(p384.public_pem().unwrap(), p384.kid()).unwrap();
    assert!(verifies(keys, &p384).await);
    let keys = KeySet::from_ed_pem(ed.public_pem().unwrap(), ed.kid()).unwrap();
    assert!(verifies(keys, &ed).await);
    // PEM of the wrong type, or garbage, is an error.
    assert!(KeySet::from_rsa_pem(p256.public_pem().unwrap(), None).is_err());
    assert!(
        KeySet::from_ec_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            None
        )
        .is_err()
    );
}

#[test]
fn hmac_secret_shorter_than_32_bytes_is_refused() {
    assert_eq!(
        KeySet::hmac_secret(b"short", None).unwrap_err(),
        KeyError::WeakSecret
    );
    assert!(KeySet::hmac_secret([0u8; 32], None).is_ok());
}

#[test]
fn key_set_debug_never_shows_key_material() {
    let keys = KeySet::hmac_secret([b'S'; 40], Some("hs")).unwrap();
    let debug = format!("{keys:?}");
    assert!(debug.contains("hs"), "{debug}");
    assert!(!debug.contains("SSSS"), "{debug}");
}
