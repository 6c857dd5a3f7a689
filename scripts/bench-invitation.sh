#!/usr/bin/env bash
# What an upload invitation costs against an API token (issue 16, item 1): the same
# `sallyport client upload` run against one release gateway (embedded store, fresh data
# directory), once with an uploader's bearer token and once with an invitation URL — whose
# every tus request the gateway admits by reading the invitation's record — interleaved in
# shuffled order (A B or B A each round), timed as whole processes. Two workloads: many
# small files (the per-request cost dominates) and one large file (the bytes dominate).
# Prints per-round wall times, the median of each, and the median of the per-round ratios
# invitation/token with min–max and n. Not a test: it prints figures.
#
# Usage: scripts/bench-invitation.sh [WORKDIR]     (default WORKDIR: <target dir>/bench-invitation)
#   env: ROUNDS=6         rounds per workload
#        SMALL_FILES=200  files of 4 KiB in the small-file workload
#        LARGE_MIB=256    the large file's size
#        NO_BUILD=1       use the release binary already built
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-6}; SMALL_FILES=${SMALL_FILES:-200}; LARGE_MIB=${LARGE_MIB:-256}
for v in ROUNDS SMALL_FILES LARGE_MIB; do
  case "${!v}" in ''|*[!0-9]*|0) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
  || { echo "cargo metadata failed: cannot find the target directory" >&2; exit 2; }
WORK=$(mkdir -p "${1:-$TARGET/bench-invitation}" && cd "${1:-$TARGET/bench-invitation}" && pwd)
BIN=$TARGET/release/sallyport
if [ -z "${NO_BUILD:-}" ]; then
  echo "# building the release binary"
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN (build it, or unset NO_BUILD)" >&2; exit 2; }

mkdir -p "$WORK/small"
for i in $(seq 1 "$SMALL_FILES"); do
  f=$WORK/small/f$i.bin
  [ -f "$f" ] || head -c 4096 /dev/urandom > "$f"
done
LARGE=$WORK/large.bin
if [ ! -f "$LARGE" ] || [ "$(stat -c %s "$LARGE")" -ne $((LARGE_MIB << 20)) ]; then
  head -c $((LARGE_MIB << 20)) /dev/urandom > "$LARGE"
fi
UP=$(openssl rand -hex 32); PUB=$(openssl rand -hex 32)
printf '%s\n' "$UP" > "$WORK/token"; printf '%s\n' "$PUB" > "$WORK/publisher"
chmod 600 "$WORK/token" "$WORK/publisher"

GW_DIR=$WORK/gateway; GW_PID=
cleanup() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  fi
  rm -rf "$GW_DIR" "$WORK/state-"*
}
trap cleanup EXIT
rm -rf "$GW_DIR"; mkdir -p "$GW_DIR"
cat > "$GW_DIR.toml" <<EOF
data_dir = "$GW_DIR"
[server]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn"
[uploads]
max_open_per_principal = 10000
[invitations]
max_files = 100000
[[clients]]
name = "bench"
token_sha256 = "$(printf %s "$UP" | sha256sum | cut -d' ' -f1)"
roles = ["uploader"]
[[clients]]
name = "bench-publisher"
token_sha256 = "$(printf %s "$PUB" | sha256sum | cut -d' ' -f1)"
roles = ["publisher"]
EOF
"$BIN" --config "$GW_DIR.toml" serve > "$GW_DIR.out" 2> "$GW_DIR.err" &
GW_PID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$GW_DIR.out")
  [ -n "$PORT" ] && break
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "the gateway did not start:" >&2; cat "$GW_DIR.out" "$GW_DIR.err" >&2; exit 1; }
CA=$GW_DIR/dev-ca/ca.pem
URL=https://localhost:$PORT
NEED=$(( (ROUNDS + 1) * (SMALL_FILES + 1) ))
SALLYPORT_URL=$URL SALLYPORT_CA_FILE=$CA SALLYPORT_TOKEN_FILE=$WORK/publisher \
  "$BIN" invite issue --partner bench --max-files "$NEED" --ttl 2h > "$WORK/invitation.url" 2>/dev/null
chmod 600 "$WORK/invitation.url"
grep -q '/invite#inv1~' "$WORK/invitation.url" || { echo "issuing the invitation failed" >&2; exit 1; }

# One upload run; prints its wall seconds. $1: token|invitation, $2...: files.
run() {
  local how=$1; shift
  local state; state=$(mktemp -d "$WORK/state-XXXXXX")
  local cred=(--to "$URL/files/" --token-file "$WORK/token")
  [ "$how" = invitation ] && cred=(--invitation-file "$WORK/invitation.url")
  local t0 t1
  t0=$(date +%s.%N)
  env -u SALLYPORT_TOKEN -u SALLYPORT_INVITATION "$BIN" client upload --json "${cred[@]}" \
    --cacert "$CA" --state-dir "$state" --parallel 4 "$@" > "$state.json"
  t1=$(date +%s.%N)
  grep -q "\"type\":\"summary\".*\"verified\":$#" "$state.json" \
    || { echo "a $how run did not verify:" >&2; tail -3 "$state.json" >&2; exit 1; }
  rm -rf "$state" "$state.json"
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

bench() {
  local name=$1; shift
  local rows=()
  run token "$@" > /dev/null; run invitation "$@" > /dev/null   # warm-up
  for r in $(seq 1 "$ROUNDS"); do
    local a b
    if [ $((RANDOM % 2)) -eq 0 ]; then a=$(run token "$@"); b=$(run invitation "$@")
    else b=$(run invitation "$@"); a=$(run token "$@"); fi
    rows+=("$a $b")
    echo "  round $r: token ${a}s, invitation ${b}s"
  done
  printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
name = sys.argv[1]
rows = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
t = [a for a, _ in rows]; i = [b for _, b in rows]; r = [b / a for a, b in rows]
print(f"{name}: token median {statistics.median(t):.3f}s, invitation median {statistics.median(i):.3f}s; "
      f"invitation/token median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, n={len(r)})")
' "$name"
}
echo "# gateway $BIN on 127.0.0.1:$PORT; $ROUNDS rounds, shuffled pairs"
echo "# $SMALL_FILES files of 4 KiB, --parallel 4"
bench "small files" "$WORK"/small/*.bin
echo "# one file of $LARGE_MIB MiB"
bench "large file" "$LARGE"
echo "# command: ROUNDS=$ROUNDS SMALL_FILES=$SMALL_FILES LARGE_MIB=$LARGE_MIB${NO_BUILD:+ NO_BUILD=1} scripts/bench-invitation.sh${1:+ $1}"
