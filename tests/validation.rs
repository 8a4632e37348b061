//! Validation guarantees, one test per guarantee, with tokens minted from real keys.

use std::sync::OnceLock;
use std::time::Duration;

use bearer_guard::testing::{SigningKey, b64};
use bearer_guard::{Algorithm, BuildError, Guard, Issuer, KeySet, TokenError};
use serde_json::json;

const ISS: &str = "https://issuer.example/";
const AUD: &str = "https://api.example";

/// RSA key generation is the slow part of these tests: one key per algorithm, shared.
fn key(alg: Algorithm) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        Algorithm::ALL
            .iter()
            .map(|alg| SigningKey::generate(*alg).expect("test key"))
            .collect()
    });
    keys.iter()
        .find(|key| key.algorithm() == alg)
        .expect("a key for every algorithm")
}

fn rsa() -> &'static SigningKey {
    key(Algorithm::RS256)
}

async fn guard_with(issuer: Issuer) -> Guard {
    Guard::builder()
        .issuer(issuer)
        .build()
        .await
        .expect("guard builds")
}

/// Scopes read from Keycloak's `realm_access.roles`.
async fn realm_roles_guard() -> Guard {
    guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .scope_claims(["realm_access.roles"]),
    )
    .await
}

async fn guard_for(key: &SigningKey) -> Guard {
    guard_with(Issuer::new(ISS).audience(AUD).keys(key.key_set())).await
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

async fn rejects(guard: &Guard, token: &str) -> TokenError {
    match guard.verify(token).await {
        Err(bearer_guard::VerifyError::InvalidToken(err)) => err,
        other => panic!("token must be refused as invalid, got {other:?}"),
    }
}

// --- algorithms --------------------------------------------------------------------------------

#[tokio::test]
async fn accepts_every_asymmetric_algorithm_with_real_keys() {
    for alg in Algorithm::DEFAULT_ALLOWED {
        let key = key(alg);
        let guard = guard_for(key).await;
        let token = key.token(ISS, AUD).sign().unwrap();
        let claims = guard
            .verify(&token)
            .await
            .unwrap_or_else(|err| panic!("{alg}: {err}"));
        assert_eq!(claims.algorithm(), alg);
        assert_eq!(claims.key_id(), key.kid());
    }
}

#[tokio::test]
async fn rsa_key_without_jwk_alg_verifies_pkcs1_and_pss() {
    let mut jwk = rsa().public_jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(KeySet::from_jwk_json(jwk.to_string()).unwrap()),
    )
    .await;
    let pkcs1 = rsa().token(ISS, AUD).sign().unwrap();
    assert!(guard.verify(&pkcs1).await.is_ok());
    let pss_key = SigningKey::generate(Algorithm::PS256).unwrap();
    let mut pss_jwk = pss_key.public_jwk();
    pss_jwk.as_object_mut().unwrap().remove("alg");
    let pss_guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(KeySet::from_jwk_json(pss_jwk.to_string()).unwrap()),
    )
    .await;
    assert!(
        pss_guard
            .verify(&pss_key.token(ISS, AUD).sign().unwrap())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rejects_alg_none() {
    let guard = guard_for(rsa()).await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        let payload = json!({"iss": ISS, "aud": AUD, "exp": now() + 60}).to_string();
        let unsigned = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(
            rejects(&guard, &unsigned).await,
            TokenError::UnsupportedAlgorithm,
            "{alg}"
        );
        let with_signature = format!("{unsigned}c2ln");
        assert_eq!(
            rejects(&guard, &with_signature).await,
            TokenError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rejects_unknown_and_miscased_algorithms() {
    let guard = guard_for(rsa()).await;
    for alg in ["rs256", "RS1", "ES512", "HS1", ""] {
        let token = rsa().token(ISS, AUD).alg(alg).sign().unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::UnsupportedAlgorithm,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rejects_hs256_signed_with_the_rsa_public_key() {
    let pem = rsa().public_pem().unwrap();
    let jwk_n = rsa().public_jwk()["n"].as_str().unwrap().to_owned();
    for secret in [
        pem.as_bytes(),
        jwk_n.as_bytes(),
        rsa().public_jwk().to_string().as_bytes(),
    ] {
        let forger = SigningKey::hmac(Algorithm::HS256, secret).with_kid(rsa().kid());
        let token = forger.token(ISS, AUD).sign().unwrap();
        // Default allow-list: HMAC is not even considered.
        let guard = guard_for(rsa()).await;
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::AlgorithmNotAllowed(Algorithm::HS256)
        );
    }
}

#[tokio::test]
async fn hs256_never_verifies_with_an_rsa_key_even_when_hmac_is_allowed() {
    let pem = rsa().public_pem().unwrap();
    let secret = [7u8; 32];
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .algorithms([Algorithm::RS256, Algorithm::HS256])
            .keys(
                rsa()
                    .key_set()
                    .with(KeySet::hmac_secret(secret, Some("shared")).unwrap()),
            ),
    )
    .await;
    // Aimed at the RSA key by kid: the RSA key cannot verify HS256.
    let forged = SigningKey::hmac(Algorithm::HS256, pem.as_bytes())
        .with_kid(rsa().kid())
        .token(ISS, AUD)
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &forged).await, TokenError::KeyMismatch);
    // Without kid: the only HS256-capable key is the real secret, and the signature fails.
    let forged = SigningKey::hmac(Algorithm::HS256, pem.as_bytes())
        .token(ISS, AUD)
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &forged).await, TokenError::InvalidSignature);
    // The configured secret itself works.
    let good = SigningKey::hmac(Algorithm::HS256, &secret)
        .with_kid(Some("shared"))
        .token(ISS, AUD)
        .sign()
        .unwrap();
    assert!(guard.verify(&good).await.is_ok());
}

