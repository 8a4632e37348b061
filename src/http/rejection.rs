//! Every rejection, and its one renderer: HTTP status and RFC 6750 `WWW-Authenticate` challenge,
//! or a gRPC status for gRPC requests.
//!
//! | rejection | HTTP | challenge | gRPC |
//! |---|---|---|---|
//! | no token | 401 | `Bearer realm="…"` | 16 UNAUTHENTICATED |
//! | malformed request | 400 | `error="invalid_request"` | 16 UNAUTHENTICATED |
//! | bad token | 401 | `error="invalid_token"` | 16 UNAUTHENTICATED |
//! | missing scope | 403 | `error="insufficient_scope", scope="…"` | 7 PERMISSION_DENIED |
//! | no keys to verify with | 503 + `Retry-After` | none | 14 UNAVAILABLE |
//!
//! Parameters are comma-separated quoted strings; `error_description` comes from a fixed table of
//! texts and never echoes the token, a key or any other input. Every rejection carries
//! `Cache-Control: no-store` and the [`Rejection`] itself as a response extension. The body is
//! empty unless the application shapes it with a [`RejectionBody`]; status and headers stay the
//! guard's either way.
//!
//! ```
//! use bearer_guard::{Rejection, TokenError};
//!
//! let rejection = Rejection::from(TokenError::Expired);
//! assert_eq!(rejection.status(), http::StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     rejection.www_authenticate(Some("payments")).unwrap(),
//!     r#"Bearer realm="payments", error="invalid_token", error_description="The access token expired""#,
//! );
//! ```

use std::fmt::Write as _;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use super::source::BearerError;
use crate::jwks::KeysUnavailable;
use crate::scope::InsufficientScope;
use crate::token::TokenError;

/// Why a request was not let through. Each variant knows its HTTP and gRPC rendering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The request carried no bearer token.
    #[error("no bearer token")]
    MissingToken,
    /// The request was malformed (RFC 6750 `invalid_request`).
    #[error(transparent)]
    InvalidRequest(#[from] BearerError),
    /// The token was rejected (RFC 6750 `invalid_token`).
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// The issuer's keys could not be had: a server-side problem (503 with `Retry-After`), not a
    /// verdict on the token.
    #[error(transparent)]
    KeysUnavailable(#[from] KeysUnavailable),
    /// The token lacks a required scope (RFC 6750 `insufficient_scope`).
    #[error(transparent)]
    InsufficientScope(#[from] InsufficientScope),
}

/// gRPC status codes used here.
const GRPC_PERMISSION_DENIED: u8 = 7;
const GRPC_UNAVAILABLE: u8 = 14;
const GRPC_UNAUTHENTICATED: u8 = 16;

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::MissingToken => StatusCode::UNAUTHORIZED,
            Rejection::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Rejection::KeysUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Rejection::InsufficientScope(_) => StatusCode::FORBIDDEN,
        }
    }

    /// The RFC 6750 error code, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::MissingToken | Rejection::KeysUnavailable(_) => None,
            Rejection::InvalidRequest(_) => Some("invalid_request"),
            Rejection::InvalidToken(_) => Some("invalid_token"),
            Rejection::InsufficientScope(_) => Some("insufficient_scope"),
        }
    }

    /// The text sent as `error_description` (and `grpc-message`): fixed, safe to show.
    pub fn description(&self) -> &'static str {
        match self {
            Rejection::MissingToken => "A bearer access token is required",
            Rejection::InvalidRequest(err) => err.description(),
            Rejection::InvalidToken(err) => err.description(),
            Rejection::KeysUnavailable(_) => "The signing keys are temporarily unavailable",
            Rejection::InsufficientScope(_) => "The access token lacks a required scope",
        }
    }

    /// The gRPC status code: 16 UNAUTHENTICATED, 7 PERMISSION_DENIED or 14 UNAVAILABLE.
    pub fn grpc_status(&self) -> u8 {
        match self {
            Rejection::InsufficientScope(_) => GRPC_PERMISSION_DENIED,
            Rejection::KeysUnavailable(_) => GRPC_UNAVAILABLE,
            _ => GRPC_UNAUTHENTICATED,
        }
    }

    /// The `WWW-Authenticate` value, or `None` for a 503 (which is not a challenge).
    pub fn www_authenticate(&self, realm: Option<&str>) -> Option<HeaderValue> {
        if let Rejection::KeysUnavailable(_) = self {
            return None;
        }
        let mut challenge = String::from("Bearer");
        let mut params = Params(&mut challenge, false);
        if let Some(realm) = realm {
            params.push("realm", realm);
        }
        if let Some(code) = self.error_code() {
            params.push("error", code);
            params.push("error_description", self.description());
        }
        if let Rejection::InsufficientScope(insufficient) = self {
            params.push("scope", &insufficient.required().to_string());
        }
        // Every parameter went through `quote`, which keeps only visible ASCII and spaces.
        HeaderValue::try_from(challenge).ok()
    }

    /// The `Retry-After` seconds of a 503.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Rejection::KeysUnavailable(KeysUnavailable { retry_after }) => {
                Some(retry_after.as_secs().max(1))
            }
            _ => None,
        }
    }

    /// The full response: HTTP (status and challenge) or, for gRPC, an HTTP 200 carrying
    /// `grpc-status` and `grpc-message`. The body is `B::default()`, so the same layer fits axum,
    /// hyper and tonic.
    ///
    /// Every rejection carries `Cache-Control: no-store` (RFC 6750 §5.3: no cache may keep an
    /// answer about a credential) and the `Rejection` itself as a response extension, so that
    /// middleware outside the guard (metrics, access logs) sees a rejection even where gRPC
    /// rendering made the HTTP status 200.
    pub fn to_response<B: Default>(&self, realm: Option<&str>, protocol: Protocol) -> Response<B> {
        self.render(realm, protocol, &|_| None)
    }

    /// The one renderer: [`to_response`](Self::to_response) with the body `body` gives.
    pub(crate) fn render<B: Default>(
        &self,
        realm: Option<&str>,
        protocol: Protocol,
        body: &dyn Fn(&Rejection) -> Option<(HeaderValue, B)>,
    ) -> Response<B> {
        let shaped = match protocol {
            Protocol::Http => body(self),
            Protocol::Grpc => None,
        };
        let (content_type, body) = match shaped {
            Some((content_type, body)) => (Some(content_type), body),
            None => (None, B::default()),
        };
        let mut response = Response::new(body);
        response.extensions_mut().insert(self.clone());
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match protocol {
            Protocol::Grpc => {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert(
                    "grpc-status",
                    HeaderValue::from(u16::from(self.grpc_status())),
                );
                if let Ok(message) = HeaderValue::try_from(percent_encode(self.description())) {
                    headers.insert("grpc-message", message);
                }
            }
            Protocol::Http => {
                *response.status_mut() = self.status();
                let headers = response.headers_mut();
                if let Some(challenge) = self.www_authenticate(realm) {
                    headers.insert(WWW_AUTHENTICATE, challenge);
                }
                if let Some(content_type) = content_type {
                    headers.insert(CONTENT_TYPE, content_type);
                }
            }
        }
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How a request wants to hear a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// An HTTP status with an RFC 6750 challenge.
    Http,
    /// gRPC: HTTP 200 with `grpc-status` and `grpc-message` (trailers-only response).
    Grpc,
}

