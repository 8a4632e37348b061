//! The test kit's loopback authorization server, exercised over real HTTP on ephemeral ports.

use std::net::SocketAddr;
use std::time::Duration;

use bearer_guard::testing::{TestIssuer, TestIssuerError};
use bearer_guard::{Algorithm, Guard, Issuer, KeySet, TokenError};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

const API: &str = "https://api.example";
const OTHER_API: &str = "https://other.example";

async fn issuer() -> TestIssuer {
    TestIssuer::builder()
        .audience(API)
        .audience(OTHER_API)
        .client(
            "billing",
            "billing-secret",
            ["payments:read", "payments:write"],
        )
        .client("reporting", "reporting-secret", ["reports:read"])
        .jwks_max_age(Duration::from_secs(123))
        .start()
        .await
        .expect("test issuer starts")
}

struct TokenResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl TokenResponse {
    fn access_token(&self) -> &str {
        self.body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token in {}", self.body))
    }

    #[track_caller]
    fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        assert!(self.body["error_description"].is_string(), "{}", self.body);
        assert_eq!(self.headers["cache-control"], "no-store");
        assert!(self.body.get("access_token").is_none());
        if status == StatusCode::UNAUTHORIZED {
            let challenge = self.headers["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Basic "), "{challenge}");
        } else {
            assert!(!self.headers.contains_key("www-authenticate"));
        }
    }
}

