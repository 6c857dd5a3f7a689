#!/usr/bin/env bash
# Soak: millions of durably audited 1 KiB signed-link downloads against one gateway, to see
# whether its memory, its files or its rate drift. Not a test: it prints figures.
#
#   scripts/soak-download.sh [WORKDIR]
#
# Environment:
#   TOTAL=5000000   downloads to make (wrk, 16 keep-alive connections, 2 threads)
#   SLICE=10        seconds per wrk run; one line of figures per run
#   NO_BUILD=1      use the existing target/release/sallyport
#   GATEWAY_BIN     measure this binary (implies no build)
#   BENCH_DIR       the shared bench harness (default <repo>/../shared/bench: lib.sh)
#
# Per slice it prints the downloads so far, req/s, the gateway's RSS, and the sizes of the
# state database, the audit index and the audit journal. The summary compares the median
# rate of the first five slices with that of the last five (the goal: within 10 %), gives
# the largest RSS (the goal: under 256 MiB), the journal's and the index's bytes per
# download, and the chain's verification at the end (every download is one entry).
#
# Everything goes to 127.0.0.1. WORKDIR (default: a new /tmp directory) holds the data;
# at 5 million downloads that is about 3.7 GB of journal and 1.7 GB of index.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/sallyport-soak.XXXXXX)}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
TOTAL=${TOTAL:-5000000}; SLICE=${SLICE:-10}
case "$TOTAL$SLICE" in *[!0-9]*) echo "TOTAL and SLICE must be whole numbers" >&2; exit 2 ;; esac
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
. "$BENCH/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$CARGO_TARGET_DIR/release/sallyport}
if [ -z "${NO_BUILD:-}" ] && [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
[ -x "$BIN" ] || { echo "not an executable: $BIN" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi

TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
AUTH="Authorization: Bearer $TOKEN"
DIR=$WORK/gateway
rm -rf "$DIR"; mkdir -p "$DIR/data/import"; chmod 700 "$DIR" "$DIR/data"
cat > "$DIR/sallyport.toml" <<EOF
data_dir = "$DIR/data"
[server]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn"
[[clients]]
name = "soak"
token_sha256 = "$TOKEN_SHA"
roles = ["admin"]
EOF
"$BIN" --config "$DIR/sallyport.toml" serve > "$DIR/out" 2> "$DIR/err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait 2>/dev/null || true' EXIT
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$DIR/out")
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "the gateway did not start" >&2; cat "$DIR/out" "$DIR/err" >&2; exit 1; }
BASE=https://127.0.0.1:$PORT
head -c 1024 /dev/urandom > "$DIR/data/import/small.bin"
ART=$(curl -sk --fail -H "$AUTH" -H 'Content-Type: application/json' \
      -d '{"import":"small.bin","content_type":"application/octet-stream"}' "$BASE/v1/artifacts" \
      | sed -n 's/.*"artifact":"\([^"]*\)".*/\1/p')
URL=$(curl -sk --fail -H "$AUTH" -H 'Content-Type: application/json' \
      -d "{\"artifact\":\"$ART\",\"partner\":\"soak\",\"ttl\":\"24h\"}" "$BASE/v1/links" \
      | sed -n 's/.*"url":"\([^"]*\)".*/\1/p')
[ -n "$URL" ] || { echo "could not publish the 1 KiB artifact" >&2; exit 1; }
curl -sk --fail -o /dev/null "$URL" || { echo "the signed link does not download" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$PID/status"; }
size_kb() { du -sk "$1" 2>/dev/null | cut -f1; }
echo "# gateway $BIN, pid $PID, data in $DIR/data; RSS at start $(rss_kb) kB"
echo "# slice downloads req/s rss_kB state_kB index_kB journal_kB"
R=$WORK/slices.txt; : > "$R"
done_n=0; s=0
while [ "$done_n" -lt "$TOTAL" ]; do
  s=$((s + 1))
  out=$(timeout $((SLICE + 30)) wrk -t2 -c16 -d"${SLICE}s" "$URL")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "wrk made no requests in slice $s" >&2; exit 1; }
  if grep -q 'Non-2xx' <<<"$out"; then echo "slice $s: some downloads were refused" >&2; grep 'Non-2xx' <<<"$out" >&2; exit 1; fi
  done_n=$((done_n + n))
  kill -0 "$PID" 2>/dev/null || { echo "the gateway exited; see $DIR/err" >&2; exit 1; }
  echo "$s $done_n $rps $(rss_kb) $(size_kb "$DIR/data/state.redb") $(size_kb "$DIR/data/audit-index.redb") $(size_kb "$DIR/data/audit")" | tee -a "$R"
done

VERIFY=$(curl -sk -H "$AUTH" "$BASE/v1/audit/verify")
first=$(head -5 "$R" | awk '{print $3}' | stats | awk '{print $1}')
last=$(tail -5 "$R" | awk '{print $3}' | stats | awk '{print $1}')
echo
echo "== summary: $done_n durably audited 1 KiB downloads in $s slices of ${SLICE} s"
awk -v a="$first" -v b="$last" 'BEGIN {printf "rate: first five slices %s req/s, last five %s (ratio %.2f; goal >= 0.90)\n", a, b, b / a}'
awk '{ if ($4 > m) m = $4 } END {printf "RSS: largest %.0f MiB (goal < 256)\n", m / 1024}' "$R"
tail -1 "$R" | awk -v n="$done_n" '{printf "bytes per download: journal %.0f, audit index %.0f; state database %d kB\n", $7 * 1024 / n, $6 * 1024 / n, $5}'
echo "chain at the end: $VERIFY"
echo "# command: TOTAL=$TOTAL SLICE=$SLICE scripts/soak-download.sh"