#[tokio::test]
async fn hmac_algorithms_require_an_explicit_secret() {
    let err = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::HS256])
                .keys(rsa().key_set()),
        )
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::HmacWithoutSecret { .. }), "{err}");
}

#[tokio::test]
async fn a_static_key_set_without_a_usable_key_is_a_configuration_error() {
    // Every key is skipped: one for encryption, one on a curve nobody signs access tokens with.
    let mut encryption = rsa().public_jwk();
    encryption["use"] = json!("enc");
    let jwks =
        json!({ "keys": [encryption, { "kty": "EC", "crv": "P-521", "x": "AA", "y": "AA" }] });
    let keys = KeySet::from_jwks_json(jwks.to_string()).unwrap();
    assert!(keys.is_empty());
    let err = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(keys))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoUsableKeys { .. }), "{err}");

    // Usable keys, but none for the allowed algorithms.
    let err = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::ES256])
                .keys(rsa().key_set()),
        )
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoUsableKeys { .. }), "{err}");
}

#[tokio::test]
async fn every_hmac_algorithm_verifies_with_a_long_enough_secret() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = key(alg);
        let guard = guard_with(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([alg])
                .keys(key.key_set()),
        )
        .await;
        assert!(
            guard
                .verify(&key.token(ISS, AUD).sign().unwrap())
                .await
                .is_ok(),
            "{alg}"
        );
    }
    // A 32-byte secret is too short for HS512 (RFC 7518 §3.2): such tokens find no key...
    let short = SigningKey::hmac(Algorithm::HS512, &[1u8; 32]);
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .algorithms([Algorithm::HS256, Algorithm::HS512])
            .keys(KeySet::hmac_secret([1u8; 32], None).unwrap()),
    )
    .await;
    assert_eq!(
        rejects(&guard, &short.token(ISS, AUD).sign().unwrap()).await,
        TokenError::UnknownKey
    );
    // ... and with HS512 alone the configuration can verify nothing, so it does not build.
    let err = Guard::builder()
        .issuer(
            Issuer::new(ISS)
                .audience(AUD)
                .algorithms([Algorithm::HS512])
                .keys(KeySet::hmac_secret([1u8; 32], None).unwrap()),
        )
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoUsableKeys { .. }), "{err}");
}

#[tokio::test]
async fn rejects_algorithm_outside_the_issuer_allow_list() {
    let key = key(Algorithm::ES256);
    // The set holds the ES256 key, but only RS256 is allowed.
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .algorithms([Algorithm::RS256])
            .keys(key.key_set().with(rsa().key_set())),
    )
    .await;
    let token = key.token(ISS, AUD).sign().unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::AlgorithmNotAllowed(Algorithm::ES256)
    );
}

// --- key selection -----------------------------------------------------------------------------

#[tokio::test]
async fn rejects_key_of_another_type_named_by_kid() {
    let ec = key(Algorithm::ES256);
    let guard = guard_for(rsa()).await;
    // ES256 token pointing at the RSA key's kid.
    let token = ec.token(ISS, AUD).kid(rsa().kid()).sign().unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::KeyMismatch);
}

#[tokio::test]
async fn rejects_algorithm_other_than_the_jwk_alg() {
    // The JWK says RS256; a PS256 signature by the same private key must not be accepted.
    let guard = guard_for(rsa()).await;
    let pss = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .with_algorithm(Algorithm::PS256);
    let same_key_pss_token = {
        let guard_for_pss = guard_for(&pss).await; // JWK with alg PS256: accepted there
        let token = pss.token(ISS, AUD).sign().unwrap();
        assert!(guard_for_pss.verify(&token).await.is_ok());
        token
    };
    let rs256_jwk_guard = guard_with(
        Issuer::new(ISS).audience(AUD).keys(
            KeySet::from_jwk_json(
                {
                    let mut jwk = pss.public_jwk();
                    jwk["alg"] = "RS256".into();
                    jwk
                }
                .to_string(),
            )
            .unwrap(),
        ),
    )
    .await;
    assert_eq!(
        rejects(&rs256_jwk_guard, &same_key_pss_token).await,
        TokenError::KeyMismatch
    );
    drop(guard);
}

#[tokio::test]
async fn rejects_p384_key_for_es256() {
    let p384 = key(Algorithm::ES384);
    let p256 = key(Algorithm::ES256);
    let guard = guard_for(p384).await;
    let token = p256.token(ISS, AUD).kid(p384.kid()).sign().unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::KeyMismatch);
}

#[tokio::test]
async fn rejects_unknown_kid() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .kid(Some("not-published"))
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::UnknownKey);
}

#[tokio::test]
async fn token_without_kid_uses_the_single_matching_key() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).kid(None).sign().unwrap();
    assert!(guard.verify(&token).await.is_ok());
}

