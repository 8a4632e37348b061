//! The layer and extractors on a real axum server over real HTTP (127.0.0.1:0).

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::routing::{get, post};
use bearer_guard::axum::RequireScope;
use bearer_guard::testing::SigningKey;
use bearer_guard::{
    Algorithm, BearerLayer, Claims, Guard, Issuer, RequireScopeLayer, ScopeRequirement,
};
use reqwest::StatusCode;
use serde_json::json;

const ISS: &str = "https://issuer.example";
const AUD: &str = "payments-api";

bearer_guard::scopes! {
    PaymentsRead = "payments:read";
    PaymentsWrite = "payments:write";
    Admin = any_of["admin", "root"];
    Settle = all_of["payments:read", "payments:settle"];
}

fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(Algorithm::ES256).unwrap())
}

async fn guard() -> Guard {
    Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key().key_set()))
        .realm("payments")
        .build()
        .await
        .unwrap()
}

fn token(scope: &str) -> String {
    key()
        .token(ISS, AUD)
        .claim("client_id", "billing-job")
        .scope(scope)
        .sign()
        .unwrap()
}

async fn list(scoped: RequireScope<PaymentsRead>) -> String {
    format!("list for {}", scoped.client_id().unwrap_or("?"))
}
async fn create(_: RequireScope<PaymentsWrite>) -> StatusCode {
    StatusCode::CREATED
}
async fn admin(_: RequireScope<Admin>) -> &'static str {
    "admin"
}
async fn settle(_: RequireScope<Settle>) -> &'static str {
    "settled"
}
async fn whoami(claims: Claims) -> axum::Json<serde_json::Value> {
    axum::Json(json!({
        "client_id": claims.client_id(),
        "subject": claims.subject(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
    }))
}
async fn maybe(claims: Option<Claims>) -> String {
    match claims {
        Some(claims) => format!("hello {}", claims.client_id().unwrap_or("?")),
        None => "hello anonymous".to_owned(),
    }
}

fn routes() -> Router {
    Router::new()
        .route("/payments", get(list).post(create))
        .route("/admin", get(admin))
        .route("/settle", post(settle))
        .route("/whoami", get(whoami))
        .route(
            "/reports",
            get(|| async { "reports" }).route_layer(RequireScopeLayer::new(
                ScopeRequirement::all_of(["reports:read"]),
            )),
        )
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn protected() -> SocketAddr {
    serve(routes().layer(BearerLayer::new(guard().await))).await
}

fn challenge(response: &reqwest::Response) -> String {
    response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn valid_token_with_scope_reaches_the_handler() {
    let addr = protected().await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/payments"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "list for billing-job");
}

#[tokio::test]
async fn missing_scope_is_403_with_the_needed_scope() {
    let addr = protected().await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/payments"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="payments", error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:write""#
    );
}

#[tokio::test]
async fn no_token_is_401_without_error_code() {
    let addr = protected().await;
    let response = reqwest::get(format!("http://{addr}/payments"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="payments""#);
}

#[tokio::test]
async fn invalid_token_is_401_invalid_token() {
    let addr = protected().await;
    let other_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let forged = other_key
        .token(ISS, AUD)
        .kid(key().kid())
        .scope("payments:read")
        .sign()
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/payments"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="payments", error="invalid_token", error_description="The access token is not accepted by this resource""#
    );
}

#[tokio::test]
async fn duplicate_authorization_headers_are_400() {
    let addr = protected().await;
    let value = format!("Bearer {}", token("payments:read"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.append("authorization", value.parse().unwrap());
    headers.append("authorization", value.parse().unwrap());
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/payments"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="payments", error="invalid_request", error_description="More than one Authorization header""#
    );
}

#[tokio::test]
async fn claims_reach_the_handler() {
    let addr = protected().await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/whoami"))
        .bearer_auth(token("b a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"client_id": "billing-job", "subject": "test-client", "scopes": ["a", "b"]})
    );
}

#[tokio::test]
async fn require_scope_any_of_and_all_of() {
    let addr = protected().await;
    let client = reqwest::Client::new();
    let status = |path: &'static str, post: bool, scope: &'static str| {
        let client = client.clone();
        async move {
            let url = format!("http://{addr}{path}");
            let request = if post {
                client.post(url)
            } else {
                client.get(url)
            };
            request
                .bearer_auth(token(scope))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status("/admin", false, "root").await, StatusCode::OK);
    assert_eq!(status("/admin", false, "admin other").await, StatusCode::OK);
    assert_eq!(
        status("/admin", false, "administrator").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/settle", true, "payments:read payments:settle").await,
        StatusCode::OK
    );
    assert_eq!(
        status("/settle", true, "payments:settle").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("/payments", false, "payments:read:all").await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn any_of_challenge_lists_every_alternative() {
    let addr = protected().await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/admin"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&response).ends_with(r#"scope="admin root""#));
}

#[tokio::test]
async fn require_scope_layer_guards_one_route() {
    let addr = protected().await;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("http://{addr}/reports"))
        .bearer_auth(token("reports:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = client
        .get(format!("http://{addr}/reports"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&refused).ends_with(r#"scope="reports:read""#));
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through() {
    let app = Router::new()
        .route("/hello", get(maybe))
        .layer(BearerLayer::optional(guard().await));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let anonymous = client
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "hello anonymous");
    let known = client
        .get(format!("http://{addr}/hello"))
        .bearer_auth(token(""))
        .send()
        .await
        .unwrap();
    assert_eq!(known.text().await.unwrap(), "hello billing-job");
}

#[tokio::test]
async fn optional_mode_still_rejects_invalid_tokens() {
    let app = Router::new()
        .route("/hello", get(maybe))
        .layer(BearerLayer::optional(guard().await));
    let addr = serve(app).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/hello"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn optional_mode_with_required_claims_is_401() {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerLayer::optional(guard().await));
    let addr = serve(app).await;
    let response = reqwest::get(format!("http://{addr}/whoami")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="payments""#);
}

#[tokio::test]
async fn extractor_without_the_layer_fails_closed_with_401() {
    let addr = serve(routes()).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/payments"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
    let layer_only = reqwest::Client::new()
        .get(format!("http://{addr}/reports"))
        .bearer_auth(token("reports:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(layer_only.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn grpc_content_type_gets_grpc_status() {
    let addr = protected().await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/payments"))
        .header("content-type", "application/grpc")
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "7");
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/payments"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["grpc-status"], "16");
}

#[tokio::test]
async fn claims_inserted_before_the_layer_never_reach_handlers() {
    // An outer layer (or a bug) inserting Claims must not impersonate a verified caller.
    let planted = {
        let other = SigningKey::generate(Algorithm::ES256).unwrap();
        let guard = Guard::builder()
            .issuer(Issuer::new(ISS).audience(AUD).keys(other.key_set()))
            .build()
            .await
            .unwrap();
        let token = other
            .token(ISS, AUD)
            .claim("client_id", "planted")
            .sign()
            .unwrap();
        guard.verify(&token).await.unwrap()
    };
    let app = Router::new()
        .route("/hello", get(maybe))
        .layer(BearerLayer::optional(guard().await))
        .layer(axum::Extension(planted));
    let addr = serve(app).await;
    let anonymous = reqwest::get(format!("http://{addr}/hello")).await.unwrap();
    assert_eq!(anonymous.text().await.unwrap(), "hello anonymous");
}

#[tokio::test]
async fn require_scope_layer_new_then_path_keeps_the_route_requirement_elsewhere() {
    let layer = RequireScopeLayer::new(ScopeRequirement::all_of(["base"]))
        .path("/special", ScopeRequirement::all_of(["special"]));
    let app = Router::new()
        .route("/special", get(|| async { "special" }))
        .route("/other", get(|| async { "other" }))
        .layer(layer)
        .layer(BearerLayer::new(guard().await));
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let status = |path: &'static str, scope: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token(scope))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status("/special", "special").await, StatusCode::OK);
    assert_eq!(status("/special", "base").await, StatusCode::FORBIDDEN);
    assert_eq!(status("/other", "base").await, StatusCode::OK);
    assert_eq!(status("/other", "special").await, StatusCode::FORBIDDEN);
}

// --- rejection bodies, token sources, typed claims -----------------------------------------------

fn problem_details(
    rejection: &bearer_guard::Rejection,
) -> Option<(http::HeaderValue, axum::body::Body)> {
    let json = json!({
        "title": rejection.description(),
        "status": rejection.status().as_u16(),
    });
    Some((
        http::HeaderValue::from_static("application/problem+json"),
        json.to_string().into(),
    ))
}

#[tokio::test]
async fn rejection_body_hook_shapes_every_rejection_but_not_its_status_or_challenge() {
    let addr =
        serve(routes().layer(BearerLayer::new(guard().await).rejection_body(problem_details)))
            .await;
    let client = reqwest::Client::new();
    // Decided by the layer (401), by an extractor (403) and by a RequireScopeLayer (403).
    let cases = [
        (
            "/payments",
            None,
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"payments\"",
        ),
        (
            "/payments",
            Some(token("reports:read")),
            StatusCode::FORBIDDEN,
            "Bearer realm=\"payments\", error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\", scope=\"payments:read\"",
        ),
        (
            "/reports",
            Some(token("payments:read")),
            StatusCode::FORBIDDEN,
            "Bearer realm=\"payments\", error=\"insufficient_scope\", error_description=\"The access token lacks a required scope\", scope=\"reports:read\"",
        ),
    ];
    for (path, bearer, status, expected_challenge) in cases {
        let mut request = client.get(format!("http://{addr}{path}"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(challenge(&response), expected_challenge);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(body["status"], status.as_u16());
    }
    // gRPC rejections stay trailers-only: no body.
    let grpc = client
        .get(format!("http://{addr}/payments"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.headers()["grpc-status"], "16");
    assert!(grpc.bytes().await.unwrap().is_empty());
}

async fn guard_with_sources(header: bool, cookie: bool) -> Guard {
    let mut builder = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key().key_set()))
        .realm("payments");
    if header {
        builder = builder.token_header(http::HeaderName::from_static("x-access-token"));
    }
    if cookie {
        builder = builder.token_cookie("access_token");
    }
    builder.build().await.unwrap()
}

#[tokio::test]
async fn tokens_are_read_from_a_configured_header_or_cookie() {
    let addr = serve(routes().layer(BearerLayer::new(guard_with_sources(true, true).await))).await;
    let client = reqwest::Client::new();
    let read = token("payments:read");
    let by_header = client
        .get(format!("http://{addr}/payments"))
        .header("x-access-token", &read)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), StatusCode::OK);
    let by_cookie = client
        .get(format!("http://{addr}/payments"))
        .header("cookie", format!("theme=dark; access_token={read}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), StatusCode::OK);
}

#[tokio::test]
async fn custom_header_and_cookie_are_ignored_unless_configured() {
    let addr = protected().await;
    let read = token("payments:read");
    for (name, value) in [
        ("x-access-token", read.clone()),
        ("cookie", format!("access_token={read}")),
    ] {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/payments"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(challenge(&response), "Bearer realm=\"payments\"");
    }
}

#[tokio::test]
async fn a_token_from_two_sources_is_one_too_many() {
    let addr = serve(routes().layer(BearerLayer::new(guard_with_sources(true, true).await))).await;
    let read = token("payments:read");
    let header = |name: &'static str, value: String| (name, value);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![
            header("authorization", format!("Bearer {read}")),
            header("x-access-token", read.clone()),
        ],
        vec![
            header("authorization", format!("Bearer {read}")),
            header("cookie", format!("access_token={read}")),
        ],
        vec![
            header("x-access-token", read.clone()),
            header("cookie", format!("access_token={read}")),
        ],
        vec![header(
            "cookie",
            format!("access_token={read}; access_token={read}"),
        )],
        vec![
            header("cookie", format!("access_token={read}")),
            header("cookie", format!("access_token={read}")),
        ],
        vec![
            header("x-access-token", read.clone()),
            header("x-access-token", read.clone()),
        ],
    ];
    for headers in cases {
        let mut request = reqwest::Client::new().get(format!("http://{addr}/payments"));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(challenge(&response).contains("error=\"invalid_request\""));
    }
}

#[derive(serde::Deserialize)]
struct Tenant {
    tenant: String,
}

async fn tenant(caller: bearer_guard::axum::ClaimsOf<Tenant>) -> String {
    caller.tenant.clone()
}

#[tokio::test]
async fn typed_claims_are_deserialized_once_per_token() {
    let guard = guard().await;
    let token = key()
        .token(ISS, AUD)
        .claim("tenant", "acme")
        .sign()
        .unwrap();
    let first = guard
        .verify(&token)
        .await
        .unwrap()
        .typed::<Tenant>()
        .unwrap();
    for _ in 0..20 {
        let again = guard
            .verify(&token)
            .await
            .unwrap()
            .typed::<Tenant>()
            .unwrap();
        assert_eq!(again.tenant, "acme");
        assert!(std::sync::Arc::ptr_eq(&first, &again), "deserialized again");
    }

    let addr = serve(
        Router::new()
            .route("/tenant", get(tenant))
            .layer(BearerLayer::new(guard)),
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{addr}/tenant"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "acme");
    // A payload without the handler's claims is the token's problem: 401, not 500.
    let response = client
        .get(format!("http://{addr}/tenant"))
        .bearer_auth(token_without_tenant())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("error=\"invalid_token\""));
}

fn token_without_tenant() -> String {
    token("payments:read")
}

#[tokio::test]
async fn own_middleware_authenticates_through_the_guard_and_extractors_follow() {
    let guard = guard().await;
    let through_guard = {
        let guard = guard.clone();
        axum::middleware::from_fn(
            move |mut request: axum::extract::Request, next: axum::middleware::Next| {
                let guard = guard.clone();
                async move {
                    match guard.authenticate_request(&mut request).await {
                        Ok(_) => next.run(request).await,
                        Err(rejection) => guard.reject(&rejection, request.headers()),
                    }
                }
            },
        )
    };
    let addr = serve(routes().layer(through_guard)).await;
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("http://{addr}/payments"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let forbidden = client
        .post(format!("http://{addr}/payments"))
        .bearer_auth(token("payments:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);

    // Claims a middleware verified itself and inserted by hand are not taken for the guard's.
    let by_hand = {
        let guard = guard.clone();
        axum::middleware::from_fn(
            move |mut request: axum::extract::Request, next: axum::middleware::Next| {
                let guard = guard.clone();
                async move {
                    let claims = guard.verify(&token("payments:read")).await.unwrap();
                    request.extensions_mut().insert(claims);
                    next.run(request).await
                }
            },
        )
    };
    let addr = serve(routes().layer(by_hand)).await;
    let refused = client
        .get(format!("http://{addr}/payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_quote_in_another_cookie_cannot_hide_a_second_token() {
    // A cookie planted for the domain with an unclosed quote must not swallow the real token:
    // both tokens are seen, and two tokens are one too many.
    let addr = serve(routes().layer(BearerLayer::new(guard_with_sources(false, true).await))).await;
    let (planted, real) = (token("payments:read"), token("payments:write"));
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/payments"))
        .header(
            "cookie",
            format!("access_token={planted}; x=\"; access_token={real}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn naming_authorization_as_the_token_header_is_a_build_error() {
    let built = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key().key_set()))
        .token_header(http::header::AUTHORIZATION)
        .build()
        .await;
    assert!(matches!(
        built,
        Err(bearer_guard::BuildError::TokenHeaderIsAuthorization)
    ));
}

#[tokio::test]
async fn scope_layers_never_take_claims_the_guard_did_not_leave() {
    let guard = guard().await;
    let claims = guard.verify(&token("reports:read")).await.unwrap();
    let by_hand = axum::middleware::from_fn(
        move |mut request: axum::extract::Request, next: axum::middleware::Next| {
            let claims = claims.clone();
            async move {
                request.extensions_mut().insert(claims);
                next.run(request).await
            }
        },
    );
    let addr = serve(routes().layer(by_hand)).await;
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/reports"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
