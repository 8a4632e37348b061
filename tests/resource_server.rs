//! The `resource_server` example as users run it: a process on a free port, driven over real HTTP
//! through the documented flow (token from the embedded issuer, then the API), and in `ISSUER`
//! mode against an authorization server started here.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bearer_guard::testing::TestIssuer;
use reqwest::StatusCode;
use serde_json::Value;

/// The example binary `cargo test` built next to this test (built here if it is missing).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = dir.join("examples").join("resource_server");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "resource_server", "--all-features"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the example failed");
    }
    binary
}

/// A running example process, killed on drop, and the lines it printed at start-up.
struct Server {
    child: Child,
    base: String,
    banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &[(&str, &str)]) -> Server {
    let mut command = Command::new(example_binary());
    command
        .env_remove("ISSUER")
        .env_remove("JWKS_URI")
        .env_remove("AUDIENCE")
        .env("BIND", "127.0.0.1:0")
        .env(
            "RUST_LOG",
            std::env::var("EXAMPLE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("example starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    let mut base = None;
    // Wait for the printed address (and, in embedded mode, the curl lines after it).
    while let Ok(line) = received.recv_timeout(Duration::from_secs(30)) {
        if let Some(url) = line.strip_prefix("resource server listening on ") {
            base = Some(url.to_owned());
        }
        let done = base.is_some()
            && (line.starts_with("curl ") || env.iter().any(|(k, _)| *k == "ISSUER"));
        banner.push(line);
        if done {
            break;
        }
    }
    let base = base.unwrap_or_else(|| panic!("the example never printed its address: {banner:?}"));
    Server {
        child,
        base,
        banner,
    }
}

async fn token(http: &reqwest::Client, token_endpoint: &str, client: &str, secret: &str) -> String {
    let response = http
        .post(token_endpoint)
        .basic_auth(client, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn resource_server_example_answers_the_documented_flow() {
    let server = start(&[]);
    let http = reqwest::Client::new();
    let base = &server.base;

    // The printed curl command names the embedded token endpoint and the demo client.
    let curl = server
        .banner
        .iter()
        .find(|line| line.starts_with("TOKEN=$(curl"))
        .expect("token curl printed");
    let token_endpoint = curl
        .split_whitespace()
        .find(|word| word.starts_with("http://") && word.ends_with("/token"))
        .expect("token endpoint in the curl line");
    assert!(curl.contains("-u billing:billing-secret"), "{curl}");

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let anonymous = http.get(format!("{base}/payments")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer realm="payments""#
    );

    let billing = token(&http, token_endpoint, "billing", "billing-secret").await;
    let list = http
        .get(format!("{base}/payments"))
        .bearer_auth(&billing)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let created = http
        .post(format!("{base}/payments"))
        .bearer_auth(&billing)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let whoami = http
        .get(format!("{base}/whoami"))
        .bearer_auth(&billing)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&whoami.bytes().await.unwrap()).unwrap();
    assert_eq!(body["client_id"], "billing");
    assert_eq!(body["subject"], "billing");
    assert_eq!(
        body["scopes"],
        serde_json::json!(["payments:read", "payments:write"])
    );

    let reporting = token(&http, token_endpoint, "reporting", "reporting-secret").await;
    let refused = http
        .post(format!("{base}/payments"))
        .bearer_auth(&reporting)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(r#"error="insufficient_scope""#)
    );

    let tampered = format!("{}x", &billing[..billing.len() - 1]);
    let rejected = http
        .get(format!("{base}/whoami"))
        .bearer_auth(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
}

// Multi-threaded: the issuer must keep serving while this thread waits for the example's banner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_server_example_protects_the_api_with_an_external_issuer() {
    let issuer = TestIssuer::builder()
        .audience("https://payments.example")
        .client("ops", "ops-secret", ["payments:read"])
        .start()
        .await
        .unwrap();
    let server = start(&[
        ("ISSUER", issuer.issuer_url()),
        ("AUDIENCE", "https://payments.example"),
    ]);
    let http = reqwest::Client::new();
    let token = token(&http, issuer.token_endpoint(), "ops", "ops-secret").await;
    let ok = http
        .get(format!("{}/payments", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let forbidden = http
        .post(format!("{}/payments", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    // A token for another audience from the same issuer is refused.
    let other = issuer
        .mint()
        .claim("aud", "https://other.example")
        .sign()
        .unwrap();
    let refused = http
        .get(format!("{}/whoami", server.base))
        .bearer_auth(other)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn resource_server_example_requires_issuer_with_jwks_uri() {
    let output = Command::new(example_binary())
        .env_remove("ISSUER")
        .env("JWKS_URI", "http://127.0.0.1:9/jwks")
        .env("BIND", "127.0.0.1:0")
        .output()
        .expect("example runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWKS_URI needs ISSUER"));
}

#[test]
fn a_mismatched_issuer_stops_the_example_and_names_the_declared_issuer() {
    // The most common first-hour mistake: a trailing slash the issuer's metadata does not have.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let issuer = runtime
        .block_on(TestIssuer::builder().audience("payments-api").start())
        .expect("issuer");
    let configured = format!("{}/", issuer.issuer_url());
    let mut child = Command::new(example_binary())
        .env("ISSUER", &configured)
        .env("AUDIENCE", "payments-api")
        .env_remove("JWKS_URI")
        .env("BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example runs");
    // It must stop by itself, well inside the 15 s a user would wait (the start-up timeout is 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the example kept running with a mismatched ISSUER");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(
        stderr.contains(&format!("{:?}", issuer.issuer_url())),
        "the declared issuer is named: {stderr}"
    );
    drop(runtime);
}