#[tokio::test]
async fn token_without_kid_is_rejected_when_several_keys_match() {
    let other = SigningKey::generate(Algorithm::RS256).unwrap();
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set().with(other.key_set())),
    )
    .await;
    let token = rsa().token(ISS, AUD).kid(None).sign().unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::AmbiguousKey);
    // With a kid, either key works.
    assert!(
        guard
            .verify(&other.token(ISS, AUD).sign().unwrap())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn ignores_jku_x5u_jwk_and_x5c_headers() {
    let attacker = SigningKey::generate(Algorithm::RS256).unwrap();
    let guard = guard_for(rsa()).await;
    // The attacker embeds its own key and points at its own key URLs: still unknown to us.
    let forged = attacker
        .token(ISS, AUD)
        .header("jwk", attacker.public_jwk())
        .header("jku", "http://127.0.0.1:9/jwks.json")
        .header("x5u", "http://127.0.0.1:9/cert.pem")
        .header("x5c", json!(["MIIB"]))
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &forged).await, TokenError::UnknownKey);
    let forged_no_kid = attacker
        .token(ISS, AUD)
        .kid(None)
        .header("jwk", attacker.public_jwk())
        .sign()
        .unwrap();
    assert_eq!(
        rejects(&guard, &forged_no_kid).await,
        TokenError::InvalidSignature
    );
    // A genuine token carrying the same headers is accepted: they are simply not read.
    let genuine = rsa()
        .token(ISS, AUD)
        .header("jwk", attacker.public_jwk())
        .header("jku", "http://127.0.0.1:9/jwks.json")
        .sign()
        .unwrap();
    assert!(guard.verify(&genuine).await.is_ok());
}

#[tokio::test]
async fn rejects_crit_header() {
    let guard = guard_for(rsa()).await;
    for crit in [
        json!(["exp"]),
        json!(["b64"]),
        json!([]),
        json!(null),
        json!("x"),
    ] {
        let token = rsa()
            .token(ISS, AUD)
            .header("crit", crit.clone())
            .sign()
            .unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::CriticalHeader,
            "{crit}"
        );
    }
}

// --- structure ---------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_tampered_payload() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).scope("read").sign().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let payload = json!({"iss": ISS, "aud": AUD, "exp": now() + 60, "scope": "read admin"});
    let tampered = format!("{}.{}.{}", parts[0], b64(payload.to_string()), parts[2]);
    assert_eq!(
        rejects(&guard, &tampered).await,
        TokenError::InvalidSignature
    );
}

#[tokio::test]
async fn rejects_tampered_signature() {
    for alg in Algorithm::DEFAULT_ALLOWED {
        let key = key(alg);
        let guard = guard_for(key).await;
        let token = key.token(ISS, AUD).sign().unwrap();
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let mut raw = base64_decode(signature);
        raw[0] ^= 0x01;
        let flipped = format!("{signing_input}.{}", b64(&raw));
        assert_eq!(
            rejects(&guard, &flipped).await,
            TokenError::InvalidSignature,
            "{alg}"
        );
        raw.truncate(raw.len() / 2);
        let truncated = format!("{signing_input}.{}", b64(&raw));
        assert_eq!(
            rejects(&guard, &truncated).await,
            TokenError::InvalidSignature,
            "{alg}"
        );
        let stripped = format!("{signing_input}.");
        assert!(
            matches!(rejects(&guard, &stripped).await, TokenError::Malformed(_)),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rejects_wrong_segment_counts() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).sign().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let two = format!("{}.{}", parts[0], parts[1]);
    let four = format!("{token}.{}", parts[2]);
    let five = format!("{token}.{}.{}", parts[1], parts[2]); // JWE-shaped
    for bad in [two.as_str(), &four, &five, "", ".", "..", "...."] {
        assert!(
            matches!(rejects(&guard, bad).await, TokenError::Malformed(_)),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn rejects_bad_base64() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).sign().unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]), // padding
        format!("{}.{}.{}", parts[0].replace('e', "+"), parts[1], parts[2]), // standard alphabet
        format!("{}.{}!.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}*", parts[0], parts[1], parts[2]),
        format!("{}.{}A.{}", parts[0], parts[1], parts[2]), // impossible length
    ];
    for bad in &cases {
        assert!(
            matches!(rejects(&guard, bad).await, TokenError::Malformed(_)),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn rejects_non_canonical_base64_trailing_bits() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).sign().unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    // 256 bytes encode to 342 chars; the last char carries 2 unused bits. Set one.
    let mut chars: Vec<u8> = signature.bytes().collect();
    let last = chars.last_mut().unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.iter().position(|c| c == last).unwrap();
    *last = alphabet[index ^ 0x01];
    let non_canonical = format!("{signing_input}.{}", String::from_utf8(chars).unwrap());
    assert!(matches!(
        rejects(&guard, &non_canonical).await,
        TokenError::Malformed(_)
    ));
}

#[tokio::test]
async fn rejects_non_json_header_and_payload() {
    let guard = guard_for(rsa()).await;
    let key = rsa();
    let payload = json!({"iss": ISS, "aud": AUD, "exp": now() + 60}).to_string();
    let header = json!({"alg": "RS256", "kid": key.kid()}).to_string();
    for (h, p) in [
        ("not json", payload.as_str()),
        ("[1,2]", &payload),
        (&header, "not json"),
        (&header, "[1]"),
        (&header, "\"string\""),
        (&header, "{\"iss\":"),
    ] {
        let token = key.sign_raw(h, p).unwrap();
        assert!(
            matches!(rejects(&guard, &token).await, TokenError::Malformed(_)),
            "{h} / {p}"
        );
    }
}

