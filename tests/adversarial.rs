//! The adversarial catalogue: hostile tokens and hostile requests, each sent over real HTTP to the
//! `resource_server` example's router (`GET /payments`, scope `payments:read`) on `127.0.0.1:0`.
//!
//! Every test asserts the exact status (401 `invalid_token`, 400 `invalid_request`, 401 without an
//! error code, or 403 `insufficient_scope`), the exact RFC 6750 challenge, that the challenge is
//! visible ASCII whatever the token carried, and — through a per-request timeout — that nothing
//! hangs. A 500, a panic in the server (which would surface as a dropped connection) or a timeout
//! fails the test. Where a hostile token is derived from a genuine one, the genuine one is shown to
//! pass first, so each test can fail.
//!
//! The guard trusts three issuers, as a real deployment might:
//! - [`ISSUER_A`]: keys published by a real JWKS server (`tests/support`), RFC 9068 strict mode, at
//!   most one hour of token lifetime. Publishes an RSA, a P-256 and an Ed25519 key.
//! - [`ISSUER_B`]: another authorization server with its own static P-256 key.
//! - [`ISSUER_HMAC`]: a shared-secret issuer that also holds an RSA key (HS256 and RS256 allowed),
//!   the configuration in which algorithm confusion would bite if keys were chosen by `alg` alone.

use bearer_guard::testing::demo as example;
mod support;

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bearer_guard::testing::{SigningKey, TokenBuilder, b64};
use bearer_guard::{
    Algorithm, BearerError, Guard, Issuer, JwksOptions, KeySet, Rejection, TokenError,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use support::Idp;
use tokio::time::Instant;

const ISSUER_A: &str = "https://issuer-a.example";
const ISSUER_B: &str = "https://issuer-b.example";
const ISSUER_HMAC: &str = "https://issuer-hmac.example";
const AUDIENCE: &str = example::DEMO_AUDIENCE;
const REALM: &str = "payments";
const READ: &str = "payments:read";
/// No request may take longer than this, whatever it carries.
const PATIENCE: Duration = Duration::from_secs(5);

/// Generated once per test binary: RSA generation is the slow part of the setup.
struct Keys {
    rsa: SigningKey,
    ec: SigningKey,
    ed: SigningKey,
    /// ISSUER_B's key.
    other_issuer: SigningKey,
    /// ISSUER_HMAC's RSA key, published under `hmac-issuer-rsa`.
    hmac_issuer_rsa: SigningKey,
    hmac_secret: Vec<u8>,
    attacker_rsa: SigningKey,
    attacker_ec: SigningKey,
    attacker_p384: SigningKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let generate = |alg| SigningKey::generate(alg).expect("key generation");
        Keys {
            rsa: generate(Algorithm::RS256),
            ec: generate(Algorithm::ES256),
            ed: generate(Algorithm::EdDSA),
            other_issuer: generate(Algorithm::ES256),
            hmac_issuer_rsa: generate(Algorithm::RS256).with_kid(Some("hmac-issuer-rsa")),
            hmac_secret: b"a shared secret of at least 32 bytes, for HS256 tests".to_vec(),
            attacker_rsa: generate(Algorithm::RS256),
            attacker_ec: generate(Algorithm::ES256),
            attacker_p384: generate(Algorithm::ES384),
        }
    })
}

/// The payments API behind a guard trusting the three issuers, served on `127.0.0.1:0`.
struct Api {
    base: String,
    http: reqwest::Client,
    idp: Idp,
}

impl Api {
    async fn start() -> Api {
        Api::start_with(JwksOptions::default()).await
    }

    async fn start_with(options: JwksOptions) -> Api {
        let k = keys();
        let idp = Idp::start(&[&k.rsa, &k.ec, &k.ed]).await;
        let hmac_keys = KeySet::hmac_secret(&k.hmac_secret, Some("hmac-issuer-secret"))
            .expect("secret loads")
            .with(
                KeySet::from_rsa_pem(
                    k.hmac_issuer_rsa.public_pem().expect("pem"),
                    Some("hmac-issuer-rsa"),
                )
                .expect("pem loads"),
            );
        let guard = Guard::builder()
            .issuer(
                Issuer::new(ISSUER_A)
                    .audience(AUDIENCE)
                    .jwks_uri(idp.jwks_uri())
                    .jwks_options(options)
                    .require_rfc9068(true)
                    .max_token_lifetime(Duration::from_secs(3600)),
            )
            .issuer(
                Issuer::new(ISSUER_B)
                    .audience(AUDIENCE)
                    .keys(k.other_issuer.key_set()),
            )
            .issuer(
                Issuer::new(ISSUER_HMAC)
                    .audience(AUDIENCE)
                    .algorithms([Algorithm::RS256, Algorithm::HS256])
                    .keys(hmac_keys),
            )
            .realm(REALM)
            .require_keys_at_startup(true)
            .build()
            .await
            .expect("guard builds");
        let base = support::serve(example::app(guard)).await;
        let http = reqwest::Client::builder()
            .timeout(PATIENCE)
            .build()
            .expect("client");
        Api { base, http, idp }
    }

    /// `GET /payments` with these `Authorization` header values (none, one or several).
    async fn get_with(&self, authorization: &[HeaderValue], query: &str) -> Reply {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append(AUTHORIZATION, value.clone());
        }
        let url = format!("{}/payments{query}", self.base);
        let started = Instant::now();
        let response = self
            .http
            .get(&url)
            .headers(headers)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url} failed (hang or dropped connection): {err}"));
        Reply::read(response, started).await
    }

    /// `GET /payments` with `Authorization: Bearer <token>`.
    async fn get(&self, token: &str) -> Reply {
        let value = HeaderValue::try_from(format!("Bearer {token}")).expect("token is a header");
        self.get_with(&[value], "").await
    }

    async fn accepts(&self, token: &str) {
        let reply = self.get(token).await;
        assert_eq!(reply.status, StatusCode::OK, "a genuine token: {reply:?}");
    }

    /// Each token is answered 401 `invalid_token` with the challenge for `expected`.
    async fn rejects_all(&self, tokens: &[String], expected: &TokenError) {
        for token in tokens {
            self.get(token).await.is_invalid_token(expected, token);
        }
    }
}

