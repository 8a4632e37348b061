//! One trusted issuer: its configuration ([`Issuer`]) and the compiled form a request reads
//! ([`IssuerState`]).

use std::sync::Arc;
use std::time::Duration;

use super::build_error::BuildError;
use super::http_client::HttpClient;
use crate::claims::ClientIdClaims;
use crate::jwks::{JwksLocation, JwksOptions, KeySet, KeySource, RemoteKeys};
use crate::scope::ScopeClaims;
use crate::token::{self, Algorithm, AlgorithmSet, ClaimsPolicy};

/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// An issuer as requests see it: its policy, where its scopes and client id are read, its keys.
pub(crate) struct IssuerState {
    pub(crate) issuer: Box<str>,
    pub(crate) policy: ClaimsPolicy,
    pub(crate) scope_claims: ScopeClaims,
    pub(crate) client_id_claims: ClientIdClaims,
    pub(crate) keys: KeySource,
}

/// Where an issuer's keys come from, as configured.
#[derive(Debug)]
enum KeyConfig {
    Static(KeySet),
    Remote(JwksLocation),
}

/// One trusted authorization server and what its tokens must satisfy.
#[derive(Debug)]
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    keys: Option<KeyConfig>,
    jwks_options: JwksOptions,
    leeway: Duration,
    rfc9068: bool,
    max_lifetime: Option<Duration>,
    scope_claims: ScopeClaims,
    client_id_claims: ClientIdClaims,
    extra_token_types: Vec<String>,
}

impl Issuer {
    /// An issuer identified by its exact `iss` value (no normalisation: a trailing `/` matters).
    pub fn new(issuer: impl Into<String>) -> Self {
        Issuer {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: Algorithm::DEFAULT_ALLOWED.into_iter().collect(),
            keys: None,
            jwks_options: JwksOptions::default(),
            leeway: DEFAULT_LEEWAY,
            rfc9068: false,
            max_lifetime: None,
            scope_claims: ScopeClaims::default(),
            client_id_claims: ClientIdClaims::default(),
            extra_token_types: Vec::new(),
        }
    }

