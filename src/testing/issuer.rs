//! The loopback authorization server; its user documentation lives in the `testing` module.
//!
//! One file on purpose (about 850 lines): a small OAuth server whose routes (discovery, JWKS,
//! token endpoint), client table and key rotation share one state and read best together.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, PRAGMA, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{KeyRef, SigningKey, TestKeyError, TokenBuilder, random_kid, unix_now};
use crate::jwks::KeySet;
use crate::token::Algorithm;

const DEFAULT_AUDIENCE: &str = "test-api";
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// Token requests are a few hundred bytes; anything much larger is not a token request.
const MAX_TOKEN_REQUEST_BYTES: usize = 64 * 1024;
const BASIC_CHALLENGE: &str = "Basic realm=\"bearer-guard test issuer\", charset=\"UTF-8\"";

/// The test issuer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestIssuerError {
    /// The listening socket could not be bound.
    #[error("cannot bind the test issuer to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: io::Error,
    },
    /// The signing key could not be generated.
    #[error(transparent)]
    Key(#[from] TestKeyError),
    /// HMAC algorithms need a shared secret, which a JWK Set does not publish.
    #[error("the test issuer publishes public keys; {0} is a shared-secret algorithm")]
    SharedSecretAlgorithm(Algorithm),
    /// A token request to the issuer's own `/token` endpoint failed or was refused.
    #[error("token request failed: {0}")]
    TokenRequest(String),
}

/// Configures and starts a [`TestIssuer`].
///
/// Defaults: listens on `127.0.0.1:0` (an ephemeral port), audience `test-api`, signing
/// algorithm RS256, token lifetime 5 minutes, JWKS `Cache-Control: max-age=300`, no clients.
#[derive(Debug)]
pub struct TestIssuerBuilder {
    bind: SocketAddr,
    audiences: Vec<String>,
    clients: Vec<Client>,
    algorithm: Algorithm,
    token_lifetime: Duration,
    jwks_max_age: Duration,
}

