//! Loading keys: JWK Sets that survive bad entries, JWKs without `alg`, PEM, HMAC secrets, and
//! key material that aws-lc would take but that must be refused (small-order Ed25519 points,
//! weak RSA exponents, even moduli, points off the curve).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bearer_guard::testing::{SigningKey, b64};
use bearer_guard::{Algorithm, BuildError, Guard, Issuer, KeyError, KeySet, TokenError};
use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::CompressedEdwardsY;
use serde_json::{Value, json};

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

// ---- Encodings the test kit does not produce ----

/// Ed25519 SubjectPublicKeyInfo up to the 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// P-256 SubjectPublicKeyInfo up to the uncompressed point (RFC 5480).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// P-384 SubjectPublicKeyInfo up to the uncompressed point (RFC 5480).
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];
/// The `rsaEncryption` AlgorithmIdentifier (RFC 8017 A.1), with its NULL parameters.
const RSA_ALGORITHM_IDENTIFIER: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match body.len() {
        len @ 0..=127 => out.push(len as u8),
        len @ 128..=255 => out.extend([0x81, len as u8]),
        len => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(body);
    out
}

/// A DER INTEGER holding the unsigned big-endian `value`.
fn der_unsigned(value: &[u8]) -> Vec<u8> {
    let mut body = value.to_vec();
    if body.first().is_none_or(|top| top & 0x80 != 0) {
        body.insert(0, 0);
    }
    der(0x02, &body)
}

/// PKCS#1 `RSAPublicKey` as `BEGIN RSA PUBLIC KEY`, and SubjectPublicKeyInfo as `BEGIN PUBLIC KEY`.
fn rsa_pems(n: &[u8], e: &[u8]) -> [String; 2] {
    let pkcs1 = der(0x30, &[der_unsigned(n), der_unsigned(e)].concat());
    let bit_string = der(0x03, &[&[0u8][..], &pkcs1].concat());
    let spki = der(0x30, &[&RSA_ALGORITHM_IDENTIFIER[..], &bit_string].concat());
    [pem("RSA PUBLIC KEY", &pkcs1), pem("PUBLIC KEY", &spki)]
}

fn ed25519_jwk(kid: &str, x: &[u8]) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(x)})
}

fn ed25519_pem(x: &[u8]) -> String {
    pem("PUBLIC KEY", &[&ED25519_SPKI_PREFIX[..], x].concat())
}

fn decoded(member: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(member.as_str().expect("a string member"))
        .expect("base64url")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `y + p` (p = 2^255 - 19) for a little-endian `y`, when it still fits below 2^255: the same
/// field element, non-canonically encoded.
fn plus_p(y: [u8; 32]) -> Option<[u8; 32]> {
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let digit = u16::from(y[i]) + u16::from(p[i]) + carry;
        sum[i] = digit as u8;
        carry = digit >> 8;
    }
    (carry == 0 && sum[31] & 0x80 == 0).then_some(sum)
}

/// Every encoding of the 8 small-order points: each point's y (canonical, and y + p where that
/// fits), with the sign bit clear and set.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut encodings = Vec::new();
    for point in EIGHT_TORSION {
        let mut y = point.compress().to_bytes();
        y[31] &= 0x7f;
        for y in [Some(y), plus_p(y)].into_iter().flatten() {
            let mut signed = y;
            signed[31] |= 0x80;
            encodings.extend([y, signed]);
        }
    }
    encodings.sort_unstable();
    encodings.dedup();
    encodings
}

/// An EdDSA token signed by `good` with its signature replaced by R = identity, S = 0.
fn identity_forgery(good: &SigningKey, kid: Option<&str>) -> String {
    let token = good.token(ISS, AUD).kid(kid).sign().expect("token");
    let (signing_input, _) = token.rsplit_once('.').expect("three segments");
    let mut signature = [0u8; 64];
    signature[0] = 1;
    format!("{signing_input}.{}", b64(signature))
}

fn refused(loaded: Result<KeySet, KeyError>) -> bool {
    matches!(loaded, Err(KeyError::Unusable(_) | KeyError::InvalidPem))
}

// ---- Ed25519 ----