/// What came back, with the checks every answer must pass.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    elapsed: Duration,
}

impl Reply {
    async fn read(response: reqwest::Response, started: Instant) -> Reply {
        let status = response.status();
        let challenge = response.headers().get(WWW_AUTHENTICATE).map(|value| {
            // RFC 9110 field values; ours must stay visible ASCII whatever the token carried.
            let bytes = value.as_bytes();
            assert!(
                bytes.iter().all(|b| (0x20..0x7f).contains(b)),
                "challenge is not visible ASCII: {value:?}"
            );
            value.to_str().expect("ASCII").to_owned()
        });
        response.bytes().await.expect("body arrives");
        let elapsed = started.elapsed();
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR);
        Reply {
            status,
            challenge,
            elapsed,
        }
    }

    fn is_invalid_token(&self, expected: &TokenError, token: &str) {
        let challenge = Rejection::from(expected.clone())
            .www_authenticate(Some(REALM))
            .expect("a challenge");
        let shown = token.get(..token.len().min(160)).unwrap_or(token);
        assert_eq!(
            (self.status, self.challenge.as_deref()),
            (StatusCode::UNAUTHORIZED, challenge.to_str().ok()),
            "expected {expected:?} for {shown}"
        );
    }

    fn is_invalid_request(&self, expected: BearerError) {
        let challenge = Rejection::from(expected.clone())
            .www_authenticate(Some(REALM))
            .expect("a challenge");
        assert_eq!(
            (self.status, self.challenge.as_deref()),
            (StatusCode::BAD_REQUEST, challenge.to_str().ok()),
            "expected {expected:?}"
        );
    }

    fn is_no_credentials(&self) {
        assert_eq!(
            (self.status, self.challenge.as_deref()),
            (StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="payments""#)),
        );
    }

    fn is_insufficient_scope(&self, why: &str) {
        assert_eq!(
            (self.status, self.challenge.as_deref()),
            (
                StatusCode::FORBIDDEN,
                Some(
                    r#"Bearer realm="payments", error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:read""#
                )
            ),
            "{why}"
        );
    }
}

/// A genuine ISSUER_A access token (RFC 9068 shaped) signed by `key`, with `payments:read`.
fn genuine(key: &SigningKey) -> TokenBuilder<'_> {
    key.token(ISSUER_A, AUDIENCE).typ("at+jwt").scope(READ)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A complete, valid ISSUER_A payload as JSON text, for tokens assembled by hand.
fn claims_json() -> String {
    let now = now();
    format!(
        r#"{{"iss":"{ISSUER_A}","aud":"{AUDIENCE}","sub":"billing","client_id":"billing","iat":{now},"exp":{},"jti":"j-{now}","scope":"{READ}"}}"#,
        now + 300
    )
}

/// `header.payload.signature` from parts.
fn compact(header: &str, payload: &str, signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header), b64(payload), b64(signature))
}

/// `header.payload.signature` from raw bytes (not necessarily UTF-8 JSON).
fn compact_bytes(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}.{}", b64(header), b64(payload), b64([0x11; 256]))
}

/// Sign arbitrary header and payload bytes with `key`.
fn sign_bytes_token(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = key.sign_bytes(input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature))
}

/// A valid payload whose `sub` holds these raw bytes.
fn claims_json_with_raw(sub: &[u8]) -> Vec<u8> {
    let payload = claims_json();
    let (before, after) = payload.split_once("billing").unwrap();
    [before.as_bytes(), sub, after.as_bytes()].concat()
}

fn segments(token: &str) -> Vec<&str> {
    token.split('.').collect()
}

fn decode(segment: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(segment).expect("base64url")
}

/// The same token with its signature replaced.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let parts = segments(token);
    format!("{}.{}.{}", parts[0], parts[1], b64(signature))
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::try_from(text).expect("valid header value")
}

// --- algorithms --------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_alg_none_in_every_spelling() {
    let api = Api::start().await;
    let k = keys();
    let genuine_token = genuine(&k.rsa).sign().unwrap();
    api.accepts(&genuine_token).await;
    let genuine_signature = decode(segments(&genuine_token)[2]);
    let mut tokens = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE", "none ", " none"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": k.rsa.kid()}).to_string();
        let unsigned = format!("{}.{}.", b64(&header), b64(claims_json()));
        tokens.push(unsigned.clone());
        tokens.push(format!("{unsigned}AA"));
        tokens.push(compact(&header, &claims_json(), &genuine_signature));
        // And with a real RSA signature over the alg-none header.
        tokens.push(k.rsa.sign_raw(&header, &claims_json()).unwrap());
    }
    api.rejects_all(&tokens, &TokenError::UnsupportedAlgorithm)
        .await;
}

#[tokio::test]
async fn rejects_unknown_miscased_and_non_string_alg() {
    let api = Api::start().await;
    let k = keys();
    let mut unsupported = Vec::new();
    for alg in [
        "", "rs256", "Rs256", "RS256 ", "RS1", "ES256K", "Ed25519", "HS1",
    ] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": k.rsa.kid()}).to_string();
        unsupported.push(k.rsa.sign_raw(&header, &claims_json()).unwrap());
    }
    api.rejects_all(&unsupported, &TokenError::UnsupportedAlgorithm)
        .await;
    let mut malformed = Vec::new();
    for alg in [
        json!(null),
        json!(256),
        json!(["RS256"]),
        json!({"RS256": 1}),
    ] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": k.rsa.kid()}).to_string();
        malformed.push(k.rsa.sign_raw(&header, &claims_json()).unwrap());
    }
    let no_alg = json!({"typ": "at+jwt", "kid": k.rsa.kid()}).to_string();
    malformed.push(k.rsa.sign_raw(&no_alg, &claims_json()).unwrap());
    api.rejects_all(&malformed, &TokenError::Malformed(""))
        .await;
}