#[tokio::test]
async fn rejects_duplicate_claims() {
    let guard = guard_for(rsa()).await;
    let key = rsa();
    let header = json!({"alg": "RS256", "kid": key.kid()}).to_string();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#,
        now() - 3600,
        now() + 3600
    );
    let token = key.sign_raw(&header, &payload).unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::InvalidClaim("exp")
    );
    let duplicate_alg = format!(
        r#"{{"alg":"none","alg":"RS256","kid":"{}"}}"#,
        key.kid().unwrap()
    );
    let token = key
        .sign_raw(
            &duplicate_alg,
            &json!({"iss": ISS, "aud": AUD, "exp": now() + 60}).to_string(),
        )
        .unwrap();
    assert!(matches!(
        rejects(&guard, &token).await,
        TokenError::Malformed(_)
    ));
}

#[tokio::test]
async fn rejects_token_over_size_limit() {
    let guard = guard_for(rsa()).await;
    let padding = "x".repeat(100 * 1024);
    let token = rsa()
        .token(ISS, AUD)
        .claim("padding", padding)
        .sign()
        .unwrap();
    assert!(token.len() > 100 * 1024);
    assert!(matches!(
        rejects(&guard, &token).await,
        TokenError::Malformed(_)
    ));
}

// --- time --------------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_expired_token() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .expired_for(Duration::from_secs(61))
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::Expired);
}

#[tokio::test]
async fn leeway_accepts_recently_expired_token() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .expired_for(Duration::from_secs(30))
        .sign()
        .unwrap();
    assert!(guard.verify(&token).await.is_ok());
    let strict = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .leeway(Duration::ZERO),
    )
    .await;
    assert_eq!(rejects(&strict, &token).await, TokenError::Expired);
}

#[tokio::test]
async fn rejects_missing_exp() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).without_claim("exp").sign().unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::MissingClaim("exp")
    );
    let token = rsa()
        .token(ISS, AUD)
        .claim("exp", serde_json::Value::Null)
        .sign()
        .unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::MissingClaim("exp")
    );
}

#[tokio::test]
async fn rejects_nbf_in_the_future() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("nbf", now() + 120)
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::NotYetValid);
    let within_leeway = rsa()
        .token(ISS, AUD)
        .claim("nbf", now() + 30)
        .sign()
        .unwrap();
    assert!(guard.verify(&within_leeway).await.is_ok());
}

#[tokio::test]
async fn rejects_iat_in_the_future() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("iat", now() + 120)
        .claim("exp", now() + 600)
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::IssuedInFuture);
}

#[tokio::test]
async fn accepts_fractional_numeric_dates() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("exp", now() as f64 + 120.5)
        .claim("iat", now() as f64 - 0.25)
        .claim("nbf", now() as f64 - 1.75)
        .sign()
        .unwrap();
    let claims = guard.verify(&token).await.unwrap();
    let exp = claims
        .expires_at()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((exp - (now() as f64 + 120.5)).abs() < 1.0);
    let expired = rsa()
        .token(ISS, AUD)
        .claim("exp", now() as f64 - 60.5)
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &expired).await, TokenError::Expired);
}

#[tokio::test]
async fn rejects_numeric_dates_of_the_wrong_type() {
    let guard = guard_for(rsa()).await;
    for (claim, value) in [
        ("exp", json!((now() + 60).to_string())),
        ("exp", json!(true)),
        ("exp", json!([now() + 60])),
        ("nbf", json!("0")),
        ("iat", json!({"t": 0})),
    ] {
        let token = rsa()
            .token(ISS, AUD)
            .claim(claim, value.clone())
            .sign()
            .unwrap();
        let err = rejects(&guard, &token).await;
        assert!(
            matches!(err, TokenError::InvalidClaim(name) if name == claim),
            "{claim}={value}: {err}"
        );
    }
}

#[tokio::test]
async fn huge_and_negative_exp_are_handled() {
    let guard = guard_for(rsa()).await;
    let huge = rsa().token(ISS, AUD).claim("exp", 1e300).sign().unwrap();
    let claims = guard.verify(&huge).await.unwrap();
    assert!(claims.expires_at() > std::time::SystemTime::now());
    let negative = rsa().token(ISS, AUD).claim("exp", -1).sign().unwrap();
    assert_eq!(rejects(&guard, &negative).await, TokenError::Expired);
    let big_int = rsa().token(ISS, AUD).claim("exp", u64::MAX).sign().unwrap();
    assert!(guard.verify(&big_int).await.is_ok());
}

// --- issuer and audience -----------------------------------------------------------------------

#[tokio::test]
async fn rejects_wrong_issuer() {
    let guard = guard_for(rsa()).await;
    for iss in [
        "https://issuer.example",
        "https://ISSUER.example/",
        "https://evil.example/",
        "",
    ] {
        let token = rsa().token(iss, AUD).sign().unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::UnknownIssuer,
            "{iss}"
        );
    }
}

#[tokio::test]
async fn rejects_missing_issuer() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).without_claim("iss").sign().unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::MissingClaim("iss")
    );
    let token = rsa().token(ISS, AUD).claim("iss", 42).sign().unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::InvalidClaim("iss")
    );
}

#[tokio::test]
async fn rejects_wrong_audience() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, "https://other.example").sign().unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::AudienceMismatch);
    let token = rsa()
        .token(ISS, AUD)
        .claim("aud", json!([]))
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::AudienceMismatch);
}