impl TestIssuerBuilder {
    /// Listen on `addr` instead of `127.0.0.1:0`. The issuer URL uses the bound address (with
    /// `127.0.0.1` / `::1` in place of an unspecified IP), so a fixed port gives a fixed issuer.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// An audience tokens may be issued for. The first one is the default; call again to allow
    /// more (selected with the `resource` or `audience` parameter). Without any: `test-api`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// A confidential client with its secret and the scopes it may be granted. Calling again with
    /// the same `client_id` replaces the earlier entry.
    pub fn client<I, S>(
        mut self,
        client_id: impl Into<String>,
        secret: impl Into<String>,
        scopes: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let id = client_id.into();
        self.clients.retain(|client| client.id != id);
        let secret = secret.into();
        self.clients.push(Client {
            id,
            secret_digest: secret_digest(secret.as_bytes()),
            scopes: scopes.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// The signing algorithm of the issuer's keys (default RS256). Any asymmetric algorithm;
    /// HMAC algorithms are refused by [`start`](Self::start).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Lifetime of issued and minted tokens (default 5 minutes).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// The `max-age` of the JWK Set's `Cache-Control` header (default 300 s).
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// Generate the first signing key, bind the socket and start serving on the current Tokio
    /// runtime. The server runs until the [`TestIssuer`] is shut down or dropped.
    pub async fn start(self) -> Result<TestIssuer, TestIssuerError> {
        if self.algorithm.is_hmac() {
            return Err(TestIssuerError::SharedSecretAlgorithm(self.algorithm));
        }
        let key = SigningKey::generate(self.algorithm)?;
        let listener =
            TcpListener::bind(self.bind)
                .await
                .map_err(|source| TestIssuerError::Bind {
                    addr: self.bind,
                    source,
                })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| TestIssuerError::Bind {
                addr: self.bind,
                source,
            })?;
        let issuer = format!("http://{}", advertised(local_addr));
        let mut audiences = self.audiences;
        if audiences.is_empty() {
            audiences.push(DEFAULT_AUDIENCE.to_owned());
        }
        let shared = Arc::new(Shared {
            jwks_uri: format!("{issuer}/jwks"),
            token_endpoint: format!("{issuer}/token"),
            issuer,
            audiences,
            clients: self.clients,
            token_lifetime: self.token_lifetime,
            jwks_max_age: self.jwks_max_age,
            keys: RwLock::new(Keys {
                current: Arc::new(key),
                previous: Vec::new(),
                generation: 0,
            }),
            jwks_requests: AtomicU64::new(0),
            jwks_available: AtomicBool::new(true),
        });

        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router(Arc::clone(&shared)))
            .with_graceful_shutdown(async move {
                // Fires when `stop` is used or dropped: either way the issuer is gone.
                let _ = stopped.await;
            })
            .into_future();
        let task = tokio::spawn(async move {
            if let Err(err) = server.await {
                tracing::warn!(error = %err, "test issuer stopped with an error");
            }
        });
        tracing::debug!(issuer = %shared.issuer, "test issuer started");
        Ok(TestIssuer {
            shared,
            local_addr,
            algorithm: self.algorithm,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A loopback OAuth 2.0 authorization server: discovery, JWKS and a client-credentials token
/// endpoint, on a real socket. See the [module documentation](crate::testing) for an example and
/// the token endpoint's rules.
///
/// Endpoints, relative to [`issuer_url`](Self::issuer_url):
/// `GET /.well-known/openid-configuration`, `GET /.well-known/oauth-authorization-server`,
/// `GET /jwks` and `POST /token`.
///
/// Dropping it stops the server: the socket closes at once and open connections are shut down
/// gracefully. [`shutdown`](Self::shutdown) does the same and waits until the server has stopped.
pub struct TestIssuer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    algorithm: Algorithm,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared.issuer)
            .field("audiences", &self.shared.audiences)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TestIssuer {
    /// Start configuring a test issuer.
    pub fn builder() -> TestIssuerBuilder {
        TestIssuerBuilder {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            audiences: Vec::new(),
            clients: Vec::new(),
            algorithm: Algorithm::RS256,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            jwks_max_age: DEFAULT_JWKS_MAX_AGE,
        }
    }

    /// The issuer identifier and base URL, e.g. `http://127.0.0.1:41234` (no trailing slash):
    /// the `iss` of its tokens.
    pub fn issuer_url(&self) -> &str {
        &self.shared.issuer
    }

    /// The URL of the JWK Set (`{issuer}/jwks`).
    pub fn jwks_uri(&self) -> &str {
        &self.shared.jwks_uri
    }

    /// The URL of the token endpoint (`{issuer}/token`).
    pub fn token_endpoint(&self) -> &str {
        &self.shared.token_endpoint
    }

    /// The socket address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The default audience: the first one configured, or `test-api`.
    pub fn audience(&self) -> &str {
        self.shared.default_audience()
    }

    /// The algorithm of the issuer's signing keys.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid` of the current signing key.
    pub fn current_kid(&self) -> String {
        let keys = self.shared.read_keys();
        keys.current.kid().unwrap_or_default().to_owned()
    }

    /// The JWK Set the issuer publishes right now: the current key first, then older keys that
    /// are still published.
    pub fn jwks(&self) -> Value {
        self.shared.read_keys().jwks()
    }

    /// The published keys as a [`KeySet`], for a guard configured without fetching the JWKS.
    /// A snapshot: later rotations do not change it.
    pub fn key_set(&self) -> KeySet {
        // Our own freshly generated public keys always load; an empty set would fail tests loudly.
        KeySet::from_jwks_json(self.jwks().to_string()).unwrap_or_default()
    }

    /// Get an access token the way a client does: a client-credentials request (HTTP Basic client
    /// authentication) to this issuer's `/token` endpoint, for `scopes` (empty: every scope the
    /// client may have). The client must have been registered with
    /// [`TestIssuerBuilder::client`]. Tests need no HTTP client of their own.
    ///
    /// ```
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use bearer_guard::testing::TestIssuer;
    ///
    /// let issuer = TestIssuer::builder()
    ///     .audience("inventory-api")
    ///     .client("stock-job", "stock-secret", ["inventory:read", "inventory:write"])
    ///     .start()
    ///     .await?;
    /// let token = issuer.client_credentials("stock-job", "stock-secret", &["inventory:read"]).await?;
    /// assert_eq!(token.split('.').count(), 3);
    /// assert!(issuer.client_credentials("stock-job", "wrong", &[]).await.is_err());
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &str,
        scopes: &[&str],
    ) -> Result<String, TestIssuerError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !scopes.is_empty() {
            form.append_pair("scope", &scopes.join(" "));
        }
        let failed = |err: reqwest::Error| TestIssuerError::TokenRequest(err.to_string());
        let response = reqwest::Client::new()
            .post(self.token_endpoint())
            .basic_auth(client_id, Some(client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .await
            .map_err(failed)?;
        let status = response.status();
        let body: Value = serde_json::from_slice(&response.bytes().await.map_err(failed)?)
            .map_err(|err| TestIssuerError::TokenRequest(err.to_string()))?;
        match body.get("access_token").and_then(Value::as_str) {
            Some(token) if status.is_success() => Ok(token.to_owned()),
            _ => Err(TestIssuerError::TokenRequest(format!(
                "HTTP {status}: {}",
                body.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("no access_token")
            ))),
        }
    }

    /// A builder for a token from this issuer, for its default audience, signed with the current
    /// key: header `typ` = `at+jwt` and the current `kid`; claims `iss`, `aud`, `sub` and
    /// `client_id` (`test-client`), `iat`, `exp` (now + the token lifetime) and `jti`. Any of it can
    /// be changed before signing.
    pub fn mint(&self) -> TokenBuilder<'static> {
        let key = Arc::clone(&self.shared.read_keys().current);
        TokenBuilder::new(
            KeyRef::Shared(key),
            &self.shared.issuer,
            self.shared.default_audience(),
        )
        .typ("at+jwt")
        .expires_in(self.shared.token_lifetime)
    }

    /// Start signing with a new key. The previous keys stay published (for tokens already
    /// issued) until [`retire_old_keys`](Self::retire_old_keys). Returns the new key's `kid`.
    pub fn rotate_keys(&self) -> Result<String, TestKeyError> {
        // Generate before taking the lock: RSA key generation is slow.
        let key = SigningKey::generate(self.algorithm)?;
        let kid = key.kid().unwrap_or_default().to_owned();
        let mut keys = self.shared.write_keys();
        let old = std::mem::replace(&mut keys.current, Arc::new(key));
        keys.previous.insert(0, old);
        keys.generation += 1;
        Ok(kid)
    }

    /// Stop publishing every key but the current one.
    pub fn retire_old_keys(&self) {
        let mut keys = self.shared.write_keys();
        if !keys.previous.is_empty() {
            keys.previous.clear();
            keys.generation += 1;
        }
    }

    /// How many requests `GET /jwks` has received (including `304 Not Modified` and `503`
    /// answers).
    pub fn jwks_requests(&self) -> u64 {
        self.shared.jwks_requests.load(Ordering::Relaxed)
    }

    /// Simulate an outage of the JWKS endpoint: while `false`, `GET /jwks` answers
    /// `503 Service Unavailable`. Discovery and the token endpoint keep working.
    pub fn set_jwks_available(&self, available: bool) {
        self.shared
            .jwks_available
            .store(available, Ordering::Relaxed);
    }

    /// Stop the server and wait until it has: no new connections are accepted, open connections
    /// finish their current request and close.
    pub fn shutdown(mut self) -> impl Future<Output = ()> + Send + 'static {
        let stop = self.stop.take();
        let task = self.task.take();
        async move {
            drop(stop);
            if let Some(task) = task {
                // The task only ends with an error if it panicked; nothing is left to clean up.
                let _ = task.await;
            }
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        // Dropping the sender triggers graceful shutdown of open connections; aborting the
        // accept loop closes the socket now, even outside an async context.
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An unspecified bind address is advertised as the loopback address of the same family.
fn advertised(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

struct Client {
    id: String,
    secret_digest: digest::Digest,
    scopes: Vec<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Secrets are compared as SHA-256 digests: equal lengths, so the comparison time says nothing
/// about the secret, not even its length.
fn secret_digest(secret: &[u8]) -> digest::Digest {
    digest::digest(&digest::SHA256, secret)
}

struct Shared {
    issuer: String,
    jwks_uri: String,
    token_endpoint: String,
    audiences: Vec<String>,
    clients: Vec<Client>,
    token_lifetime: Duration,
    jwks_max_age: Duration,
    keys: RwLock<Keys>,
    jwks_requests: AtomicU64,
    jwks_available: AtomicBool,
}

struct Keys {
    current: Arc<SigningKey>,
    /// Older keys, newest first, still published.
    previous: Vec<Arc<SigningKey>>,
    /// Changes whenever the published set does: the JWKS `ETag`.
    generation: u64,
}

impl Keys {
    fn jwks(&self) -> Value {
        SigningKey::jwks(
            std::iter::once(&*self.current).chain(self.previous.iter().map(|key| &**key)),
        )
    }
}

impl Shared {
    // The locks guard plain data and are never held across an await; a panic while one was held
    // cannot leave the key list half-updated, so a poisoned lock is still safe to use.
    fn read_keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_keys(&self) -> std::sync::RwLockWriteGuard<'_, Keys> {
        self.keys.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn default_audience(&self) -> &str {
        self.audiences
            .first()
            .map_or(DEFAULT_AUDIENCE, String::as_str)
    }

    fn metadata(&self) -> Value {
        let mut scopes: Vec<&str> = Vec::new();
        for scope in self.clients.iter().flat_map(|client| &client.scopes) {
            if !scopes.contains(&scope.as_str()) {
                scopes.push(scope);
            }
        }
        json!({
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.token_endpoint,
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": scopes,
            // No authorization endpoint: only the token endpoint's grant is offered.
            "response_types_supported": [],
        })
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &shared.metadata())
}

async fn jwks(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    shared.jwks_requests.fetch_add(1, Ordering::Relaxed);
    if !shared.jwks_available.load(Ordering::Relaxed) {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    let (body, generation) = {
        let keys = shared.read_keys();
        (keys.jwks(), keys.generation)
    };
    let etag = format!("\"jwks-{generation}\"");
    let cache_control = format!("public, max-age={}", shared.jwks_max_age.as_secs());
    let not_modified = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| {
            let candidate = candidate.trim();
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
        });
    let mut response = if not_modified {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = json_response(StatusCode::OK, &body);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        response
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(CACHE_CONTROL, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, value);
    }
    response
}

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        OAuthError {
            status,
            error,
            description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        OAuthError::new("invalid_request", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        OAuthError::new("invalid_client", description)
    }

    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = no_store(json_response(self.status, &body));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE));
        }
        response
    }
}

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn token(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let outcome = match axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES).await {
        Ok(body) => issue_token(&shared, &parts.headers, &body),
        Err(_) => Err(OAuthError::invalid_request(
            "the request body could not be read or is too large",
        )),
    };
    match outcome {
        Ok(issued) => no_store(json_response(StatusCode::OK, &issued)),
        Err(err) => {
            tracing::debug!(error = err.error, reason = %err.description, "token request refused");
            err.into_response()
        }
    }
}

/// The parameters of a token request (RFC 6749 §4.4.2, RFC 8707).
#[derive(Debug, Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    audience: Option<String>,
    resources: Vec<String>,
}

impl TokenRequest {
    fn parse(headers: &HeaderMap, body: &Bytes) -> Result<TokenRequest, OAuthError> {
        let form = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                media
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let mut request = TokenRequest::default();
        for (name, value) in form_urlencoded::parse(body) {
            // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
            if value.is_empty() {
                continue;
            }
            let slot = match &*name {
                "grant_type" => &mut request.grant_type,
                "client_id" => &mut request.client_id,
                "client_secret" => &mut request.client_secret,
                "scope" => &mut request.scope,
                "audience" => &mut request.audience,
                "resource" => {
                    request.resources.push(value.into_owned());
                    continue;
                }
                _ => continue,
            };
            if slot.is_some() {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name} is repeated"
                )));
            }
            *slot = Some(value.into_owned());
        }
        Ok(request)
    }
}

