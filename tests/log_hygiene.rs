//! The decision logs (the guard's and the `resource_server` example's) name the issuer, client,
//! key and outcome — never the token. Alone in its own test binary, because it installs the
//! process-wide log subscriber.

use bearer_guard::testing::demo as example;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer};
use reqwest::StatusCode;
use support::Idp;

const ISSUER: &str = "https://login.example.com/";

/// Log output captured in memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|err| err.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(|err| err.into_inner());
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn token(signer: &SigningKey) -> bearer_guard::testing::TokenBuilder<'_> {
    signer.token(ISSUER, example::DEMO_AUDIENCE)
}

#[tokio::test]
async fn logs_never_contain_the_token() {
    let logs = CapturedLogs::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .init();

    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let idp = Idp::start(&[&key]).await;
    let guard = Guard::builder()
        .issuer(
            Issuer::new(ISSUER)
                .audience(example::DEMO_AUDIENCE)
                .jwks_uri(idp.jwks_uri()),
        )
        .build()
        .await
        .unwrap();
    let base = support::serve(example::app(guard)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let valid = token(&key).scope("payments:read").sign().unwrap();
    let expired = token(&key)
        .expired_for(Duration::from_secs(3600))
        .sign()
        .unwrap();
    let forged = token(&attacker).kid(key.kid()).sign().unwrap();
    let unknown = token(&attacker).sign().unwrap();
    for (token, expected) in [
        (&valid, StatusCode::OK),
        (&expired, StatusCode::UNAUTHORIZED),
        (&forged, StatusCode::UNAUTHORIZED),
        (&unknown, StatusCode::UNAUTHORIZED),
    ] {
        let response = http
            .get(format!("{base}/payments"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }

    let text = logs.text();
    assert!(
        text.contains("bearer token verified") && text.contains("bearer token rejected"),
        "the decisions were logged: {text}"
    );
    for token in [&valid, &expired, &forged, &unknown] {
        for segment in token.split('.').skip(1) {
            assert!(!text.contains(segment), "a token segment was logged");
        }
    }
}
