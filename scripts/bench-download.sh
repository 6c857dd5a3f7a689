#!/usr/bin/env bash
# Download benchmark: Sallyport (release build) side by side with nginx on this machine.
#
#   scripts/bench-download.sh [WORKDIR]
#
# Environment:
#   STATE=embedded|redis   the gateway's state store (default embedded; redis uses
#                          redis://127.0.0.1:6379 with a unique key prefix)
#   ROUNDS=5               interleaved rounds; each round measures every server once, in a
#                          shuffled order, and the summary is the median of per-round ratios
#   DURATION=10            wrk seconds per 1 KiB run (16 connections, 2 threads)
#   PORT=9443              the gateway's port; PORT+1 is a second gateway with queued audit
#                          (nginx takes 8443/8080, see nginx_peer.sh)
#   NO_BUILD=1             use the existing target/release/sallyport
#   GATEWAY_BIN=<binary>   measure this binary (implies no build), for before/after runs
#   BENCH_DIR              the shared bench harness (default <repo>/../shared/bench)
#   CURL_HTTP=1.1|2        the protocol curl uses for the 1 GiB downloads (default 1.1: nginx
#                          here has no h2, so both servers are measured over HTTP/1.1; with 2,
#                          curl negotiates h2 with the gateway, and nghttp2 costs curl itself
#                          about 0.3 CPU s/GiB more on the same two cores)
#
# What it does: builds the release binary; starts nginx (../shared/bench/nginx_peer.sh,
# which makes a 1 GiB and a 1 KiB random file); starts two gateways with a publisher client:
# one auditing every download durably before its first byte (the default), one with
# links.danger_queued_download_audit = true (queued before the first byte); registers both
# files as artifacts in each (encrypted on import); issues an unlimited link for each and a
# metered link (max_downloads) for the 1 KiB one. Then ROUNDS rounds, each running every
# measurement once in a shuffled order (A B A B, so a noisy neighbour hits both sides):
# ../shared/bench/download.sh (1 GiB over TLS 1.3, curl; server CPU seconds per GiB) and
# wrk_rps.sh (1 KiB, 16 keep-alive connections). The summary gives, for each comparison, the
# median of the per-round ratios with min-max and n. It also measures this disk's 4 KiB
# O_DSYNC write latency in the gateway's data directory: with 16 clients and every download
# durable before its first byte, 16 / that latency is the physical bound on req/s, and the
# summary says how close the durable gateway comes to it. The latency is measured writing
# over already written blocks, as the journal does (its zero fill), and also appending.
#
# Nothing downloaded is committed; WORKDIR (default: a new /tmp directory) holds the data.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$HERE/../shared/bench}
WORK=${1:-$(mktemp -d /tmp/sallyport-bench.XXXXXX)}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
STATE=${STATE:-embedded}; ROUNDS=${ROUNDS:-5}; DURATION=${DURATION:-10}
PORT=${PORT:-9443}
CURL_HTTP=${CURL_HTTP:-1.1}
case "$CURL_HTTP" in
  # download.sh runs plain curl; a private CURL_HOME/.curlrc pins the protocol for it.
  1.1) mkdir -p "$WORK/curlhome"; echo http1.1 > "$WORK/curlhome/.curlrc"; export CURL_HOME=$WORK/curlhome ;;
  2) ;;
  *) echo "CURL_HTTP must be 1.1 or 2" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
