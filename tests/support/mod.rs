//! A real authorization server on `127.0.0.1:0` for key-source tests.
//!
//! It serves a JWK Set at `/jwks` and discovery metadata (OpenID Connect and RFC 8414, for any
//! issuer path), records every request, and can be told to rotate keys, fail, hang, send garbage
//! or oversized bodies, redirect, or change its `Cache-Control` and `ETag`. Tests wait on its
//! request counter (a `watch` channel), never on sleeps.

#![allow(dead_code)] // each test file uses its own part of the kit

/// The real oidc-provider authorization server (Node.js), for interop tests.
pub mod interop;

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bearer_guard::testing::SigningKey;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The marker header a test's own `reqwest::Client` sends.
pub const CLIENT_MARKER: &str = "x-test-client";

/// What `/jwks` answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// The JWK Set, honouring `ETag`/`If-None-Match`.
    Serve,
    /// This status and an empty body.
    Status(u16),
    /// Never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with JSON that is not a JWK Set.
    NotAJwkSet,
    /// 200 with a JWK Set that holds no key (`{"keys":[]}`): a valid, authoritative answer.
    EmptySet,
    /// 200 with 2 MiB announced in `Content-Length`.
    Huge,
    /// 200 with an endless chunked body (no `Content-Length`).
    Endless,
    /// 307 to `/jwks-moved`, which serves the set.
    Redirect,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub if_none_match: Option<String>,
    pub marker: Option<String>,
    /// 0 while unanswered.
    pub status: u16,
}

struct Config {
    jwks: Value,
    behaviour: Behaviour,
    cache_control: Option<String>,
    etag: Option<String>,
    serve_oidc: bool,
    serve_rfc8414: bool,
    metadata_issuer: Option<String>,
    /// The metadata's `jwks_uri` names `/jwks-moved` instead of `/jwks`.
    keys_moved: bool,
}

struct Shared {
    base: String,
    config: Mutex<Config>,
    hits: Mutex<Vec<Hit>>,
    /// Requests arrived (answered or not), for waiting.
    seen: watch::Sender<usize>,
    /// While `true`, `/jwks` requests wait before answering.
    held: watch::Sender<bool>,
}

/// The test authorization server. Dropping it does not stop it; it lives as long as the test's
/// runtime.
#[derive(Clone)]
pub struct Idp {
    shared: Arc<Shared>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Idp {
    /// Start a server publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let shared = Arc::new(Shared {
            base,
            config: Mutex::new(Config {
                jwks: SigningKey::jwks(keys.iter().copied()),
                behaviour: Behaviour::Serve,
                cache_control: None,
                etag: None,
                serve_oidc: true,
                serve_rfc8414: true,
                metadata_issuer: None,
                keys_moved: false,
            }),
            hits: Mutex::new(Vec::new()),
            seen: watch::Sender::new(0),
            held: watch::Sender::new(false),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Idp { shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.shared.base
    }

    /// The JWK Set URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.base)
    }

    /// Publish these keys from now on.
    pub fn publish(&self, keys: &[&SigningKey]) {
        locked(&self.shared.config).jwks = SigningKey::jwks(keys.iter().copied());
    }

    /// Serve this JWK Set document from now on, as given (keys the test kit cannot make).
    pub fn publish_document(&self, jwks: Value) {
        locked(&self.shared.config).jwks = jwks;
    }

    pub fn behave(&self, behaviour: Behaviour) {
        locked(&self.shared.config).behaviour = behaviour;
    }

    pub fn cache_control(&self, value: Option<&str>) {
        locked(&self.shared.config).cache_control = value.map(str::to_owned);
    }

    pub fn etag(&self, value: Option<&str>) {
        locked(&self.shared.config).etag = value.map(str::to_owned);
    }

    /// Which discovery documents exist.
    pub fn discovery(&self, oidc: bool, rfc8414: bool) {
        let mut config = locked(&self.shared.config);
        config.serve_oidc = oidc;
        config.serve_rfc8414 = rfc8414;
    }

    /// Make metadata documents name this issuer instead of their own.
    /// From now on the metadata names `/jwks-moved` as the `jwks_uri` (which always serves the
    /// published keys).
    pub fn move_keys(&self) {
        locked(&self.shared.config).keys_moved = true;
    }

    pub fn metadata_issuer(&self, issuer: &str) {
        locked(&self.shared.config).metadata_issuer = Some(issuer.to_owned());
    }

    /// Hold `/jwks` answers until [`release`](Self::release).
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    pub fn release(&self) {
        self.shared.held.send_replace(false);
    }