#[tokio::test]
async fn identity_ed25519_key_cannot_forge_tokens() {
    // Under this key aws-lc verifies R = identity, S = 0 for every message (a unit test of the
    // key loader shows it); the loader must never let the key in.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(refused(KeySet::from_jwk_json(
        ed25519_jwk("identity", &identity).to_string()
    )));
    assert!(refused(KeySet::from_ed_pem(
        ed25519_pem(&identity),
        Some("identity")
    )));

    // In a set next to a good key: skipped, the good key keeps working, forgeries fail.
    let good = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwks = json!({"keys": [ed25519_jwk("identity", &identity), good.public_jwk()]});
    let keys = KeySet::from_jwks_json(jwks.to_string()).unwrap();
    assert_eq!(keys.key_ids().collect::<Vec<_>>(), [good.kid().unwrap()]);
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(keys))
        .build()
        .await
        .expect("guard builds");
    guard
        .verify(&good.token(ISS, AUD).sign().unwrap())
        .await
        .expect("the good key verifies");
    assert_eq!(
        guard
            .verify(&identity_forgery(&good, Some("identity")))
            .await
            .unwrap_err(),
        TokenError::UnknownKey
    );
    assert_eq!(
        guard
            .verify(&identity_forgery(&good, None))
            .await
            .unwrap_err(),
        TokenError::InvalidSignature
    );

    // With only the bad key there is nothing to verify with: a configuration error.
    let only_identity = json!({"keys": [ed25519_jwk("identity", &identity)]});
    let err = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .keys(KeySet::from_jwks_json(only_identity.to_string()).unwrap()),
        )
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoUsableKeys { .. }), "{err}");
}

#[test]
fn small_order_ed25519_keys_are_refused_in_every_encoding() {
    let encodings = small_order_encodings();
    // y ∈ {1, -1, 0, ±y₈}, each with both sign bits, and 0 and 1 again as y + p.
    assert_eq!(encodings.len(), 14, "every encoding of the 8 points");
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(encodings.contains(&identity) && encodings.contains(&[0u8; 32]));

    let good = SigningKey::generate(Algorithm::EdDSA).unwrap();
    for x in encodings {
        let shown = hex(&x);
        assert!(
            refused(KeySet::from_jwk_json(ed25519_jwk("weak", &x).to_string())),
            "JWK {shown}"
        );
        assert!(
            refused(KeySet::from_ed_pem(ed25519_pem(&x), None)),
            "PEM {shown}"
        );
        let jwks = json!({"keys": [ed25519_jwk("weak", &x), good.public_jwk()]});
        let keys = KeySet::from_jwks_json(jwks.to_string()).unwrap();
        assert_eq!(
            keys.key_ids().collect::<Vec<_>>(),
            [good.kid().unwrap()],
            "set {shown}"
        );
    }
}

#[test]
fn non_canonical_ed25519_encodings_are_refused() {
    // y + p fits below 2^255 only for y < 19. Some of those are curve points of large order,
    // which only the canonical-encoding check refuses.
    let mut points = 0;
    for y in 0u8..19 {
        let mut canonical = [0u8; 32];
        canonical[0] = y;
        let shifted = plus_p(canonical).expect("y + p < 2^255");
        for sign in [0x00, 0x80] {
            let mut x = shifted;
            x[31] |= sign;
            points += usize::from(CompressedEdwardsY(x).decompress().is_some());
            assert!(
                refused(KeySet::from_jwk_json(ed25519_jwk("y+p", &x).to_string())),
                "JWK {}",
                hex(&x)
            );
            assert!(
                refused(KeySet::from_ed_pem(ed25519_pem(&x), None)),
                "PEM {}",
                hex(&x)
            );
        }
    }
    assert!(points > 4, "the encodings decode to points: {points}");
}

#[test]
fn ed25519_keys_with_a_torsion_component_are_refused() {
    let good = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let x: [u8; 32] = decoded(&good.public_jwk()["x"]).try_into().unwrap();
    let point = CompressedEdwardsY(x).decompress().expect("a real key");
    assert!(KeySet::from_ed_pem(ed25519_pem(&x), None).is_ok());
    for torsion in &EIGHT_TORSION[1..] {
        let mixed = (point + torsion).compress().to_bytes();
        assert!(
            refused(KeySet::from_jwk_json(
                ed25519_jwk("mixed", &mixed).to_string()
            )),
            "JWK {}",
            hex(&mixed)
        );
        assert!(refused(KeySet::from_ed_pem(ed25519_pem(&mixed), None)));
    }
}

// ---- RSA ----