impl Protocol {
    /// gRPC for requests with `content-type: application/grpc` (or `application/grpc+…`), HTTP
    /// otherwise.
    pub fn of(headers: &HeaderMap) -> Protocol {
        let grpc = headers
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value
                    .get(..16)
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case("application/grpc"))
                    && matches!(value.as_bytes().get(16), None | Some(b'+' | b';'))
            });
        if grpc { Protocol::Grpc } else { Protocol::Http }
    }
}

/// Shapes the body of rejection responses (JSON problem details, say). The status,
/// `WWW-Authenticate`, `Retry-After`, `Cache-Control` and gRPC headers stay the guard's; for gRPC
/// requests the body is never used (a gRPC rejection is trailers-only).
///
/// Any `Fn(&Rejection) -> Option<(HeaderValue, B)>` is one: it returns the content type and the
/// body, or `None` for the default empty body.
///
/// Put only what the client may see in the body: [`Rejection::description`],
/// [`Rejection::status`], [`Rejection::error_code`]. The rejection's `Display` and `Debug` give
/// the precise reason for logs (an untrusted issuer, a disallowed algorithm), which the guard
/// never tells a client whose token's signature has not verified.
///
/// ```
/// use bearer_guard::{Protocol, Rejection, RejectionBody, TokenError};
/// use http::HeaderValue;
///
/// let problem = |rejection: &Rejection| {
///     let json = format!(r#"{{"title":"{}","status":{}}}"#, rejection.description(), rejection.status().as_u16());
///     Some((HeaderValue::from_static("application/problem+json"), json))
/// };
/// let body = problem.body(&Rejection::from(TokenError::Expired));
/// assert_eq!(body.unwrap().1, r#"{"title":"The access token expired","status":401}"#);
/// ```
pub trait RejectionBody<B>: Clone + Send + Sync + 'static {
    /// The content type and body of the response to `rejection`; `None` leaves it empty.
    fn body(&self, rejection: &Rejection) -> Option<(HeaderValue, B)>;
}

/// The default [`RejectionBody`]: empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyBody;

impl<B> RejectionBody<B> for EmptyBody {
    fn body(&self, _: &Rejection) -> Option<(HeaderValue, B)> {
        None
    }
}

impl<B, F> RejectionBody<B> for F
where
    F: Fn(&Rejection) -> Option<(HeaderValue, B)> + Clone + Send + Sync + 'static,
{
    fn body(&self, rejection: &Rejection) -> Option<(HeaderValue, B)> {
        self(rejection)
    }
}

/// Comma-separated `name="value"` auth-params after the scheme.
struct Params<'s>(&'s mut String, bool);

impl Params<'_> {
    fn push(&mut self, name: &str, value: &str) {
        self.0.push_str(if self.1 { ", " } else { " " });
        self.1 = true;
        self.0.push_str(name);
        self.0.push('=');
        quote(self.0, value);
    }
}

/// An RFC 9110 quoted-string: `"` and `\` escaped; anything that is not visible ASCII or a space
/// (which a header cannot carry) dropped.
fn quote(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => {}
        }
    }
    out.push('"');
}

/// gRPC `grpc-message` is percent-encoded UTF-8 (everything outside printable ASCII, and `%`).
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (b' '..=b'~').contains(&byte) && byte != b'%' {
            encoded.push(byte as char);
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}
