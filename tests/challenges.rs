//! Bearer extraction (RFC 6750 §2) and the exact responses every rejection renders to (§3).

use std::sync::OnceLock;
use std::time::Duration;

use bearer_guard::testing::SigningKey;
use bearer_guard::{
    Algorithm, BearerError, Guard, Issuer, Rejection, ScopeRequirement, Scopes, TokenError,
};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Uri};

const ISS: &str = "https://issuer.example";
const AUD: &str = "api";

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::ES256).unwrap())
}

async fn guard(allow_query: bool) -> Guard {
    Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key().key_set()))
        .realm("example")
        .allow_query_token(allow_query)
        .build()
        .await
        .unwrap()
}

fn headers(authorization: &[&str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in authorization {
        headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    headers
}

fn root() -> Uri {
    Uri::from_static("/")
}

async fn authenticate(guard: &Guard, authorization: &[&str]) -> Result<bool, Rejection> {
    guard
        .authenticate(&headers(authorization), &root())
        .await
        .map(|claims| claims.is_some())
}

// --- extraction --------------------------------------------------------------------------------

#[tokio::test]
async fn accepts_bearer_scheme_case_insensitively() {
    let guard = guard(false).await;
    let token = key().token(ISS, AUD).sign().unwrap();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let value = format!("{scheme} {token}");
        assert_eq!(authenticate(&guard, &[&value]).await, Ok(true), "{scheme}");
    }
}

#[tokio::test]
async fn no_authorization_header_is_no_credentials() {
    let guard = guard(false).await;
    assert_eq!(authenticate(&guard, &[]).await, Ok(false));
}

#[tokio::test]
async fn other_schemes_are_no_credentials() {
    let guard = guard(false).await;
    for value in ["Basic dXNlcjpwYXNz", "DPoP abc", "Bearerx abc", "Token"] {
        assert_eq!(authenticate(&guard, &[value]).await, Ok(false), "{value}");
    }
}

#[tokio::test]
async fn a_large_credential_of_another_scheme_is_no_credentials() {
    // A Kerberos ticket is often larger than the bearer size limit; it is still not ours.
    let guard = guard(false).await;
    let negotiate = format!("Negotiate {}", "YII".repeat(6 * 1024));
    assert_eq!(authenticate(&guard, &[&negotiate]).await, Ok(false));
}

#[tokio::test]
async fn rejects_duplicate_authorization_headers() {
    let guard = guard(false).await;
    let token = key().token(ISS, AUD).sign().unwrap();
    let value = format!("Bearer {token}");
    assert_eq!(
        authenticate(&guard, &[&value, &value]).await,
        Err(Rejection::InvalidRequest(BearerError::MultipleHeaders))
    );
    assert_eq!(
        authenticate(&guard, &[&value, "Basic dXNlcjpwYXNz"]).await,
        Err(Rejection::InvalidRequest(BearerError::MultipleHeaders))
    );
    let hundred: Vec<&str> = std::iter::repeat_n(value.as_str(), 100).collect();
    assert_eq!(
        authenticate(&guard, &hundred).await,
        Err(Rejection::InvalidRequest(BearerError::MultipleHeaders))
    );
}

#[tokio::test]
async fn rejects_malformed_bearer_credentials() {
    let guard = guard(false).await;
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a,b",
        "Bearer =abc",
        "Bearer abc=def",
        "Bearer \"abc\"",
        "Bearer abc;",
        "Bearer a\tb",
    ] {
        assert_eq!(
            authenticate(&guard, &[value]).await,
            Err(Rejection::InvalidRequest(BearerError::Malformed)),
            "{value:?}"
        );
    }
}

#[tokio::test]
async fn b64token_characters_and_padding_are_accepted_up_to_parsing() {
    let guard = guard(false).await;
    // Syntactically valid b64tokens that are not JWTs reach validation and fail there.
    for value in ["Bearer abc-._~+/==", "Bearer a", "Bearer a.b.c"] {
        assert!(
            matches!(
                authenticate(&guard, &[value]).await,
                Err(Rejection::InvalidToken(_))
            ),
            "{value}"
        );
    }
}

