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

use bearer_guard::testing::demo::{self, DEMO_BILLING};
use bearer_guard::{Guard, Issuer};

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
            let (guard, issuer) = demo::embedded_demo().await?;
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
    axum::serve(listener, demo::app(guard)).await?;
    Ok(())
}
