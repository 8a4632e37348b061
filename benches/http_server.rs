//! The server `benches/http.sh` drives: the `resource_server` example's router and guard, set up
//! as the example sets them up with its embedded issuer, plus one extra route,
//! `GET /unguarded/payments` (`benches/unguarded.rs`): the example's `/payments` without the
//! guard, so "protected" can be compared with the same route unprotected in the same process.
//!
//! Not a benchmark by itself (`bench = false`): `cargo build --release --bench http_server`.
//! Prints the same banner as the example: the address and the token endpoint's curl line.

use bearer_guard::testing::demo as example;

mod unguarded;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let billing = example::DEMO_BILLING;
    let (guard, issuer) = example::embedded_demo().await?;
    let app = unguarded::payments("/unguarded/payments").merge(example::app(guard));

    let listener = tokio::net::TcpListener::bind(bind).await?;
    println!(
        "resource server listening on http://{}",
        listener.local_addr()?
    );
    println!(
        "TOKEN=$(curl -s -u {}:{} -d grant_type=client_credentials {} | …)",
        billing.0,
        billing.1,
        issuer.token_endpoint()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