#[tokio::test]
async fn rejects_missing_audience() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).without_claim("aud").sign().unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::MissingClaim("aud")
    );
    let token = rsa()
        .token(ISS, AUD)
        .claim("aud", json!([1, 2]))
        .sign()
        .unwrap();
    assert_eq!(
        rejects(&guard, &token).await,
        TokenError::InvalidClaim("aud")
    );
}

#[tokio::test]
async fn accepts_audience_array_containing_a_configured_audience() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("aud", json!(["https://other.example", AUD]))
        .sign()
        .unwrap();
    let claims = guard.verify(&token).await.unwrap();
    assert_eq!(claims.audiences(), ["https://other.example", AUD]);
}

#[tokio::test]
async fn accepts_any_of_several_configured_audiences() {
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .audience("api://payments")
            .keys(rsa().key_set()),
    )
    .await;
    assert!(
        guard
            .verify(&rsa().token(ISS, "api://payments").sign().unwrap())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn issuer_without_audience_is_a_build_error() {
    let err = Guard::builder()
        .issuer(Issuer::new(ISS).keys(rsa().key_set()))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::NoAudience { .. }));
}

#[tokio::test]
async fn two_issuers_each_with_their_own_keys_and_audience() {
    let other = key(Algorithm::ES256);
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(rsa().key_set()))
        .issuer(
            Issuer::new("https://other-issuer.example")
                .audience("other-api")
                .keys(other.key_set()),
        )
        .build()
        .await
        .unwrap();
    assert!(
        guard
            .verify(&rsa().token(ISS, AUD).sign().unwrap())
            .await
            .is_ok()
    );
    let other_token = other
        .token("https://other-issuer.example", "other-api")
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&other_token).await.unwrap().issuer(),
        "https://other-issuer.example"
    );
    // Each issuer's audience and keys only count for that issuer.
    let crossed_audience = other
        .token("https://other-issuer.example", AUD)
        .sign()
        .unwrap();
    assert_eq!(
        rejects(&guard, &crossed_audience).await,
        TokenError::AudienceMismatch
    );
    let crossed_key = other.token(ISS, AUD).sign().unwrap();
    assert_eq!(rejects(&guard, &crossed_key).await, TokenError::UnknownKey);
}

// --- RFC 9068 and lifetime ---------------------------------------------------------------------

async fn rfc9068_guard() -> Guard {
    guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .require_rfc9068(true),
    )
    .await
}

#[tokio::test]
async fn rfc9068_mode_accepts_at_jwt() {
    let guard = rfc9068_guard().await;
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert!(guard.verify(&token).await.is_ok(), "{typ}");
    }
}

#[tokio::test]
async fn rfc9068_mode_rejects_other_types() {
    let guard = rfc9068_guard().await;
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt2",
        "dpop+jwt",
        "application/",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::WrongType,
            "{typ}"
        );
    }
    let untyped = rsa().token(ISS, AUD).without_header("typ").sign().unwrap();
    assert_eq!(rejects(&guard, &untyped).await, TokenError::WrongType);
}

#[tokio::test]
async fn rfc9068_mode_requires_its_claims() {
    let guard = rfc9068_guard().await;
    for claim in ["sub", "client_id", "iat", "jti"] {
        let token = rsa()
            .token(ISS, AUD)
            .typ("at+jwt")
            .without_claim(claim)
            .sign()
            .unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::MissingClaim(claim),
            "{claim}"
        );
    }
    // Without strict mode the same tokens pass.
    let lenient = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .without_claim("jti")
        .without_claim("client_id")
        .sign()
        .unwrap();
    assert!(lenient.verify(&token).await.is_ok());
}

#[tokio::test]
async fn lifetime_policy_rejects_long_lived_tokens() {
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .max_token_lifetime(Duration::from_secs(3600)),
    )
    .await;
    let short = rsa()
        .token(ISS, AUD)
        .expires_in(Duration::from_secs(600))
        .sign()
        .unwrap();
    assert!(guard.verify(&short).await.is_ok());
    let long = rsa()
        .token(ISS, AUD)
        .expires_in(Duration::from_secs(86_400))
        .sign()
        .unwrap();
    assert_eq!(rejects(&guard, &long).await, TokenError::LifetimeTooLong);
    let no_iat = rsa().token(ISS, AUD).without_claim("iat").sign().unwrap();
    assert_eq!(
        rejects(&guard, &no_iat).await,
        TokenError::MissingClaim("iat")
    );
}

// --- claims and scopes -------------------------------------------------------------------------

#[tokio::test]
async fn client_id_falls_back_to_azp_then_sub() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("client_id", "cid")
        .claim("azp", "azp")
        .sign()
        .unwrap();
    assert_eq!(guard.verify(&token).await.unwrap().client_id(), Some("cid"));
    let token = rsa()
        .token(ISS, AUD)
        .without_claim("client_id")
        .claim("azp", "azp")
        .sign()
        .unwrap();
    assert_eq!(guard.verify(&token).await.unwrap().client_id(), Some("azp"));
    let token = rsa()
        .token(ISS, AUD)
        .without_claim("client_id")
        .claim("sub", "svc")
        .sign()
        .unwrap();
    assert_eq!(guard.verify(&token).await.unwrap().client_id(), Some("svc"));
}

