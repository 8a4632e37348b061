//! Tokens from a real authorization server (oidc-provider, `tests/support/interop.rs`) sent over
//! real HTTP to an axum router behind `BearerLayer`, on `127.0.0.1:0`: 200 with the route's
//! scope, 403 `insufficient_scope` without it, 401 `invalid_token` when tampered, expired or for
//! another audience.
//!
//! The router is the `resource_server` example's own, and the guard finds the provider's keys by
//! discovery from its issuer URL alone, as the example does with `ISSUER`.

use bearer_guard::testing::demo as example;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bearer_guard::{Guard, Issuer};
use support::interop::{AuthorizationServer, BILLING, ProviderOptions, REPORTER};
use tokio::time::Instant;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A provider, and the payments API protected by a guard that trusts its JWKS, served on
/// `127.0.0.1:0`.
struct Setup {
    provider: AuthorizationServer,
    api: SocketAddr,
    http: reqwest::Client,
}

impl Setup {
    async fn start(
        options: ProviderOptions,
        leeway: Duration,
    ) -> Result<Setup, Box<dyn std::error::Error>> {
        let provider = match AuthorizationServer::start(options).await {
            Ok(provider) => provider,
            Err(err) => panic!("{err}"),
        };
        let guard = Guard::builder()
            .issuer(
                Issuer::new(provider.issuer())
                    .audience(provider.audience())
                    .discover()
                    .leeway(leeway),
            )
            .realm("payments")
            .build()
            .await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api = listener.local_addr()?;
        let app = example::app(guard);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Setup {
            provider,
            api,
            http: reqwest::Client::new(),
        })
    }

    async fn token(
        &self,
        (client, secret): (&str, &str),
        scope: &str,
    ) -> Result<String, Box<dyn std::error::Error>> {
        Ok(self
            .provider
            .client_credentials_token(client, secret, scope, self.provider.audience())
            .await?)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let request = self
            .http
            .request(method, format!("http://{}{path}", self.api));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .await
    }
}

/// The client the example's `GET /payments` says made the request.
async fn requested_by(response: reqwest::Response) -> Result<String, Box<dyn std::error::Error>> {
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(body["requested_by"].as_str().unwrap_or_default().to_owned())
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn billing_provider_token_reaches_read_and_write_routes() -> TestResult {
    let setup = Setup::start(ProviderOptions::default(), Duration::from_secs(60)).await?;
    let token = setup.token(BILLING, "payments:read payments:write").await?;

    let read = setup
        .call(reqwest::Method::GET, "/payments", Some(&token))
        .await?;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(requested_by(read).await?, "billing");

    let write = setup
        .call(reqwest::Method::POST, "/payments", Some(&token))
        .await?;
    assert_eq!(write.status(), StatusCode::CREATED);
    Ok(())
}

#[tokio::test]
async fn reporter_provider_token_is_403_on_the_write_route() -> TestResult {
    let setup = Setup::start(ProviderOptions::default(), Duration::from_secs(60)).await?;
    let token = setup.token(REPORTER, "payments:read").await?;

    let read = setup
        .call(reqwest::Method::GET, "/payments", Some(&token))
        .await?;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(requested_by(read).await?, "reporter");

    let write = setup
        .call(reqwest::Method::POST, "/payments", Some(&token))
        .await?;
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(&write);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="payments:write""#),
        "{challenge}"
    );
    Ok(())
}

#[tokio::test]
async fn tampered_provider_token_is_401_invalid_token() -> TestResult {
    let setup = Setup::start(ProviderOptions::default(), Duration::from_secs(60)).await?;
    let token = setup.token(REPORTER, "payments:read").await?;

    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1])?)?;
    claims["scope"] = "payments:read payments:write".into();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let tampered = parts.join(".");

    let response = setup
        .call(reqwest::Method::POST, "/payments", Some(&tampered))
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&response).contains(r#"error="invalid_token""#),
        "{}",
        challenge(&response)
    );
    Ok(())
}

#[tokio::test]
async fn provider_token_for_another_audience_is_401_invalid_token() -> TestResult {
    let setup = Setup::start(ProviderOptions::default(), Duration::from_secs(60)).await?;
    let (client, secret) = BILLING;
    let other = setup
        .provider
        .client_credentials_token(
            client,
            secret,
            "other:read",
            &setup.provider.info().other_audience,
        )
        .await?;
    let response = setup
        .call(reqwest::Method::GET, "/whoami", Some(&other))
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&response).contains(r#"error="invalid_token""#),
        "{}",
        challenge(&response)
    );
    Ok(())
}

#[tokio::test]
async fn expired_provider_token_is_401_invalid_token() -> TestResult {
    let ttl = Duration::from_secs(2);
    let setup = Setup::start(
        ProviderOptions {
            ttl,
            ..ProviderOptions::default()
        },
        Duration::ZERO,
    )
    .await?;
    let token = setup.token(BILLING, "payments:read").await?;
    let fresh = setup
        .call(reqwest::Method::GET, "/whoami", Some(&token))
        .await?;
    assert_eq!(fresh.status(), StatusCode::OK, "accepted while still valid");

    // Poll until the token has expired, with a deadline.
    let deadline = Instant::now() + ttl + Duration::from_secs(5);
    loop {
        let response = setup
            .call(reqwest::Method::GET, "/whoami", Some(&token))
            .await?;
        match response.status() {
            StatusCode::UNAUTHORIZED => {
                let challenge = challenge(&response);
                assert!(
                    challenge.contains(r#"error="invalid_token""#),
                    "{challenge}"
                );
                break;
            }
            StatusCode::OK if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("expected 401 before the deadline, got {other}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn request_without_token_is_401_without_error_code() -> TestResult {
    let setup = Setup::start(ProviderOptions::default(), Duration::from_secs(60)).await?;
    let response = setup.call(reqwest::Method::GET, "/payments", None).await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="payments""#);
    Ok(())
}
