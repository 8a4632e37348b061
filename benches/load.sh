#!/usr/bin/env bash
# Sustained mixed load against the resource_server example (embedded test issuer), with wrk.
#
#   benches/load.sh                      # 60 s, 256 connections
#   DURATION=20 CONNECTIONS=128 benches/load.sh
#
# Environment:
#   DURATION      seconds of load (default 60)
#   CONNECTIONS   concurrent connections (default 256)
#   THREADS       wrk threads (default: number of CPUs, at most CONNECTIONS)
#   SAMPLE_EVERY  seconds between RSS samples of the server (default 5)
#   KEEP_LOGS     set to keep the working directory (server log, RSS samples) after the run
#
# What it does: builds the example in release mode, starts it on a free loopback port (BIND=
# 127.0.0.1:0; the address and the token endpoint are read from what it prints), gets real tokens
# with the client-credentials grant from the embedded issuer, derives invalid ones from them, and
# runs wrk against `GET /payments` with a fixed mix per 20 requests:
#   14 valid (70 %), 2 expired (exp rewritten to 1: refused before the signature), 2 unknown kid,
#   1 bad signature (one bit flipped), 1 garbage.
# It reports requests/s, latency percentiles, responses by status, wrk's socket errors, and the
# server's VmRSS sampled from /proc before, during and after the load. It fails (exit 1) on any
# 5xx, any status other than 200/401, any socket error, or a 200/401 split off the mix by more
# than 1 %. Everything it starts is stopped on exit.
set -euo pipefail

DURATION=${DURATION:-60}
CONNECTIONS=${CONNECTIONS:-256}
CPUS=$(nproc)
THREADS=${THREADS:-$((CPUS < CONNECTIONS ? CPUS : CONNECTIONS))}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bearer-guard-load.XXXXXX")
SERVER_PID=""
SAMPLER_PID=""

cleanup() {
    local status=$?
    [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null || true
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "${KEEP_LOGS:-}" ]]; then
        echo "logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '==> %s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
