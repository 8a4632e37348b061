//! The example payments API (`cargo run --example resource_server`) and its embedded
//! authorization server, as a module: the example binary serves it, and the crate's own tests and
//! benches drive the very same router.
//!
//! Routes: `GET /healthz` (public), `GET /payments` (`payments:read`), `POST /payments`
//! (`payments:write`), `GET /whoami` (any valid token; client id, subject and scopes as JSON).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bearer_guard::testing::demo;
//!
//! let (guard, issuer) = demo::embedded_demo().await?;
//! let token = issuer.mint().claim("client_id", "reporting").scope("payments:read").sign()?;
//! let claims = guard.verify(&token).await?;
//! assert_eq!(claims.client_id(), Some("reporting"));
//! let _app = demo::app(guard); // serve with `axum::serve`
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::TestIssuer;
use crate::axum::RequireScope;
use crate::{BearerLayer, Claims, Guard, Issuer};

crate::scopes! {
    /// `GET /payments`.
    pub PaymentsRead = "payments:read";
    /// `POST /payments`.
    pub PaymentsWrite = "payments:write";
}

/// The embedded issuer's audience, and its demo clients: (id, secret, scopes).
pub const DEMO_AUDIENCE: &str = "payments-api";
/// Demo client allowed to read and write payments.
pub const DEMO_BILLING: (&str, &str, &[&str]) = (
    "billing",
    "billing-secret",
    &["payments:read", "payments:write"],
);
/// Demo client allowed only to read.
pub const DEMO_REPORTING: (&str, &str, &[&str]) =
    ("reporting", "reporting-secret", &["payments:read"]);

static NEXT_PAYMENT: AtomicU64 = AtomicU64::new(1);

async fn healthz() -> &'static str {
    "ok"
}

async fn list_payments(caller: RequireScope<PaymentsRead>) -> Json<Value> {
    Json(json!({
        "payments": [{"id": "pay_0", "amount_cents": 1250, "currency": "EUR"}],
        "requested_by": caller.client_id(),
    }))
}

async fn create_payment(caller: RequireScope<PaymentsWrite>) -> (StatusCode, Json<Value>) {
    let id = NEXT_PAYMENT.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(json!({"id": format!("pay_{id}"), "created_by": caller.client_id()})),
    )
}

async fn whoami(claims: Claims) -> Json<Value> {
    Json(json!({
        "client_id": claims.client_id(),
        "subject": claims.subject(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
    }))
}

/// One log line per request: route, client and outcome — never the token.
async fn log_decision(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let client = request
        .extensions()
        .get::<Claims>()
        .and_then(|claims| claims.client_id().map(str::to_owned));
    let response = next.run(request).await;
    let status = response.status();
    let outcome = match status.as_u16() {
        200..=299 => "allowed",
        400 => "invalid_request",
        401 => "unauthenticated",
        403 => "insufficient_scope",
        503 => "keys_unavailable",
        _ => "other",
    };
    tracing::info!(%method, path, client_id = client.as_deref(), status = status.as_u16(), outcome, "request");
    response
}

/// The API: `/healthz` is public, everything else goes through the guard.
pub fn app(guard: Guard) -> Router {
    let protected = Router::new()
        .route("/payments", get(list_payments).post(create_payment))
        .route("/whoami", get(whoami))
        .layer(middleware::from_fn(log_decision))
        .layer(BearerLayer::new(guard));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found").into_response() })
}

/// The embedded default: a loopback `TestIssuer` with the demo clients, and a guard that trusts
/// it through discovery, in RFC 9068 strict mode. Keep the issuer alive as long as the guard.
pub async fn embedded_demo() -> Result<(Guard, TestIssuer), Box<dyn std::error::Error>> {
    let (billing, reporting) = (DEMO_BILLING, DEMO_REPORTING);
    let issuer = TestIssuer::builder()
        .audience(DEMO_AUDIENCE)
        .client(billing.0, billing.1, billing.2.iter().copied())
        .client(reporting.0, reporting.1, reporting.2.iter().copied())
        .start()
        .await?;
    let guard = Guard::builder()
        .issuer(
            Issuer::new(issuer.issuer_url())
                .audience(DEMO_AUDIENCE)
                .discover()
                .require_rfc9068(true),
        )
        .realm("payments")
        .build()
        .await?;
    Ok((guard, issuer))
}
