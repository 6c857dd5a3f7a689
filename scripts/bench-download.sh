#!/usr/bin/env bash
# Download benchmark: Sallyport (release build) side by side with nginx on this machine.
#
#   scripts/bench-download.sh [WORKDIR]
#
# Environment:
#   STATE=embedded|redis   the gateway's state store (default embedded; redis uses
#                          redis://127.0.0.1:6379 with a unique key prefix)
#   REPS=5                 runs of the 1 GiB download per server
#   DURATION=10 RUNS=3     wrk seconds per run and runs, 16 connections, 2 threads
#   PORT=9443              the gateway's port (nginx takes 8443/8080, see nginx_peer.sh)
#   NO_BUILD=1             use the existing target/release/sallyport
#   GATEWAY_BIN=<binary>   measure this binary (implies no build), for before/after runs
#   BENCH_DIR              the shared bench harness (default <repo>/../shared/bench)
#   CURL_HTTP=1.1|2        the protocol curl uses for the 1 GiB downloads (default 1.1: nginx
#                          here has no h2, so both servers are measured over HTTP/1.1; with 2,
#                          curl negotiates h2 with the gateway, and nghttp2 costs curl itself
#                          about 0.3 CPU s/GiB more on the same two cores)
#
# What it does: builds the release binary; starts nginx (../shared/bench/nginx_peer.sh,
# which makes a 1 GiB and a 1 KiB random file); starts the gateway with a publisher client;
# registers both files as artifacts (encrypted on import); issues an unlimited link for
# each and a metered link (max_downloads) for the 1 KiB one; then runs
# ../shared/bench/download.sh (1 GiB over TLS 1.3, curl) and wrk_rps.sh (1 KiB, 16
# keep-alive connections) against both servers in the same sitting, and prints medians and
# ratios. Every gateway download is audited: durably before its first byte, and then
# again with links.danger_queued_download_audit = true (queued before the first byte).
#
# Nothing downloaded is committed; WORKDIR (default: a new /tmp directory) holds the data.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$HERE/../shared/bench}
WORK=${1:-$(mktemp -d /tmp/sallyport-bench.XXXXXX)}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
STATE=${STATE:-embedded}; REPS=${REPS:-5}; DURATION=${DURATION:-10}; RUNS=${RUNS:-3}
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