    pub fn hits(&self) -> Vec<Hit> {
        locked(&self.shared.hits).clone()
    }

    /// Requests for `path` so far.
    pub fn count(&self, path: &str) -> usize {
        locked(&self.shared.hits)
            .iter()
            .filter(|hit| hit.path == path)
            .count()
    }

    /// JWK Set requests so far.
    pub fn fetches(&self) -> usize {
        self.count("/jwks")
    }

    /// Answers to `/jwks` with this status so far.
    pub fn answered(&self, status: u16) -> usize {
        locked(&self.shared.hits)
            .iter()
            .filter(|hit| hit.path == "/jwks" && hit.status == status)
            .count()
    }

    /// Wait until `requests` requests in all have arrived (panics after `within`).
    pub async fn wait_for_requests(&self, requests: usize, within: Duration) {
        let mut seen = self.shared.seen.subscribe();
        tokio::time::timeout(within, seen.wait_for(|count| *count >= requests))
            .await
            .unwrap_or_else(|_| panic!("server saw fewer than {requests} requests in {within:?}"))
            .expect("server alive");
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request.headers().clone();
    // Recorded on arrival (status 0 until answered), so a hanging request still counts.
    let index = {
        let mut hits = locked(&shared.hits);
        hits.push(Hit {
            path: path.clone(),
            if_none_match: text(&headers, header::IF_NONE_MATCH.as_str()),
            marker: text(&headers, CLIENT_MARKER),
            status: 0,
        });
        hits.len() - 1
    };
    shared.seen.send_modify(|count| *count += 1);
    let response = respond(&shared, &path, &headers).await;
    locked(&shared.hits)[index].status = response.status().as_u16();
    response
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

async fn respond(shared: &Shared, path: &str, headers: &HeaderMap) -> Response {
    const OIDC: &str = "/.well-known/openid-configuration";
    const RFC8414: &str = "/.well-known/oauth-authorization-server";
    if path == "/jwks" {
        let mut held = shared.held.subscribe();
        let _ = held.wait_for(|held| !*held).await;
        return jwks(shared, headers).await;
    }
    if path == "/jwks-moved" {
        let body = locked(&shared.config).jwks.to_string();
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let config = locked(&shared.config);
    let issuer_path = if let Some(prefix) = path.strip_suffix(OIDC) {
        config.serve_oidc.then_some(prefix)
    } else if let Some(suffix) = path.strip_prefix(RFC8414) {
        config.serve_rfc8414.then_some(suffix)
    } else {
        None
    };
    let Some(issuer_path) = issuer_path else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let issuer = config
        .metadata_issuer
        .clone()
        .unwrap_or_else(|| format!("{}{issuer_path}", shared.base));
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!(
            "{}/{}",
            shared.base,
            if config.keys_moved { "jwks-moved" } else { "jwks" }
        ),
        "token_endpoint": format!("{}/token", shared.base),
        "grant_types_supported": ["client_credentials"],
    }))
    .into_response()
}

async fn jwks(shared: &Shared, headers: &HeaderMap) -> Response {
    let (behaviour, body, cache_control, etag) = {
        let config = locked(&shared.config);
        (
            config.behaviour.clone(),
            config.jwks.to_string(),
            config.cache_control.clone(),
            config.etag.clone(),
        )
    };
    let mut response = match behaviour {
        Behaviour::Serve => {
            let unchanged = etag.is_some() && text(headers, "if-none-match") == etag;
            if unchanged {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
        }
        Behaviour::Status(status) => StatusCode::from_u16(status)
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            .into_response(),
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Garbage => "<html>502 Bad Gateway</html>".into_response(),
        Behaviour::NotAJwkSet => axum::Json(json!({"issuer": "x"})).into_response(),
        Behaviour::EmptySet => axum::Json(json!({"keys": []})).into_response(),
        Behaviour::Huge => {
            let mut body = br#"{"keys":[], "padding": ""#.to_vec();
            body.resize(2 * 1024 * 1024, b'a');
            body.extend_from_slice(br#""}"#);
            body.into_response()
        }
        Behaviour::Endless => {
            let chunks =
                futures_util::stream::repeat_with(|| Ok::<_, Infallible>(vec![b' '; 64 * 1024]));
            Body::from_stream(chunks).into_response()
        }
        Behaviour::Redirect => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, "/jwks-moved")],
        )
            .into_response(),
    };
    let headers = response.headers_mut();
    if let Some(value) = cache_control.and_then(|value| HeaderValue::from_str(&value).ok()) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Some(value) = etag.and_then(|value| HeaderValue::from_str(&value).ok()) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// Serve `app` on `127.0.0.1:0` for the rest of the test; its base URL, `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}
