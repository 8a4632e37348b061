//! Where the access token comes from: pulling it out of a request (RFC 6750 §2), once.
//!
//! - `Authorization: Bearer <token>`: the scheme is case-insensitive, the token must be a
//!   `b64token`, and there must be exactly one `Authorization` header.
//! - Opt-in sources, each read only when configured: the `access_token` query parameter (RFC 6750
//!   §2.3), a header of the application's choosing carrying the bare token (for example one a
//!   proxy sets), and a cookie. The form-body method (§2.2) is not supported: reading a body in an
//!   authentication layer would buffer every request.
//! - A request carries at most one token: a token found by two sources, or twice by one, is a
//!   malformed request (400), never resolved by picking one.
//! - A token longer than the size limit is refused before any parsing.
//!
//! A request with no `Authorization` header, or one with another scheme (`Basic …`), carries no
//! bearer token: that is "no credentials" (401 without an error code), not a malformed request.

use std::borrow::Cow;

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, Uri};

/// Default maximum token size in bytes.
pub(crate) const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The request is malformed as far as bearer authentication goes. Rendered as
/// `400 invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleHeaders,
    /// The token was sent in the header and the query, or twice in the query.
    #[error("access token sent by more than one method")]
    MultipleTokens,
    /// The credentials are not `Bearer` followed by a `b64token`.
    #[error("Authorization header is not a valid bearer credential")]
    Malformed,
    /// The token is longer than the configured limit.
    #[error("access token is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

impl BearerError {
    /// A short description that is safe to send to the client in `error_description`.
    pub fn description(&self) -> &'static str {
        match self {
            BearerError::MultipleHeaders => "More than one Authorization header",
            BearerError::MultipleTokens => "The access token was sent more than once",
            BearerError::Malformed => "The Authorization header is not a valid Bearer credential",
            BearerError::TooLarge { .. } => "The access token is too large",
        }
    }
}

/// Where tokens may be read from, and how large they may be.
#[derive(Clone, Debug)]
pub(crate) struct TokenSources {
    pub(crate) max_token_bytes: usize,
    pub(crate) allow_query: bool,
    /// A header carrying the bare token (no scheme).
    pub(crate) header: Option<HeaderName>,
    /// A cookie carrying the bare token.
    pub(crate) cookie: Option<Box<str>>,
}

impl Default for TokenSources {
    fn default() -> Self {
        TokenSources {
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            allow_query: false,
            header: None,
            cookie: None,
        }
    }
}

impl TokenSources {
    /// The token of a request: `Ok(None)` when there is none, an error when the request is
    /// malformed (or carries a token by more than one source).
    pub(crate) fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<Cow<'r, str>>, BearerError> {
        let mut found = self.header_token(headers)?.map(Cow::Borrowed);
        if self.allow_query {
            found = one_of(found, self.query_token(uri)?)?;
        }
        if let Some(name) = &self.header {
            found = one_of(
                found,
                self.custom_header_token(headers, name)?.map(Cow::Borrowed),
            )?;
        }
        if let Some(name) = &self.cookie {
            found = one_of(found, self.cookie_token(headers, name)?.map(Cow::Borrowed))?;
        }
        Ok(found)
    }

    /// The bare token of the configured header: exactly one such header, a `b64token`.
    fn custom_header_token<'r>(
        &self,
        headers: &'r HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<&'r str>, BearerError> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(BearerError::MultipleHeaders);
        }
        self.check_token(value.as_bytes().trim_ascii()).map(Some)
    }

    /// The token of the configured cookie, across every `Cookie` header; the cookie named twice is
    /// two tokens. The pairs are split on `;` as RFC 6265 §5.4 sends them, with no quoting: a
    /// parser that lets a `"` swallow what follows would let a planted cookie such as `x="` hide
    /// the real token behind its own.
    fn cookie_token<'r>(
        &self,
        headers: &'r HeaderMap,
        name: &str,
    ) -> Result<Option<&'r str>, BearerError> {
        let mut values = headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|header| header.as_bytes().split(|byte| *byte == b';'))
            .filter_map(|pair| {
                let pair = pair.trim_ascii();
                let equals = pair.iter().position(|byte| *byte == b'=')?;
                (pair[..equals].trim_ascii() == name.as_bytes())
                    .then(|| pair[equals + 1..].trim_ascii())
            });
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(BearerError::MultipleTokens);
        }
        self.check_token(value).map(Some)
    }

    fn header_token<'r>(&self, headers: &'r HeaderMap) -> Result<Option<&'r str>, BearerError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(BearerError::MultipleHeaders);
        }
        // "Bearer" 1*SP token. The size limit is the token's, checked once the scheme is known to
        // be ours: a large credential of another scheme (a Kerberos ticket) is not a bearer token.
        let value = value.as_bytes();
        let Some(separator) = value.iter().position(|byte| *byte == b' ') else {
            // A lone scheme word: "Bearer" with no token is malformed; any other scheme is simply
            // not ours.
            return if value.eq_ignore_ascii_case(b"bearer") {
                Err(BearerError::Malformed)
            } else {
                Ok(None)
            };
        };
        if !value[..separator].eq_ignore_ascii_case(b"bearer") {
            return Ok(None);
        }
        let token = value[separator..].trim_ascii_start();
        self.check_token(token).map(Some)
    }

    fn query_token<'r>(&self, uri: &'r Uri) -> Result<Option<Cow<'r, str>>, BearerError> {
        let Some(query) = uri.query() else {
            return Ok(None);
        };
        let mut tokens = form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| name == "access_token")
            .map(|(_, value)| value);
        let Some(token) = tokens.next() else {
            return Ok(None);
        };
        if tokens.next().is_some() {
            return Err(BearerError::MultipleTokens);
        }
        self.check_token(token.as_bytes())?;
        Ok(Some(token))
    }

    /// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    fn check_token<'t>(&self, token: &'t [u8]) -> Result<&'t str, BearerError> {
        if token.len() > self.max_token_bytes {
            return Err(BearerError::TooLarge {
                limit: self.max_token_bytes,
            });
        }
        let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
        let (body, _padding) = token.split_at(body_len);
        // No early exit: the branch-free fold compiles to SIMD, and every request pays this over
        // the whole token.
        let valid = !body.is_empty()
            && body
                .iter()
                .fold(true, |valid, byte| valid & is_b64token_char(*byte));
        if !valid {
            return Err(BearerError::Malformed);
        }
        // Only ASCII was accepted above, so this cannot fail.
        std::str::from_utf8(token).map_err(|_| BearerError::Malformed)
    }
}

/// The token found so far and the next source's: two tokens are a malformed request.
fn one_of<'r>(
    found: Option<Cow<'r, str>>,
    next: Option<Cow<'r, str>>,
) -> Result<Option<Cow<'r, str>>, BearerError> {
    match (found, next) {
        (Some(_), Some(_)) => Err(BearerError::MultipleTokens),
        (found, next) => Ok(found.or(next)),
    }
}

/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, without branches.
fn is_b64token_char(byte: u8) -> bool {
    let letter = (byte | 0x20).wrapping_sub(b'a') < 26;
    let digit = byte.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (byte == b'-')
        | (byte == b'.')
        | (byte == b'_')
        | (byte == b'~')
        | (byte == b'+')
        | (byte == b'/')
}

#[cfg(test)]
mod tests {
    use super::is_b64token_char;

    #[test]
    fn b64token_chars_are_exactly_rfc6750s() {
        for byte in 0..=u8::MAX {
            let rfc6750 = byte.is_ascii_alphanumeric()
                || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_char(byte), rfc6750, "byte {byte:#04x}");
        }
    }
}