/// Encodings of a public key an attacker might try as an HMAC secret.
fn public_key_as_secrets(key: &SigningKey) -> Vec<Vec<u8>> {
    let pem = key.public_pem().expect("public key");
    let der: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(der).expect("PEM body");
    let jwk = key.public_jwk();
    let mut secrets = vec![
        pem.clone().into_bytes(),
        pem.trim_end().as_bytes().to_vec(),
        pem.replace('\n', "\r\n").into_bytes(),
        der,
        jwk.to_string().into_bytes(),
        serde_json::to_vec_pretty(&jwk).unwrap(),
        SigningKey::jwks([key]).to_string().into_bytes(),
    ];
    // The raw key bytes: the RSA modulus, or the EC point (uncompressed, and x alone).
    if let Some(n) = jwk["n"].as_str() {
        secrets.push(decode(n));
    }
    if let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) {
        let mut point = vec![0x04];
        point.extend(decode(x));
        point.extend(decode(y));
        secrets.push(point);
        secrets.push(decode(x));
    }
    secrets
}

/// `alg` = HSxxx, `kid` = the public key's own, MACed with that public key in every encoding.
fn hmac_confusion_tokens(key: &SigningKey, issuer: &str) -> Vec<(Algorithm, String)> {
    let mut tokens = Vec::new();
    for secret in public_key_as_secrets(key) {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let forger = SigningKey::hmac(alg, &secret).with_kid(key.kid());
            let token = forger
                .token(issuer, AUDIENCE)
                .typ("at+jwt")
                .scope(READ)
                .sign()
                .unwrap();
            tokens.push((alg, token));
        }
    }
    tokens
}

#[tokio::test]
async fn rejects_hmac_signed_with_the_rsa_public_key_as_secret() {
    let api = Api::start().await;
    let k = keys();
    api.accepts(&genuine(&k.rsa).sign().unwrap()).await;
    for (alg, token) in hmac_confusion_tokens(&k.rsa, ISSUER_A) {
        api.get(&token)
            .await
            .is_invalid_token(&TokenError::AlgorithmNotAllowed(alg), &token);
    }
}

#[tokio::test]
async fn rejects_hmac_signed_with_the_ec_public_key_as_secret() {
    let api = Api::start().await;
    let k = keys();
    api.accepts(&genuine(&k.ec).sign().unwrap()).await;
    for key in [&k.ec, &k.ed] {
        for (alg, token) in hmac_confusion_tokens(key, ISSUER_A) {
            api.get(&token)
                .await
                .is_invalid_token(&TokenError::AlgorithmNotAllowed(alg), &token);
        }
    }
}

#[tokio::test]
async fn hmac_confusion_fails_even_where_hmac_is_allowed() {
    let api = Api::start().await;
    let k = keys();
    // The issuer's genuine tokens, RS256 and HS256, both pass.
    api.accepts(
        &k.hmac_issuer_rsa
            .token(ISSUER_HMAC, AUDIENCE)
            .scope(READ)
            .sign()
            .unwrap(),
    )
    .await;
    let secret =
        SigningKey::hmac(Algorithm::HS256, &k.hmac_secret).with_kid(Some("hmac-issuer-secret"));
    api.accepts(
        &secret
            .token(ISSUER_HMAC, AUDIENCE)
            .scope(READ)
            .sign()
            .unwrap(),
    )
    .await;
    // HS256 MACed with the RSA public key and naming the RSA key: the RSA key never verifies HMAC.
    for (alg, token) in hmac_confusion_tokens(&k.hmac_issuer_rsa, ISSUER_HMAC) {
        let expected = match alg {
            Algorithm::HS256 => TokenError::KeyMismatch,
            other => TokenError::AlgorithmNotAllowed(other),
        };
        api.get(&token).await.is_invalid_token(&expected, &token);
    }
    // Without a kid, the only HS256 key is the real secret: the forged MAC does not verify.
    for secret in public_key_as_secrets(&k.hmac_issuer_rsa) {
        let forger = SigningKey::hmac(Algorithm::HS256, &secret);
        let token = forger
            .token(ISSUER_HMAC, AUDIENCE)
            .scope(READ)
            .sign()
            .unwrap();
        api.get(&token)
            .await
            .is_invalid_token(&TokenError::InvalidSignature, &token);
    }
}

#[tokio::test]
async fn rejects_kid_naming_a_key_of_another_type() {
    let api = Api::start().await;
    let k = keys();
    let ec_kid = k.ec.kid();
    let cases = [
        // (signer, kid it claims)
        (&k.rsa, k.ec.kid()),
        (&k.rsa, k.ed.kid()),
        (&k.ec, k.rsa.kid()),
        (&k.ec, k.ed.kid()),
        (&k.ed, k.rsa.kid()),
        (&k.ed, ec_kid),
        // ES384 with the P-256 key's kid: right family name, wrong curve.
        (&k.attacker_p384, ec_kid),
    ];
    let tokens: Vec<String> = cases
        .into_iter()
        .map(|(signer, kid)| genuine(signer).kid(kid).sign().unwrap())
        .collect();
    api.rejects_all(&tokens, &TokenError::KeyMismatch).await;
    // The RSA JWK says `alg: RS256`: a PS256 signature by the very same key is refused.
    let rsa_as_pss = genuine(&k.rsa).alg("PS256").sign().unwrap();
    api.rejects_all(&[rsa_as_pss], &TokenError::KeyMismatch)
        .await;
}

#[tokio::test]
async fn rejects_token_signed_with_another_configured_issuers_key() {
    let api = Api::start().await;
    let k = keys();
    // ISSUER_B's own token passes (not strict: any typ).
    api.accepts(
        &k.other_issuer
            .token(ISSUER_B, AUDIENCE)
            .scope(READ)
            .sign()
            .unwrap(),
    )
    .await;
    // ISSUER_B's key signing for ISSUER_A: its kid is not ISSUER_A's ...
    let named = genuine(&k.other_issuer).sign().unwrap();
    api.rejects_all(&[named], &TokenError::UnknownKey).await;
    // ... claiming ISSUER_A's P-256 kid, or no kid at all: the signature does not verify.
    let borrowed_kid = genuine(&k.other_issuer).kid(k.ec.kid()).sign().unwrap();
    let no_kid = genuine(&k.other_issuer).kid(None).sign().unwrap();
    api.rejects_all(&[borrowed_kid, no_kid], &TokenError::InvalidSignature)
        .await;
    // And the other way round: ISSUER_A's key signing for ISSUER_B.
    let reverse = k.ec.token(ISSUER_B, AUDIENCE).scope(READ).sign().unwrap();
    api.rejects_all(&[reverse], &TokenError::UnknownKey).await;
    let reverse_kid =
        k.ec.token(ISSUER_B, AUDIENCE)
            .scope(READ)
            .kid(k.other_issuer.kid())
            .sign()
            .unwrap();
    api.rejects_all(&[reverse_kid], &TokenError::InvalidSignature)
        .await;
}

