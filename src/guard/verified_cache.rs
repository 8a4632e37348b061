//! The verified-token cache: a token seen before costs a hash lookup and the per-request checks.
//! (Over 500 lines with its unit tests, which are half the file: the shared cache and each
//! thread's front share one entry type and one set of guarantees.)
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
//!
//! In front of the shared moka cache each thread keeps up to 256 recently used entries of its
//! own (the *front*), so that a repeated token on a busy thread is found without touching memory
//! another core writes (moka's read queue, a shared reference count). Front entries come only from
//! the shared cache, are found by the same full-token equality, never outlive the shared entry's
//! own limit (`exp`, the lifetime cap), and go through the same per-request checks.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use foldhash::quality::RandomState;
use moka::Expiry;
use moka::sync::{Cache, SegmentedCache};

use crate::claims::Claims;
use crate::token;

/// Default bound on the cache's total size.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default cap on how long one entry may live, whatever its `exp`.
pub(crate) const DEFAULT_MAX_ENTRY_LIFETIME: Duration = Duration::from_secs(3600);

/// Fixed per-entry cost added to the token's length and what its claims hold
/// (`Claims::heap_bytes`): the entry, moka's bookkeeping (hash table, access and expiry queues)
/// and the allocator's headers, so that the configured size bounds the memory actually used.
/// `benches/memory.rs` measures the resident set per cached token against this charge.
const ENTRY_OVERHEAD_BYTES: usize = 768;

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

/// A shared entry: the verified token and the time (NumericDate seconds) it may be used until.
/// The token is the map's own key, shared, so that a thread's front can hold it without a copy.
#[derive(Clone)]
struct Entry {
    token: Arc<str>,
    cached: CachedToken,
    until: f64,
    /// What the entry holds, in bytes (computed once, at insert).
    weight: u32,
}

/// Each entry expires when its token does (or at the configured cap).
struct UntilExpiry;

impl Expiry<Arc<str>, Entry> for UntilExpiry {
    fn expire_after_create(
        &self,
        _token: &Arc<str>,
        entry: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        let remaining = (entry.until - token::now()).max(0.0);
        // A far-future `exp` or an unbounded cap must saturate, never panic.
        Some(Duration::try_from_secs_f64(remaining).unwrap_or(Duration::MAX))
    }
}

/// An entry's weight: what it holds, in bytes.
fn weigh(_token: &Arc<str>, entry: &Entry) -> u32 {
    entry.weight
}

/// The cache is a moka `SegmentedCache`; the smallest a segment may be.
const MIN_SEGMENT_BYTES: u64 = 256 * 1024;
/// At most this many segments.
const MAX_SEGMENTS: usize = 64;

/// Sets in each thread's front; a token's set comes from its hash.
const FRONT_SETS: usize = 64;
/// Entries per set. 64 × 4 = 256 entries per thread (24 KiB of slots, allocated on the thread's
/// first hit): room for the tokens of the clients one thread serves at a time. A slot shares the
/// token and claims of the shared entry until it is hit often (see `DETACH_AFTER`).
const FRONT_WAYS: usize = 4;

/// Front hits after which an entry gets claims of its own (a copy no other thread touches).
/// Copying on the first hit made every front miss cost a copy, and with more clients than a
/// front holds that doubled the cost of a hit.
const DETACH_AFTER: u32 = 8;
/// Every this many front hits, the hit is also reported to the shared cache, so that its
/// eviction policy sees which tokens are in use.
const TOUCH_EVERY: u32 = 64;
/// Heavier entries (token, everything its claims hold and the fixed overhead) are served from the
/// shared cache only. With this, one thread's front holds at most 256 × (4 KiB + its own copy of
/// the claims), ~2 MiB, and typically a tenth of that.
const FRONT_MAX_ENTRY_WEIGHT: u32 = 4096;

/// A shared entry as a thread's front holds it.
struct FrontEntry {
    /// Which cache (guard) the entry belongs to: a thread may serve several guards.
    cache: u64,
    /// The token's hash: most slots that do not hold the token are passed over on this alone.
    tag: u64,
    entry: Entry,
    hits: u32,
}

