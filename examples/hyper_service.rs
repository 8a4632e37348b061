//! bearer-guard on a plain hyper 1 service: no axum, just `tower::ServiceBuilder` and hyper-util.
//!
//! ```text
//! cargo run --example hyper_service --features testing
//! ```
//!
//! With no configuration it starts an in-process test issuer's key and prints a token to try.
//! `GET /payments` needs `payments:read`; every other path needs any valid token.

use std::convert::Infallible;
use std::net::SocketAddr;

use bearer_guard::testing::SigningKey;
use bearer_guard::{
    Algorithm, BearerLayer, Claims, Guard, Issuer, RequireScopeLayer, ScopeRequirement,
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// The protected service: the guard in front, a per-path scope policy, then the handler.
pub fn service(
    guard: Guard,
) -> BoxCloneSyncService<Request<Incoming>, Response<Full<Bytes>>, Infallible> {
    let scopes = RequireScopeLayer::per_path()
        .path("/payments", ScopeRequirement::all_of(["payments:read"]))
        .otherwise(ScopeRequirement::any_token());
    let service = ServiceBuilder::new()
        .layer(BearerLayer::new(guard))
        .layer(scopes)
        .service_fn(handle);
    BoxCloneSyncService::new(service)
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let client = request
        .extensions()
        .get::<Claims>()
        .and_then(|claims| claims.client_id().map(str::to_owned))
        .unwrap_or_default();
    let body = format!(
        "{} {} for {client}\n",
        request.method(),
        request.uri().path()
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

/// Serve `service` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: BoxCloneSyncService<Request<Incoming>, Response<Full<Bytes>>, Infallible>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "connection ended with an error");
            }
        });
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter("info,bearer_guard=debug")
        .init();
    let issuer = "https://issuer.example";
    let key = SigningKey::generate(Algorithm::ES256)?;
    let guard = Guard::builder()
        .issuer(
            Issuer::new(issuer)
                .audience("payments-api")
                .keys(key.key_set()),
        )
        .build()
        .await?;
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3001".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let token = key
        .token(issuer, "payments-api")
        .scope("payments:read")
        .sign()?;
    println!("listening on http://{}", listener.local_addr()?);
    println!(
        "curl -H 'Authorization: Bearer {token}' http://{}/payments",
        listener.local_addr()?
    );
    serve(listener, service(guard)).await;
    Ok(())
}