if ((${#need_apt[@]})); then
    log "installing ${need_apt[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    if ! timeout 300 $SUDO apt-get install -y "${need_apt[@]}" >/dev/null 2>&1; then
        timeout 300 $SUDO apt-get update >/dev/null
        timeout 300 $SUDO apt-get install -y "${need_apt[@]}" >/dev/null
    fi
fi

# --- server ---------------------------------------------------------------------------------------
log "building the resource_server example (release)"
(cd "$ROOT" && timeout 1800 cargo build --release --example resource_server --quiet)
BIN=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release/examples/resource_server

log "starting it on a free port"
# The binary itself (not `cargo run`), so that $SERVER_PID is the server's own process.
BIND=127.0.0.1:0 RUST_LOG=warn "$BIN" >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!

deadline=$((SECONDS + 60))
until grep -q '^curl ' "$WORK/stdout" 2>/dev/null; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "the server exited at start-up:"
        cat "$WORK/stderr" >&2
        exit 1
    fi
    ((SECONDS < deadline)) || { log "the server printed no address within 60 s"; exit 1; }
    sleep 0.1
done
BASE=$(sed -n 's/^resource server listening on //p' "$WORK/stdout")
TOKEN_ENDPOINT=$(grep -o 'http://[^ ]*/token' "$WORK/stdout" | head -n1)
CLIENT=$(grep -o -- '-u [^ ]*' "$WORK/stdout" | head -n1 | cut -c4-)
log "server $BASE (pid $SERVER_PID), token endpoint $TOKEN_ENDPOINT"

# --- tokens ---------------------------------------------------------------------------------------
b64url_decode() {
    local s=${1//-/+}
    s=${s//_//}
    case $((${#s} % 4)) in 2) s+="==" ;; 3) s+="=" ;; esac
    printf '%s' "$s" | base64 -d
}
b64url_encode() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

mint() {
    curl -sf --max-time 10 -u "$CLIENT" -d grant_type=client_credentials "$TOKEN_ENDPOINT" |
        jq -r .access_token
}

VALID=()
for _ in 1 2 3 4; do VALID+=("$(mint)"); done
IFS=. read -r H P S <<<"${VALID[0]}"
EXPIRED="$H.$(b64url_decode "$P" | jq -c '.exp = 1' | b64url_encode).$S"
UNKNOWN_KID="$(b64url_decode "$H" | jq -c '.kid = "load-test-unknown-kid"' | b64url_encode).$P.$S"
# Flip one bit in the middle of the signature (a character of the base64url alphabet for another).
mid=$((${#S} / 2))
c=${S:mid:1}
[[ $c == A ]] && r=B || r=A
BAD_SIGNATURE="$H.$P.${S:0:mid}$r${S:mid+1}"
GARBAGE="not.a.jwt"

check() {
    local want=$1 token=$2 got
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 \
        -H "Authorization: Bearer $token" "$BASE/payments")
    [[ $got == "$want" ]] || { log "expected $want, got $got for ${token:0:40}…"; exit 1; }
}
for token in "${VALID[@]}"; do check 200 "$token"; done
for token in "$EXPIRED" "$UNKNOWN_KID" "$BAD_SIGNATURE" "$GARBAGE"; do check 401 "$token"; done
log "tokens checked: valid → 200, expired / unknown kid / bad signature / garbage → 401"

# --- wrk script -----------------------------------------------------------------------------------
lua_list() {
    local first=1
    printf '{'
    for t in "$@"; do
        ((first)) || printf ','
        first=0
        printf '"%s"' "$t"
    done
    printf '}'
}
cat >"$WORK/mixed.lua" <<EOF
-- 20-request cycle: 14 valid, 2 expired, 2 unknown kid, 1 bad signature, 1 garbage.
local valid = $(lua_list "${VALID[@]}")
local invalid = $(lua_list "$EXPIRED" "$EXPIRED" "$UNKNOWN_KID" "$UNKNOWN_KID" "$BAD_SIGNATURE" "$GARBAGE")
local requests = {}
for i = 1, 20 do
  local token
  if i <= 14 then token = valid[(i % #valid) + 1] else token = invalid[i - 14] end
  requests[i] = wrk.format("GET", "/payments", { ["Authorization"] = "Bearer " .. token })
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  n = id * 7
  statuses = {}
end

function request()
  n = n + 1
  return requests[(n % 20) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, count in pairs(s) do totals[status] = (totals[status] or 0) + count end
  end
  io.write("RESULT requests ", summary.requests, "\n")
  io.write("RESULT duration_us ", summary.duration, "\n")
  io.write("RESULT rps ", string.format("%.0f", summary.requests / (summary.duration / 1e6)), "\n")
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("RESULT latency_p%s_ms %.2f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("RESULT latency_mean_ms %.2f\n", latency.mean / 1000))
  io.write(string.format("RESULT latency_max_ms %.2f\n", latency.max / 1000))
  local e = summary.errors
  io.write("RESULT socket_errors connect=", e.connect, " read=", e.read, " write=", e.write,
           " timeout=", e.timeout, "\n")
  for status, count in pairs(totals) do io.write("RESULT status_", status, " ", count, "\n") end
end
EOF

# --- load -----------------------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
RSS_IDLE=$(rss_kib)

log "warm-up: 5 s"
timeout 60 wrk -t "$THREADS" -c "$CONNECTIONS" -d 5s --timeout 5s -s "$WORK/mixed.lua" "$BASE" >/dev/null
RSS_START=$(rss_kib)

(
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        printf '%s %s\n' "$SECONDS" "$(rss_kib)"
        sleep "$SAMPLE_EVERY"
    done
) >"$WORK/rss" 2>/dev/null &
SAMPLER_PID=$!

log "load: ${DURATION} s, $CONNECTIONS connections, $THREADS threads, $(uptime | sed 's/.*load average/load average/')"
timeout $((DURATION + 60)) wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 5s \
    --latency -s "$WORK/mixed.lua" "$BASE" >"$WORK/wrk.out"
RSS_END=$(rss_kib)
kill "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

kill -0 "$SERVER_PID" || { log "the server died under load"; cat "$WORK/stderr" >&2; exit 1; }

# --- report ---------------------------------------------------------------------------------------
result() { sed -n "s/^RESULT $1 //p" "$WORK/wrk.out"; }
requests=$(result requests)
ok=$(result status_200); ok=${ok:-0}
unauthorized=$(result status_401); unauthorized=${unauthorized:-0}
others=$(grep '^RESULT status_' "$WORK/wrk.out" | grep -v -e 'status_200 ' -e 'status_401 ' || true)
server_errors=$(awk '/^RESULT status_5/ { s += $3 } END { print s + 0 }' "$WORK/wrk.out")
socket_errors=$(result socket_errors)
rss_series=$(awk '{ printf "%s%s", sep, $2; sep = " " }' "$WORK/rss" || true)

cat <<EOF

bearer-guard load run — GET /payments, mixed tokens
  machine         $CPUS CPUs, $(uptime | sed 's/.*load average/load average/')
  duration        ${DURATION} s, $CONNECTIONS connections, $THREADS wrk threads
  requests        $requests ($(result rps) req/s)
  latency         p50 $(result latency_p50_ms) ms, p90 $(result latency_p90_ms) ms, p99 $(result latency_p99_ms) ms, p99.9 $(result latency_p99.9_ms) ms, max $(result latency_max_ms) ms
  responses       200: $ok, 401: $unauthorized, 5xx: $server_errors${others:+, other: $(echo "$others" | sed 's/RESULT status_//' | tr '\n' ' ')}
  expected split  70 % / 30 %; measured $(awk -v a="$ok" -v r="$requests" 'BEGIN { printf "%.2f %% / %.2f %%", 100 * a / r, 100 * (r - a) / r }')
  socket errors   $socket_errors
  server RSS      idle ${RSS_IDLE} KiB, after warm-up ${RSS_START} KiB, end ${RSS_END} KiB
  RSS every ${SAMPLE_EVERY} s  $rss_series KiB
EOF

fail=0
[[ $server_errors -eq 0 ]] || { log "FAIL: $server_errors server errors"; fail=1; }
[[ -z "$others" ]] || { log "FAIL: unexpected statuses"; fail=1; }
[[ $socket_errors == "connect=0 read=0 write=0 timeout=0" ]] || { log "FAIL: socket errors"; fail=1; }
awk -v a="$ok" -v r="$requests" 'BEGIN { d = 100 * a / r - 70; exit (d < -1 || d > 1) }' ||
    { log "FAIL: the 200/401 split is off the 70/30 mix"; fail=1; }
exit "$fail"