// --- header parameters that point at keys --------------------------------------------------------

#[tokio::test]
async fn jku_and_x5u_are_never_fetched() {
    let api = Api::start().await;
    let k = keys();
    // The attacker's server publishes the attacker's keys and records every request.
    let attacker = Idp::start(&[&k.attacker_rsa, &k.attacker_ec]).await;
    let jku = attacker.jwks_uri();
    let x5u = format!("{}/cert.pem", attacker.base());
    let forged = [
        genuine(&k.attacker_rsa).header("jku", jku.as_str()).sign(),
        genuine(&k.attacker_ec).header("x5u", x5u.as_str()).sign(),
        genuine(&k.attacker_ec)
            .header("jku", jku.as_str())
            .header("x5u", x5u.as_str())
            .sign(),
    ]
    .map(Result::unwrap);
    api.rejects_all(&forged, &TokenError::UnknownKey).await;
    // Naming our own kid, or none, with the attacker's URL: still verified with our keys only.
    let ours = [
        genuine(&k.attacker_rsa)
            .kid(k.rsa.kid())
            .header("jku", jku.as_str())
            .sign(),
        genuine(&k.attacker_ec)
            .kid(None)
            .header("jku", jku.as_str())
            .header("x5u", x5u.as_str())
            .sign(),
    ]
    .map(Result::unwrap);
    api.rejects_all(&ours, &TokenError::InvalidSignature).await;
    // An issuer URL pointing at the attacker's server is not an issuer we trust.
    let own_issuer = k
        .attacker_ec
        .token(attacker.base(), AUDIENCE)
        .typ("at+jwt")
        .header("jku", jku.as_str())
        .sign()
        .unwrap();
    api.rejects_all(&[own_issuer], &TokenError::UnknownIssuer)
        .await;
    // A genuine token carrying the headers is accepted: they are ignored, not followed.
    api.accepts(&genuine(&k.ec).header("jku", jku.as_str()).sign().unwrap())
        .await;
    assert_eq!(
        attacker.hits().len(),
        0,
        "the attacker's server was contacted"
    );
}

#[tokio::test]
async fn embedded_jwk_and_x5c_are_never_trusted() {
    let api = Api::start().await;
    let k = keys();
    let jwk = k.attacker_ec.public_jwk();
    let pem = k.attacker_ec.public_pem().unwrap();
    let spki: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let with_kid = [
        genuine(&k.attacker_ec).header("jwk", jwk.clone()).sign(),
        genuine(&k.attacker_ec).header("x5c", json!([spki])).sign(),
    ]
    .map(Result::unwrap);
    api.rejects_all(&with_kid, &TokenError::UnknownKey).await;
    let without_kid = [
        genuine(&k.attacker_ec)
            .kid(None)
            .header("jwk", jwk.clone())
            .sign(),
        genuine(&k.attacker_ec)
            .kid(None)
            .header("x5c", json!([spki]))
            .sign(),
        // The embedded key carrying our kid.
        genuine(&k.attacker_ec)
            .kid(k.ec.kid())
            .header("jwk", {
                let mut jwk = jwk.clone();
                jwk["kid"] = k.ec.kid().into();
                jwk
            })
            .sign(),
    ]
    .map(Result::unwrap);
    api.rejects_all(&without_kid, &TokenError::InvalidSignature)
        .await;
}

#[tokio::test]
async fn rejects_unknown_crit() {
    let api = Api::start().await;
    let k = keys();
    let tokens: Vec<String> = [
        json!(["exp"]),
        json!(["b64"]),
        json!(["jku"]),
        json!(["http://example.com/unknown-extension"]),
        json!([]),
        json!(null),
        json!("b64"),
    ]
    .into_iter()
    .map(|crit| {
        genuine(&k.rsa)
            .header("crit", crit)
            .header("b64", false)
            .sign()
            .unwrap()
    })
    .collect();
    api.rejects_all(&tokens, &TokenError::CriticalHeader).await;
}

// --- signatures --------------------------------------------------------------------------------

#[tokio::test]
async fn rejects_stripped_signature() {
    let api = Api::start().await;
    let k = keys();
    let token = genuine(&k.ec).sign().unwrap();
    api.accepts(&token).await;
    let parts = segments(&token);
    let tokens = [
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}..", parts[0], parts[1]),
        format!("{}.{}.{}.", parts[0], parts[1], parts[2]),
    ];
    api.rejects_all(&tokens, &TokenError::Malformed("")).await;
}

#[tokio::test]
async fn rejects_truncated_signature() {
    let api = Api::start().await;
    let k = keys();
    let mut tokens = Vec::new();
    for key in [&k.rsa, &k.ec, &k.ed] {
        let token = genuine(key).sign().unwrap();
        api.accepts(&token).await;
        let signature = decode(segments(&token)[2]);
        for keep in [signature.len() - 1, signature.len() / 2, 1] {
            tokens.push(with_signature(&token, &signature[..keep]));
        }
        // Longer than the key's signature, too.
        let mut extended = signature.clone();
        extended.extend_from_slice(&[0; 8]);
        tokens.push(with_signature(&token, &extended));
    }
    api.rejects_all(&tokens, &TokenError::InvalidSignature)
        .await;
    // Longer than any supported algorithm's signature: refused before any key is touched.
    let huge = with_signature(&genuine(&k.rsa).sign().unwrap(), &[0x5a; 2048]);
    api.rejects_all(&[huge], &TokenError::Malformed("")).await;
}

