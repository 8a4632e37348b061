#!/usr/bin/env bash
# HTTP over loopback: the resource_server example driven by wrk, a protected route with one reused
# token (`GET /payments`, the verified-token cache's common case) and the public route
# (`GET /healthz`) of the same process, alternately, with the same wrk settings.
#
#   benches/http.sh                       # defaults below
#   DURATION=10s CONNECTIONS=32 THREADS=1 ROUNDS=3 benches/http.sh
#
# Target: protected requests/s >= 90% of unprotected.
#
# What the comparison includes: both routes run in the same router and process. `/healthz`
# answers "ok" from a bare handler; `/payments` also runs the example's logging middleware, the
# `RequireScope<PaymentsRead>` extractor and serialises a small JSON body. The ratio therefore
# charges the guard with more than its own cost: it is a lower bound for "protected vs the same
# route unprotected". (benches/layer.rs measures that exact pair in-process.) Logging is set to
# `warn` so neither route writes a line per request.
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
cargo build --release --example resource_server >&2
binary="$target_dir/release/examples/resource_server"

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
        echo "the example exited:" >&2
        cat "$workdir/stderr" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z $base || -z $token_endpoint ]]; then
    echo "no banner from the example within 30 s" >&2
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
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS alternating rounds, server $base ($(nproc) cores)"
drive /healthz "$WARMUP" >/dev/null
drive /payments "$WARMUP" "${auth[@]}" >/dev/null

unprotected=() protected=()
for round in $(seq 1 "$ROUNDS"); do
    unprotected+=("$(drive /healthz "$DURATION")")
    protected+=("$(drive /payments "$DURATION" "${auth[@]}")")
    echo "round $round: GET /healthz ${unprotected[-1]} req/s, GET /payments (token) ${protected[-1]} req/s"
done

python3 - "$target_dir" "$THREADS" "$CONNECTIONS" "$DURATION" "${unprotected[*]}" "${protected[*]}" <<'PY'
import json, os, statistics, sys
target_dir, threads, connections, duration = sys.argv[1:5]
unprotected = [float(x) for x in sys.argv[5].split()]
protected = [float(x) for x in sys.argv[6].split()]
u, p = statistics.median(unprotected), statistics.median(protected)
ratio = p / u
print()
print("| route | requests/s (median of %d) |" % len(unprotected))
print("|---|---:|")
print("| GET /healthz (unprotected) | %.0f |" % u)
print("| GET /payments (bearer token, reused) | %.0f |" % p)
print()
print("protected / unprotected = %.3f (target >= 0.90: %s)" % (ratio, "met" if ratio >= 0.90 else "NOT met"))
out = os.path.join(target_dir, "bench-results")
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "http.json"), "w") as f:
    json.dump({"threads": int(threads), "connections": int(connections), "duration": duration,
               "unprotected": unprotected, "protected": protected,
               "unprotected_median": u, "protected_median": p, "ratio": ratio}, f)
PY
