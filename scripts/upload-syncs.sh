#!/usr/bin/env bash
# Sync calls per PATCH on the upload path (issue 14, item 1): one release gateway (embedded
# store, fresh data directory, like scripts/bench-upload.sh), `strace -f -y` attached to it
# while `sallyport client upload` sends one file in fixed chunks over TLS on loopback, then
# the calls of fsync, fdatasync, sync_file_range, fadvise64, msync and rename* per chunk,
# and the sync calls per chunk by the file they sync (object data, tail blobs, the state
# store, the audit journal, the audit index, directories).
# Not a test: it prints figures (before/after comparisons: GATEWAY_BIN=<binary>).
#
# Two uploads, of SIZE_MIB and of twice that, each traced on its own: the difference is the
# steady cost of a PATCH, the rest the fixed cost of an upload (both are printed).
#
# Usage: scripts/upload-syncs.sh [WORKDIR]          (default WORKDIR: <target dir>/upload-syncs)
#   env: SIZE_MIB=256        the first file's size (the second is twice that)
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

# Two files: SIZE_MIB, then twice that. Each upload costs its PATCHes plus a fixed set of
# syncs (creating the objects, the completing chunk, finishing); the difference between
# the two is the steady cost of one more PATCH.
for f in 1 2; do
  FILE=$WORK/upload-$f.bin
  if [ ! -f "$FILE" ] || [ "$(stat -c %s "$FILE")" -ne $(((SIZE_MIB * f) << 20)) ]; then
    head -c $(((SIZE_MIB * f) << 20)) /dev/urandom > "$FILE"
  fi
done
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
# measure FILE TAG: strace on the gateway while the client uploads FILE; prints the counts
# and leaves the total of sync calls and PATCHes in $WORK/TAG.total.
measure() {
  local file=$1 tag=$2
  strace -f -y -qq -e trace=$CALLS -o "$WORK/strace-$tag.txt" -p "$GW_PID" 2> "$WORK/strace.err" &
  ST_PID=$!
  sleep 1   # strace attaches to every thread
  rm -rf "$WORK/client-state"
  "$BIN" client upload --json --to "https://localhost:$PORT/files/" --cacert "$GW_DIR/dev-ca/ca.pem" \
    --token-file "$WORK/token" --state-dir "$WORK/client-state" --chunk-size "$CHUNK" "$file" \
    > "$WORK/client-$tag.json"
  sleep 1   # the audit writer's held entries (at most 0.5 s) are in the figures
  kill -INT "$ST_PID"; wait "$ST_PID" 2>/dev/null || true; ST_PID=
  grep -q '"type":"summary".*"verified":1' "$WORK/client-$tag.json" \
    || { echo "the upload did not verify:" >&2; cat "$WORK/client-$tag.json" >&2; exit 1; }
  local patches=$(( ($(stat -c %s "$file") + CHUNK - 1) / CHUNK ))
  echo "# $(stat -c %s "$file") bytes in $patches chunks of $CHUNK; gateway $BIN"
  # strace -y lines: `<pid> <call>(<fd></path>, ...) = <result>`, or an unfinished call
  # (`<... call resumed>` lines finish it and are not counted again).
  python3 - "$patches" "$CALLS" "$WORK/strace-$tag.txt" "$WORK/$tag.total" <<'PY'
import re, sys
n, calls, path, total = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3], sys.argv[4]
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
open(total, "w").write(f"{syncs} {n}\n")
PY
}
measure "$WORK/upload-1.bin" one
measure "$WORK/upload-2.bin" two
read -r S1 P1 < "$WORK/one.total"; read -r S2 P2 < "$WORK/two.total"
python3 -c "import sys; s1,p1,s2,p2=map(int,sys.argv[1:]); print(f'# steady state: ({s2} - {s1}) sync calls / ({p2} - {p1}) PATCHes = {(s2-s1)/(p2-p1):.2f} per PATCH (one more PATCH of an upload); per upload besides its PATCHes: {s1 - (s2-s1)/(p2-p1)*p1:.0f}')" "$S1" "$P1" "$S2" "$P2"
echo "# command: SIZE_MIB=$SIZE_MIB CHUNK=$CHUNK${GATEWAY_BIN:+ GATEWAY_BIN=<binary>}${NO_BUILD:+ NO_BUILD=1} scripts/upload-syncs.sh${1:+ $1}"
