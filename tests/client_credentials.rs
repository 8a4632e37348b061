//! The `client_credentials` example's token source against a real loopback issuer and API.

#[path = "../examples/client_credentials.rs"]
mod example;

use std::time::Duration;

use bearer_guard::testing::TestIssuer;
use bearer_guard::{Guard, Issuer};
use example::{ClientConfig, TokenSource};

async fn setup(lifetime: Duration) -> (TestIssuer, String, ClientConfig) {
    let issuer = TestIssuer::builder()
        .audience("payments-api")
        .client("billing", "billing secret/+&", ["payments:read"])
        .token_lifetime(lifetime)
        .start()
        .await
        .unwrap();
    let guard = Guard::builder()
        .issuer(
            Issuer::new(issuer.issuer_url())
                .audience("payments-api")
                .discover(),
        )
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/payments", listener.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(listener, bearer_guard::testing::demo::app(guard)).await },
    );
    let config = ClientConfig {
        token_endpoint: issuer.token_endpoint().to_owned(),
        client_id: "billing".to_owned(),
        client_secret: "billing secret/+&".to_owned(),
        scope: Some("payments:read".to_owned()),
        resource: None,
    };
    (issuer, api, config)
}

#[tokio::test]
async fn client_reuses_its_token_until_near_expiry() {
    let (_issuer, api, config) = setup(Duration::from_secs(300)).await;
    let source = TokenSource::new(config, Duration::from_secs(30));
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let (status, _) = example::call_api(&http, &source, &api).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(source.fetches(), 1);
}

#[tokio::test]
async fn client_refetches_when_the_token_is_within_the_refresh_margin() {
    // A 20 s token with a 30 s margin is always "about to expire": every call fetches anew.
    let (_issuer, api, config) = setup(Duration::from_secs(20)).await;
    let source = TokenSource::new(config, Duration::from_secs(30));
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let (status, _) = example::call_api(&http, &source, &api).await.unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(source.fetches(), 3);
}

#[tokio::test]
async fn client_reports_token_endpoint_errors() {
    let (_issuer, _api, mut config) = setup(Duration::from_secs(300)).await;
    config.client_secret = "wrong".to_owned();
    let source = TokenSource::new(config, Duration::from_secs(30));
    let err = source.token().await.unwrap_err().to_string();
    assert!(
        err.contains("401") && err.contains("invalid_client"),
        "{err}"
    );
}