#[tokio::test]
async fn payload_is_available_as_json_and_as_user_types() {
    #[derive(serde::Deserialize)]
    struct Custom {
        tenant: String,
        quota: u32,
    }
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("tenant", "acme")
        .claim("quota", 7)
        .sign()
        .unwrap();
    let claims = guard.verify(&token).await.unwrap();
    assert_eq!(claims.get("tenant"), Some(json!("acme")));
    let custom: Custom = claims.deserialize().unwrap();
    assert_eq!((custom.tenant.as_str(), custom.quota), ("acme", 7));
}

async fn scopes_of(guard: &Guard, token: &str) -> Vec<String> {
    let claims = guard.verify(token).await.expect("token accepted");
    claims.scopes().iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn reads_scope_as_space_separated_string() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).scope("b a  c").sign().unwrap();
    assert_eq!(scopes_of(&guard, &token).await, ["a", "b", "c"]);
}

#[tokio::test]
async fn reads_scp_as_string_or_array() {
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).claim("scp", "x y").sign().unwrap();
    assert_eq!(scopes_of(&guard, &token).await, ["x", "y"]);
    let token = rsa()
        .token(ISS, AUD)
        .claim("scp", json!(["x", "y"]))
        .sign()
        .unwrap();
    assert_eq!(scopes_of(&guard, &token).await, ["x", "y"]);
}

#[tokio::test]
async fn reads_permissions_array() {
    let guard = guard_for(rsa()).await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("permissions", json!(["read:payments", "write:payments"]))
        .scope("openid")
        .sign()
        .unwrap();
    assert_eq!(
        scopes_of(&guard, &token).await,
        ["openid", "read:payments", "write:payments"]
    );
}

#[tokio::test]
async fn reads_scopes_from_a_configured_claim_path() {
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .scope_claims(["realm_access.roles", "https://example.com/roles", "roles"]),
    )
    .await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("realm_access", json!({"roles": ["admin", "auditor"]}))
        .claim("https://example.com/roles", json!(["namespaced"]))
        .claim("roles", "app.read")
        .scope("ignored-here")
        .sign()
        .unwrap();
    assert_eq!(
        scopes_of(&guard, &token).await,
        ["admin", "app.read", "auditor", "namespaced"]
    );
}

#[tokio::test]
async fn rejects_scope_claims_of_the_wrong_type() {
    let guard = guard_for(rsa()).await;
    for (claim, value) in [
        ("scope", json!(42)),
        ("scp", json!([1])),
        ("permissions", json!({"a": 1})),
    ] {
        let token = rsa().token(ISS, AUD).claim(claim, value).sign().unwrap();
        assert!(
            matches!(rejects(&guard, &token).await, TokenError::InvalidClaim(_)),
            "{claim}"
        );
    }
    let custom = realm_roles_guard().await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("realm_access", json!({"roles": 5}))
        .sign()
        .unwrap();
    assert!(matches!(
        rejects(&custom, &token).await,
        TokenError::InvalidClaim(_)
    ));
}

#[tokio::test]
async fn scope_read_does_not_satisfy_read_all() {
    use bearer_guard::ScopeRequirement;
    let guard = guard_for(rsa()).await;
    let token = rsa().token(ISS, AUD).scope("read").sign().unwrap();
    let claims = guard.verify(&token).await.unwrap();
    assert!(ScopeRequirement::all_of(["read"]).is_satisfied_by(claims.scopes()));
    assert!(!ScopeRequirement::all_of(["read:all"]).is_satisfied_by(claims.scopes()));
    assert!(!ScopeRequirement::all_of(["Read"]).is_satisfied_by(claims.scopes()));
    let token = rsa().token(ISS, AUD).scope("read:all").sign().unwrap();
    let claims = guard.verify(&token).await.unwrap();
    assert!(!ScopeRequirement::all_of(["read"]).is_satisfied_by(claims.scopes()));
}

#[tokio::test]
async fn scope_requirements_all_of_and_any_of() {
    use bearer_guard::{ScopeRequirement, Scopes};
    let granted = Scopes::from_iter(["a", "b"]);
    assert!(ScopeRequirement::all_of(["a", "b"]).is_satisfied_by(&granted));
    assert!(!ScopeRequirement::all_of(["a", "c"]).is_satisfied_by(&granted));
    assert!(ScopeRequirement::any_of(["c", "b"]).is_satisfied_by(&granted));
    assert!(!ScopeRequirement::any_of(["c", "d"]).is_satisfied_by(&granted));
    assert!(!ScopeRequirement::any_of(Vec::<String>::new()).is_satisfied_by(&granted));
    let err = ScopeRequirement::all_of(["a", "c"])
        .check(&granted)
        .unwrap_err();
    assert_eq!(err.required().to_string(), "a c");
}

fn base64_decode(segment: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("valid base64url")
}

#[tokio::test]
async fn client_id_claims_are_configurable() {
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .client_id_claims(["cid", "appid", "sub"]),
    )
    .await;
    let okta = rsa()
        .token(ISS, AUD)
        .claim("cid", "okta-client")
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&okta).await.unwrap().client_id(),
        Some("okta-client")
    );
    let entra = rsa()
        .token(ISS, AUD)
        .claim("appid", "entra-app")
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&entra).await.unwrap().client_id(),
        Some("entra-app")
    );
    // `client_id` is not in this chain: `sub` is next.
    let other = rsa()
        .token(ISS, AUD)
        .claim("client_id", "ignored")
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&other).await.unwrap().client_id(),
        Some("test-client")
    );
    // A claim of another type is skipped, not an error.
    let odd = rsa().token(ISS, AUD).claim("cid", 42).sign().unwrap();
    assert_eq!(
        guard.verify(&odd).await.unwrap().client_id(),
        Some("test-client")
    );
}

