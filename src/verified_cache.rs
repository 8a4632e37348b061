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
use moka::sync::Cache;

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

/// Each shard is a moka cache of its own; the smallest a shard may be.
const MIN_SHARD_BYTES: u64 = 256 * 1024;
/// At most this many shards.
const MAX_SHARDS: usize = 64;

/// The cache, split into independent shards so that threads looking up different tokens touch
/// different moka instances. A moka lookup records the read in a queue shared by the whole cache
/// (for its eviction policy); with one instance, two cores looking up different tokens contended
/// on that queue and gave less throughput than one core (`benches/scaling.rs`).
pub(crate) struct VerifiedCache {
    // Hashing the token is the largest part of a hit: SipHash (std's default) is a fifth of it on
    // an RS256 token; foldhash, still randomly seeded per process, a fraction of that.
    shards: Box<[Cache<Box<str>, CachedToken, RandomState>]>,
}

impl VerifiedCache {
    pub(crate) fn new(config: CacheConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let by_size = usize::try_from(config.max_bytes / MIN_SHARD_BYTES).unwrap_or(MAX_SHARDS);
        // A power of two, so that a shard is chosen with a shift.
        let count = prev_power_of_two((cores * 4).min(by_size).clamp(1, MAX_SHARDS));
        let per_shard = config.max_bytes / count as u64;
        let shards = (0..count)
            .map(|_| {
                Cache::builder()
                    .max_capacity(per_shard)
                    .weigher(weigh)
                    .expire_after(UntilExpiry {
                        cap: config.max_entry_lifetime,
                    })
                    .build_with_hasher(RandomState::default())
            })
            .collect();
        VerifiedCache { shards }
    }

    /// The shard a token belongs to, from the token's last bytes. Only verified tokens are ever
    /// inserted, and their last bytes are signature bytes, which nobody but the issuer chooses;
    /// a lookup of any other token is a miss in whichever shard it lands.
    fn shard(&self, token: &str) -> &Cache<Box<str>, CachedToken, RandomState> {
        let bytes = token.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        let mixed = u64::from_le_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bits = self.shards.len().trailing_zeros();
        // `bits` is 0..=6: the shift keeps the top `bits` bits, an index below `shards.len()`.
        let index = if bits == 0 {
            0
        } else {
            (mixed >> (64 - bits)) as usize
        };
        &self.shards[index]
    }

    pub(crate) fn get(&self, token: &str) -> Option<CachedToken> {
        self.shard(token).get(token)
    }

    pub(crate) fn insert(&self, token: &str, cached: CachedToken) {
        self.shard(token).insert(token.into(), cached);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.shard(token).invalidate(token);
    }

    /// Total weight in bytes (after pending maintenance has run).
    pub(crate) fn weighted_size(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard.run_pending_tasks();
                shard.weighted_size()
            })
            .sum()
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| {
                shard.run_pending_tasks();
                shard.entry_count()
            })
            .sum()
    }
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}
