#!/usr/bin/env python3
"""Markdown table of the last `cargo bench` run: bench, median, baseline median, ratio, target, met?

Reads target/criterion/**/new/estimates.json (criterion's medians) and, when present,
target/bench-results/{http,memory,scaling}.json written by benches/http.sh and the memory and scaling benches.

    python3 benches/report.py [TARGET_DIR]
"""

import json
import os
import sys
from pathlib import Path

# (group prefix, bench) -> (baseline bench in the same group, target text, check(median_ns, ratio))
TARGETS = {
    ("validate/", "bearer-guard"): ("jsonwebtoken", "ratio <= 1.05", lambda m, r: r <= 1.05),
    ("cached/", "bearer-guard"): (
        "jsonwebtoken",
        "<= 1 us and >= 25x faster (ratio <= 0.04)",
        lambda m, r: m <= 1000.0 and r <= 1 / 25,
    ),
    ("layer/", "with-layer"): ("without-layer", "(no target; cost of the guard)", None),
    ("layer/", "healthz"): ("without-layer", "(reference: public route)", None),
    ("cached/", "request-only"): (None, "(building the request, part of the above)", None),
}


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return "%.3g %s" % (ns / scale, unit)
    return "%.3g ns" % ns


def load_criterion(root):
    """{group: {bench: median_ns}} from every new/estimates.json under root."""
    results = {}
    for estimates in sorted(root.glob("**/new/estimates.json")):
        meta_path = estimates.with_name("benchmark.json")
        try:
            meta = json.loads(meta_path.read_text())
            group, bench = meta["group_id"], meta["function_id"]
        except (OSError, KeyError, ValueError):
            rel = estimates.parent.parent.relative_to(root).parts
            group, bench = "/".join(rel[:-1]), rel[-1]
        if bench is None:
            continue
        median = json.loads(estimates.read_text())["median"]["point_estimate"]
        results.setdefault(group, {})[bench] = median
    return results


def target_for(group, bench):
    for (prefix, name), target in TARGETS.items():
        if group.startswith(prefix) and bench == name:
            return target
    return None


def main():
    target_dir = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CARGO_TARGET_DIR", "target"))
    results = load_criterion(target_dir / "criterion")
    if not results:
        print("no criterion results under %s/criterion: run `cargo bench` first" % target_dir, file=sys.stderr)
    print("| bench | median | baseline | baseline median | ratio | target | met? |")
    print("|---|---:|---|---:|---:|---|---|")
    for group in sorted(results):
        benches = results[group]
        baselines = {t[0] for (p, _), t in TARGETS.items() if group.startswith(p) and t[0]}
        for bench in sorted(benches, key=lambda b: (b in baselines, b)):
            if bench in baselines:
                continue  # shown as the baseline column of the benches it is compared with
            median = benches[bench]
            target = target_for(group, bench)
            baseline, text, check = target if target else (None, "", None)
            if baseline and baseline in benches:
                base = benches[baseline]
                ratio = median / base
                met = ("yes" if check(median, ratio) else "**no**") if check else ""
                print("| %s/%s | %s | %s | %s | %.3f | %s | %s |"
                      % (group, bench, fmt_time(median), baseline, fmt_time(base), ratio, text, met))
            else:
                print("| %s/%s | %s | | | | %s | |" % (group, bench, fmt_time(median), text))

    http = target_dir / "bench-results" / "http.json"
    if http.exists():
        h = json.loads(http.read_text())
        p, u = h["protected_median"], h["unprotected_median"]
        print("| http/GET /payments (guard, reused token) | %.0f req/s | /unguarded/payments | %.0f req/s "
              "| %.3f | >= 0.90 | %s |" % (p, u, p / u, "yes" if p / u >= 0.90 else "**no**"))
        if "healthz_median" in h:
            print("| http/GET /payments vs public /healthz | %.0f req/s | /healthz | %.0f req/s | %.3f "
                  "| (reference) | |" % (p, h["healthz_median"], p / h["healthz_median"]))
    memory = target_dir / "bench-results" / "memory.json"
    if memory.exists():
        m = json.loads(memory.read_text())
        mib = 1024 * 1024
        growth, bound = m["rss_growth_bytes"], m["bound_bytes"]
        # "Bound plus a small constant": 4 MiB of allocator and table slack.
        print("| memory/RSS growth after %d tokens | %.1f MiB | cache bound | %.1f MiB | %.2f "
              "| <= bound + 4 MiB | %s |" % (m["tokens"], growth / mib, bound / mib, growth / bound,
                                            "yes" if growth <= bound + 4 * mib else "**no**"))
    scaling = target_dir / "bench-results" / "scaling.json"
    if scaling.exists():
        for name, r in json.loads(scaling.read_text()).items():
            # "2 cores must give ~2x the throughput of 1": 1.8x or better counts as met.
            print("| scaling/%s, 2 threads | %.0f req/s | 1 thread | %.0f req/s | %.2f | ~2 (>= 1.8) "
                  "| %s |" % (name, r["two_threads"], r["one_thread"], r["ratio"],
                              "yes" if r["ratio"] >= 1.8 else "**no**"))


if __name__ == "__main__":
    main()
