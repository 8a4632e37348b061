//! The example's `GET /payments` without the guard, for the with/without comparisons of
//! `benches/layer.rs` and `benches/http.sh`: the same JSON body (a fixed client id in place of
//! the caller's) behind the same kind of per-request logging middleware, but no `BearerLayer`
//! and no `RequireScope` extractor.

#![allow(dead_code)]

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

async fn healthz() -> &'static str {
    "ok"
}

async fn list_payments() -> Json<Value> {
    Json(json!({
        "payments": [{"id": "pay_0", "amount_cents": 1250, "currency": "EUR"}],
        "requested_by": "billing",
    }))
}

/// The example's logging middleware minus the client id (there are no claims here).
async fn log_decision(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    tracing::info!(%method, path, status = status.as_u16(), "request");
    response
}

/// `GET {path}` as the example serves `/payments`, without the guard. No fallback, so it can be
/// merged into the example's router.
pub fn payments(path: &str) -> Router {
    Router::new()
        .route(path, get(list_payments))
        .layer(middleware::from_fn(log_decision))
}

/// The example's router shape (`/healthz`, `/payments`, the same fallback) without the guard.
pub fn app() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(payments("/payments"))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found").into_response() })
}
