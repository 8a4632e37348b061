//! The layer on a plain hyper 1 server (the `hyper_service` example's own code), over real HTTP.

#[path = "../examples/hyper_service.rs"]
mod example;

use std::net::SocketAddr;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer};
use reqwest::StatusCode;

const ISS: &str = "https://issuer.example";
const AUD: &str = "payments-api";

async fn start(key: &SigningKey) -> SocketAddr {
    let guard = Guard::builder()
        .issuer(Issuer::new(ISS).audience(AUD).keys(key.key_set()))
        .realm("hyper")
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(example::serve(listener, example::service(guard)));
    addr
}

#[tokio::test]
async fn hyper_service_accepts_scoped_token() {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let addr = start(&key).await;
    let token = key
        .token(ISS, AUD)
        .claim("client_id", "job")
        .scope("payments:read")
        .sign()
        .unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/payments"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "GET /payments for job\n");
}

#[tokio::test]
async fn hyper_service_rejects_with_exact_challenges() {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let addr = start(&key).await;
    let client = reqwest::Client::new();

    let anonymous = client
        .get(format!("http://{addr}/payments"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer realm="hyper""#
    );

    let unscoped = key.token(ISS, AUD).scope("other").sign().unwrap();
    let forbidden = client
        .get(format!("http://{addr}/payments"))
        .bearer_auth(&unscoped)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.headers()["www-authenticate"],
        r#"Bearer realm="hyper", error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:read""#
    );
    // Other paths need only a valid token.
    let other_path = client
        .get(format!("http://{addr}/status"))
        .bearer_auth(&unscoped)
        .send()
        .await
        .unwrap();
    assert_eq!(other_path.status(), StatusCode::OK);

    let malformed = client
        .get(format!("http://{addr}/payments"))
        .header("authorization", "Bearer not a token")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let expired = key
        .token(ISS, AUD)
        .expired_for(std::time::Duration::from_secs(3600))
        .sign()
        .unwrap();
    let expired = client
        .get(format!("http://{addr}/payments"))
        .bearer_auth(expired)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.headers()["www-authenticate"],
        r#"Bearer realm="hyper", error="invalid_token", error_description="The access token expired""#
    );
}
