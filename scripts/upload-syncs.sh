#!/usr/bin/env bash
# Sync calls per PATCH on the upload path (issue 14, item 1): one release gateway (embedded
# store, fresh data directory, like scripts/bench-upload.sh), `strace -f -y` attached to it
# while `sallyport client upload` sends one file in fixed chunks over TLS on loopback, then
# the calls of fsync, fdatasync, sync_file_range, fadvise64, msync and rename* per chunk,
# and the sync calls per chunk by the file they sync (object data, tail blobs, the state
# store, the audit journal, the audit index, directories).
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
strace -f -y -qq -e trace=$CALLS -o "$WORK/strace.txt" -p "$GW_PID" 2> "$WORK/strace.err" &
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
# strace -y lines: `<pid> <call>(<fd></path>, ...) = <result>`, or an unfinished call
# (`<... call resumed>` lines finish it and are not counted again).
python3 - "$PATCHES" "$CALLS" "$GW_DIR" "$WORK/strace.txt" <<'PY'
import re, sys
n, calls, gw, path = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4]
count = dict.fromkeys(calls, 0)
by_file = {}
line_re = re.compile(r"^\d+\s+(\w+)\((?:\d+<([^>]*)>)?")
def kind(f):
    if f is None: return "(no file)"
    if f.endswith(".data"): return "object data blobs"
    if f.endswith(".tail"): return "tail blobs"
    if f.endswith("/state.redb"): return "state store (state.redb)"
    if f.endswith("/audit-index.redb"): return "audit index (audit-index.redb)"
    if f.endswith(".seg"): return "audit journal segments"
    if not re.search(r"\.[A-Za-z0-9]+$", f.rsplit("/", 1)[-1]): return "directories and other files"
    return "other files"
for line in open(path):
    m = line_re.match(line)
    if not m or m.group(1) not in count: continue
    count[m.group(1)] += 1
    if "sync" in m.group(1):
        k = kind(m.group(2))
        by_file[k] = by_file.get(k, 0) + 1
syncs = 0
for c in calls:
    if "sync" in c: syncs += count[c]
    print(f"{c:<16} {count[c]:6d} calls  {count[c] / n:6.2f} per chunk")
print(f"sync calls (fsync, fdatasync, sync_file_range, msync): {syncs}, {syncs / n:.2f} per chunk")
print("sync calls by file:")
for k, v in sorted(by_file.items(), key=lambda kv: -kv[1]):
    print(f"  {k:<32} {v:6d}  {v / n:6.2f} per chunk")
PY
echo "# command: SIZE_MIB=$SIZE_MIB CHUNK=$CHUNK${GATEWAY_BIN:+ GATEWAY_BIN=<binary>}${NO_BUILD:+ NO_BUILD=1} scripts/upload-syncs.sh${1:+ $1}"