BIN=${GATEWAY_BIN:-$CARGO_TARGET_DIR/release/sallyport}
. "$BENCH/lib.sh"

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  echo "installing nginx and wrk from Debian"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq nginx wrk >/dev/null
fi
if [ -z "${NO_BUILD:-}" ] && [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$HERE" && cargo build --release --bin sallyport)
fi

GW_PIDS=()
cleanup() {
  for p in "${GW_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$BENCH/nginx_peer.sh" stop "$WORK/nginx" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== nginx"
"$BENCH/nginx_peer.sh" start "$WORK/nginx"
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")

echo "== sallyport ($STATE state): durable audit on :$PORT, queued audit on :$((PORT + 1))"
TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
# start_gateway DIR PORT QUEUED: configure and start one gateway, then import both files.
start_gateway() {
  local dir=$1 port=$2 queued=$3 state_toml=""
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use (an earlier gateway still running?); set PORT" >&2; exit 1
  fi
  mkdir -p "$dir/data/import"; chmod 700 "$dir" "$dir/data"
  ( umask 077; printf '%s' "$TOKEN" > "$dir/publisher.token" )
  if [ "$STATE" = redis ]; then
    state_toml="[state]
backend = \"redis\"
redis_url = \"redis://127.0.0.1:6379\"
redis_prefix = \"sallyport-bench:$$:$port:$(date +%s):\""
  fi
  cat > "$dir/sallyport.toml" <<CONF
data_dir = "$dir/data"
$state_toml
[links]
danger_queued_download_audit = $queued
[server]
listen = "127.0.0.1:$port"
max_connections = 4096
[log]
level = "warn"
[[clients]]
name = "bench-publisher"
token_sha256 = "$HASH"
roles = ["publisher", "auditor"]
CONF
  "$BIN" --config "$dir/sallyport.toml" serve > "$dir/stdout.log" 2> "$dir/stderr.log" &
  GW_PIDS+=($!)
  wait_port 127.0.0.1 "$port" 200
  kill -0 "${GW_PIDS[-1]}" 2>/dev/null || { echo "the gateway on :$port exited; see $dir/stderr.log" >&2; exit 1; }
  cp "$WORK/nginx/files/big.bin" "$WORK/nginx/files/small.bin" "$dir/data/import/"
}
sp() {
  local dir=$1 port=$2; shift 2
  SALLYPORT_URL="https://127.0.0.1:$port" SALLYPORT_TOKEN_FILE="$dir/publisher.token" \
    "$BIN" --config "$dir/sallyport.toml" "$@"
}
GW=$WORK/gateway; GWQ=$WORK/gateway-queued
start_gateway "$GW" "$PORT" false; GW_PID=${GW_PIDS[0]}
start_gateway "$GWQ" "$((PORT + 1))" true; GWQ_PID=${GW_PIDS[1]}
t0=$(date +%s.%N)
BIG=$(sp "$GW" "$PORT" artifact register --import big.bin --content-type application/octet-stream)
t1=$(date +%s.%N)
SMALL=$(sp "$GW" "$PORT" artifact register --import small.bin --content-type application/octet-stream)
SMALLQ=$(sp "$GWQ" "$((PORT + 1))" artifact register --import small.bin --content-type application/octet-stream)
echo "imported 1 GiB in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (read, encrypt, SHA-256, fsync)"
BIG_URL=$(sp "$GW" "$PORT" link issue --artifact "$BIG" --partner bench --ttl 6h 2>/dev/null)
SMALL_URL=$(sp "$GW" "$PORT" link issue --artifact "$SMALL" --partner bench --ttl 6h 2>/dev/null)
METERED_URL=$(sp "$GW" "$PORT" link issue --artifact "$SMALL" --partner bench --ttl 6h --max-downloads 4000000000 2>/dev/null)
QUEUED_URL=$(sp "$GWQ" "$((PORT + 1))" link issue --artifact "$SMALLQ" --partner bench --ttl 6h 2>/dev/null)
NGINX_SMALL=$("$BENCH/sign_url_nginx.sh" https://127.0.0.1:8443 /s/small.bin "$(cat "$WORK/nginx/secret")" 21600)
NGINX_BIG=https://127.0.0.1:8443/f/big.bin
# Every URL must answer 200 before anything is timed (a 403 here is a setup bug, not a result).
for u in "$BIG_URL" "$SMALL_URL" "$METERED_URL" "$QUEUED_URL" "$NGINX_SMALL" "$NGINX_BIG"; do
  code=$(curl -sk -o /dev/null -r 0-0 -w '%{http_code}' --max-time 10 "$u")
  case "$code" in 200|206) ;; *) echo "setup: $u answered $code, not 200/206" >&2; exit 1 ;; esac
done

R=$WORK/results; mkdir -p "$R"
: > "$R/rounds.txt"
# One measurement: "<name> <value> [<server cpu s per GiB>]" appended to rounds.txt.
measure() {
  local round=$1 name=$2 line
  case "$name" in
    big_sp)   line=$("$BENCH/download.sh" "$BIG_URL" 1 "$GW_PID" | awk '$1 == 1') ;;
    big_ng)   line=$("$BENCH/download.sh" "$NGINX_BIG" 1 "$NGINX_PID" | awk '$1 == 1') ;;
    small_sp) line=$("$BENCH/wrk_rps.sh" "$SMALL_URL" "$DURATION" 16 2 1 | awk '$1 == 1') ;;
    small_sp_metered) line=$("$BENCH/wrk_rps.sh" "$METERED_URL" "$DURATION" 16 2 1 | awk '$1 == 1') ;;
    small_sp_queued)  line=$("$BENCH/wrk_rps.sh" "$QUEUED_URL" "$DURATION" 16 2 1 | awk '$1 == 1') ;;
    small_ng) line=$("$BENCH/wrk_rps.sh" "$NGINX_SMALL" "$DURATION" 16 2 1 | awk '$1 == 1') ;;
  esac
  [ -n "$line" ] || { echo "measurement $name produced no result" >&2; exit 1; }
  case "$name" in
    # download.sh: run MB/s curl_cpu_s server_cpu_s bytes -> MB/s, server CPU s per GiB
    big_*) echo "$line" | awk -v r="$round" -v n="$name" \
             '{printf "%d %s %s %.3f\n", r, n, $2, $4 * 1073741824 / $5}' ;;
    # wrk_rps.sh: run req/s p50 p99 non2xx; any non-2xx answer voids the run
    small_*) echo "$line" | awk -v r="$round" -v n="$name" \
             '{ if ($5 != 0) { print "non-2xx answers in " n > "/dev/stderr"; exit 1 }
                printf "%d %s %s\n", r, n, $2 }' ;;
  esac | tee -a "$R/rounds.txt"
}
for round in $(seq "$ROUNDS"); do
  echo; echo "== round $round of $ROUNDS"
  for m in $(shuf -e big_sp big_ng); do measure "$round" "$m"; done
  for m in $(shuf -e small_sp small_sp_metered small_sp_queued small_ng); do measure "$round" "$m"; done
