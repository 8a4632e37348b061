//! Real gRPC over HTTP/2: the `tonic_service` example's server and client with the layer and
//! per-method scopes.

#[path = "../examples/tonic_service.rs"]
mod example;

use std::net::SocketAddr;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer};
use tonic::Code;
use tonic::transport::Channel;

const ISS: &str = "https://issuer.example";
const AUD: &str = "payments-grpc";

async fn start(key: &SigningKey) -> (SocketAddr, Channel) {
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key.key_set()))
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(guard, listener));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (addr, channel)
}

fn token(key: &SigningKey, scope: &str) -> String {
    key.token(ISS, AUD)
        .claim("client_id", "grpc-client")
        .scope(scope)
        .sign()
        .unwrap()
}

#[tokio::test]
async fn grpc_method_with_its_scope_succeeds_and_sees_claims() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (_, channel) = start(&key).await;
    let payment = example::call_get(channel.clone(), &token(&key, "payments:read"), "pay_7")
        .await
        .unwrap();
    assert_eq!(payment.id, "pay_7");
    assert_eq!(payment.created_by, "grpc-client");
    let created = example::call_create(channel, &token(&key, "payments:write"), 900)
        .await
        .unwrap();
    assert_eq!(created.amount_cents, 900);
}

#[tokio::test]
async fn grpc_method_without_its_scope_is_permission_denied() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (_, channel) = start(&key).await;
    let status = example::call_create(channel, &token(&key, "payments:read"), 1)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "The access token lacks a required scope");
}

#[tokio::test]
async fn grpc_without_or_with_bad_token_is_unauthenticated() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (_, channel) = start(&key).await;
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    let forged = other
        .token(ISS, AUD)
        .kid(key.kid())
        .scope("payments:read")
        .sign()
        .unwrap();
    let status = example::call_get(channel.clone(), &forged, "x")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        status.message(),
        "The access token is not accepted by this resource"
    );

    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let anonymous = client
        .unary::<_, example::Payment, _>(
            tonic::Request::new(example::GetPaymentRequest { id: "x".into() }),
            http::uri::PathAndQuery::from_static(example::GET),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn grpc_unlisted_method_is_refused() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (_, channel) = start(&key).await;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(example::GetPaymentRequest { id: "x".into() });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(&key, "payments:read payments:write"))
            .parse()
            .unwrap(),
    );
    let status = client
        .unary::<_, example::Payment, _>(
            request,
            http::uri::PathAndQuery::from_static("/payments.v1.Payments/Delete"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}
