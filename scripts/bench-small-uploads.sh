#!/usr/bin/env bash
# Small-file upload rate, before/after (issue 14): many small files, where an upload's fixed
# cost (creating its objects, its record, its audit entries, the completing chunk) is most
# of its cost. Two release gateways, each on its own fresh data directory (embedded store,
# journal, local blobs), this build's and BEFORE_BIN's; every round uploads the same FILES
# files of SIZE_KIB each with `sallyport client upload --parallel PARALLEL` (this build's
# client) to each gateway once, in shuffled order. Reports each gateway's files per second
# (median, min–max, n), the per-round ratio after/before (median, min–max, n), and each
# gateway's sync calls per file (`strace -f -c`, one more untimed round, when strace is
# installed). Not a test: it prints figures.
#
# Usage: BEFORE_BIN=<binary> scripts/bench-small-uploads.sh [WORKDIR]
#          (default WORKDIR: <target dir>/bench-small-uploads)
#   env: ROUNDS=5  FILES=200  SIZE_KIB=64  PARALLEL=4
#        NO_BUILD=1            use the release binary already built
#        GATEWAY_BIN=<binary>  the "after" gateway (implies NO_BUILD); the client is always
#                              this build's
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}; FILES=${FILES:-200}; SIZE_KIB=${SIZE_KIB:-64}; PARALLEL=${PARALLEL:-4}
for v in ROUNDS FILES SIZE_KIB PARALLEL; do
  case "${!v}" in ''|*[!0-9]*|0) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
[ -n "${BEFORE_BIN:-}" ] && [ -x "$BEFORE_BIN" ] \
  || { echo "BEFORE_BIN=<an executable gateway binary> is required" >&2; exit 2; }

TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
  || { echo "cargo metadata failed: cannot find the target directory" >&2; exit 2; }
WORK=$(mkdir -p "${1:-$TARGET/bench-small-uploads}" && cd "${1:-$TARGET/bench-small-uploads}" && pwd)
CLIENT=$TARGET/release/sallyport
if [ -z "${NO_BUILD:-}" ] && [ -z "${GATEWAY_BIN:-}" ]; then
  echo "# building the release binary"
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
[ -x "$CLIENT" ] || { echo "no release binary at $CLIENT (build it, or unset NO_BUILD)" >&2; exit 2; }
AFTER_BIN=${GATEWAY_BIN:-$CLIENT}

rm -rf "$WORK/files"; mkdir -p "$WORK/files"
for i in $(seq 1 "$FILES"); do
  head -c $((SIZE_KIB << 10)) /dev/urandom > "$WORK/files/f$i.bin"
done
TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
printf '%s\n' "$TOKEN" > "$WORK/token"; chmod 600 "$WORK/token"

declare -A PID PORT
cleanup() {
  for g in "${!PID[@]}"; do
    kill -TERM "${PID[$g]}" 2>/dev/null && wait "${PID[$g]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
start() { # NAME BINARY
  local dir=$WORK/gw-$1
  rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir.toml" <<EOF
data_dir = "$dir"
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
  "$2" --config "$dir.toml" serve > "$dir.out" 2> "$dir.err" &
  PID[$1]=$!
  local port=
  for _ in $(seq 1 100); do
    port=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir.out")
    [ -n "$port" ] && break
    kill -0 "${PID[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the $1 gateway did not start:" >&2; cat "$dir.out" "$dir.err" >&2; exit 1; }
  PORT[$1]=$port
}
start after "$AFTER_BIN"
start before "$BEFORE_BIN"

upload() { # NAME -> seconds on stdout
  local t0 t1
  rm -rf "$WORK/state-$1"
  t0=$(date +%s.%N)
  "$CLIENT" client upload --json --parallel "$PARALLEL" --chunk-size 65536 \
    --to "https://localhost:${PORT[$1]}/files/" --cacert "$WORK/gw-$1/dev-ca/ca.pem" \
    --token-file "$WORK/token" --state-dir "$WORK/state-$1" "$WORK"/files/*.bin \
    > "$WORK/client-$1.json"
  t1=$(date +%s.%N)
  grep -q "\"type\":\"summary\".*\"verified\":$FILES," "$WORK/client-$1.json" \
    || { echo "the $1 upload did not verify every file:" >&2; tail -3 "$WORK/client-$1.json" >&2; exit 1; }
  echo "$t1 - $t0" | bc -l
}

echo "# $FILES files of $SIZE_KIB KiB, --parallel $PARALLEL, $ROUNDS rounds; after: $AFTER_BIN; before: $BEFORE_BIN"
upload after > /dev/null; upload before > /dev/null   # warm-up, untimed
: > "$WORK/runs.txt"
for r in $(seq 1 "$ROUNDS"); do
  for g in $(printf '%s\n' after before | shuf); do
    s=$(upload "$g")
    echo "$r $g $s" | tee -a "$WORK/runs.txt"
  done
done

python3 - "$WORK/runs.txt" "$FILES" <<'PY'
import statistics, sys
runs, files = sys.argv[1], int(sys.argv[2])
secs = {}
for line in open(runs):
    r, g, s = line.split()
    secs.setdefault(g, {})[int(r)] = float(s)
for g in ("after", "before"):
    rates = [files / s for s in secs[g].values()]
    print(f"{g:<7} files/s median {statistics.median(rates):7.1f} "
          f"(min {min(rates):.1f}, max {max(rates):.1f}, n={len(rates)})")
ratios = [secs["before"][r] / secs["after"][r] for r in secs["after"] if r in secs["before"]]
print(f"ratio after/before (files/s), per round: median {statistics.median(ratios):.2f} "
      f"(min {min(ratios):.2f}, max {max(ratios):.2f}, n={len(ratios)})")
PY

if command -v strace > /dev/null; then
  for g in after before; do
    strace -f -c -e trace=fsync,fdatasync,sync_file_range,msync -o "$WORK/strace-$g.txt" -p "${PID[$g]}" 2> /dev/null &
    st=$!
    sleep 1
    upload "$g" > /dev/null
    sleep 1
    kill -INT "$st"; wait "$st" 2> /dev/null || true
    calls=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ {n += $4} END {print n + 0}' "$WORK/strace-$g.txt")
    echo "$g: $calls sync calls for $FILES files, $(echo "scale=2; $calls / $FILES" | bc) per file"
  done
fi
echo "# command: ROUNDS=$ROUNDS FILES=$FILES SIZE_KIB=$SIZE_KIB PARALLEL=$PARALLEL BEFORE_BIN=<binary>${GATEWAY_BIN:+ GATEWAY_BIN=<binary>}${NO_BUILD:+ NO_BUILD=1} scripts/bench-small-uploads.sh${1:+ $1}"