fn issue_token(shared: &Shared, headers: &HeaderMap, body: &Bytes) -> Result<Value, OAuthError> {
    let request = TokenRequest::parse(headers, body)?;
    let (client_id, secret) = client_credentials(headers, &request)?;
    let grant_type = request
        .grant_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let client = authenticate(shared, &client_id, &secret)?;
    if grant_type != "client_credentials" {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            "only the client_credentials grant is supported",
        ));
    }
    let scopes = granted_scopes(client, request.scope.as_deref())?;
    let audiences = target_audiences(shared, &request)?;

    let key = Arc::clone(&shared.read_keys().current);
    let lifetime = shared.token_lifetime.as_secs();
    let now = unix_now();
    let audience = match audiences.as_slice() {
        [single] => Value::from(*single),
        several => several.iter().copied().collect(),
    };
    let scope = scopes.join(" ");
    let mut builder = TokenBuilder::new(KeyRef::Shared(key), &shared.issuer, "")
        .typ("at+jwt")
        .claim("aud", audience)
        .claim("sub", client.id.as_str())
        .claim("client_id", client.id.as_str())
        .claim("iat", now)
        .claim("exp", now.saturating_add(lifetime))
        .claim("jti", random_kid().unwrap_or_else(|_| now.to_string()));
    if !scope.is_empty() {
        builder = builder.scope(&scope);
    }
    let access_token = builder.sign().map_err(|err| OAuthError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: "server_error",
        description: err.to_string(),
    })?;
    tracing::debug!(client_id = %client.id, scope = %scope, "access token issued");

    let mut response = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
    });
    if !scope.is_empty() {
        response["scope"] = scope.into();
    }
    Ok(response)
}