/// POST the form `params` to the token endpoint, with HTTP Basic credentials if given.
async fn request_token(
    issuer: &TestIssuer,
    basic: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> TokenResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut request = reqwest::Client::new()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some((id, secret)) = basic {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let secret: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.expect("token endpoint answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("token response body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "token response is JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    TokenResponse {
        status,
        headers,
        body,
    }
}

const CLIENT_CREDENTIALS: (&str, &str) = ("grant_type", "client_credentials");

async fn get_json(url: &str) -> (StatusCode, HeaderMap, Value) {
    let response = reqwest::get(url).await.expect("GET answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

/// A guard that trusts the issuer with the keys its JWKS publishes right now, strict RFC 9068.
async fn guard_from_published_jwks(issuer: &TestIssuer) -> Guard {
    let (status, _, jwks) = get_json(issuer.jwks_uri()).await;
    assert_eq!(status, StatusCode::OK);
    let keys = KeySet::from_jwks_json(jwks.to_string()).expect("JWKS loads");
    Guard::builder()
        .issuer(
            Issuer::new(issuer.issuer_url())
                .audience(API)
                .audience(OTHER_API)
                .keys(keys)
                .require_rfc9068(true),
        )
        .build()
        .await
        .expect("guard builds")
}

fn token_header(token: &str) -> Value {
    use base64::Engine as _;
    let header = token.split('.').next().expect("a JWS has a header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("header is base64url");
    serde_json::from_slice(&bytes).expect("header is JSON")
}

async fn connection_refused(addr: SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn discovery_documents_describe_the_endpoints() {
    let issuer = issuer().await;
    let base = issuer.issuer_url();
    assert_eq!(base, format!("http://{}", issuer.local_addr()));
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let (status, headers, metadata) = get_json(&format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(metadata["issuer"], base);
        assert_eq!(metadata["jwks_uri"], format!("{base}/jwks"));
        assert_eq!(metadata["jwks_uri"], issuer.jwks_uri());
        assert_eq!(metadata["token_endpoint"], format!("{base}/token"));
        assert_eq!(metadata["token_endpoint"], issuer.token_endpoint());
        assert_eq!(
            metadata["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        assert_eq!(
            metadata["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(
            metadata["scopes_supported"],
            serde_json::json!(["payments:read", "payments:write", "reports:read"])
        );
    }
}

#[tokio::test]
async fn jwks_is_served_with_cache_control() {
    let issuer = issuer().await;
    let (status, headers, jwks) = get_json(issuer.jwks_uri()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/jwk-set+json");
    assert_eq!(headers["cache-control"], "public, max-age=123");
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], issuer.current_kid());
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert_eq!(keys[0]["use"], "sig");
    assert!(keys[0].get("d").is_none(), "no private key material");
    assert_eq!(jwks, issuer.jwks());
}

#[tokio::test]
async fn jwks_etag_answers_not_modified_until_keys_change() {
    let issuer = issuer().await;
    let http = reqwest::Client::new();
    let first = http.get(issuer.jwks_uri()).send().await.unwrap();
    let etag = first.headers()["etag"].clone();

    let same = http
        .get(issuer.jwks_uri())
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(same.headers()["cache-control"], "public, max-age=123");

    issuer.rotate_keys().unwrap();
    let changed = http
        .get(issuer.jwks_uri())
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"], etag);
}

#[tokio::test]
async fn jwks_requests_are_counted() {
    let issuer = issuer().await;
    assert_eq!(issuer.jwks_requests(), 0);
    get_json(issuer.jwks_uri()).await;
    get_json(issuer.jwks_uri()).await;
    // Other endpoints do not count.
    get_json(&format!(
        "{}/.well-known/openid-configuration",
        issuer.issuer_url()
    ))
    .await;
    request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn jwks_outage_answers_503_and_recovers() {
    let issuer = issuer().await;
    issuer.set_jwks_available(false);
    let (status, _, _) = get_json(issuer.jwks_uri()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    issuer.set_jwks_available(true);
    let (status, _, _) = get_json(issuer.jwks_uri()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(issuer.jwks_requests(), 2);
}

#[tokio::test]
async fn client_secret_basic_issues_a_verifiable_token() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.headers["cache-control"], "no-store");
    assert_eq!(response.headers["content-type"], "application/json");
    assert_eq!(response.body["token_type"], "Bearer");
    assert_eq!(response.body["expires_in"], 300);
    // No scope asked: all of the client's scopes.
    assert_eq!(response.body["scope"], "payments:read payments:write");

    let header = token_header(response.access_token());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], issuer.current_kid());

    let guard = guard_from_published_jwks(&issuer).await;
    let claims = guard
        .verify(response.access_token())
        .await
        .expect("token verifies");
    assert_eq!(claims.issuer(), issuer.issuer_url());
    assert_eq!(claims.client_id(), Some("billing"));
    assert_eq!(claims.subject(), Some("billing"));
    assert_eq!(claims.audiences(), [API.to_owned()]);
    assert!(claims.scopes().contains("payments:read"));
    assert!(claims.scopes().contains("payments:write"));
    assert!(claims.jwt_id().is_some());
    let lifetime = claims
        .expires_at()
        .duration_since(claims.issued_at().expect("iat"))
        .expect("exp after iat");
    assert_eq!(lifetime, Duration::from_secs(300));
}

#[tokio::test]
async fn client_secret_post_issues_a_verifiable_token() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        None,
        &[
            CLIENT_CREDENTIALS,
            ("client_id", "reporting"),
            ("client_secret", "reporting-secret"),
        ],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["scope"], "reports:read");
    let guard = guard_from_published_jwks(&issuer).await;
    let claims = guard
        .verify(response.access_token())
        .await
        .expect("token verifies");
    assert_eq!(claims.client_id(), Some("reporting"));
    assert!(claims.scopes().contains("reports:read"));
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    let issuer = TestIssuer::builder()
        .client("job: nightly", "p@ss:w rd&+%", ["x"])
        .start()
        .await
        .unwrap();
    let response = request_token(
        &issuer,
        Some(("job: nightly", "p@ss:w rd&+%")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);

    let wrong = request_token(
        &issuer,
        Some(("job: nightly", "p@ss:w rd&+")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn basic_client_id_may_be_repeated_in_the_body() {
    let issuer = issuer().await;
    let same = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[CLIENT_CREDENTIALS, ("client_id", "billing")],
    )
    .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);

    let different = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[CLIENT_CREDENTIALS, ("client_id", "reporting")],
    )
    .await;
    different.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn requested_scope_narrows_the_token() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[CLIENT_CREDENTIALS, ("scope", "payments:write")],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.body["scope"], "payments:write");
    let guard = guard_from_published_jwks(&issuer).await;
    let claims = guard.verify(response.access_token()).await.unwrap();
    assert!(claims.scopes().contains("payments:write"));
    assert!(!claims.scopes().contains("payments:read"));
    assert_eq!(claims.scopes().len(), 1);
}

#[tokio::test]
async fn scope_not_allowed_for_the_client_is_invalid_scope() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("reporting", "reporting-secret")),
        &[CLIENT_CREDENTIALS, ("scope", "reports:read payments:write")],
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid_scope");
}

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let issuer = issuer().await;
    let basic = request_token(
        &issuer,
        Some(("billing", "reporting-secret")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    basic.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    let post = request_token(
        &issuer,
        None,
        &[
            CLIENT_CREDENTIALS,
            ("client_id", "billing"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    post.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("stranger", "billing-secret")),
        &[CLIENT_CREDENTIALS],
    )
    .await;
    response.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn missing_client_authentication_is_invalid_client() {
    let issuer = issuer().await;
    let none = request_token(&issuer, None, &[CLIENT_CREDENTIALS]).await;
    none.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");

    let id_only = request_token(
        &issuer,
        None,
        &[CLIENT_CREDENTIALS, ("client_id", "billing")],
    )
    .await;
    id_only.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn non_basic_authorization_is_invalid_client() {
    let issuer = issuer().await;
    let response = reqwest::Client::new()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Bearer abc")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test]
async fn both_authentication_methods_is_invalid_request() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[
            CLIENT_CREDENTIALS,
            ("client_id", "billing"),
            ("client_secret", "billing-secret"),
        ],
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ],
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
}

#[tokio::test]
async fn missing_grant_type_is_invalid_request() {
    let issuer = issuer().await;
    let response = request_token(&issuer, Some(("billing", "billing-secret")), &[]).await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let issuer = issuer().await;
    let response = request_token(
        &issuer,
        Some(("billing", "billing-secret")),
        &[
            CLIENT_CREDENTIALS,
            ("scope", "payments:read"),
            ("scope", "payments:write"),
        ],
    )
    .await;
    response.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn non_form_body_is_invalid_request() {
    let issuer = issuer().await;
    let response = reqwest::Client::new()
        .post(issuer.token_endpoint())
        .basic_auth("billing", Some("billing-secret"))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn resource_and_audience_select_among_allowed_audiences() {
    let issuer = issuer().await;
    let guard = guard_from_published_jwks(&issuer).await;
    let billing = Some(("billing", "billing-secret"));

    for parameter in ["resource", "audience"] {
        let response = request_token(
            &issuer,
            billing,
            &[CLIENT_CREDENTIALS, (parameter, OTHER_API)],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let claims = guard.verify(response.access_token()).await.unwrap();
        assert_eq!(claims.audiences(), [OTHER_API.to_owned()], "{parameter}");
    }

    // RFC 8707: several resources, one token for all of them.
    let both = request_token(
        &issuer,
        billing,
        &[
            CLIENT_CREDENTIALS,
            ("resource", API),
            ("resource", OTHER_API),
        ],
    )
    .await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.body);
    let claims = guard.verify(both.access_token()).await.unwrap();
    assert_eq!(claims.audiences(), [API.to_owned(), OTHER_API.to_owned()]);
}

#[tokio::test]
async fn unknown_resource_or_audience_is_invalid_target() {
    let issuer = issuer().await;
    let billing = Some(("billing", "billing-secret"));
    for parameter in ["resource", "audience"] {
        let response = request_token(
            &issuer,
            billing,
            &[CLIENT_CREDENTIALS, (parameter, "https://evil.example")],
        )
        .await;
        response.assert_error(StatusCode::BAD_REQUEST, "invalid_target");
    }
}

#[tokio::test]
async fn rotated_keys_overlap_until_retired() {
    let issuer = issuer().await;
    let billing = Some(("billing", "billing-secret"));
    let old_kid = issuer.current_kid();
    let old_token = request_token(&issuer, billing, &[CLIENT_CREDENTIALS]).await;

    let new_kid = issuer.rotate_keys().expect("rotation");
    assert_ne!(new_kid, old_kid);
    assert_eq!(issuer.current_kid(), new_kid);
    let new_token = request_token(&issuer, billing, &[CLIENT_CREDENTIALS]).await;
    assert_eq!(token_header(new_token.access_token())["kid"], new_kid);
    assert_eq!(token_header(&issuer.mint().sign().unwrap())["kid"], new_kid);

    // Both keys published: the old token still verifies, and so does the new one.
    let overlap = guard_from_published_jwks(&issuer).await;
    let kids: Vec<Value> = issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [Value::from(new_kid.as_str()), Value::from(old_kid.as_str())]
    );
    assert!(overlap.verify(old_token.access_token()).await.is_ok());
    assert!(overlap.verify(new_token.access_token()).await.is_ok());

    issuer.retire_old_keys();
    let retired = guard_from_published_jwks(&issuer).await;
    assert_eq!(
        issuer.key_set().key_ids().collect::<Vec<_>>(),
        [new_kid.as_str()]
    );
    assert_eq!(
        retired.verify(old_token.access_token()).await.unwrap_err(),
        TokenError::UnknownKey
    );
    assert!(retired.verify(new_token.access_token()).await.is_ok());
}

#[tokio::test]
async fn minted_tokens_verify_and_can_be_changed() {
    let issuer = issuer().await;
    let guard = guard_from_published_jwks(&issuer).await;

    let token = issuer
        .mint()
        .claim("client_id", "minted")
        .scope("payments:read")
        .sign()
        .unwrap();
    assert_eq!(token_header(&token)["typ"], "at+jwt");
    let claims = guard.verify(&token).await.expect("minted token verifies");
    assert_eq!(claims.client_id(), Some("minted"));
    assert_eq!(claims.audiences(), [issuer.audience().to_owned()]);
    assert_eq!(issuer.audience(), API);

    let expired = issuer
        .mint()
        .expired_for(Duration::from_secs(600))
        .sign()
        .unwrap();
    assert_eq!(
        guard.verify(&expired).await.unwrap_err(),
        TokenError::Expired
    );
    let plain_jwt = issuer.mint().typ("JWT").sign().unwrap();
    assert_eq!(
        guard.verify(&plain_jwt).await.unwrap_err(),
        TokenError::WrongType
    );
    let unknown_kid = issuer.mint().kid(Some("nope")).sign().unwrap();
    assert_eq!(
        guard.verify(&unknown_kid).await.unwrap_err(),
        TokenError::UnknownKey
    );
}

#[tokio::test]
async fn other_algorithms_publish_matching_keys() {
    for algorithm in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::PS256] {
        let issuer = TestIssuer::builder()
            .audience(API)
            .client("billing", "billing-secret", ["payments:read"])
            .algorithm(algorithm)
            .token_lifetime(Duration::from_secs(60))
            .start()
            .await
            .unwrap();
        let response = request_token(
            &issuer,
            Some(("billing", "billing-secret")),
            &[CLIENT_CREDENTIALS],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(response.body["expires_in"], 60);
        assert_eq!(
            token_header(response.access_token())["alg"],
            algorithm.name()
        );
        let guard = guard_from_published_jwks(&issuer).await;
        let claims = guard.verify(response.access_token()).await.unwrap();
        assert_eq!(claims.algorithm(), algorithm);
    }
}

#[tokio::test]
async fn hmac_algorithms_are_refused() {
    let started = TestIssuer::builder()
        .algorithm(Algorithm::HS256)
        .start()
        .await;
    assert!(matches!(
        started,
        Err(TestIssuerError::SharedSecretAlgorithm(Algorithm::HS256))
    ));
}

#[tokio::test]
async fn unspecified_bind_address_is_advertised_as_loopback() {
    let issuer = TestIssuer::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let port = issuer.local_addr().port();
    assert_eq!(issuer.issuer_url(), format!("http://127.0.0.1:{port}"));
    let (status, _, metadata) = get_json(&format!(
        "{}/.well-known/openid-configuration",
        issuer.issuer_url()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(metadata["issuer"], issuer.issuer_url());
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let issuer = issuer().await;
    let addr = issuer.local_addr();
    // An idle keep-alive connection must not keep the server alive.
    let http = reqwest::Client::new();
    assert!(
        http.get(issuer.jwks_uri())
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    let jwks_uri = issuer.jwks_uri().to_owned();

    tokio::time::timeout(Duration::from_secs(10), issuer.shutdown())
        .await
        .expect("shutdown completes");
    assert!(connection_refused(addr).await);
    assert!(http.get(jwks_uri).send().await.is_err());
}

#[tokio::test]
async fn dropping_the_issuer_stops_the_server() {
    let issuer = issuer().await;
    let addr = issuer.local_addr();
    assert!(!connection_refused(addr).await);
    drop(issuer);

    // The accept loop is aborted on drop; the socket closes once the runtime has run the abort.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !connection_refused(addr).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn issuer_and_minted_tokens_can_cross_tasks() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<TestIssuer>();
    send_sync::<bearer_guard::testing::TokenBuilder<'static>>();
    send_sync::<TestIssuerError>();
}