GW_PID=
cleanup() {
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null || true
  "$BENCH/nginx_peer.sh" stop "$WORK/nginx" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== nginx"
"$BENCH/nginx_peer.sh" start "$WORK/nginx"
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")

echo "== sallyport ($STATE state)"
GW=$WORK/gateway; mkdir -p "$GW/data/import"; chmod 700 "$GW" "$GW/data"
TOKEN=$(head -c 32 /dev/urandom | base64 | tr -d '=+/')
HASH=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
( umask 077; printf '%s' "$TOKEN" > "$GW/publisher.token" )
STATE_TOML=""
if [ "$STATE" = redis ]; then
  STATE_TOML="[state]
backend = \"redis\"
redis_url = \"redis://127.0.0.1:6379\"
redis_prefix = \"sallyport-bench:$$:$(date +%s):\""
fi
cat > "$GW/sallyport.toml" <<CONF
data_dir = "$GW/data"
$STATE_TOML
[server]
listen = "127.0.0.1:$PORT"
max_connections = 4096
[log]
level = "warn"
[[clients]]
name = "bench-publisher"
token_sha256 = "$HASH"
roles = ["publisher", "auditor"]
CONF
"$BIN" --config "$GW/sallyport.toml" serve > "$GW/stdout.log" 2> "$GW/stderr.log" &
GW_PID=$!
wait_port 127.0.0.1 "$PORT" 200
cp "$WORK/nginx/files/big.bin" "$GW/data/import/big.bin"
cp "$WORK/nginx/files/small.bin" "$GW/data/import/small.bin"
sp() {
  SALLYPORT_URL="https://127.0.0.1:$PORT" SALLYPORT_TOKEN_FILE="$GW/publisher.token" \
    "$BIN" --config "$GW/sallyport.toml" "$@"
}
t0=$(date +%s.%N)
BIG=$(sp artifact register --import big.bin --content-type application/octet-stream)
t1=$(date +%s.%N)
SMALL=$(sp artifact register --import small.bin --content-type application/octet-stream)
echo "imported 1 GiB in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s (read, encrypt, SHA-256, fsync)"
BIG_URL=$(sp link issue --artifact "$BIG" --partner bench --ttl 6h 2>/dev/null)
SMALL_URL=$(sp link issue --artifact "$SMALL" --partner bench --ttl 6h 2>/dev/null)
METERED_URL=$(sp link issue --artifact "$SMALL" --partner bench --ttl 6h --max-downloads 4000000000 2>/dev/null)
NGINX_SMALL=$("$BENCH/sign_url_nginx.sh" https://127.0.0.1:8443 /s/small.bin "$(cat "$WORK/nginx/secret")" 21600)

R=$WORK/results; mkdir -p "$R"
echo; echo "== (a) 1 GiB single stream over TLS: sallyport"
"$BENCH/download.sh" "$BIG_URL" "$REPS" "$GW_PID" | tee "$R/sp_download.txt"
echo; echo "== (a) 1 GiB single stream over TLS: nginx"
"$BENCH/download.sh" https://127.0.0.1:8443/f/big.bin "$REPS" "$NGINX_PID" | tee "$R/nginx_download.txt"
echo; echo "== (b) 1 KiB through signed links, 16 connections: sallyport (unlimited link)"
"$BENCH/wrk_rps.sh" "$SMALL_URL" "$DURATION" 16 2 "$RUNS" | tee "$R/sp_rps.txt"
echo; echo "== (b) 1 KiB, 16 connections: sallyport (metered link, max_downloads)"
"$BENCH/wrk_rps.sh" "$METERED_URL" "$DURATION" 16 2 "$RUNS" | tee "$R/sp_rps_metered.txt"
echo; echo "== (b') the same two, links.danger_queued_download_audit = true (restart)"
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
sed -i 's/^\[server\]$/[links]\ndanger_queued_download_audit = true\n[server]/' "$GW/sallyport.toml"
"$BIN" --config "$GW/sallyport.toml" serve >> "$GW/stdout.log" 2>> "$GW/stderr.log" &
GW_PID=$!
wait_port 127.0.0.1 "$PORT" 200
"$BENCH/wrk_rps.sh" "$SMALL_URL" "$DURATION" 16 2 "$RUNS" | tee "$R/sp_rps_queued.txt"
"$BENCH/wrk_rps.sh" "$METERED_URL" "$DURATION" 16 2 "$RUNS" | tee "$R/sp_rps_metered_queued.txt"
echo; echo "== (b) 1 KiB, 16 connections: nginx secure_link"
"$BENCH/wrk_rps.sh" "$NGINX_SMALL" "$DURATION" 16 2 "$RUNS" | tee "$R/nginx_rps.txt"

med() { grep -E "$2 median" "$1" | awk '{print $3}'; }
SP_MBS=$(med "$R/sp_download.txt" "MB/s"); NG_MBS=$(med "$R/nginx_download.txt" "MB/s")
SP_RPS=$(med "$R/sp_rps.txt" "req/s"); SPM_RPS=$(med "$R/sp_rps_metered.txt" "req/s")
NG_RPS=$(med "$R/nginx_rps.txt" "req/s")
SPQ_RPS=$(med "$R/sp_rps_queued.txt" "req/s"); SPMQ_RPS=$(med "$R/sp_rps_metered_queued.txt" "req/s")
AUDIT=$(curl -sk -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT/v1/audit/verify")
echo
echo "== summary ($STATE state store; medians; same sitting; curl over HTTP/$CURL_HTTP)"
printf '(a) 1 GiB download   sallyport %8s MB/s   nginx %8s MB/s   ratio %s (goal >= 0.8)\n' \
  "$SP_MBS" "$NG_MBS" "$(awk -v a="$SP_MBS" -v b="$NG_MBS" 'BEGIN{printf "%.2f", a/b}')"
printf '(b) 1 KiB req/s      sallyport %8s        nginx %8s        ratio %s (goal >= 1.0)\n' \
  "$SP_RPS" "$NG_RPS" "$(awk -v a="$SP_RPS" -v b="$NG_RPS" 'BEGIN{printf "%.2f", a/b}')"
printf '    metered link     sallyport %8s        ratio %s\n' \
  "$SPM_RPS" "$(awk -v a="$SPM_RPS" -v b="$NG_RPS" 'BEGIN{printf "%.2f", a/b}')"
printf '    queued audit     sallyport %8s        ratio %s\n' \
  "$SPQ_RPS" "$(awk -v a="$SPQ_RPS" -v b="$NG_RPS" 'BEGIN{printf "%.2f", a/b}')"
printf '    queued, metered  sallyport %8s        ratio %s\n' \
  "$SPMQ_RPS" "$(awk -v a="$SPMQ_RPS" -v b="$NG_RPS" 'BEGIN{printf "%.2f", a/b}')"
echo "audit chain after the run (one download.served entry per download): $AUDIT"
echo "results in $R; gateway log in $GW/stderr.log"