/// The client id and secret, from exactly one authentication method.
fn client_credentials(
    headers: &HeaderMap,
    request: &TokenRequest,
) -> Result<(String, String), OAuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let basic = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "more than one Authorization header",
            ));
        }
        (Some(value), None) => Some(basic_credentials(value)?),
    };
    match (basic, &request.client_id, &request.client_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::invalid_request(
            "the client authenticated with both HTTP Basic and client_secret in the body",
        )),
        (Some((id, _)), Some(body_id), None) if *body_id != id => Err(OAuthError::invalid_request(
            "client_id in the body differs from the Basic credentials",
        )),
        (Some(credentials), _, None) => Ok(credentials),
        (None, Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
        (None, Some(_), None) => Err(OAuthError::invalid_client(
            "client_secret is required: only confidential clients are supported",
        )),
        (None, None, _) => Err(OAuthError::invalid_client("no client authentication")),
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1).
fn basic_credentials(value: &HeaderValue) -> Result<(String, String), OAuthError> {
    let unusable = || OAuthError::invalid_client("unusable Basic credentials");
    let value = value.to_str().map_err(|_| unusable())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(unusable)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported client authentication scheme",
        ));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| unusable())?;
    let decoded = String::from_utf8(decoded).map_err(|_| unusable())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(unusable)?;
    let id = form_decode(id).ok_or_else(unusable)?;
    let secret = form_decode(secret).ok_or_else(unusable)?;
    if id.is_empty() {
        return Err(unusable());
    }
    Ok((id, secret))
}

