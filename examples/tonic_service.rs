//! A gRPC service with per-method scopes.
//!
//! ```text
//! cargo run --example tonic_service --features testing,tonic
//! ```
//!
//! `payments.v1.Payments/Get` needs `payments:read`, `payments.v1.Payments/Create` needs
//! `payments:write`; any other method is refused. The protobuf messages and the method routing
//! below are what `tonic-build` would generate from this `.proto`, written out so the example
//! builds without `protoc`:
//!
//! ```proto
//! package payments.v1;
//! service Payments {
//!   rpc Get(GetPaymentRequest) returns (Payment);
//!   rpc Create(CreatePaymentRequest) returns (Payment);
//! }
//! message GetPaymentRequest { string id = 1; }
//! message CreatePaymentRequest { int64 amount_cents = 1; }
//! message Payment { string id = 1; int64 amount_cents = 2; string created_by = 3; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, BearerLayer, Guard, Issuer, RequireScopeLayer, ScopeRequirement};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// `GetPaymentRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetPaymentRequest {
    /// Payment id.
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `CreatePaymentRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreatePaymentRequest {
    /// Amount in cents.
    #[prost(int64, tag = "1")]
    pub amount_cents: i64,
}

/// `Payment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payment {
    /// Payment id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Amount in cents.
    #[prost(int64, tag = "2")]
    pub amount_cents: i64,
    /// The client that created it.
    #[prost(string, tag = "3")]
    pub created_by: String,
}

/// Method paths, as the per-method scope policy and the router know them.
pub const GET: &str = "/payments.v1.Payments/Get";
/// See [`GET`].
pub const CREATE: &str = "/payments.v1.Payments/Create";

async fn get(request: Request<GetPaymentRequest>) -> Result<Response<Payment>, Status> {
    let claims = bearer_guard::tonic::claims(&request)?;
    Ok(Response::new(Payment {
        id: request.into_inner().id,
        amount_cents: 1250,
        created_by: claims.client_id().unwrap_or_default().to_owned(),
    }))
}

async fn create(request: Request<CreatePaymentRequest>) -> Result<Response<Payment>, Status> {
    let claims = bearer_guard::tonic::claims(&request)?;
    Ok(Response::new(Payment {
        id: "pay_1".to_owned(),
        amount_cents: request.into_inner().amount_cents,
        created_by: claims.client_id().unwrap_or_default().to_owned(),
    }))
}

/// The `Payments` service: routes each method path to its handler (the generated server's job).
#[derive(Clone, Default)]
pub struct PaymentsServer;

impl NamedService for PaymentsServer {
    const NAME: &'static str = "payments.v1.Payments";
}

impl tower::Service<http::Request<Body>> for PaymentsServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        match request.uri().path() {
            GET => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(tower::service_fn(get), request).await)
            }),
            CREATE => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                Ok(grpc.unary(tower::service_fn(create), request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

/// The scopes each method needs. Unlisted methods are refused.
pub fn method_scopes() -> RequireScopeLayer {
    RequireScopeLayer::per_path()
        .path(GET, ScopeRequirement::all_of(["payments:read"]))
        .path(CREATE, ScopeRequirement::all_of(["payments:write"]))
}

/// Serve the protected gRPC service on `listener`.
pub async fn serve(
    guard: Guard,
    listener: tokio::net::TcpListener,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tonic::transport::Server::builder()
        .layer(BearerLayer::new(guard))
        .layer(method_scopes())
        .add_service(PaymentsServer)
        .serve_with_incoming(incoming)
        .await
}

/// A unary call with a bearer token in the metadata, as a generated client would make it.
async fn call<Req, Resp>(
    channel: tonic::transport::Channel,
    token: &str,
    path: &'static str,
    message: Req,
) -> Result<Resp, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|err| Status::unavailable(err.to_string()))?;
    let mut request = Request::new(message);
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::invalid_argument("token is not a header value"))?;
    request.metadata_mut().insert("authorization", value);
    let path = http::uri::PathAndQuery::from_static(path);
    client
        .unary(request, path, ProstCodec::default())
        .await
        .map(Response::into_inner)
}

/// `Payments/Get` as a client.
pub async fn call_get(
    channel: tonic::transport::Channel,
    token: &str,
    id: &str,
) -> Result<Payment, Status> {
    let message = GetPaymentRequest { id: id.to_owned() };
    call(channel, token, GET, message).await
}

/// `Payments/Create` as a client.
pub async fn call_create(
    channel: tonic::transport::Channel,
    token: &str,
    amount_cents: i64,
) -> Result<Payment, Status> {
    call(
        channel,
        token,
        CREATE,
        CreatePaymentRequest { amount_cents },
    )
    .await
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
                .audience("payments-grpc")
                .keys(key.key_set()),
        )
        .build()
        .await?;
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:50051".to_owned())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(guard, listener));

    // Call it once as a client would, then keep serving.
    let token = key
        .token(issuer, "payments-grpc")
        .claim("client_id", "example-client")
        .scope("payments:read")
        .sign()?;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let payment = call_get(channel.clone(), &token, "pay_42").await?;
    println!("gRPC Get as {}: {payment:?}", payment.created_by);
    let refused = call_create(channel, &token, 500).await.unwrap_err();
    println!(
        "gRPC Create without payments:write: {:?} {}",
        refused.code(),
        refused.message()
    );
    println!("serving payments.v1.Payments on {addr}; Ctrl-C to stop");
    server.await??;
    Ok(())
}