#[tokio::test]
async fn rejects_oversized_token_before_parsing() {
    let guard = guard(false).await;
    let token = "a".repeat(8 * 1024 + 1);
    let value = format!("Bearer {token}");
    assert_eq!(
        authenticate(&guard, &[&value]).await,
        Err(Rejection::InvalidRequest(BearerError::TooLarge {
            limit: 8192
        }))
    );
    let at_limit = format!("Bearer {}", "a".repeat(8 * 1024));
    assert!(matches!(
        authenticate(&guard, &[&at_limit]).await,
        Err(Rejection::InvalidToken(TokenError::Malformed(_)))
    ));
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    assert_eq!(
        authenticate(&guard, &[&huge]).await,
        Err(Rejection::InvalidRequest(BearerError::TooLarge {
            limit: 8192
        }))
    );
}

#[tokio::test]
async fn query_token_is_ignored_unless_enabled() {
    let token = key().token(ISS, AUD).sign().unwrap();
    let uri: Uri = format!("/payments?access_token={token}").parse().unwrap();
    let off = guard(false).await;
    assert!(
        off.authenticate(&HeaderMap::new(), &uri)
            .await
            .unwrap()
            .is_none()
    );
    let on = guard(true).await;
    assert!(
        on.authenticate(&HeaderMap::new(), &uri)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn rejects_token_in_header_and_query() {
    let guard = guard(true).await;
    let token = key().token(ISS, AUD).sign().unwrap();
    let uri: Uri = format!("/?access_token={token}").parse().unwrap();
    let both = guard
        .authenticate(&headers(&[&format!("Bearer {token}")]), &uri)
        .await;
    assert_eq!(
        both.unwrap_err(),
        Rejection::InvalidRequest(BearerError::MultipleTokens)
    );
    let twice: Uri = format!("/?access_token={token}&access_token={token}")
        .parse()
        .unwrap();
    let twice = guard.authenticate(&HeaderMap::new(), &twice).await;
    assert_eq!(
        twice.unwrap_err(),
        Rejection::InvalidRequest(BearerError::MultipleTokens)
    );
}

// --- responses ---------------------------------------------------------------------------------

fn www_authenticate(response: &Response<()>) -> &str {
    response
        .headers()
        .get(WWW_AUTHENTICATE)
        .expect("challenge present")
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn no_credentials_challenge_has_no_error_code() {
    let guard = guard(false).await;
    let response: Response<()> = guard.reject(&Rejection::MissingToken, &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&response), r#"Bearer realm="example""#);
}

#[tokio::test]
async fn invalid_request_challenge_is_exact() {
    let guard = guard(false).await;
    let rejection = Rejection::from(BearerError::MultipleHeaders);
    let response: Response<()> = guard.reject(&rejection, &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        www_authenticate(&response),
        r#"Bearer realm="example", error="invalid_request", error_description="More than one Authorization header""#
    );
}

#[tokio::test]
async fn invalid_token_challenge_is_exact() {
    let guard = guard(false).await;
    let expired = key()
        .token(ISS, AUD)
        .expired_for(Duration::from_secs(120))
        .sign()
        .unwrap();
    let rejection = guard
        .authenticate(&headers(&[&format!("Bearer {expired}")]), &root())
        .await
        .unwrap_err();
    let response: Response<()> = guard.reject(&rejection, &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&response),
        r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#
    );
}

#[tokio::test]
async fn insufficient_scope_challenge_is_exact() {
    let guard = guard(false).await;
    let granted = Scopes::from_iter(["payments:read"]);
    let rejection = Rejection::from(
        ScopeRequirement::all_of(["payments:write", "payments:read"])
            .check(&granted)
            .unwrap_err(),
    );
    let response: Response<()> = guard.reject(&rejection, &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        www_authenticate(&response),
        r#"Bearer realm="example", error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:write payments:read""#
    );
}

#[test]
fn challenge_without_realm_omits_it() {
    let rejection = Rejection::from(TokenError::InvalidSignature);
    assert_eq!(
        rejection.www_authenticate(None).unwrap(),
        r#"Bearer error="invalid_token", error_description="The access token is not accepted by this resource""#
    );
    assert_eq!(
        Rejection::MissingToken.www_authenticate(None).unwrap(),
        "Bearer"
    );
}

#[test]
fn challenge_parameters_are_quoted_and_escaped() {
    let rejection = Rejection::MissingToken;
    assert_eq!(
        rejection
            .www_authenticate(Some(r#"a "quoted" \ realm"#))
            .unwrap(),
        r#"Bearer realm="a \"quoted\" \\ realm""#
    );
    // Characters a header cannot carry are dropped, never passed through.
    assert_eq!(
        rejection
            .www_authenticate(Some("caf\u{e9}\r\nX-Injected: 1"))
            .unwrap(),
        r#"Bearer realm="cafX-Injected: 1""#
    );
}

#[test]
fn error_descriptions_never_echo_input() {
    // Every description comes from a fixed table; none carries the claim value, kid or token.
    for err in [
        TokenError::Malformed("header is not base64url"),
        TokenError::InvalidClaim("exp"),
        TokenError::MissingClaim("aud"),
        TokenError::UnknownKey,
        TokenError::AlgorithmNotAllowed(Algorithm::HS256),
    ] {
        let description = err.description();
        assert!(description.starts_with("The "), "{description}");
        assert!(
            !description.contains("exp") && !description.contains("HS256"),
            "{description}"
        );
    }
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after() {
    let guard = guard(false).await;
    let rejection = Rejection::from(bearer_guard::KeysUnavailable {
        retry_after: Duration::from_secs(30),
    });
    let response: Response<()> = guard.reject(&rejection, &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[RETRY_AFTER], "30");
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
}

fn grpc_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/grpc+proto"),
    );
    headers
}

#[tokio::test]
async fn grpc_requests_get_grpc_statuses() {
    let guard = guard(false).await;
    let cases = [
        (
            Rejection::MissingToken,
            "16",
            "A bearer access token is required",
        ),
        (
            Rejection::from(TokenError::Expired),
            "16",
            "The access token expired",
        ),
        (
            Rejection::from(BearerError::Malformed),
            "16",
            "The Authorization header is not a valid Bearer credential",
        ),
        (
            Rejection::from(
                ScopeRequirement::all_of(["admin"])
                    .check(&Scopes::default())
                    .unwrap_err(),
            ),
            "7",
            "The access token lacks a required scope",
        ),
        (
            Rejection::from(bearer_guard::KeysUnavailable {
                retry_after: Duration::from_secs(5),
            }),
            "14",
            "The signing keys are temporarily unavailable",
        ),
    ];
    for (rejection, status, message) in cases {
        let response: Response<()> = guard.reject(&rejection, &grpc_headers());
        assert_eq!(response.status(), StatusCode::OK, "{rejection}");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()["grpc-status"], status, "{rejection}");
        assert_eq!(response.headers()["grpc-message"], message, "{rejection}");
    }
}

#[tokio::test]
async fn only_grpc_content_types_get_grpc_statuses() {
    let guard = guard(false).await;
    for content_type in [
        "application/grpc",
        "application/grpc+json",
        "application/grpc;charset=utf-8",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        let response: Response<()> = guard.reject(&Rejection::MissingToken, &headers);
        assert_eq!(response.headers()["grpc-status"], "16", "{content_type}");
    }
    for content_type in [
        "application/grpc-web",
        "application/json",
        "application/grpcx",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        let response: Response<()> = guard.reject(&Rejection::MissingToken, &headers);
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{content_type}"
        );
    }
}

#[tokio::test]
async fn unlimited_token_size_does_not_overflow() {
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key().key_set()))
        .max_token_bytes(usize::MAX)
        .build()
        .await
        .unwrap();
    let token = key().token(ISS, AUD).sign().unwrap();
    let value = format!("Bearer {token}");
    assert_eq!(authenticate(&guard, &[&value]).await, Ok(true));
}

#[test]
fn rejections_carry_no_store_and_the_rejection() {
    for protocol in [bearer_guard::Protocol::Http, bearer_guard::Protocol::Grpc] {
        let rejection = Rejection::from(TokenError::InvalidSignature);
        let response: http::Response<()> = rejection.to_response(Some("api"), protocol);
        assert_eq!(response.headers()[http::header::CACHE_CONTROL], "no-store");
        assert_eq!(response.extensions().get::<Rejection>(), Some(&rejection));
    }
}