/// Decode one `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a byte. A `%`
/// not followed by two hex digits is kept as is (clients that do not encode are common).
fn form_decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = match (byte, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match (byte, escaped) {
            (_, Some((high, low))) => {
                decoded.push(high << 4 | low);
                i += 3;
            }
            (b'+', None) => {
                decoded.push(b' ');
                i += 1;
            }
            (other, None) => {
                decoded.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn authenticate<'s>(shared: &'s Shared, id: &str, secret: &str) -> Result<&'s Client, OAuthError> {
    let presented = secret_digest(secret.as_bytes());
    let client = shared.clients.iter().find(|client| client.id == id);
    // Compare even for an unknown client, so both failures take the same time.
    let expected = client.map_or_else(|| secret_digest(b"\0unknown client"), |c| c.secret_digest);
    let matches = verify_slices_are_equal(presented.as_ref(), expected.as_ref()).is_ok();
    match client {
        Some(client) if matches => Ok(client),
        _ => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// The requested scopes if the client may have them all, or all of its scopes if none are asked.
fn granted_scopes<'c>(
    client: &'c Client,
    requested: Option<&str>,
) -> Result<Vec<&'c str>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(client.scopes.iter().map(String::as_str).collect());
    };
    let mut granted: Vec<&str> = Vec::new();
    for scope in requested.split(' ').filter(|scope| !scope.is_empty()) {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        if !scope
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        {
            return Err(OAuthError::new("invalid_scope", "malformed scope"));
        }
        let Some(allowed) = client.scopes.iter().find(|allowed| *allowed == scope) else {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("the client may not request scope {scope}"),
            ));
        };
        if !granted.contains(&allowed.as_str()) {
            granted.push(allowed);
        }
    }
    Ok(granted)
}

/// The audiences named by `resource` (RFC 8707) and `audience`, or the default one.
fn target_audiences<'s>(
    shared: &'s Shared,
    request: &TokenRequest,
) -> Result<Vec<&'s str>, OAuthError> {
    let mut audiences: Vec<&str> = Vec::new();
    for wanted in request.resources.iter().chain(&request.audience) {
        let Some(known) = shared.audiences.iter().find(|known| *known == wanted) else {
            return Err(OAuthError::new(
                "invalid_target",
                format!("unknown resource or audience {wanted}"),
            ));
        };
        if !audiences.contains(&known.as_str()) {
            audiences.push(known);
        }
    }
    if audiences.is_empty() {
        audiences.push(shared.default_audience());
    }
    Ok(audiences)
}
