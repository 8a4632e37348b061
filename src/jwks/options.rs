//! How a remote key set is cached, refreshed and fetched ([`JwksOptions`]), and where it lives.

use std::time::Duration;

/// No configured duration may exceed this (100 years), so that `Instant` arithmetic cannot overflow.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How a remote key set is cached, refreshed and fetched. Every duration has a production default;
/// tests can shorten them.
///
/// ```
/// use std::time::Duration;
/// use bearer_guard::JwksOptions;
///
/// let options = JwksOptions::default()
///     .ttl(Duration::from_secs(300))
///     .unknown_kid_cooldown(Duration::from_secs(10))
///     .stale_limit(Duration::from_secs(6 * 3600));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct JwksOptions {
    pub(crate) ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) refresh_ahead: f64,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) stale_limit: Duration,
    pub(crate) limits: FetchLimits,
    pub(crate) retry_initial: Duration,
    pub(crate) retry_max: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            ttl: Duration::from_secs(10 * 60),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refresh_ahead: 0.8,
            unknown_kid_cooldown: Duration::from_secs(30),
            stale_limit: Duration::from_secs(24 * 3600),
            limits: FetchLimits {
                timeout: Duration::from_secs(5),
                max_body_bytes: 1024 * 1024,
                allow_insecure_http: false,
            },
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(5 * 60),
        }
    }
}

impl JwksOptions {
    /// How long a set is fresh when the response has no `Cache-Control: max-age` (default 10 min).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.min(LONGEST);
        self
    }

    /// The range a `Cache-Control: max-age` is clamped to (default 1 min to 24 h), so that a server
    /// can neither make the guard fetch on every request nor pin a key set for weeks.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_ttl = min.min(LONGEST);
        self.max_ttl = max.min(LONGEST).max(self.min_ttl);
        self
    }

    /// The fraction of the TTL after which a background refresh starts (default 0.8). Values are
    /// kept within 0.1 to 1.0.
    pub fn refresh_ahead(mut self, fraction: f64) -> Self {
        if fraction.is_finite() {
            self.refresh_ahead = fraction.clamp(0.1, 1.0);
        }
        self
    }

    /// The shortest time between two refetches caused by tokens naming an unknown `kid` (default
    /// 30 s). Within it such tokens are rejected at once, so a flood of made-up `kid`s costs at
    /// most one fetch per cooldown.
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.unknown_kid_cooldown = cooldown.min(LONGEST);
        self
    }

    /// How long past its TTL the last good set keeps being used while fetches fail (default 24 h).
    pub fn stale_limit(mut self, limit: Duration) -> Self {
        self.stale_limit = limit.min(LONGEST);
        self
    }

    /// The time limit of one HTTP request, body included (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.limits.timeout = timeout.min(LONGEST);
        self
    }

    /// The largest response body accepted (default 1 MiB); reading stops as soon as it is passed.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.limits.max_body_bytes = limit;
        self
    }

    /// Allow plain `http://` issuer, metadata and JWKS URLs on hosts other than loopback (default:
    /// refused, since anyone on the path could then substitute the keys). Loopback addresses
    /// (`127.0.0.0/8`, `::1`, `localhost`) are always allowed, for tests and sidecars; note that
    /// the default HTTP client honours `HTTP_PROXY`, so list them in `NO_PROXY` (or pass a client
    /// built with `no_proxy()`) if a proxy is set and plain `http` must not leave the host.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.limits.allow_insecure_http = allow;
        self
    }

    /// The wait before retrying a failed fetch: `initial` (default 1 s), doubled after each further
    /// failure up to `max` (default 5 min).
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial.min(LONGEST);
        self.retry_max = max.min(LONGEST).max(self.retry_initial);
        self
    }

    /// How long a set fetched with this `max-age` stays fresh.
    pub(crate) fn ttl_for(&self, max_age: Option<Duration>) -> Duration {
        match max_age {
            Some(max_age) => max_age.max(self.min_ttl).min(self.max_ttl),
            None => self.ttl,
        }
    }

    /// How long the guard waits on one fetch: discovery (up to two metadata documents) plus the
    /// JWKS request, with some slack.
    pub(crate) fn longest_fetch(&self) -> Duration {
        self.limits.timeout.saturating_mul(3) + Duration::from_millis(100)
    }
}

/// The limits every request for keys or metadata is held to.
#[derive(Debug, Clone)]
pub(crate) struct FetchLimits {
    pub(crate) timeout: Duration,
    pub(crate) max_body_bytes: usize,
    /// Plain `http` to hosts other than loopback (keys could be swapped on the way).
    pub(crate) allow_insecure_http: bool,
}

/// Where the keys of an issuer are published, as configured.
#[derive(Debug, Clone)]
pub(crate) enum JwksLocation {
    /// A JWK Set URL given directly.
    Uri(String),
    /// Read the issuer's metadata to find its `jwks_uri`.
    Discover,
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn max_age_is_clamped_and_absent_max_age_uses_the_default() {
        let options = JwksOptions::default();
        assert_eq!(options.ttl_for(None), Duration::from_secs(600));
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(5))),
            Duration::from_secs(60)
        );
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(3600))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            options.ttl_for(Some(Duration::from_secs(30 * 24 * 3600))),
            Duration::from_secs(24 * 3600)
        );
    }

    #[test]
    fn options_never_overflow_instants() {
        let options = JwksOptions::default()
            .ttl(Duration::MAX)
            .stale_limit(Duration::MAX)
            .ttl_bounds(Duration::MAX, Duration::ZERO)
            .retry_backoff(Duration::MAX, Duration::MAX)
            .refresh_ahead(f64::NAN);
        let ttl = options.ttl_for(None);
        let _ = Instant::now()
            + ttl.mul_f64(options.refresh_ahead)
            + ttl.saturating_add(options.stale_limit);
        assert!(options.min_ttl <= options.max_ttl);
        assert_eq!(options.refresh_ahead, 0.8);
    }
}