#[tokio::test]
async fn rejects_bit_flipped_signature() {
    let api = Api::start().await;
    let k = keys();
    let mut tokens = Vec::new();
    for key in [&k.rsa, &k.ec, &k.ed] {
        let token = genuine(key).sign().unwrap();
        api.accepts(&token).await;
        let signature = decode(segments(&token)[2]);
        for byte in [0, signature.len() / 2, signature.len() - 1] {
            for bit in [0, 7] {
                let mut flipped = signature.clone();
                flipped[byte] ^= 1 << bit;
                tokens.push(with_signature(&token, &flipped));
            }
        }
        tokens.push(with_signature(&token, &vec![0; signature.len()]));
    }
    api.rejects_all(&tokens, &TokenError::InvalidSignature)
        .await;
}

#[tokio::test]
async fn rejects_payload_swapped_after_signing() {
    let api = Api::start().await;
    let k = keys();
    let reader = genuine(&k.rsa)
        .claim("client_id", "reporting")
        .sign()
        .unwrap();
    let writer = genuine(&k.rsa)
        .claim("client_id", "billing")
        .scope("payments:read payments:write")
        .sign()
        .unwrap();
    let ec = genuine(&k.ec).scope("payments:read admin").sign().unwrap();
    for token in [&reader, &writer, &ec] {
        api.accepts(token).await;
    }
    let (r, w, e) = (segments(&reader), segments(&writer), segments(&ec));
    let swapped = [
        format!("{}.{}.{}", r[0], w[1], r[2]),
        format!("{}.{}.{}", w[0], r[1], w[2]),
        format!("{}.{}.{}", r[0], e[1], r[2]),
        format!("{}.{}.{}", e[0], r[1], e[2]),
        // Header swapped instead: the EC token's header over the RSA payload and signature.
        format!("{}.{}.{}", e[0], w[1], w[2]),
    ];
    api.rejects_all(&swapped, &TokenError::InvalidSignature)
        .await;
}

// --- JSON --------------------------------------------------------------------------------------

/// `header` and `payload` JSON text, signed as given by ISSUER_A's RSA key.
fn signed_raw(header: &str, payload: &str) -> String {
    keys().rsa.sign_raw(header, payload).unwrap()
}

fn rsa_header() -> String {
    json!({"alg": "RS256", "typ": "at+jwt", "kid": keys().rsa.kid()}).to_string()
}

