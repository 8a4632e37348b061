//! The HTTP client for key and metadata fetches: the application's own, or one made when the first
//! issuer with published keys needs it.

use super::build_error::BuildError;

/// The HTTP client for key and metadata fetches: the user's, or one made on first need.
pub(crate) enum HttpClient {
    Pending(Option<reqwest::Client>),
    Ready(reqwest::Client),
}

impl HttpClient {
    pub(super) fn get(&mut self) -> Result<reqwest::Client, BuildError> {
        let client = match self {
            HttpClient::Ready(client) => return Ok(client.clone()),
            HttpClient::Pending(Some(client)) => client.clone(),
            HttpClient::Pending(None) => reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|err| BuildError::HttpClient(err.to_string()))?,
        };
        *self = HttpClient::Ready(client.clone());
        Ok(client)
    }
}
