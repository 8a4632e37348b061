//! One HTTP request for keys or metadata, held to the fetch limits: https only (loopback or an
//! explicit opt-in excepted), no redirect, a time limit, a body limit.

use std::error::Error as _;
use std::time::Duration;

use headers::{CacheControl, HeaderMapExt as _};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};

use super::options::FetchLimits;

/// Why a fetch failed. The text becomes [`KeyStatus::last_error`] and the log line.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request timed out")]
    Timeout,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    #[error("redirect refused")]
    Redirected,
    #[error("response body larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotAJwkSet(String),
    #[error("JWK Set holds no usable key")]
    NoUsableKeys,
    #[error("304 Not Modified without a cached set")]
    UnexpectedNotModified,
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("discovery metadata names issuer {metadata_issuer:?}, not the configured issuer")]
    IssuerMismatch { metadata_issuer: String },
}

impl FetchError {
    fn transport(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return FetchError::Timeout;
        }
        // reqwest's own message is terse ("error sending request"); the causes say what happened.
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError::Transport(text)
    }
}

/// A response read within the limits.
pub(crate) struct Document {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// GET `url` within `limits`: one request, no redirect followed, the body read chunk by chunk and
/// abandoned as soon as it passes the size limit. Statuses other than 200 and 304 come back with
/// an empty body for the caller to judge.
pub(crate) async fn get_document(
    client: &reqwest::Client,
    url: &Url,
    if_none_match: Option<&HeaderValue>,
    limits: &FetchLimits,
) -> Result<Document, FetchError> {
    let exchange = async {
        let mut request = client.get(url.clone()).header(ACCEPT, "application/json");
        if let Some(etag) = if_none_match {
            request = request.header(IF_NONE_MATCH, etag.clone());
        }
        let mut response = request.send().await.map_err(FetchError::transport)?;
        let status = response.status();
        // A user's own client may follow redirects; a moved key set is refused all the same.
        let redirected = status.is_redirection() && status != StatusCode::NOT_MODIFIED;
        if redirected || response.url() != url {
            return Err(FetchError::Redirected);
        }
        let headers = std::mem::take(response.headers_mut());
        if status != StatusCode::OK {
            return Ok(Document {
                status,
                headers,
                body: Vec::new(),
            });
        }
        let limit = limits.max_body_bytes;
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(FetchError::transport)? {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Document {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(limits.timeout, exchange)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

/// An absolute `https` URL without a fragment; plain `http` only for loopback hosts or when
/// explicitly allowed.
pub(crate) fn parse_http_url(text: &str, limits: &FetchLimits) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    match url.scheme() {
        "https" => {}
        "http" if limits.allow_insecure_http || is_loopback(&url) => {}
        "http" => {
            return Err(format!(
                "{text:?} uses plain http: keys must come over https (or allow_insecure_http)"
            ));
        }
        _ => return Err(format!("{text:?} is not an http(s) URL")),
    }
    if url.fragment().is_some() {
        return Err(format!("{text:?} has a fragment"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `Cache-Control: max-age`; `no-cache`/`no-store` count as zero (then clamped to the minimum TTL).
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let cache_control = headers.typed_get::<CacheControl>()?;
    match cache_control.max_age() {
        Some(max_age) => Some(max_age),
        None if cache_control.no_cache() || cache_control.no_store() => Some(Duration::ZERO),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::JwksOptions;

    #[test]
    fn cache_control_is_read_with_its_directives() {
        let mut headers = HeaderMap::new();
        assert_eq!(max_age(&headers), None);
        headers.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=120"),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(120)));
        headers.insert("cache-control", HeaderValue::from_static("no-store"));
        assert_eq!(max_age(&headers), Some(Duration::ZERO));
        headers.insert("cache-control", HeaderValue::from_static("max-age=banana"));
        assert_eq!(max_age(&headers), None);
    }

    #[test]
    fn rejects_non_http_urls() {
        let limits = JwksOptions::default().limits;
        assert!(parse_http_url("ftp://example.com/keys", &limits).is_err());
        assert!(parse_http_url("/keys", &limits).is_err());
        assert!(parse_http_url("https://example.com/keys#frag", &limits).is_err());
        assert!(parse_http_url("https://example.com/keys", &limits).is_ok());
    }

    #[test]
    fn plain_http_is_refused_except_for_loopback_or_when_allowed() {
        let limits = JwksOptions::default().limits;
        assert!(parse_http_url("http://idp.example.com/keys", &limits).is_err());
        assert!(parse_http_url("http://10.0.0.5/keys", &limits).is_err());
        for loopback in [
            "http://127.0.0.1:8080/keys",
            "http://[::1]/keys",
            "http://localhost/keys",
        ] {
            assert!(parse_http_url(loopback, &limits).is_ok(), "{loopback}");
        }
        let allowed = JwksOptions::default().allow_insecure_http(true).limits;
        assert!(parse_http_url("http://keycloak:8080/realms/x", &allowed).is_ok());
    }
}
