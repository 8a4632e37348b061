//! A payments API protected by bearer-guard: the example resource server.
//!
//! ```text
//! cargo run --example resource_server
//! ```
//!
//! With no configuration it starts an embedded test authorization server (client-credentials
//! grant, JWKS, discovery) on a loopback port, protects the API with it, and prints ready-to-paste
//! `curl` commands: one that gets a token, one that calls the API.
//!
//! To protect the same API with a real identity provider instead:
//!
//! | variable | meaning |
//! |---|---|
//! | `ISSUER` | the issuer URL; keys are found by OIDC / RFC 8414 discovery |
//! | `JWKS_URI` | use this JWK Set instead of discovery (`ISSUER` still names the `iss`) |
//! | `AUDIENCE` | the audience tokens must carry (required with `ISSUER`) |
//! | `BIND` | listen address, default `127.0.0.1:3000` |
//! | `RUST_LOG` | log filter, default `info,bearer_guard=debug` |
//!
//! Routes: `GET /healthz` (public), `GET /payments` (`payments:read`), `POST /payments`
//! (`payments:write`), `GET /whoami` (any valid token; client id, subject and scopes as JSON).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bearer_guard::axum::RequireScope;
use bearer_guard::testing::TestIssuer;
use bearer_guard::{BearerLayer, Claims, Guard, Issuer};
use serde_json::{Value, json};

bearer_guard::scopes! {
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

/// A guard for a real IdP from `ISSUER` / `JWKS_URI` / `AUDIENCE`.
async fn guard_from_env(issuer: String) -> Result<Guard, Box<dyn std::error::Error>> {
    let audience = std::env::var("AUDIENCE").map_err(|_| "AUDIENCE is required with ISSUER")?;
    let mut trusted = Issuer::new(issuer).audience(audience);
    trusted = match std::env::var("JWKS_URI") {
        Ok(jwks_uri) => trusted.jwks_uri(jwks_uri),
        Err(_) => trusted.discover(),
    };
    Ok(Guard::builder()
        .issuer(trusted)
        .realm("payments")
        .build()
        .await?)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,bearer_guard=debug".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()
        .map_err(|_| "BIND must be an address like 127.0.0.1:3000")?;

    // Keep the embedded issuer alive for as long as the server runs.
    let (guard, embedded) = match (std::env::var("ISSUER"), std::env::var("JWKS_URI")) {
        (Ok(issuer), _) => (guard_from_env(issuer).await?, None),
        (Err(_), Ok(_)) => {
            return Err("JWKS_URI needs ISSUER too (the exact `iss` to accept)".into());
        }
        (Err(_), Err(_)) => {
            let (guard, issuer) = embedded_demo().await?;
            (guard, Some(issuer))
        }
    };

    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    println!("resource server listening on http://{addr}");
    if let Some(issuer) = &embedded {
        let (id, secret, _) = DEMO_BILLING;
        println!("embedded authorization server at {}", issuer.issuer_url());
        println!();
        println!("# get a token (client credentials):");
        println!(
            "TOKEN=$(curl -s -u {id}:{secret} -d grant_type=client_credentials {} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')",
            issuer.token_endpoint()
        );
        println!("# call the API:");
        println!("curl -H \"Authorization: Bearer $TOKEN\" http://{addr}/payments");
        println!();
    }
    axum::serve(listener, app(guard)).await?;
    Ok(())
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