#[tokio::test]
async fn rejects_non_object_header_and_claims() {
    let guard = guard_for(rsa()).await;
    let key = rsa();
    let header = json!({"alg": "RS256", "kid": key.kid()}).to_string();
    let claims = json!({"iss": ISS, "aud": AUD, "exp": now() + 60}).to_string();
    // serde would read these positional arrays as the structs; JOSE requires objects.
    let array_header = key.sign_raw(r#"["RS256"]"#, &claims).unwrap();
    assert!(matches!(
        rejects(&guard, &array_header).await,
        TokenError::Malformed(_)
    ));
    let array_claims = key
        .sign_raw(
            &header,
            &format!(r#"["{ISS}",null,"{AUD}",{}]"#, now() + 60),
        )
        .unwrap();
    assert!(matches!(
        rejects(&guard, &array_claims).await,
        TokenError::Malformed(_)
    ));
    // Whitespace before the object is fine.
    let spaced = key
        .sign_raw(&format!(" \n{header}"), &format!("\t{claims}"))
        .unwrap();
    assert!(guard.verify(&spaced).await.is_ok());
}

#[tokio::test]
async fn rejects_explicitly_typed_jwts_of_other_kinds() {
    // RFC 8725 §3.11, even without RFC 9068 mode.
    let guard = guard_for(rsa()).await;
    for typ in [
        "logout+jwt",
        "secevent+jwt",
        "application/dpop+jwt",
        "ID+JWT",
        // Decorated spellings of other kinds must not slip through.
        "application/logout+jwt; charset=utf-8",
        "logout+jwt ",
        "dpop+jwt;x=1",
        " logout+jwt",
        // Not on the allow-list at all.
        "JOSE",
        "foo",
        "",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::WrongType,
            "{typ}"
        );
    }
    for typ in [
        "JWT",
        "jwt",
        "at+jwt",
        "application/at+jwt",
        "Application/JWT",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert!(guard.verify(&token).await.is_ok(), "{typ}");
    }
}

#[tokio::test]
async fn multi_byte_characters_in_typ_never_panic() {
    // Any client can send these; none is on the allow-list.
    let guard = guard_for(rsa()).await;
    for typ in [
        "€€",
        "€",
        "a€",
        "at+jwt€",
        "application/€€€€",
        "€€€€€€€€€€€€€",
        "€+JWT",
        "applicati€n/jwt",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert_eq!(
            rejects(&guard, &token).await,
            TokenError::WrongType,
            "{typ}"
        );
    }
}

#[tokio::test]
async fn configuration_is_not_revealed_to_clients() {
    // Tokens signed by a key the guard does not trust (as any client can make them), differing in
    // one configured value each: every refusal before the signature verifies reads the same.
    use bearer_guard::Rejection;
    let guard = guard_for(rsa()).await;
    let trusted_kid = rsa().kid().map(str::to_owned);
    let forger = SigningKey::generate(Algorithm::RS256)
        .unwrap()
        .with_kid(trusted_kid.as_deref());
    let probes = [
        forger.token(ISS, AUD).sign().unwrap(),
        forger.token("https://probe.example", AUD).sign().unwrap(),
        forger.token(ISS, "probe").sign().unwrap(),
        forger
            .token(ISS, AUD)
            .expired_for(Duration::from_secs(3600))
            .sign()
            .unwrap(),
        forger.token(ISS, AUD).alg("PS256").sign().unwrap(),
        forger.token(ISS, AUD).alg("ES256").sign().unwrap(),
        forger
            .token(ISS, AUD)
            .kid(Some("probe-kid"))
            .sign()
            .unwrap(),
        forger.token(ISS, AUD).typ("logout+jwt").sign().unwrap(),
        forger.token(ISS, AUD).without_claim("exp").sign().unwrap(),
    ];
    let mut descriptions = Vec::new();
    for token in &probes {
        descriptions.push(Rejection::from(rejects(&guard, token).await).description());
    }
    assert!(
        descriptions
            .iter()
            .all(|d| *d == "The access token is not accepted by this resource"),
        "{descriptions:?}"
    );
}

#[tokio::test]
async fn precise_reasons_only_for_tokens_whose_signature_verified() {
    use bearer_guard::Rejection;
    let guard = guard_for(rsa()).await;
    let signed = [
        (
            rsa().token(ISS, "probe").sign().unwrap(),
            "The access token is not intended for this resource",
        ),
        (
            rsa()
                .token(ISS, AUD)
                .expired_for(Duration::from_secs(3600))
                .sign()
                .unwrap(),
            "The access token expired",
        ),
        (
            rsa().token(ISS, AUD).typ("logout+jwt").sign().unwrap(),
            "The token is not an access token",
        ),
    ];
    for (token, description) in signed {
        assert_eq!(
            Rejection::from(rejects(&guard, &token).await).description(),
            description
        );
    }
}

// --- payload members and claim sizes ------------------------------------------------------------

fn signed_payload(payload: &str) -> String {
    let header = json!({"alg": "RS256", "kid": rsa().kid()}).to_string();
    rsa().sign_raw(&header, payload).unwrap()
}

#[tokio::test]
async fn duplicate_members_anywhere_in_the_payload_are_refused() {
    let exp = now() + 300;
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .scope_claims(["roles", "realm_access.roles"])
            .client_id_claims(["cid"]),
    )
    .await;
    let base = format!(r#""iss":"{ISS}","aud":"{AUD}","exp":{exp}"#);
    let duplicated = [
        format!(r#"{{{base},"roles":["read"],"roles":["admin"]}}"#),
        format!(r#"{{{base},"realm_access":{{"roles":["read"],"roles":["admin"]}}}}"#),
        format!(r#"{{{base},"cid":"billing","cid":"admin"}}"#),
        format!(r#"{{{base},"x":[{{"a":1,"b":2,"a":3}}]}}"#),
        format!(r#"{{{base},"tenant":"acme","tenant":"evil"}}"#),
        // The same name spelled with an escape is the same member.
        format!(r#"{{{base},"roles":["read"],"\u0072oles":["admin"]}}"#),
    ];
    for payload in duplicated {
        let err = rejects(&guard, &signed_payload(&payload)).await;
        assert!(
            matches!(err, TokenError::Malformed(_)),
            "{payload}: {err:?}"
        );
    }
    // Registered claims name themselves.
    let twice_exp = format!(r#"{{{base},"exp":{exp}}}"#);
    assert_eq!(
        rejects(&guard, &signed_payload(&twice_exp)).await,
        TokenError::InvalidClaim("exp")
    );
    // Many members, all distinct, still pass; the same with one repeated does not.
    let many: String = (0..300).map(|n| format!(r#","m{n}":{n}"#)).collect();
    let accepted = format!(r#"{{{base}{many},"roles":["read"],"cid":"billing"}}"#);
    let claims = guard.verify(&signed_payload(&accepted)).await.unwrap();
    assert!(claims.scopes().contains("read"));
    assert_eq!(claims.client_id(), Some("billing"));
    let repeated = format!(r#"{{{base}{many},"m299":0}}"#);
    assert!(matches!(
        rejects(&guard, &signed_payload(&repeated)).await,
        TokenError::Malformed(_)
    ));
}

#[tokio::test]
async fn custom_claims_and_typed_claims_read_one_parse() {
    #[derive(serde::Deserialize)]
    struct Custom {
        tenant: String,
        realm_access: RealmAccess,
    }
    #[derive(serde::Deserialize)]
    struct RealmAccess {
        roles: Vec<String>,
    }
    let guard = realm_roles_guard().await;
    let token = rsa()
        .token(ISS, AUD)
        .claim("tenant", "acme")
        .claim("realm_access", json!({"roles": ["read", "write"]}))
        .sign()
        .unwrap();
    let claims = guard.verify(&token).await.unwrap();
    assert_eq!(
        claims.scopes().iter().collect::<Vec<_>>(),
        ["read", "write"]
    );
    assert_eq!(claims.get("tenant"), Some(json!("acme")));
    let custom: Custom = claims.deserialize().unwrap();
    assert_eq!(custom.tenant, "acme");
    assert_eq!(custom.realm_access.roles, ["read", "write"]);
    assert_eq!(claims.get("absent"), None);
}

#[tokio::test]
async fn claim_arrays_are_bounded() {
    let guard = guard_for(rsa()).await;
    let exp = now() + 300;
    let values = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
    for claim in ["aud", "scp", "permissions"] {
        let mut payload = json!({"iss": ISS, "aud": AUD, "exp": exp});
        let mut at_limit = values(256);
        if claim == "aud" {
            at_limit[0] = AUD.to_owned();
        }
        payload[claim] = json!(at_limit);
        assert!(
            guard
                .verify(&signed_payload(&payload.to_string()))
                .await
                .is_ok(),
            "{claim} at the limit"
        );
        let mut over = at_limit.clone();
        over.push("one-more".to_owned());
        payload[claim] = json!(over);
        assert_eq!(
            rejects(&guard, &signed_payload(&payload.to_string())).await,
            TokenError::InvalidClaim(claim),
            "{claim} over the limit"
        );
    }
    let scope = |n: usize| values(n).join(" ");
    let payload = json!({"iss": ISS, "aud": AUD, "exp": exp, "scope": scope(256)});
    assert!(
        guard
            .verify(&signed_payload(&payload.to_string()))
            .await
            .is_ok()
    );
    let payload = json!({"iss": ISS, "aud": AUD, "exp": exp, "scope": scope(257)});
    assert_eq!(
        rejects(&guard, &signed_payload(&payload.to_string())).await,
        TokenError::InvalidClaim("scope")
    );
}

#[tokio::test]
async fn issuers_can_accept_their_own_token_type() {
    let guard = guard_with(
        Issuer::new(ISS)
            .audience(AUD)
            .keys(rsa().key_set())
            .accept_token_type("application/okta-internal-at+jwt"),
    )
    .await;
    for typ in [
        "application/okta-internal-at+jwt",
        "okta-internal-at+jwt",
        "OKTA-INTERNAL-AT+JWT",
        "JWT",
    ] {
        let token = rsa().token(ISS, AUD).typ(typ).sign().unwrap();
        assert!(guard.verify(&token).await.is_ok(), "{typ}");
    }
    let token = rsa().token(ISS, AUD).typ("logout+jwt").sign().unwrap();
    assert_eq!(rejects(&guard, &token).await, TokenError::WrongType);
}
