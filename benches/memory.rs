//! Memory: push 1,000,000 distinct valid tokens through the guard and report how far the
//! process's resident set grew, against the verified-token cache's configured bound.
//!
//! ```text
//! cargo bench --bench memory
//! MEMORY_TOKENS=200000 MEMORY_CACHE_MIB=4 cargo bench --bench memory
//! ```
//!
//! Tokens are HS256 (cheap to mint and verify, so the run takes seconds, not minutes), minted one
//! at a time in the loop and dropped after use: the only thing that can hold memory across
//! iterations is the guard. RSS is read from `/proc/self/status` (Linux only). The result is also
//! written to `target/bench-results/memory.json` for `benches/report.py`.

use std::time::Instant;

use bearer_guard::testing::SigningKey;
use bearer_guard::{Algorithm, Guard, Issuer};

mod support;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// `VmRSS` and `VmHWM` (peak) in bytes.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    if !support::selected("memory") {
        return;
    }
    let count = env_number("MEMORY_TOKENS", 1_000_000);
    let bound = env_number("MEMORY_CACHE_MIB", 16) * 1024 * 1024;

    let key = SigningKey::generate(Algorithm::HS256).expect("key");
    let guard: Guard = support::ready(
        Guard::builder()
            .issuer(
                Issuer::new(support::ISS)
                    .audience(support::AUD)
                    .algorithms([Algorithm::HS256])
                    .keys(key.key_set()),
            )
            .verified_token_cache_size(bound)
            .build(),
    )
    .expect("guard");
    let mint = |n: u64| {
        key.token(support::ISS, support::AUD)
            .claim("client_id", format!("client-{n}"))
            .scope("payments:read payments:write")
            .sign()
            .expect("token")
    };
    // One verification before the baseline, so one-time allocations (moka's internals, the
    // thread-locals of the crypto and JSON code) are not counted as growth.
    support::ready(guard.verify(&mint(0))).expect("guard accepts");
    let (start, _) = rss();

    println!(
        "memory: {count} distinct HS256 tokens, verified-token cache bound {:.1} MiB",
        mib(bound)
    );
    println!("| tokens | RSS (MiB) | growth (MiB) | cache entries | cache weighted (MiB) |");
    println!("|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    let mut token_bytes = 0u64;
    let checkpoints = 10;
    for n in 1..=count {
        let token = mint(n);
        token_bytes += token.len() as u64;
        if let Err(err) = support::ready(guard.verify(&token)) {
            panic!("token {n} rejected: {err}");
        }
        if n % (count / checkpoints).max(1) == 0 || n == count {
            let stats = guard.verified_token_cache_stats().expect("cache on");
            let (now, _) = rss();
            println!(
                "| {n} | {:.1} | {:.1} | {} | {:.2} |",
                mib(now),
                mib(now.saturating_sub(start)),
                stats.entries,
                mib(stats.weighted_bytes),
            );
        }
    }
    let elapsed = started.elapsed();
    let stats = guard.verified_token_cache_stats().expect("cache on");
    let (end, peak) = rss();
    let growth = end.saturating_sub(start);
    let per_entry = growth.checked_div(stats.entries).unwrap_or(0);
    let weight_per_entry = stats.weighted_bytes.checked_div(stats.entries).unwrap_or(0);
    println!();
    println!(
        "RSS start {:.1} MiB, end {:.1} MiB, peak {:.1} MiB: growth {:.1} MiB for a {:.1} MiB bound \
         ({:.2}x); cache {} entries, {:.2} MiB weighted; RSS growth per entry {per_entry} B vs \
         weight per entry {weight_per_entry} B; mean token {} B; {:.1} s",
        mib(start),
        mib(end),
        mib(peak),
        mib(growth),
        mib(bound),
        growth as f64 / bound as f64,
        stats.entries,
        mib(stats.weighted_bytes),
        token_bytes / count.max(1),
        elapsed.as_secs_f64(),
    );
    assert!(
        stats.weighted_bytes <= bound,
        "cache weight {} exceeds its bound {bound}",
        stats.weighted_bytes
    );

    if let Some(dir) = support::results_dir() {
        let json = serde_json::json!({
            "tokens": count,
            "algorithm": "HS256",
            "bound_bytes": bound,
            "rss_start_bytes": start,
            "rss_end_bytes": end,
            "rss_peak_bytes": peak,
            "rss_growth_bytes": growth,
            "cache_entries": stats.entries,
            "cache_weighted_bytes": stats.weighted_bytes,
            "seconds": elapsed.as_secs_f64(),
        });
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("memory.json"), json.to_string()));
        if let Err(err) = written {
            eprintln!("memory: could not write {}: {err}", dir.display());
        }
    }
}
