//! Test kit (feature `testing`): real keys, real tokens and a real authorization server, for
//! your own tests and ours. (About 500 lines, most of them the user documentation and the token
//! builder's one-line methods.)
//!
//! ## Keys and tokens
//!
//! [`SigningKey`] generates a fresh key (RSA-2048, P-256, P-384, Ed25519, or an HMAC secret),
//! publishes its public half as a JWK, and mints compact JWS tokens with a builder that starts from
//! a valid client-credentials access token and lets a test change any header or claim.
//!
//! ```
//! use std::time::Duration;
//! use bearer_guard::Algorithm;
//! use bearer_guard::testing::SigningKey;
//!
//! let key = SigningKey::generate(Algorithm::RS256)?;
//! let token = key
//!     .token("https://issuer.example", "api")
//!     .scope("payments:read payments:write")
//!     .expires_in(Duration::from_secs(60))
//!     .typ("at+jwt")
//!     .sign()?;
//! assert_eq!(token.split('.').count(), 3);
//! assert_eq!(key.public_jwk()["kty"], "RSA");
//! # Ok::<_, bearer_guard::testing::TestKeyError>(())
//! ```
//!
//! ## A loopback authorization server
//!
//! [`TestIssuer`] is a real OAuth 2.0 authorization server on a loopback port, for tests and
//! demos. It serves discovery metadata (OpenID Connect and RFC 8414), its JWK Set, and a token
//! endpoint implementing the client-credentials grant (RFC 6749 §4.4) that issues RFC 9068 JWT
//! access tokens. It can also mint tokens directly ([`TestIssuer::mint`]), rotate its signing keys
//! ([`TestIssuer::rotate_keys`], [`TestIssuer::retire_old_keys`]) and count JWKS fetches.
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::testing::TestIssuer;
//! use bearer_guard::{Guard, Issuer, KeySet};
//!
//! let issuer = TestIssuer::builder()
//!     .audience("https://payments.example")
//!     .client("invoice-job", "s3cret", ["payments:read", "payments:write"])
//!     .start()
//!     .await?;
//!
//! // The client side: the client-credentials grant over real HTTP, secret in HTTP Basic.
//! let http = reqwest::Client::new();
//! let response = http
//!     .post(issuer.token_endpoint())
//!     .basic_auth("invoice-job", Some("s3cret"))
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body("grant_type=client_credentials&scope=payments%3Aread")
//!     .send()
//!     .await?;
//! assert_eq!(response.status(), 200);
//! let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
//! assert_eq!(body["token_type"], "Bearer");
//! assert_eq!(body["scope"], "payments:read");
//! let access_token = body["access_token"].as_str().ok_or("no access_token")?;
//!
//! // The resource server side: keys from the issuer's published JWK Set.
//! let jwks = http.get(issuer.jwks_uri()).send().await?.bytes().await?;
//! let guard = Guard::builder()
//!     .issuer(
//!         Issuer::new(issuer.issuer_url())
//!             .audience("https://payments.example")
//!             .keys(KeySet::from_jwks_json(&jwks)?)
//!             .require_rfc9068(true),
//!     )
//!     .build()
//!     .await?;
//! let claims = guard.verify(access_token).await?;
//! assert_eq!(claims.client_id(), Some("invoice-job"));
//! assert!(claims.scopes().contains("payments:read"));
//! assert!(!claims.scopes().contains("payments:write"));
//!
//! // Tokens can also be minted directly, e.g. an expired one.
//! let expired = issuer.mint().expired_for(std::time::Duration::from_secs(600)).sign()?;
//! assert!(guard.verify(&expired).await.is_err());
//!
//! issuer.shutdown().await;
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```
//!
//! ### The token endpoint
//!
//! `POST /token` with an `application/x-www-form-urlencoded` body:
//!
//! - `grant_type=client_credentials` (required; any other grant is `unsupported_grant_type`).
//! - Client authentication by HTTP Basic (`client_secret_basic`, id and secret form-urlencoded
//!   inside the Basic credentials, RFC 6749 §2.3.1) or by `client_id` and `client_secret` in the
//!   body (`client_secret_post`). Using both at once is `invalid_request`; a wrong secret, an
//!   unknown client or no authentication is `invalid_client` (401 with `WWW-Authenticate: Basic`).
//!   Secrets are compared in constant time.
//! - `scope` (optional, space-separated): must be a subset of the client's allowed scopes, else
//!   `invalid_scope`; without it the token carries all of the client's allowed scopes.
//! - `resource` (RFC 8707, may repeat) or `audience`: each must be one of the issuer's audiences,
//!   else `invalid_target`; without them the token is for the default (first) audience.
//! - A parameter other than `resource` sent twice is `invalid_request` (RFC 6749 §3.2); empty
//!   parameters count as absent (§3.1); unknown parameters are ignored.
//!
//! Errors are RFC 6749 §5.2 JSON bodies (`error`, `error_description`); every response of the
//! token endpoint has `Cache-Control: no-store`. A successful response is
//! `{"access_token", "token_type": "Bearer", "expires_in", "scope"}`, the token being a JWT with
//! header `typ` = `at+jwt` and the issuer's current `kid`, and claims `iss`, `sub` and `client_id`
//! (the client id), `aud`, `iat`, `exp`, `jti` and `scope`.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use aws_lc_rs::{hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::jwks::KeySet;
use crate::token::Algorithm;

#[cfg(feature = "axum")]
pub mod demo;
mod issuer;

pub use issuer::{TestIssuer, TestIssuerBuilder, TestIssuerError};

/// A test key could not be generated or could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("test key error: {0}")]
pub struct TestKeyError(&'static str);

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac {
        key: Box<hmac::Key>,
        secret: Vec<u8>,
    },
}

/// A private signing key with its algorithm and `kid`.
pub struct SigningKey {
    algorithm: Algorithm,
    kid: Option<String>,
    pair: Pair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key for `algorithm`, with a random `kid`. RSA keys are 2048 bits; HMAC keys get a
    /// random secret as long as the hash.
    pub fn generate(algorithm: Algorithm) -> Result<SigningKey, TestKeyError> {
        let pair = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = random_bytes(hmac_length(algorithm))?;
                return Ok(SigningKey::hmac(algorithm, &secret));
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Pair::Rsa(
                RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| TestKeyError("RSA key generation failed"))?,
            ),
            Algorithm::ES256 => Pair::Ec(
                EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| TestKeyError("P-256 key generation failed"))?,
            ),
            Algorithm::ES384 => Pair::Ec(
                EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .map_err(|_| TestKeyError("P-384 key generation failed"))?,
            ),
            Algorithm::EdDSA => Pair::Ed(
                Ed25519KeyPair::generate()
                    .map_err(|_| TestKeyError("Ed25519 key generation failed"))?,
            ),
        };
        Ok(SigningKey {
            algorithm,
            kid: Some(random_kid()?),
            pair,
        })
    }

    /// An HMAC key with a given secret (any length: tests of weak secrets need short ones).
    ///
    /// # Panics
    /// If `algorithm` is not an HMAC algorithm.
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> SigningKey {
        let hash = match algorithm {
            Algorithm::HS256 => hmac::HMAC_SHA256,
            Algorithm::HS384 => hmac::HMAC_SHA384,
            Algorithm::HS512 => hmac::HMAC_SHA512,
            other => panic!("{other} is not an HMAC algorithm"),
        };
        SigningKey {
            algorithm,
            kid: None,
            pair: Pair::Hmac {
                key: Box::new(hmac::Key::new(hash, secret)),
                secret: secret.to_vec(),
            },
        }
    }

    /// The same key under another `kid` (or none).
    pub fn with_kid(mut self, kid: Option<&str>) -> SigningKey {
        self.kid = kid.map(str::to_owned);
        self
    }

    /// The same key, announced for another algorithm of its family (e.g. an RSA key for PS256).
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> SigningKey {
        self.algorithm = algorithm;
        self
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public JWK (`use` = `sig`, with `alg` and `kid`). For an HMAC key, an `oct` JWK holding
    /// the secret.
    pub fn public_jwk(&self) -> Value {
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let size = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if size == 32 { "P-256" } else { "P-384" },
                    "x": b64(&point[1..1 + size]),
                    "y": b64(&point[1 + size..]),
                })
            }
            Pair::Ed(pair) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64(pair.public_key().as_ref()),
            }),
            Pair::Hmac { secret, .. } => json!({ "kty": "oct", "k": b64(secret) }),
        };
        jwk["use"] = "sig".into();
        jwk["alg"] = self.algorithm.name().into();
        if let Some(kid) = &self.kid {
            jwk["kid"] = kid.as_str().into();
        }
        jwk
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo); `None` for HMAC keys.
    pub fn public_pem(&self) -> Option<String> {
        let der = match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            Pair::Ec(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            Pair::Hmac { .. } => return None,
        };
        let body = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).ok()?);
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        Some(pem)
    }

    /// The verification [`KeySet`] for this key: its public JWK, or its secret for HMAC.
    ///
    /// # Panics
    /// For an HMAC key made with [`SigningKey::hmac`] from a secret shorter than 32 bytes, which
    /// no guard accepts (use [`KeySet::hmac_secret`] to see that error); otherwise never.
    pub fn key_set(&self) -> KeySet {
        let loaded = match &self.pair {
            Pair::Hmac { secret, .. } => KeySet::hmac_secret(secret, self.kid()),
            _ => KeySet::from_jwk_json(self.public_jwk().to_string()),
        };
        loaded.expect("a generated key always loads")
    }

    /// A JWK Set document holding the public JWKs of `keys`.
    pub fn jwks<'k>(keys: impl IntoIterator<Item = &'k SigningKey>) -> Value {
        json!({ "keys": keys.into_iter().map(SigningKey::public_jwk).collect::<Vec<_>>() })
    }

    /// A builder for a valid access token from `issuer` for `audience`, signed by this key.
    pub fn token(&self, issuer: &str, audience: &str) -> TokenBuilder<'_> {
        TokenBuilder::new(KeyRef::Borrowed(self), issuer, audience)
    }

    /// Sign `header_json "." payload_json` as given, byte for byte: for tests that need malformed
    /// or hostile JSON (duplicate members, wrong types).
    pub fn sign_raw(&self, header_json: &str, payload_json: &str) -> Result<String, TestKeyError> {
        let signing_input = format!("{}.{}", b64(header_json), b64(payload_json));
        let signature = self.sign_bytes(signing_input.as_bytes())?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }

    /// The raw JWS signature of `message` with this key and its algorithm.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, TestKeyError> {
        let rng = rand::SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match self.algorithm {
                    Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => return Err(TestKeyError("RSA key used with a non-RSA algorithm")),
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| TestKeyError("RSA signing failed"))?;
                Ok(signature)
            }
            Pair::Ec(pair) => pair
                .sign(&rng, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| TestKeyError("ECDSA signing failed")),
            Pair::Ed(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Hmac { key, .. } => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }
}

/// Builds one token. Starts valid: `iss`, `aud`, `sub` and `client_id` (`test-client`), `iat` now,
/// `exp` in five minutes, a random `jti`; header `alg`, `typ` = `JWT` and the key's `kid`.
#[derive(Debug)]
pub struct TokenBuilder<'k> {
    key: KeyRef<'k>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

/// The key a [`TokenBuilder`] signs with: borrowed from the caller, or shared with a
/// [`TestIssuer`] whose current key may change while the builder is alive.
#[derive(Debug)]
enum KeyRef<'k> {
    Borrowed(&'k SigningKey),
    Shared(Arc<SigningKey>),
}

impl Deref for KeyRef<'_> {
    type Target = SigningKey;

    fn deref(&self) -> &SigningKey {
        match self {
            KeyRef::Borrowed(key) => key,
            KeyRef::Shared(key) => key,
        }
    }
}

impl<'k> TokenBuilder<'k> {
    fn new(key: KeyRef<'k>, issuer: &str, audience: &str) -> Self {
        let now = unix_now();
        let mut header = Map::new();
        header.insert("alg".into(), key.algorithm.name().into());
        header.insert("typ".into(), "JWT".into());
        if let Some(kid) = &key.kid {
            header.insert("kid".into(), kid.as_str().into());
        }
        let mut claims = Map::new();
        claims.insert("iss".into(), issuer.into());
        claims.insert("aud".into(), audience.into());
        claims.insert("sub".into(), "test-client".into());
        claims.insert("client_id".into(), "test-client".into());
        claims.insert("iat".into(), now.into());
        claims.insert("exp".into(), (now + 300).into());
        claims.insert(
            "jti".into(),
            random_kid().unwrap_or_else(|_| now.to_string()).into(),
        );
        TokenBuilder {
            key,
            header,
            claims,
        }
    }

    /// Set a claim (replacing any previous value).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Remove a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Set a header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Remove a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// The `scope` claim (space-separated).
    pub fn scope(self, scopes: &str) -> Self {
        self.claim("scope", scopes)
    }

    /// `exp` = now + `lifetime`.
    pub fn expires_in(self, lifetime: Duration) -> Self {
        let exp = unix_now().saturating_add(lifetime.as_secs());
        self.claim("exp", exp)
    }

    /// `exp` = now − `ago`: an expired token.
    pub fn expired_for(self, ago: Duration) -> Self {
        let exp = unix_now().saturating_sub(ago.as_secs());
        self.claim("exp", exp)
    }

    /// The header `kid` (or none).
    pub fn kid(self, kid: Option<&str>) -> Self {
        match kid {
            Some(kid) => self.header("kid", kid),
            None => self.without_header("kid"),
        }
    }

    /// The header `typ`.
    pub fn typ(self, typ: &str) -> Self {
        self.header("typ", typ)
    }

    /// The header `alg` as announced (the signature is still made with the key's own algorithm).
    pub fn alg(self, alg: &str) -> Self {
        self.header("alg", alg)
    }

    /// Sign and serialize as a compact JWS.
    pub fn sign(self) -> Result<String, TestKeyError> {
        let header = Value::Object(self.header).to_string();
        let claims = Value::Object(self.claims).to_string();
        self.key.sign_raw(&header, &claims)
    }
}

/// Base64url without padding, as JWS uses everywhere.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn hmac_length(algorithm: Algorithm) -> usize {
    match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn random_bytes(len: usize) -> Result<Vec<u8>, TestKeyError> {
    let mut bytes = vec![0; len];
    rand::fill(&mut bytes).map_err(|_| TestKeyError("no randomness available"))?;
    Ok(bytes)
}

fn random_kid() -> Result<String, TestKeyError> {
    random_bytes(9).map(b64)
}