impl FrontEntry {
    fn holds(&self, cache: u64, tag: u64, token: &str) -> bool {
        self.tag == tag && self.cache == cache && *self.entry.token == *token
    }
}

struct Front {
    sets: [[Option<FrontEntry>; FRONT_WAYS]; FRONT_SETS],
    /// Per set, the way the next new entry replaces when the set is full (round robin).
    next: [u8; FRONT_SETS],
}

impl Front {
    fn new() -> Box<Front> {
        Box::new(Front {
            sets: [const { [const { None }; FRONT_WAYS] }; FRONT_SETS],
            next: [0; FRONT_SETS],
        })
    }
}

thread_local! {
    /// Allocated on a thread's first hit: threads that never verify a token pay one pointer.
    static FRONT: RefCell<Option<Box<Front>>> = const { RefCell::new(None) };
}

/// Picks a token's front set from its last bytes (the signature's: random for real tokens). One
/// per process: a token has the same set in every cache, which only the cache identity tells apart.
static FRONT_HASHER: LazyLock<RandomState> = LazyLock::new(RandomState::default);

/// Gives each cache its own identity in the threads' fronts; never reused.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(0);

/// The cache, split into moka segments (independent caches chosen by the token's hash) so that
/// threads looking up different tokens mostly touch different ones, with each thread's front
/// before it.
pub(crate) struct VerifiedCache {
    // Hashing the token is the largest part of a hit: SipHash (std's default) is a fifth of it on
    // an RS256 token; foldhash, still randomly seeded per process, a fraction of that.
    entries: SegmentedCache<Arc<str>, Entry, RandomState>,
    id: u64,
    max_entry_lifetime: f64,
    /// The bound each segment holds: no entry heavier than this is kept.
    segment_bytes: u64,
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
            .expire_after(UntilExpiry)
            .segments(segments)
            .build_with_hasher(RandomState::default());
        VerifiedCache {
            entries,
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            max_entry_lifetime: config.max_entry_lifetime.as_secs_f64(),
            segment_bytes: config.max_bytes / segments as u64,
        }
    }

    /// The verified entry for `token`, if it may still be used at `now`. The caller still checks
    /// `exp` with its leeway and the key set generation.
    pub(crate) fn get(&self, token: &str, now: f64) -> Option<CachedToken> {
        let slot = front_slot(token);
        if let Some(cached) = self.front_get(slot, token, now) {
            return Some(cached);
        }
        let entry = self.entries.get(token).filter(|entry| now < entry.until)?;
        let cached = entry.cached.clone();
        // Only what the shared cache holds reaches a front, and only what one of its segments
        // can keep: an entry too large for the cache is never served from a thread's front.
        if entry.weight <= FRONT_MAX_ENTRY_WEIGHT && u64::from(entry.weight) <= self.segment_bytes {
            self.front_put(slot, entry);
        }
        Some(cached)
    }

    pub(crate) fn insert(&self, token: &str, cached: CachedToken) {
        let until = cached
            .expires_at
            .min(token::now() + self.max_entry_lifetime);
        let bytes = token.len() + cached.claims.heap_bytes() + ENTRY_OVERHEAD_BYTES;
        let token: Arc<str> = token.into();
        let entry = Entry {
            token: Arc::clone(&token),
            cached,
            until,
            weight: u32::try_from(bytes).unwrap_or(u32::MAX),
        };
        // A token verified again (its key set changed) must not keep meeting its old entry in
        // this thread's front: that would send every request to full verification. Other
        // threads' fronts are corrected the same way on their next verification of it.
        self.front_replace(front_slot(&token), &entry);
        self.entries.insert(token, entry);
    }

    fn front_get(&self, slot: Slot, token: &str, now: f64) -> Option<CachedToken> {
        // No front on a thread being torn down: the shared cache answers there.
        let (cached, hits) = FRONT
            .try_with(|front| {
                let mut front = front.borrow_mut();
                let front = front.as_mut()?;
                let way = front.sets[slot.set].iter_mut().find(|way| {
                    way.as_ref()
                        .is_some_and(|held| held.holds(self.id, slot.tag, token))
                })?;
                match way {
                    Some(held) if now < held.entry.until => {
                        held.hits = held.hits.saturating_add(1);
                        if held.hits == DETACH_AFTER {
                            // A token this thread keeps seeing: stop sharing its reference count
                            // with the other threads that see it too.
                            held.entry.cached.claims = held.entry.cached.claims.detached();
                        }
                        Some((held.entry.cached.clone(), held.hits))
                    }
                    // Past its limit here means past it in the shared cache too. The limit is
                    // wall-clock time, like `exp` itself.
                    _ => {
                        *way = None;
                        None
                    }
                }
            })
            .ok()
            .flatten()?;
        if hits % TOUCH_EVERY == 0 {
            self.entries.get(token);
        }
        Some(cached)
    }

    /// Replace the token's entry in this thread's front, if it has one.
    fn front_replace(&self, slot: Slot, entry: &Entry) {
        let _ = FRONT.try_with(|front| {
            let mut front = front.borrow_mut();
            let Some(front) = front.as_mut() else {
                return;
            };
            for way in &mut front.sets[slot.set] {
                if let Some(held) = way
                    .as_mut()
                    .filter(|held| held.holds(self.id, slot.tag, &entry.token))
                {
                    held.entry = entry.clone();
                    held.hits = 0;
                }
            }
        });
    }

    /// Put an entry the front does not hold (its lookup just missed) into a free way, else into
    /// the set's next way in turn.
    fn front_put(&self, slot: Slot, entry: Entry) {
        let _ = FRONT.try_with(|front| {
            let mut front = front.borrow_mut();
            let front = &mut **front.get_or_insert_with(Front::new);
            let ways = &mut front.sets[slot.set];
            let way = ways.iter().position(Option::is_none).unwrap_or_else(|| {
                let next = &mut front.next[slot.set];
                let way = usize::from(*next) % FRONT_WAYS;
                *next = next.wrapping_add(1);
                way
            });
            ways[way] = Some(FrontEntry {
                cache: self.id,
                tag: slot.tag,
                entry,
                hits: 0,
            });
        });
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

/// Where `token` lives in a front: its set, and the tag its slot carries.
#[derive(Clone, Copy)]
struct Slot {
    set: usize,
    tag: u64,
}

fn front_slot(token: &str) -> Slot {
    let tail = &token.as_bytes()[token.len().saturating_sub(16)..];
    let tag = FRONT_HASHER.hash_one(tail);
    // The remainder is below FRONT_SETS, so the cast cannot truncate.
    let set = (tag % FRONT_SETS as u64) as usize;
    Slot { set, tag }
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::claims::ClientIdClaims;
    use crate::scope::ScopeClaims;

    /// A distinct compact token with these extra claims. The cache never looks at signatures (only
    /// verified tokens are inserted), so a placeholder one does.
    fn token_with(extra: &[(&str, serde_json::Value)]) -> String {
        static NEXT_JTI: AtomicU64 = AtomicU64::new(0);
        let mut claims = serde_json::json!({
            "iss": "https://issuer.example",
            "aud": "api",
            "exp": token::now() as u64 + 300,
            "jti": NEXT_JTI.fetch_add(1, Ordering::Relaxed).to_string(),
        });
        for (name, value) in extra {
            claims[*name] = value.clone();
        }
        let encode = |json: &serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        format!("{}.{}.c2lnbmF0dXJl", encode(&header), encode(&claims))
    }

    fn verified(token: &str) -> CachedToken {
        let parsed = token::parse(token).expect("parses");
        let raw = token::parse_claims(&parsed.payload).expect("claims");
        let expires_at = raw.exp.map_or(0.0, |exp| exp.0);
        let claims = Claims::from_verified(
            raw,
            parsed.payload,
            &ScopeClaims::default(),
            &ClientIdClaims::default(),
            parsed.algorithm,
            None,
        )
        .expect("claims");
        CachedToken {
            claims,
            issuer: 0,
            key_generation: 1,
            expires_at,
        }
    }

    fn token() -> String {
        token_with(&[])
    }

    fn cache(lifetime: Duration) -> VerifiedCache {
        VerifiedCache::new(CacheConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_entry_lifetime: lifetime,
        })
    }

    #[test]
    fn the_lifetime_cap_holds_in_every_thread() {
        let token = token();
        let capped = cache(Duration::ZERO);
        capped.insert(&token, verified(&token));
        assert!(capped.get(&token, token::now()).is_none(), "this thread");
        std::thread::scope(|scope| {
            scope.spawn(|| assert!(capped.get(&token, token::now()).is_none(), "another"));
        });

        let uncapped = cache(DEFAULT_MAX_ENTRY_LIFETIME);
        uncapped.insert(&token, verified(&token));
        assert!(uncapped.get(&token, token::now()).is_some());
    }

    #[test]
    fn an_entry_is_never_served_for_a_time_past_its_exp() {
        let token = token();
        let cache = cache(DEFAULT_MAX_ENTRY_LIFETIME);
        let cached = verified(&token);
        let exp = cached.expires_at;
        cache.insert(&token, cached);
        assert!(cache.get(&token, exp - 1.0).is_some());
        // The front answers for this thread and must not outlive `exp`.
        assert!(cache.get(&token, exp).is_none());
    }

    #[test]
    fn a_new_verification_replaces_this_threads_front_entry() {
        let token = token();
        let cache = cache(DEFAULT_MAX_ENTRY_LIFETIME);
        cache.insert(&token, verified(&token));
        assert_eq!(
            cache.get(&token, token::now()).expect("hit").key_generation,
            1
        );
        // Verified again against a new key set.
        let again = CachedToken {
            key_generation: 2,
            ..verified(&token)
        };
        cache.insert(&token, again);
        assert_eq!(
            cache.get(&token, token::now()).expect("hit").key_generation,
            2
        );
    }

    #[test]
    fn an_entry_too_large_for_the_shared_cache_is_never_served_from_a_front() {
        let token = token();
        let tiny = VerifiedCache::new(CacheConfig {
            max_bytes: 0,
            max_entry_lifetime: DEFAULT_MAX_ENTRY_LIFETIME,
        });
        tiny.insert(&token, verified(&token));
        for _ in 0..3 {
            assert!(tiny.get(&token, token::now()).is_none());
        }
    }

    #[test]
    fn an_entry_is_weighed_by_what_its_claims_hold() {
        let scopes: Vec<String> = (0..250).map(|n| format!("s{n}")).collect();
        let token = token_with(&[("scope", scopes.join(" ").into())]);
        let cached = verified(&token);
        let payload = cached.claims.payload_json().len();
        // 250 scopes of 2–4 bytes: each is its own allocation in the scope set.
        assert!(cached.claims.heap_bytes() > payload + 250 * 20);

        // Too much for a front: every hit comes from the shared cache, whose claims it shares.
        let cache = cache(DEFAULT_MAX_ENTRY_LIFETIME);
        cache.insert(&token, cached.clone());
        for _ in 0..DETACH_AFTER + 2 {
            let hit = cache.get(&token, token::now()).expect("hit");
            assert!(hit.claims.shares_with(&cached.claims));
        }
    }

    #[test]
    fn caches_never_see_each_others_entries() {
        let token = token();
        let (one, other) = (
            cache(DEFAULT_MAX_ENTRY_LIFETIME),
            cache(DEFAULT_MAX_ENTRY_LIFETIME),
        );
        one.insert(&token, verified(&token));
        assert!(one.get(&token, token::now()).is_some());
        assert!(other.get(&token, token::now()).is_none());
    }

    #[test]
    fn threads_hand_out_claims_of_their_own() {
        let token = token();
        let cache = cache(DEFAULT_MAX_ENTRY_LIFETIME);
        cache.insert(&token, verified(&token));
        let here = cache.get(&token, token::now()).expect("hit");
        let there = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let hit = || cache.get(&token, token::now()).expect("hit");
                    let first = hit();
                    assert!(
                        first.claims.shares_with(&here.claims),
                        "a new entry is shared"
                    );
                    for _ in 0..DETACH_AFTER {
                        hit();
                    }
                    let (one, two) = (hit(), hit());
                    assert!(one.claims.shares_with(&two.claims), "the thread's own copy");
                    one
                })
                .join()
                .expect("thread")
        });
        assert_eq!(here.claims.issuer(), there.claims.issuer());
        assert!(!here.claims.shares_with(&there.claims));
    }
}
