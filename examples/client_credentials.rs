//! The calling side: a service that gets an access token with the client-credentials grant, keeps
//! it in memory, reuses it until shortly before it expires, and calls the protected API.
//!
//! ```text
//! cargo run --example client_credentials
//! ```
//!
//! With no configuration it starts the embedded test authorization server and the example API
//! in-process and calls them. To call a real deployment set `TOKEN_ENDPOINT`, `CLIENT_ID`,
//! `CLIENT_SECRET`, `API_URL` (e.g. `http://127.0.0.1:3000/payments`) and optionally `SCOPE` and
//! `RESOURCE` (the audience, RFC 8707).
//!
//! Reusing the token is the practice to follow: one token request per token lifetime instead of
//! one per call, less load on the IdP, and the API's verified-token cache turns every repeated
//! token into a lookup instead of a signature check.

use std::time::{Duration, Instant};

use bearer_guard::testing::demo;
use serde::Deserialize;
use tokio::sync::Mutex;

/// Client credentials and where to trade them for a token.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The authorization server's token endpoint.
    pub token_endpoint: String,
    /// This service's client id.
    pub client_id: String,
    /// Its secret (sent with HTTP Basic, RFC 6749 §2.3.1).
    pub client_secret: String,
    /// Scopes to ask for (space-separated), or none for the client's default.
    pub scope: Option<String>,
    /// The API's resource indicator / audience, if the IdP needs one.
    pub resource: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A cached access token: fetched once, reused until `refresh_margin` before it expires.
pub struct TokenSource {
    http: reqwest::Client,
    config: ClientConfig,
    refresh_margin: Duration,
    cached: Mutex<Option<(String, Instant)>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenSource {
    /// A source that refreshes `refresh_margin` before expiry (clock skew and request time).
    pub fn new(config: ClientConfig, refresh_margin: Duration) -> Self {
        TokenSource {
            http: reqwest::Client::new(),
            config,
            refresh_margin,
            cached: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A valid token: the cached one, or a new one. Concurrent callers share one fetch (the
    /// lock is held across it).
    pub async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        let refresh_at = Instant::now() + lifetime.saturating_sub(self.refresh_margin);
        *cached = Some((token.clone(), refresh_at));
        Ok(token)
    }

    /// How many token requests were made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<(String, Duration), Box<dyn std::error::Error + Send + Sync>> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &self.config.scope {
            form.append_pair("scope", scope);
        }
        if let Some(resource) = &self.config.resource {
            form.append_pair("resource", resource);
        }
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic encoding.
        let encode =
            |value: &str| form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&self.config.token_endpoint)
            .basic_auth(
                encode(&self.config.client_id),
                Some(encode(&self.config.client_secret)),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if !status.is_success() {
            return Err(format!(
                "token endpoint answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        let token: TokenResponse = serde_json::from_slice(&body)?;
        // Without expires_in, assume a short life rather than forever.
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(60));
        Ok((token.access_token, lifetime))
    }
}

/// Call `url` with a token from `source`; on a 401 (revoked or rotated), refetch once and retry.
pub async fn call_api(
    http: &reqwest::Client,
    source: &TokenSource,
    url: &str,
) -> Result<(reqwest::StatusCode, String), Box<dyn std::error::Error + Send + Sync>> {
    let response = http
        .get(url)
        .bearer_auth(source.token().await?)
        .send()
        .await?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok((response.status(), response.text().await?));
    }
    *source.cached.lock().await = None;
    let response = http
        .get(url)
        .bearer_auth(source.token().await?)
        .send()
        .await?;
    Ok((response.status(), response.text().await?))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let http = reqwest::Client::new();
    // Embedded demo: issuer and API in this process, unless a real deployment is configured.
    let mut _embedded = None;
    let (config, api_url) = match std::env::var("TOKEN_ENDPOINT") {
        Ok(token_endpoint) => (
            ClientConfig {
                token_endpoint,
                client_id: std::env::var("CLIENT_ID")?,
                client_secret: std::env::var("CLIENT_SECRET")?,
                scope: std::env::var("SCOPE").ok(),
                resource: std::env::var("RESOURCE").ok(),
            },
            std::env::var("API_URL")?,
        ),
        Err(_) => {
            let (id, secret, scopes) = demo::DEMO_BILLING;
            let issuer = bearer_guard::testing::TestIssuer::builder()
                .audience(demo::DEMO_AUDIENCE)
                .client(id, secret, scopes.iter().copied())
                .start()
                .await?;
            let guard = bearer_guard::Guard::builder()
                .issuer(
                    bearer_guard::Issuer::new(issuer.issuer_url())
                        .audience(demo::DEMO_AUDIENCE)
                        .discover(),
                )
                .build()
                .await?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let api = listener.local_addr()?;
            tokio::spawn(async move { axum::serve(listener, demo::app(guard)).await });
            let config = ClientConfig {
                token_endpoint: issuer.token_endpoint().to_owned(),
                client_id: id.to_owned(),
                client_secret: secret.to_owned(),
                scope: Some("payments:read".to_owned()),
                resource: None,
            };
            _embedded = Some(issuer);
            (config, format!("http://{api}/payments"))
        }
    };

    let source = TokenSource::new(config, Duration::from_secs(30));
    for call in 1..=3 {
        let (status, body) = call_api(&http, &source, &api_url).await?;
        println!("call {call}: {status} {body}");
    }
    println!("token requests made: {}", source.fetches());
    Ok(())
}
