//! Finding an issuer's `jwks_uri` in its published metadata: OpenID Connect Discovery 1.0 and
//! RFC 8414 (OAuth 2.0 Authorization Server Metadata).
//!
//! For the issuer `https://login.example.com/tenant`, two documents are tried, in this order:
//!
//! 1. `https://login.example.com/tenant/.well-known/openid-configuration` (OIDC Discovery §4: the
//!    well-known path is appended to the issuer),
//! 2. `https://login.example.com/.well-known/oauth-authorization-server/tenant` (RFC 8414 §3.1: the
//!    well-known path is inserted between the host and the issuer's path).
//!
//! The first document served with `200 OK` decides. Its `issuer` must equal the configured issuer
//! exactly (OIDC Discovery §4.3, RFC 8414 §3.3); a document naming any other issuer fails discovery,
//! so a mix-up on the authorization server can never make the guard trust another issuer's keys.
//! Any other status moves on to the next document; a transport error or a timeout ends discovery
//! at once (the next document lives on the same host). Every request goes through the guard's
//! HTTP client with the same limits as a JWKS fetch (timeout, body size, no redirects).
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Json, Router, routing::get};
//! use bearer_guard::testing::SigningKey;
//! use bearer_guard::{Algorithm, Guard, Issuer};
//!
//! let key = SigningKey::generate(Algorithm::ES256)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let issuer = format!("http://{}/tenant", listener.local_addr()?);
//! let metadata = serde_json::json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/keys") });
//! let jwks = SigningKey::jwks([&key]);
//! let idp = Router::new()
//!     .route("/tenant/.well-known/openid-configuration", get(move || async move { Json(metadata) }))
//!     .route("/tenant/keys", get(move || async move { Json(jwks) }));
//! tokio::spawn(async move { axum::serve(listener, idp).await });
//!
//! let guard = Guard::builder()
//!     .issuer(Issuer::new(&issuer).audience("api").discover())
//!     .build()
//!     .await?;
//! let token = key.token(&issuer, "api").sign()?;
//! assert!(guard.verify(&token).await.is_ok());
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::fetch::{FetchError, get_document, parse_http_url};
use super::options::FetchLimits;

const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";
const RFC8414_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

/// The members of a metadata document this crate reads.
#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: Option<String>,
}

/// The metadata documents to try for `issuer`, in order: OIDC (appended), then RFC 8414 (inserted).
pub(crate) fn metadata_urls(issuer: &Url) -> [Url; 2] {
    // RFC 8414 §3.1: a terminating "/" of the issuer's path is removed before either form is made.
    let path = issuer.path().trim_end_matches('/');
    let mut oidc = issuer.clone();
    oidc.set_path(&format!("{path}{OIDC_WELL_KNOWN}"));
    let mut rfc8414 = issuer.clone();
    rfc8414.set_path(&format!("{RFC8414_WELL_KNOWN}{path}"));
    [oidc, rfc8414]
}

/// The `jwks_uri` that `issuer` (the configured identifier, `issuer_url` its parsed form) publishes.
pub(crate) async fn discover_jwks_uri(
    client: &reqwest::Client,
    issuer: &str,
    issuer_url: &Url,
    limits: &FetchLimits,
) -> Result<Url, FetchError> {
    let mut statuses = Vec::with_capacity(2);
    for url in metadata_urls(issuer_url) {
        let document = get_document(client, &url, None, limits).await?;
        if document.status != StatusCode::OK {
            tracing::debug!(issuer, metadata_url = %url, status = document.status.as_u16(), "no metadata document here");
            statuses.push(document.status.as_u16());
            continue;
        }
        let metadata: Metadata = serde_json::from_slice(&document.body)
            .map_err(|err| FetchError::Discovery(format!("metadata is not valid JSON: {err}")))?;
        if metadata.issuer != issuer {
            tracing::warn!(issuer, metadata_url = %url, metadata_issuer = %metadata.issuer, "discovery metadata names another issuer");
            return Err(FetchError::IssuerMismatch {
                metadata_issuer: metadata.issuer,
            });
        }
        let jwks_uri = metadata
            .jwks_uri
            .ok_or_else(|| FetchError::Discovery(format!("metadata at {url} has no jwks_uri")))?;
        let jwks_uri = parse_http_url(&jwks_uri, limits)
            .map_err(|reason| FetchError::Discovery(format!("metadata jwks_uri: {reason}")))?;
        tracing::debug!(issuer, metadata_url = %url, %jwks_uri, "discovered jwks_uri");
        return Ok(jwks_uri);
    }
    Err(FetchError::Discovery(format!(
        "no metadata document found (HTTP {statuses:?})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::JwksOptions;

    fn urls(issuer: &str) -> [String; 2] {
        let issuer =
            parse_http_url(issuer, &JwksOptions::default().limits).expect("test issuer is a URL");
        metadata_urls(&issuer).map(String::from)
    }

    #[test]
    fn issuer_without_path_uses_the_root_well_known_documents() {
        assert_eq!(
            urls("https://login.example.com"),
            [
                "https://login.example.com/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            urls("https://login.example.com/"),
            urls("https://login.example.com")
        );
    }

    #[test]
    fn issuer_with_path_appends_for_oidc_and_inserts_for_rfc8414() {
        assert_eq!(
            urls("https://login.example.com/tenant/v2"),
            [
                "https://login.example.com/tenant/v2/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2",
            ]
        );
        assert_eq!(
            urls("https://login.example.com/tenant/"),
            [
                "https://login.example.com/tenant/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server/tenant",
            ]
        );
    }
}
