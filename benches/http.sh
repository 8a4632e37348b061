#!/usr/bin/env bash
# HTTP over loopback, driven by wrk: the resource_server example's router with one reused token
# (the verified-token cache's common case), against the same route without the guard, in the same
# process and run, alternately, with the same wrk settings.
#
#   benches/http.sh                       # defaults below
#   DURATION=10s CONNECTIONS=32 THREADS=1 ROUNDS=3 benches/http.sh
#
# Target: protected requests/s >= 90% of unprotected.
#
# The server is benches/http_server.rs: the example's `app()` and guard, set up exactly as
# `cargo run --example resource_server` does with its embedded issuer, plus `GET
# /unguarded/payments` (benches/unguarded.rs), the example's `/payments` (same JSON body, same
# logging middleware) without the guard. The public example has no such route and should not
# grow one for a benchmark. Three routes are driven, all with the same `Authorization` header so
# hyper parses the same bytes:
#   - GET /payments            protected (guard, cache hit, RequireScope)   -- the subject
#   - GET /unguarded/payments  the same route unprotected                   -- the baseline
#   - GET /healthz             the example's public route ("ok", no middleware, no JSON): for
#                              reference; it does less work than /payments, so protected/healthz
#                              charges the guard with the route's own work too.
# Logging is set to `warn` so no route writes a line per request.
#
# wrk is installed with apt-get if missing. The result is also written to
# target/bench-results/http.json for benches/report.py.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}

cd "$(dirname "$0")/.."
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get update -qq && apt-get install -y -qq wrk >&2
fi

# Build first and run the binary itself, so the trap stops the server (not a cargo wrapper).
binary=$(cargo build --release --bench http_server --message-format=json |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "http_server" and m.get("executable"):
        print(m["executable"])')

workdir=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

env -u ISSUER -u JWKS_URI -u AUDIENCE BIND=127.0.0.1:0 RUST_LOG=warn \
    "$binary" >"$workdir/stdout" 2>"$workdir/stderr" &
server_pid=$!

# Wait for the banner: the address, then the curl line naming the token endpoint.
base= token_endpoint=
for _ in $(seq 1 300); do
    base=$(sed -n 's/^resource server listening on //p' "$workdir/stdout")
    token_endpoint=$(sed -n 's/.*grant_type=client_credentials \([^ ]*\) .*/\1/p' "$workdir/stdout")
    [[ -n $base && -n $token_endpoint ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server exited:" >&2
        cat "$workdir/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $base || -z $token_endpoint ]]; then
    echo "no banner from the server within 30 s" >&2
    exit 1
fi

token=$(curl -sf -u billing:billing-secret -d grant_type=client_credentials "$token_endpoint" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/payments")
if [[ $status != 200 ]]; then
    echo "GET /payments with the token answered $status" >&2
    exit 1
fi

# Requests/s of one wrk run; fails on any non-2xx answer or socket error.
drive() {
    local path=$1 duration=$2
    shift 2
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency "$@" "$base$path")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        echo "wrk reported errors for $path:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

auth=(-H "Authorization: Bearer $token")
routes=(/healthz /unguarded/payments /payments)
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS alternating rounds, server $base ($(nproc) cores)"
for route in "${routes[@]}"; do
    drive "$route" "$WARMUP" "${auth[@]}" >/dev/null
done

declare -A results
for round in $(seq 1 "$ROUNDS"); do
    line="round $round:"
    for route in "${routes[@]}"; do
        rps=$(drive "$route" "$DURATION" "${auth[@]}")
        results[$route]+="$rps "
        line+=" GET $route $rps req/s;"
    done
    echo "$line"
done

python3 - "$target_dir" "$THREADS" "$CONNECTIONS" "$DURATION" \
    "${results[/healthz]}" "${results[/unguarded/payments]}" "${results[/payments]}" <<'PY'
import json, os, statistics, sys
target_dir, threads, connections, duration = sys.argv[1:5]
healthz, unguarded, protected = ([float(x) for x in arg.split()] for arg in sys.argv[5:8])
h, u, p = (statistics.median(xs) for xs in (healthz, unguarded, protected))
print()
print("| route | requests/s (median of %d) |" % len(protected))
print("|---|---:|")
print("| GET /payments (guard, reused token) | %.0f |" % p)
print("| GET /unguarded/payments (same route, no guard) | %.0f |" % u)
print("| GET /healthz (public route, reference) | %.0f |" % h)
print()
ratio = p / u
print("protected / unprotected = %.3f (target >= 0.90: %s)" % (ratio, "met" if ratio >= 0.90 else "NOT met"))
print("protected / healthz     = %.3f (reference)" % (p / h))
out = os.path.join(target_dir, "bench-results")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "http.json"), "w") as f:
    json.dump({"threads": int(threads), "connections": int(connections), "duration": duration,
               "healthz": healthz, "unguarded": unguarded, "protected": protected,
               "healthz_median": h, "unprotected_median": u, "protected_median": p,
               "ratio": ratio}, f)
PY
