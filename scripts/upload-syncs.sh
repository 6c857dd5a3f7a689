#!/usr/bin/env bash
# Sync calls per PATCH on the upload path (issue 14, item 1): one release gateway (embedded
# store, fresh data directory, like scripts/bench-upload.sh), `strace -f -c` attached to it
# while `sallyport client upload` sends one file in fixed chunks over TLS on loopback, then
# the calls of fsync, fdatasync, sync_file_range, fadvise64, msync and rename* per chunk.
# Not a test: it prints figures (before/after comparisons: GATEWAY_BIN=<binary>).
#
# Usage: scripts/upload-syncs.sh [WORKDIR]          (default WORKDIR: <target dir>/upload-syncs)
#   env: SIZE_MIB=256        the file's size
#        CHUNK=8388608       bytes per PATCH (the client's --chunk-size)
#        NO_BUILD=1          use the release binary already built
#        GATEWAY_BIN=<binary>  measure this binary instead (implies NO_BUILD)
#
# Counted: every thread of the gateway from just before the upload until just after it,
# so the audit journal's group commits and any background task that syncs in that time
# are in the figures; the client is not traced. Needs strace, openssl, python3.
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MIB=${SIZE_MIB:-256}; CHUNK=${CHUNK:-8388608}
case "$SIZE_MIB" in ''|*[!0-9]*|0) echo "SIZE_MIB must be a positive integer" >&2; exit 2 ;; esac
case "$CHUNK" in ''|*[!0-9]*|0) echo "CHUNK must be a positive integer" >&2; exit 2 ;; esac
command -v strace >/dev/null || { echo "strace is not installed" >&2; exit 2; }

TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
  || { echo "cargo metadata failed: cannot find the target directory" >&2; exit 2; }
WORK=$(mkdir -p "${1:-$TARGET/upload-syncs}" && cd "${1:-$TARGET/upload-syncs}" && pwd)
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$GATEWAY_BIN
else
  BIN=$TARGET/release/sallyport
  if [ -z "${NO_BUILD:-}" ]; then
    echo "# building the release binary"
    (cd "$ROOT" && cargo build --release --locked --bin sallyport)
  fi
fi
[ -x "$BIN" ] || { echo "no gateway binary at $BIN (build it, or unset NO_BUILD)" >&2; exit 2; }

FILE=$WORK/upload.bin
if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $((SIZE_MIB << 20)) ]; then
  head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
fi
TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
printf '%s\n' "$TOKEN" > "$WORK/token"; chmod 600 "$WORK/token"

GW_DIR=$WORK/gateway; GW_PID=; ST_PID=
cleanup() {
  [ -n "$ST_PID" ] && kill -INT "$ST_PID" 2>/dev/null || true
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
rm -rf "$GW_DIR" "$WORK/client-state"; mkdir -p "$GW_DIR"
cat > "$GW_DIR.toml" <<EOF
data_dir = "$GW_DIR"
[server]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn"
[[clients]]
name = "bench"
token_sha256 = "$TOKEN_SHA"
roles = ["uploader"]
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

CALLS=fsync,fdatasync,sync_file_range,fadvise64,msync,rename,renameat,renameat2
strace -f -c -e trace=$CALLS -o "$WORK/strace.txt" -p "$GW_PID" 2> "$WORK/strace.err" &
ST_PID=$!
sleep 1   # strace attaches to every thread
"$BIN" client upload --json --to "https://localhost:$PORT/files/" --cacert "$GW_DIR/dev-ca/ca.pem" \
  --token-file "$WORK/token" --state-dir "$WORK/client-state" --chunk-size "$CHUNK" "$FILE" \
  > "$WORK/client.json"
sleep 0.5
kill -INT "$ST_PID"; wait "$ST_PID" 2>/dev/null || true; ST_PID=
grep -q '"type":"summary".*"verified":1' "$WORK/client.json" \
  || { echo "the upload did not verify:" >&2; cat "$WORK/client.json" >&2; exit 1; }

PATCHES=$(( ($(stat -c %s "$FILE") + CHUNK - 1) / CHUNK ))
echo "# $(stat -c %s "$FILE") bytes in $PATCHES chunks of $CHUNK; gateway $BIN"
# strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall.
awk -v n="$PATCHES" -v list="$CALLS" '
  BEGIN { split(list, names, ","); for (i in names) want[names[i]] = 1 }
  ($NF in want) && $4 ~ /^[0-9]+$/ { calls[$NF] = $4 }
  END {
    for (i = 1; i in names; i++) {
      c = (names[i] in calls) ? calls[names[i]] : 0
      if (names[i] ~ /sync|msync/) syncs += c
      printf "%-16s %6d calls  %6.2f per chunk\n", names[i], c, c / n
    }
    printf "sync calls (fsync, fdatasync, sync_file_range, msync): %d, %.2f per chunk\n", syncs, syncs / n
  }' "$WORK/strace.txt"
echo "# command: SIZE_MIB=$SIZE_MIB CHUNK=$CHUNK${GATEWAY_BIN:+ GATEWAY_BIN=<binary>}${NO_BUILD:+ NO_BUILD=1} scripts/upload-syncs.sh${1:+ $1}"