    /// Accept tokens whose `aud` contains `audience`. At least one audience is required; call
    /// again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Replace the algorithm allow-list (default: [`Algorithm::DEFAULT_ALLOWED`]). HMAC algorithms
    /// additionally need a key set made with [`KeySet::hmac_secret`].
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Verify with these keys (PEM, JWK, JWK Set JSON or an HMAC secret). Replaces any earlier
    /// key source of this issuer.
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(KeyConfig::Static(keys));
        self
    }

    /// Verify with the keys published at this JWK Set URL (`http` or `https`), fetched and cached
    /// as [`JwksOptions`] says. Replaces any earlier key source of this issuer. HMAC algorithms
    /// cannot be allowed with published keys.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.keys = Some(KeyConfig::Remote(JwksLocation::Uri(url.into())));
        self
    }

    /// Verify with the keys named by the issuer's own metadata: its `jwks_uri` is read from
    /// `{issuer}/.well-known/openid-configuration` (OpenID Connect Discovery) or, failing that,
    /// from the RFC 8414 document (`/.well-known/oauth-authorization-server` inserted before the
    /// issuer's path). The metadata's `issuer` must equal this issuer exactly. The issuer must
    /// then be an `http(s)` URL. After a failed key fetch the metadata is read again, so an issuer
    /// that moves its `jwks_uri` is followed; if the metadata cannot be read, the last known
    /// `jwks_uri` is fetched. Replaces any earlier key source of this issuer.
    pub fn discover(mut self) -> Self {
        self.keys = Some(KeyConfig::Remote(JwksLocation::Discover));
        self
    }

    /// Caching, refresh and fetch limits for this issuer's published keys (see [`JwksOptions`]
    /// for the defaults). Ignored for static keys.
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.jwks_options = options;
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// RFC 9068 strict mode: `typ` must be `at+jwt` (or `application/at+jwt`) and `iss`, `exp`,
    /// `aud`, `sub`, `client_id`, `iat` and `jti` are required.
    pub fn require_rfc9068(mut self, strict: bool) -> Self {
        self.rfc9068 = strict;
        self
    }

    /// Also accept access tokens whose `typ` header is `token_type` (compared case-insensitively,
    /// with or without an `application/` prefix). By default `typ` must be absent, `JWT` or
    /// `at+jwt` (RFC 8725 §3.11: another kind of JWT from the same issuer, such as a `logout+jwt`,
    /// is never an access token). For example Okta's org authorization server types its tokens
    /// `application/okta-internal-at+jwt`. Ignored in [RFC 9068 mode](Self::require_rfc9068),
    /// which accepts `at+jwt` alone.
    pub fn accept_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.extra_token_types.push(token_type.into());
        self
    }

    /// Reject tokens whose `exp - iat` exceeds `lifetime` (and tokens without `iat`).
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// The claims scopes are read from (default `scope`, `scp`, `permissions`). Each is a claim
    /// name or a dotted path into nested objects, e.g. `realm_access.roles`; the scopes of all of
    /// them are combined. Each may hold a space-separated string or an array of strings.
    pub fn scope_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_claims = ScopeClaims(claims.into_iter().collect());
        self
    }

    /// The claims that name the calling client, first present wins (default `client_id`, `azp`,
    /// `sub`). For example `["cid", "sub"]` for Okta, `["appid", "azp"]` for Entra ID v1/v2.
    pub fn client_id_claims<I, S>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client_id_claims = ClientIdClaims(claims.into_iter().collect());
        self
    }

    /// Check this configuration and compile it into the form requests use.
    pub(super) fn into_state(self, client: &mut HttpClient) -> Result<IssuerState, BuildError> {
        let issuer = self.issuer;
        if issuer.is_empty() {
            return Err(BuildError::EmptyIssuer);
        }
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience { issuer });
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms { issuer });
        }
        let Some(keys) = self.keys else {
            return Err(BuildError::NoKeySource { issuer });
        };
        let wants_hmac = self.algorithms.iter().any(Algorithm::is_hmac);
        let keys = match keys {
            KeyConfig::Static(keys) => {
                if wants_hmac && !keys.has_secret() {
                    return Err(BuildError::HmacWithoutSecret { issuer });
                }
                // A JWK Set whose every key was skipped (encryption keys, unsupported curves, weak
                // RSA), or whose keys fit no allowed algorithm, would answer every client 401 for
                // a server-side mistake.
                if !keys.verifies_any(self.algorithms) {
                    return Err(BuildError::NoUsableKeys { issuer });
                }
                KeySource::Static(Arc::new(keys))
            }
            KeyConfig::Remote(_) if wants_hmac => {
                return Err(BuildError::HmacWithPublishedKeys { issuer });
            }
            KeyConfig::Remote(location) => {
                let client = client.get()?;
                match RemoteKeys::new(&issuer, &location, self.jwks_options, client) {
                    Ok(remote) => KeySource::Remote(remote),
                    Err(reason) => return Err(BuildError::InvalidUrl { issuer, reason }),
                }
            }
        };
        Ok(IssuerState {
            issuer: issuer.into_boxed_str(),
            policy: ClaimsPolicy {
                audiences: self
                    .audiences
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                algorithms: self.algorithms,
                leeway: self.leeway.as_secs_f64(),
                rfc9068: self.rfc9068,
                max_lifetime: self.max_lifetime.map(|lifetime| lifetime.as_secs_f64()),
                extra_token_types: self
                    .extra_token_types
                    .iter()
                    .map(|typ| token::media_type(typ).to_ascii_lowercase().into_boxed_str())
                    .collect(),
            },
            scope_claims: self.scope_claims,
            client_id_claims: self.client_id_claims,
            keys,
        })
    }
}