#[test]
fn rsa_keys_with_even_moduli_or_exponents_outside_fips_186_5_are_refused() {
    let key = SigningKey::generate(Algorithm::RS256).unwrap();
    let n = decoded(&key.public_jwk()["n"]);
    let mut even_n = n.clone();
    *even_n.last_mut().unwrap() ^= 1;
    let cases: [(&str, &[u8], &[u8]); 9] = [
        ("e = 1", &n, &[1]),
        ("e = 3", &n, &[3]),
        ("e = 65535", &n, &[0xff, 0xff]),
        ("even e = 65536", &n, &[1, 0, 0]),
        ("even e = 65538", &n, &[1, 0, 2]),
        ("e = 2^33 + 1", &n, &[2, 0, 0, 0, 1]),
        (
            "e = 2^256 + 1",
            &n,
            &[[1u8].as_slice(), &[0; 31], &[1]].concat(),
        ),
        ("e = n", &n, &n),
        ("even modulus", &even_n, &[1, 0, 1]),
    ];
    for (case, n, e) in cases {
        let jwk = json!({"kty": "RSA", "n": b64(n), "e": b64(e)});
        assert!(
            matches!(
                KeySet::from_jwk_json(jwk.to_string()),
                Err(KeyError::Unusable(_))
            ),
            "JWK {case}"
        );
        for pem in rsa_pems(n, e) {
            assert!(
                refused(KeySet::from_rsa_pem(&pem, None)),
                "PEM {case}: {pem}"
            );
        }
    }

    // The bounds themselves: 65537 and the largest odd 33-bit exponent load, as JWK and PEM.
    for e in [&[1u8, 0, 1][..], &[1, 0xff, 0xff, 0xff, 0xff]] {
        let jwk = json!({"kty": "RSA", "n": b64(&n), "e": b64(e)});
        assert!(
            KeySet::from_jwk_json(jwk.to_string()).is_ok(),
            "e = {}",
            hex(e)
        );
        for pem in rsa_pems(&n, e) {
            assert!(KeySet::from_rsa_pem(&pem, None).is_ok(), "e = {}", hex(e));
        }
    }
}

#[test]
fn rsa_keys_longer_than_8192_bits_are_refused() {
    // No RSA verification parameter set accepts them: such a key could never verify a token.
    let mut n = vec![0xffu8; 8192 / 8 + 1];
    n[0] = 0x01;
    let jwk = json!({"kty": "RSA", "n": b64(&n), "e": "AQAB"});
    assert_eq!(
        KeySet::from_jwk_json(jwk.to_string()).unwrap_err(),
        KeyError::Unusable("RSA key is longer than 8192 bits")
    );
    for pem in rsa_pems(&n, &[1, 0, 1]) {
        assert!(refused(KeySet::from_rsa_pem(&pem, None)));
    }
}

// ---- EC ----

#[test]
fn ec_points_off_the_curve_are_refused() {
    for (alg, crv, prefix) in [
        (Algorithm::ES256, "P-256", &P256_SPKI_PREFIX[..]),
        (Algorithm::ES384, "P-384", &P384_SPKI_PREFIX[..]),
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let jwk = key.public_jwk();
        let (x, mut y) = (decoded(&jwk["x"]), decoded(&jwk["y"]));
        let point = |x: &[u8], y: &[u8]| [&[0x04u8][..], x, y].concat();
        // The genuine point loads both ways, so the refusals below are the curve check's.
        let genuine = pem("PUBLIC KEY", &[prefix, &point(&x, &y)].concat());
        assert!(KeySet::from_ec_pem(&genuine, None).is_ok(), "{crv}");

        *y.last_mut().unwrap() ^= 1; // (x, y ± 1) is not on the curve
        let off = json!({"kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y)});
        assert!(refused(KeySet::from_jwk_json(off.to_string())), "{crv} JWK");
        let off_pem = pem("PUBLIC KEY", &[prefix, &point(&x, &y)].concat());
        assert!(refused(KeySet::from_ec_pem(&off_pem, None)), "{crv} PEM");

        // The all-zero "point" (what some encoders emit for infinity) is refused as well.
        let size = x.len();
        let zero =
            json!({"kty": "EC", "crv": crv, "x": b64(vec![0; size]), "y": b64(vec![0; size])});
        assert!(
            refused(KeySet::from_jwk_json(zero.to_string())),
            "{crv} zero"
        );
    }
}
