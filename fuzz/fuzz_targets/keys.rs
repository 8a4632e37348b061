//! Raw key material through every loader, in every encoding the loaders take: Ed25519 bytes as a
//! JWK and as PEM, P-256/P-384 coordinates as a JWK and as PEM, RSA `n` and `e` as a JWK, as
//! PKCS#1 and as SubjectPublicKeyInfo PEM. Unlike `jwks`, which starts from documents, this target
//! mutates the key bytes themselves, so it reaches the material checks. Two oracles: what loads
//! passes the checks the loader promises (an independent check per family), and every encoding
//! of the same material is accepted or refused alike.
//!
//! Input: one selector byte (family), then the material: Ed25519 `x`; EC `x || y`; RSA one
//! length byte `len`, `e` (`len` bytes), then `n`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bearer_guard::KeySet;
use curve25519_dalek::edwards::CompressedEdwardsY;
use libfuzzer_sys::fuzz_target;

/// Ed25519 `AlgorithmIdentifier` (RFC 8410).
const ED25519_ALGORITHM: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
/// `id-ecPublicKey` with the P-256 and P-384 named curves (RFC 5480).
const P256_ALGORITHM: &[u8] = &[
    0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
    0xce, 0x3d, 0x03, 0x01, 0x07,
];
const P384_ALGORITHM: &[u8] = &[
    0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04,
    0x00, 0x22,
];
/// `rsaEncryption` with NULL parameters (RFC 8017 A.1).
const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, material)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => ed25519(material),
        1 => ec(material, "P-256", 32, P256_ALGORITHM),
        2 => ec(material, "P-384", 48, P384_ALGORITHM),
        _ => rsa(material),
    }
});

fn ed25519(x: &[u8]) {
    let jwk = format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#, b64(x));
    let from_jwk = KeySet::from_jwk_json(&jwk).is_ok();
    let from_pem =
        KeySet::from_ed_pem(pem("PUBLIC KEY", &spki(ED25519_ALGORITHM, x)), None).is_ok();
    assert_eq!(from_jwk, from_pem, "JWK and PEM disagree on {x:02x?}");
    if from_jwk {
        // Only the canonical encoding of a point of the prime-order subgroup may load.
        let bytes: [u8; 32] = x.try_into().expect("a loaded Ed25519 key is 32 bytes");
        let point = CompressedEdwardsY(bytes).decompress().expect("a point");
        assert_eq!(
            point.compress().to_bytes(),
            bytes,
            "non-canonical key loaded"
        );
        assert!(!point.is_small_order(), "small-order key loaded");
        assert!(
            point.is_torsion_free(),
            "key with a torsion component loaded"
        );
    }
}

fn ec(material: &[u8], crv: &str, size: usize, algorithm: &[u8]) {
    let Some(coordinates) = material.get(..2 * size) else {
        return;
    };
    let (x, y) = coordinates.split_at(size);
    let jwk = format!(
        r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}"}}"#,
        b64(x),
        b64(y)
    );
    let point = [&[0x04][..], x, y].concat();
    let from_jwk = KeySet::from_jwk_json(&jwk).is_ok();
    let from_pem = KeySet::from_ec_pem(pem("PUBLIC KEY", &spki(algorithm, &point)), None).is_ok();
    assert_eq!(
        from_jwk, from_pem,
        "{crv}: JWK and PEM disagree on {point:02x?}"
    );
}

fn rsa(material: &[u8]) {
    let Some((&len, rest)) = material.split_first() else {
        return;
    };
    let Some((e, n)) = rest.split_at_checked(usize::from(len)) else {
        return;
    };
    let jwk = format!(r#"{{"kty":"RSA","n":"{}","e":"{}"}}"#, b64(n), b64(e));
    let from_jwk = KeySet::from_jwk_json(&jwk).is_ok();
    let pkcs1 = der(0x30, &[der_unsigned(n), der_unsigned(e)].concat());
    let from_pkcs1 = KeySet::from_rsa_pem(pem("RSA PUBLIC KEY", &pkcs1), None).is_ok();
    let from_spki =
        KeySet::from_rsa_pem(pem("PUBLIC KEY", &spki(RSA_ALGORITHM, &pkcs1)), None).is_ok();
    assert_eq!(from_jwk, from_pkcs1, "JWK and PKCS#1 disagree");
    assert_eq!(from_jwk, from_spki, "JWK and SubjectPublicKeyInfo disagree");
    if from_jwk {
        let (n, e) = (unsigned(n), unsigned(e));
        let bits = |number: &[u8]| {
            number
                .first()
                .map_or(0, |top| number.len() * 8 - top.leading_zeros() as usize)
        };
        assert!(
            (2048..=8192).contains(&bits(n)),
            "{} bit modulus loaded",
            bits(n)
        );
        assert!(
            n.last().is_some_and(|low| low & 1 == 1),
            "even modulus loaded"
        );
        assert!(
            e.last().is_some_and(|low| low & 1 == 1),
            "even exponent loaded"
        );
        assert!(bits(e) <= 33, "{} bit exponent loaded", bits(e));
        assert!(
            bits(e) > 17 || (bits(e) == 17 && e >= &[1, 0, 1][..]),
            "exponent below 65537 loaded"
        );
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Without leading zero bytes.
fn unsigned(number: &[u8]) -> &[u8] {
    let start = number
        .iter()
        .position(|byte| *byte != 0)
        .unwrap_or(number.len());
    &number[start..]
}

fn der(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = unsigned(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(body);
    out
}

/// A DER INTEGER holding the unsigned big-endian `number`, minimally encoded.
fn der_unsigned(number: &[u8]) -> Vec<u8> {
    let mut body = unsigned(number).to_vec();
    if body.first().is_none_or(|top| top & 0x80 != 0) {
        body.insert(0, 0);
    }
    der(0x02, &body)
}

fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let bit_string = der(0x03, &[&[0][..], key].concat());
    der(0x30, &[algorithm, &bit_string].concat())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}
