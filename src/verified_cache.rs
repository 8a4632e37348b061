//! The verified-token cache: a token seen before costs a hash lookup and the per-request checks.
//!
//! Machine clients reuse one token for minutes, so most requests carry a token this process has
//! already verified. Entries are keyed by the **full token** (equality, not a digest, decides a
//! hit, so no collision can admit a token), bounded by total bytes, and live at most until the
//! token's `exp` (or a configured cap, whichever is sooner). Only tokens that passed every check
//! are inserted; rejections are never cached.
//!
//! A hit is not a free pass. On every request the guard still checks what can change after
//! verification: `exp` against the clock (with the issuer's leeway), and that the key set the
//! token was verified against is still the issuer's current one — after any key set change the
//! token is verified again in full, so a key that disappeared from the JWKS stops a cached token
//! exactly as it stops a new one.

use std::time::{Duration, Instant};

use foldhash::quality::RandomState;
use moka::Expiry;
use moka::sync::{Cache, SegmentedCache};

use crate::claims::Claims;
use crate::validate;

/// Default bound on the cache's total size.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on how long one entry may live, whatever its `exp`.
pub(crate) const DEFAULT_MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

/// Fixed per-entry cost added to the token and payload lengths: the parsed `Claims` (its strings
/// and scope set), the entry, moka's bookkeeping (hash table, access and expiry queues) and the
/// allocator's headers. Measured with `benches/memory.rs`: the resident set grows by ~1,560 bytes
/// per cached HS256 token of 340 bytes with a 194-byte payload, so the configured size bounds the
/// memory actually used, not just the bytes of the tokens.
const ENTRY_OVERHEAD_BYTES: usize = 1024;

/// Configuration of the verified-token cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CacheConfig {
    pub(crate) max_bytes: u64,
    pub(crate) max_entry_lifetime: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_lifetime: DEFAULT_MAX_ENTRY_LIFETIME,
        }
    }
}

/// What a hit returns: the claims, and what the per-request checks need.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) claims: Claims,
    /// Index of the issuer in the guard.
    pub(crate) issuer: usize,
    /// The key set generation the signature was verified against.
    pub(crate) key_generation: u64,
    /// `exp`, NumericDate seconds.
    pub(crate) expires_at: f64,
}

/// Each entry expires when its token does (or at the configured cap).
struct UntilExpiry {
    cap: Duration,
}

impl Expiry<Box<str>, CachedToken> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &Box<str>,
        cached: &CachedToken,
        _created_at: Instant,
    ) -> Option<Duration> {
        let remaining = (cached.expires_at - validate::now()).max(0.0);
        // A far-future `exp` or an unbounded cap must saturate, never panic.
        Some(Duration::try_from_secs_f64(remaining).map_or(self.cap, |left| left.min(self.cap)))
    }
}

/// An entry's weight: what it holds, in bytes.
#[allow(clippy::borrowed_box)] // the signature moka's weigher takes
fn weigh(token: &Box<str>, cached: &CachedToken) -> u32 {
    let bytes = token.len() + cached.claims.payload_json().len() + ENTRY_OVERHEAD_BYTES;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The cache is a moka `SegmentedCache`; the smallest a segment may be.
const MIN_SEGMENT_BYTES: u64 = 256 * 1024;
/// At most this many segments.
const MAX_SEGMENTS: usize = 64;

/// The cache, split into moka segments (independent caches chosen by the token's hash) so that
/// threads looking up different tokens mostly touch different ones. A moka lookup records the
/// read in a queue shared by the whole (unsegmented) cache, for its eviction policy; with one
/// segment, two cores looking up different tokens contended on that queue and gave less
/// throughput than one core (`benches/scaling.rs`).
pub(crate) struct VerifiedCache {
    // Hashing the token is the largest part of a hit: SipHash (std's default) is a fifth of it on
    // an RS256 token; foldhash, still randomly seeded per process, a fraction of that.
    entries: SegmentedCache<Box<str>, CachedToken, RandomState>,
}

impl VerifiedCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let by_size = usize::try_from(config.max_bytes / MIN_SEGMENT_BYTES).unwrap_or(MAX_SEGMENTS);
        // A power of two (moka would round up), each segment holding its share of the bound.
        let segments = prev_power_of_two((cores * 4).min(by_size).clamp(1, MAX_SEGMENTS));
        let entries = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(weigh)
            .expire_after(UntilExpiry {
                cap: config.max_entry_lifetime,
            })
            .segments(segments)
            .build_with_hasher(RandomState::default());
        VerifiedCache { entries }
    }

    pub(crate) fn get(&self, token: &str) -> Option<CachedToken> {
        self.entries.get(token)
    }

    pub(crate) fn insert(&self, token: &str, cached: CachedToken) {
        self.entries.insert(token.into(), cached);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.entries.invalidate(token);
    }

    /// Total weight in bytes (after pending maintenance has run).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}