#[tokio::test]
async fn rejects_duplicate_exp_claim() {
    let api = Api::start().await;
    api.accepts(&signed_raw(&rsa_header(), &claims_json()))
        .await;
    let past = now() - 3600;
    let future = now() + 300;
    let base = claims_json();
    let tokens = [
        base.replacen('{', &format!(r#"{{"exp":{past},"#), 1),
        base.replacen('{', &format!(r#"{{"exp":{future},"#), 1),
        base.replace('}', &format!(r#","exp":{past}}}"#)),
    ]
    .map(|payload| signed_raw(&rsa_header(), &payload));
    api.rejects_all(&tokens, &TokenError::InvalidClaim("exp"))
        .await;
}

#[tokio::test]
async fn rejects_duplicate_registered_claims() {
    let api = Api::start().await;
    let base = claims_json();
    for (claim, duplicate) in [
        ("iss", r#""iss":"https://evil.example""#.to_owned()),
        ("aud", format!(r#""aud":"{AUDIENCE}""#)),
        (
            "scope",
            r#""scope":"payments:read payments:write""#.to_owned(),
        ),
        ("client_id", r#""client_id":"admin""#.to_owned()),
        ("iat", r#""iat":0"#.to_owned()),
    ] {
        let payload = base.replace('}', &format!(",{duplicate}}}"));
        let token = signed_raw(&rsa_header(), &payload);
        api.get(&token)
            .await
            .is_invalid_token(&TokenError::InvalidClaim(claim), &token);
    }
}

#[tokio::test]
async fn rejects_duplicate_header_parameters() {
    let api = Api::start().await;
    let k = keys();
    let kid = k.rsa.kid().unwrap();
    let headers = [
        format!(r#"{{"alg":"none","alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","alg":"none","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","alg":"HS256","typ":"at+jwt","kid":"{kid}"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","kid":"other"}}"#),
        format!(r#"{{"alg":"RS256","typ":"JWT","typ":"at+jwt","kid":"{kid}"}}"#),
        // Parameters the guard ignores, and nested ones, are no exception.
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","x5u":"a","x5u":"b"}}"#),
        format!(
            r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","jwk":{{"kty":"RSA","kty":"EC"}}}}"#
        ),
    ];
    let tokens = headers.map(|header| signed_raw(&header, &claims_json()));
    api.rejects_all(&tokens, &TokenError::Malformed("")).await;
}

#[tokio::test]
async fn huge_negative_and_string_exp_are_refused() {
    let api = Api::start().await;
    let with_exp = |exp: &str| {
        let payload = claims_json();
        let start = payload.find(r#""exp":"#).unwrap() + 6;
        let end = start + payload[start..].find(',').unwrap();
        signed_raw(
            &rsa_header(),
            &format!("{}{exp}{}", &payload[..start], &payload[end..]),
        )
    };
    api.accepts(&with_exp(&(now() + 60).to_string())).await;
    // Far future: refused by the issuer's one-hour lifetime policy, never overflowing.
    let huge = [
        "1e300",
        "18446744073709551615",
        "9223372036854775807",
        "1.7976931348623157e308",
    ]
    .map(with_exp);
    api.rejects_all(&huge, &TokenError::LifetimeTooLong).await;
    let past = [
        "-1",
        "0",
        "-1e300",
        "-9223372036854775808",
        "1e-320",
        "-0.0",
    ]
    .map(with_exp);
    api.rejects_all(&past, &TokenError::Expired).await;
    let wrong_type = [
        "\"9999999999\"",
        "\"1e10\"",
        "true",
        "[9999999999]",
        "{\"$date\":9999999999}",
    ]
    .map(with_exp);
    api.rejects_all(&wrong_type, &TokenError::InvalidClaim("exp"))
        .await;
    // Beyond f64: serde_json refuses the number itself, so the payload is malformed JSON.
    api.rejects_all(
        &["1e400", "-1e400"].map(with_exp),
        &TokenError::Malformed(""),
    )
    .await;
    api.rejects_all(&[with_exp("null")], &TokenError::MissingClaim("exp"))
        .await;
}

#[tokio::test]
async fn rejects_nested_jwt() {
    let api = Api::start().await;
    let k = keys();
    let inner = genuine(&k.rsa).sign().unwrap();
    api.accepts(&inner).await;
    let header = json!({"alg": "RS256", "typ": "at+jwt", "cty": "JWT", "kid": k.rsa.kid()});
    let tokens = [
        // The inner JWT as the payload (RFC 7519 §5.2), and as a JSON string.
        signed_raw(&header.to_string(), &inner),
        signed_raw(
            &header.to_string(),
            &Value::from(inner.as_str()).to_string(),
        ),
        // Signed by the attacker: the inner token is genuine, the outer one is not ours.
        k.attacker_rsa
            .sign_raw(
                &json!({"alg": "RS256", "typ": "at+jwt", "cty": "JWT"}).to_string(),
                &inner,
            )
            .unwrap(),
    ];
    api.rejects_all(&tokens, &TokenError::Malformed("")).await;
}

#[tokio::test]
async fn rejects_jwe_compact_serialization() {
    let api = Api::start().await;
    let k = keys();
    let mut tokens = Vec::new();
    for (alg, enc) in [
        ("RSA-OAEP-256", "A256GCM"),
        ("dir", "A128CBC-HS256"),
        ("none", "none"),
    ] {
        let header = json!({"alg": alg, "enc": enc, "kid": k.rsa.kid(), "cty": "JWT"});
        tokens.push(format!(
            "{}.{}.{}.{}.{}",
            b64(header.to_string()),
            if alg == "dir" {
                String::new()
            } else {
                b64([7; 256])
            },
            b64([1; 12]),
            b64(claims_json()),
            b64([2; 16]),
        ));
    }
    // A genuine JWS with two extra segments.
    let genuine_token = genuine(&k.rsa).sign().unwrap();
    tokens.push(format!("{genuine_token}.AAAA.AAAA"));
    api.rejects_all(&tokens, &TokenError::Malformed("")).await;
}

#[tokio::test]
async fn rejects_non_canonical_base64_and_padding() {
    let api = Api::start().await;
    let k = keys();
    let token = genuine(&k.rsa).sign().unwrap();
    api.accepts(&token).await;
    let parts = segments(&token);
    let mut malformed = vec![
        format!("{token}="),
        format!("{token}=="),
        // Standard alphabet instead of base64url.
        token.replace('-', "+").replace('_', "/"),
    ];
    assert_ne!(
        malformed[2], token,
        "the token has base64url-only characters"
    );
    // Non-zero unused bits in the last character of each segment (RFC 4648 §3.5).
    for index in 0..3 {
        let segment = parts[index];
        if segment.len().is_multiple_of(4) {
            continue;
        }
        let last = segment.as_bytes()[segment.len() - 1];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let value = alphabet.iter().position(|c| *c == last).unwrap();
        let mut noisy = segment.as_bytes().to_vec();
        *noisy.last_mut().unwrap() = alphabet[value | 1];
        if noisy.last() == Some(&last) {
            *noisy.last_mut().unwrap() = alphabet[value ^ 1];
        }
        let mut rebuilt: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        rebuilt[index] = String::from_utf8(noisy).unwrap();
        malformed.push(rebuilt.join("."));
    }
    assert!(malformed.len() >= 4, "at least one segment has unused bits");
    api.rejects_all(&malformed, &TokenError::Malformed(""))
        .await;

    // Not a b64token at all: padding inside, whitespace, other characters — a malformed request.
    for bad in [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{} {}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}%3D", parts[0], parts[1], parts[2]),
        format!("{}.{}.\"{}\"", parts[0], parts[1], parts[2]),
        format!("={token}"),
    ] {
        api.get_with(&[header_value(&format!("Bearer {bad}"))], "")
            .await
            .is_invalid_request(BearerError::Malformed);
    }
}

#[tokio::test]
async fn rejects_garbage_tokens() {
    let api = Api::start().await;
    let tokens = [
        "a",
        "a.b",
        "a.b.c",
        "...",
        ".",
        "eyJ.eyJ.eyJ",
        "e30.e30.e30",
        "bnVsbA.bnVsbA.AA",
        "W10.W10.AA",
        "IiI.IiI.AA",
    ]
    .map(str::to_owned);
    api.rejects_all(&tokens, &TokenError::Malformed("")).await;
    // JSON must be UTF-8 (RFC 8725 §3.7): a signed token with invalid UTF-8 in a claim or header.
    let mut latin1_payload = claims_json().into_bytes();
    latin1_payload.extend_from_slice(b"\xff");
    let header = rsa_header();
    let latin1 = compact_bytes(header.as_bytes(), &claims_json_with_raw(b"\xe9t\xe9"));
    let k = keys();
    let signed = [
        sign_bytes_token(&k.rsa, header.as_bytes(), &latin1_payload),
        sign_bytes_token(
            &k.rsa,
            header.as_bytes(),
            &claims_json_with_raw(b"\xe9t\xe9"),
        ),
        sign_bytes_token(
            &k.rsa,
            b"{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"\xff\"}",
            claims_json().as_bytes(),
        ),
        latin1,
    ];
    api.rejects_all(&signed, &TokenError::Malformed("")).await;
}

// --- hostile strings -----------------------------------------------------------------------------

const HOSTILE_STRINGS: [&str; 10] = [
    "\u{0}",
    "\r\nX-Injected: yes",
    "a\"b\\c",
    "\u{7f}\u{1b}[31m",
    "\u{202e}gnp.exe",
    "🔑",
    "ﬁ",
    "../../../etc/passwd",
    "%0d%0a",
    "\u{feff}",
];

#[tokio::test]
async fn control_characters_and_unicode_in_kid_are_unknown_keys() {
    let api = Api::start().await;
    let k = keys();
    let mut tokens: Vec<String> = HOSTILE_STRINGS
        .iter()
        .map(|kid| genuine(&k.ec).kid(Some(kid)).sign().unwrap())
        .collect();
    let long_kid = "k".repeat(4000);
    tokens.push(genuine(&k.ec).kid(Some(&long_kid)).sign().unwrap());
    // Our own kid with something appended.
    let padded = format!("{}\u{0}", k.ec.kid().unwrap());
    tokens.push(genuine(&k.ec).kid(Some(&padded)).sign().unwrap());
    api.rejects_all(&tokens, &TokenError::UnknownKey).await;
    // A kid that is not a string at all.
    let numeric = genuine(&k.ec).header("kid", 7).sign().unwrap();
    api.rejects_all(&[numeric], &TokenError::Malformed(""))
        .await;
}

#[tokio::test]
async fn control_characters_and_unicode_in_iss_are_unknown_issuers() {
    let api = Api::start().await;
    let k = keys();
    let mut issuers: Vec<String> = HOSTILE_STRINGS
        .iter()
        .flat_map(|s| [format!("{ISSUER_A}{s}"), format!("{s}{ISSUER_A}")])
        .collect();
    issuers.extend([
        format!("{ISSUER_A}/"),
        ISSUER_A.to_uppercase(),
        // Cyrillic 'і' for the Latin 'i'.
        ISSUER_A.replace("issuer", "іssuer"),
        String::new(),
    ]);
    let tokens: Vec<String> = issuers
        .iter()
        .map(|iss| genuine(&k.ec).claim("iss", iss.as_str()).sign().unwrap())
        .collect();
    api.rejects_all(&tokens, &TokenError::UnknownIssuer).await;
}

#[tokio::test]
async fn control_characters_and_unicode_in_scopes_grant_nothing() {
    let api = Api::start().await;
    let k = keys();
    for scope in [
        "payments:read\u{0}",
        "payments:read\r\n",
        "payments:read\tadmin",
        "\u{feff}payments:read",
        "pаyments:read",
        "PAYMENTS:READ",
        "\"payments:read\"",
        "payments:read:all",
        "payments:*",
        "*",
    ] {
        let token = genuine(&k.ec).scope(scope).sign().unwrap();
        api.get(&token).await.is_insufficient_scope(scope);
        let as_array = genuine(&k.ec)
            .without_claim("scope")
            .claim("scp", json!([scope]))
            .sign()
            .unwrap();
        api.get(&as_array).await.is_insufficient_scope(scope);
    }
    // Hostile scopes next to the real one: granted, and the response is still well-formed.
    let mut noisy = HOSTILE_STRINGS.join(" ");
    noisy.push_str(" payments:read");
    api.accepts(&genuine(&k.ec).scope(&noisy).sign().unwrap())
        .await;
}

// --- request shape -------------------------------------------------------------------------------

/// A genuine token of exactly `length` bytes (an ignored claim pads it).
fn token_of_length(length: usize) -> String {
    let k = keys();
    for header_pad in 0..4 {
        let probe = genuine(&k.ec)
            .header("x", "p".repeat(header_pad))
            .claim("pad", "")
            .sign()
            .unwrap();
        // Each padding byte adds 4/3 base64 characters; search around the estimate.
        let estimate = (length.saturating_sub(probe.len())) * 3 / 4;
        for pad in estimate.saturating_sub(4)..estimate + 4 {
            let token = genuine(&k.ec)
                .header("x", "p".repeat(header_pad))
                .claim("pad", "x".repeat(pad))
                .sign()
                .unwrap();
            if token.len() == length {
                return token;
            }
        }
    }
    panic!("no token of {length} bytes");
}

#[tokio::test]
async fn token_of_8_kib_is_verified_and_8_kib_plus_one_is_refused_unparsed() {
    let api = Api::start().await;
    let limit = 8 * 1024;
    api.accepts(&token_of_length(limit)).await;
    let over = token_of_length(limit + 1);
    api.get(&over)
        .await
        .is_invalid_request(BearerError::TooLarge { limit });
    // Far over: still a 400 from the guard, not a server error.
    let far_over = format!("{over}{}", "A".repeat(56 * 1024));
    api.get(&far_over)
        .await
        .is_invalid_request(BearerError::TooLarge { limit });
}

#[tokio::test]
async fn hundred_authorization_headers_are_refused() {
    let api = Api::start().await;
    let token = genuine(&keys().ec).sign().unwrap();
    api.accepts(&token).await;
    let value = header_value(&format!("Bearer {token}"));
    for count in [2, 10, 90] {
        api.get_with(&vec![value.clone(); count], "")
            .await
            .is_invalid_request(BearerError::MultipleHeaders);
    }
    // At 100 (plus the client's own headers) hyper's header-count limit answers first.
    let reply = api.get_with(&vec![value.clone(); 100], "").await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // The valid token next to a bogus one, in either order.
    for pair in [
        [value.clone(), header_value("Bearer x.y.z")],
        [header_value("Basic dXNlcjpwYXNz"), value.clone()],
    ] {
        api.get_with(&pair, "")
            .await
            .is_invalid_request(BearerError::MultipleHeaders);
    }
}

#[tokio::test]
async fn token_in_query_string_is_ignored_when_not_enabled() {
    let api = Api::start().await;
    let token = genuine(&keys().ec).sign().unwrap();
    api.get_with(&[], &format!("?access_token={token}"))
        .await
        .is_no_credentials();
    api.get_with(&[], &format!("?access_token={token}&access_token={token}"))
        .await
        .is_no_credentials();
    // With a valid header, a query token (even garbage) is not looked at.
    let reply = api
        .get_with(
            &[header_value(&format!("Bearer {token}"))],
            "?access_token=garbage",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_authorization_headers_are_invalid_requests() {
    let api = Api::start().await;
    for bad in [
        &b"Bearer"[..],
        b"bearer",
        b"Bearer \xff\xfe",
        b"Bearer a,b",
        b"Bearer a;b",
        b"Bearer \"a.b.c\"",
    ] {
        let value = HeaderValue::from_bytes(bad).expect("a header value");
        api.get_with(&[value], "")
            .await
            .is_invalid_request(BearerError::Malformed);
    }
    // Other schemes carry no bearer token: no credentials.
    for other in ["Basic dXNlcjpwYXNz", "Token abc", "Bearerx abc", "Digest x"] {
        api.get_with(&[header_value(other)], "")
            .await
            .is_no_credentials();
    }
}

// --- floods, tokens of other kinds ---------------------------------------------------------------

#[tokio::test]
async fn unknown_kid_flood_costs_at_most_one_fetch_per_cooldown() {
    let api =
        Api::start_with(JwksOptions::default().unknown_kid_cooldown(Duration::from_secs(60))).await;
    let k = keys();
    const FLOOD: usize = 300;
    let tokens: Vec<String> = (0..FLOOD)
        .map(|n| {
            genuine(&k.attacker_ec)
                .kid(Some(&format!("flood-{n}-{}", now())))
                .sign()
                .unwrap()
        })
        .collect();
    let fetches_before = api.idp.fetches();
    let started = Instant::now();
    let replies = futures_util::future::join_all(tokens.iter().map(|token| api.get(token))).await;
    let elapsed = started.elapsed();
    for (reply, token) in replies.iter().zip(&tokens) {
        reply.is_invalid_token(&TokenError::UnknownKey, token);
    }
    let slowest = replies.iter().map(|reply| reply.elapsed).max().unwrap();
    let refetches = api.idp.fetches() - fetches_before;
    assert!(refetches <= 1, "{refetches} JWKS fetches for one flood");
    assert!(
        elapsed < PATIENCE && slowest < Duration::from_secs(3),
        "flood of {FLOOD} took {elapsed:?}, slowest {slowest:?}"
    );
    // The genuine keys still work during the flood's cooldown.
    api.accepts(&genuine(&k.ec).sign().unwrap()).await;
}

#[tokio::test]
async fn id_token_with_client_id_audience_is_rejected() {
    let api = Api::start().await;
    let k = keys();
    let id_token = |aud: Value| {
        k.rsa
            .token(ISSUER_A, AUDIENCE)
            .typ("JWT")
            .claim("aud", aud)
            .claim("sub", "user-42")
            .claim("azp", "billing")
            .claim("nonce", "n-0S6_WzA2Mj")
            .claim("auth_time", now() - 10)
            .claim("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")
            .without_claim("client_id")
            .without_claim("scope")
            .sign()
            .unwrap()
    };
    api.rejects_all(&[id_token(json!("billing"))], &TokenError::AudienceMismatch)
        .await;
    // Even naming the API among its audiences, an ID token is not typed as an access token.
    api.rejects_all(
        &[id_token(json!(["billing", AUDIENCE]))],
        &TokenError::WrongType,
    )
    .await;
}

#[tokio::test]
async fn rfc9068_mode_rejects_other_token_types() {
    let api = Api::start().await;
    let k = keys();
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        api.accepts(&genuine(&k.ec).typ(typ).sign().unwrap()).await;
    }
    let mut tokens: Vec<String> = [
        "JWT",
        "jwt",
        "application/jwt",
        "at+jwt ",
        " at+jwt",
        "at+jwt\u{0}",
        "at+jwt;v=1",
        "application/at+jwt; charset=utf-8",
        "application/",
        "at-jwt",
        "dpop+jwt",
        "logout+jwt",
        "secevent+jwt",
        "id_token+jwt",
        "",
    ]
    .into_iter()
    .map(|typ| genuine(&k.ec).typ(typ).sign().unwrap())
    .collect();
    tokens.push(genuine(&k.ec).without_header("typ").sign().unwrap());
    api.rejects_all(&tokens, &TokenError::WrongType).await;
    let not_a_string = genuine(&k.ec)
        .header("typ", json!(["at+jwt"]))
        .sign()
        .unwrap();
    api.rejects_all(&[not_a_string], &TokenError::Malformed(""))
        .await;
}

// --- what a refusal reveals ----------------------------------------------------------------------

/// Status, headers (without `date`) and body of `GET /payments` with this token.
async fn raw_answer(api: &Api, token: &str) -> (StatusCode, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let response = api
        .http
        .get(format!("{}/payments", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != http::header::DATE)
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn unsigned_probes_cannot_tell_configured_values_apart() {
    // Pairs of tokens that any client can make (signed with its own key), differing only in one
    // guessed configured value: the trusted one and an untrusted one get byte-identical answers.
    let api = Api::start().await;
    let k = keys();
    let forger = SigningKey::generate(Algorithm::ES256)
        .expect("key")
        .with_kid(k.ec.kid());
    let probe = || genuine(&forger);
    let pairs = [
        (
            "issuer",
            probe().sign().unwrap(),
            forger
                .token("https://untrusted.example", AUDIENCE)
                .typ("at+jwt")
                .scope(READ)
                .sign()
                .unwrap(),
        ),
        (
            "alg",
            probe().sign().unwrap(),
            probe().alg("ES384").sign().unwrap(),
        ),
        (
            "audience",
            probe().sign().unwrap(),
            forger
                .token(ISSUER_A, "untrusted-audience")
                .typ("at+jwt")
                .scope(READ)
                .sign()
                .unwrap(),
        ),
        (
            "kid",
            probe().sign().unwrap(),
            probe().kid(Some("untrusted-kid")).sign().unwrap(),
        ),
        (
            "expiry",
            probe().sign().unwrap(),
            probe()
                .expired_for(Duration::from_secs(3600))
                .sign()
                .unwrap(),
        ),
    ];
    for (what, trusted, untrusted) in pairs {
        let (trusted, untrusted) = (
            raw_answer(&api, &trusted).await,
            raw_answer(&api, &untrusted).await,
        );
        assert_eq!(trusted.0, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(trusted, untrusted, "a probe of the {what} is told apart");
    }
}

#[tokio::test]
async fn rejections_are_never_cached_and_say_so_behind_grpc_rendering() {
    let api = Api::start().await;
    let grpc = api
        .http
        .get(format!("{}/payments", api.base))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .send()
        .await
        .expect("answered");
    // A REST route asked as gRPC: the answer is a gRPC status, not a success.
    assert_eq!(grpc.status(), StatusCode::OK);
    assert_eq!(grpc.headers()["grpc-status"], "16");
    assert_eq!(grpc.headers()[http::header::CACHE_CONTROL], "no-store");
    for token in ["", "not-a-token"] {
        let reply = api
            .http
            .get(format!("{}/payments", api.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("answered");
        assert!(reply.status().is_client_error());
        assert_eq!(reply.headers()[http::header::CACHE_CONTROL], "no-store");
    }
}