done

echo; echo "== 4 KiB O_DSYNC write latency in the gateway's data directory (dd, 2000 writes)"
# Twice per run: appending to a new file (each sync also commits the file's new size), then
# over the same, already written blocks, which is what the audit journal does (it writes
# its batches over a zero fill it keeps ahead of them, proto/audit-journal-v1.md).
F=$GW/data/dsync-probe.bin
: > "$R/dsync-append.txt"; : > "$R/dsync.txt"
dd_us() { awk '/copied/ {sub(/.*copied, /, ""); split($0, a, " "); printf "%.1f\n", a[1] / 2000 * 1e6}'; }
for r in 1 2 3; do
  dd if=/dev/zero of="$F" bs=4k count=2000 oflag=dsync 2>&1 | dd_us | tee -a "$R/dsync-append.txt"
  dd if=/dev/zero of="$F" bs=4k count=2000 oflag=dsync conv=notrunc 2>&1 | dd_us | tee -a "$R/dsync.txt"
  rm -f "$F"
done
DSYNC_US=$(stats < "$R/dsync.txt" | awk '{print $1}')
DSYNC_APPEND_US=$(stats < "$R/dsync-append.txt" | awk '{print $1}')

# ratio_stats A B [COL]: per-round value of A / value of B (column 3, or COL), as
# "median min max n".
ratio_stats() {
  awk -v a="$1" -v b="$2" -v c="${3:-3}" '$2 == a {x[$1] = $c} $2 == b {y[$1] = $c}
    END {for (r in x) if ((r in y) && y[r] > 0) printf "%.3f\n", x[r] / y[r]}' "$R/rounds.txt" | stats_fine
}
stats_fine() {
  sort -g | awk '{v[NR]=$1} END { if (NR==0) { print "NA NA NA 0"; exit }
    m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2
    printf "%.2f %.2f %.2f %d\n", m, v[1], v[NR], NR }'
}
med_of() { awk -v n="$1" -v c="${2:-3}" '$2 == n {print $c}' "$R/rounds.txt" | stats_fine | awk '{print $1}'; }
show_ratio() {
  read -r m lo hi n < <(ratio_stats "$2" "$3" "${5:-3}")
  printf '%-34s %8s vs %8s   ratio median %s (min %s, max %s, n=%s)%s\n' "$1" \
    "$(med_of "$2" "${5:-3}")" "$(med_of "$3" "${5:-3}")" "$m" "$lo" "$hi" "$n" "${4:-}"
}
AUDIT=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT/v1/audit/verify")
BOUND=$(awk -v us="$DSYNC_US" 'BEGIN {printf "%.0f", 16 / (us / 1e6)}')
echo
echo "== summary ($STATE state store; $ROUNDS interleaved rounds; medians of per-round ratios; curl over HTTP/$CURL_HTTP)"
show_ratio "(a) 1 GiB download MB/s" big_sp big_ng "   goal >= 1.0"
show_ratio "    server CPU s per GiB" big_sp big_ng "   goal <= 1.0" 4
show_ratio "(b) 1 KiB req/s, durable audit" small_sp small_ng "   goal >= 0.5"
show_ratio "    metered link, durable audit" small_sp_metered small_ng
show_ratio "    queued audit" small_sp_queued small_ng "   goal >= 1.0"
printf '(c) 4 KiB O_DSYNC write over written blocks (as the journal writes): median %s us\n' "$DSYNC_US"
printf '    (appending: %s us); 16 clients / %s us = %s req/s bound;\n' "$DSYNC_APPEND_US" "$DSYNC_US" "$BOUND"
printf '    durable gateway median %s req/s = %s of the bound (goal >= 0.8)\n' "$(med_of small_sp)" \
  "$(awk -v a="$(med_of small_sp)" -v b="$BOUND" 'BEGIN {printf "%.2f", a / b}')"
echo "audit chain after the run (one download.served entry per download): $AUDIT"
echo "per-round figures in $R/rounds.txt; gateway logs in $GW/stderr.log and $GWQ/stderr.log"
