#!/usr/bin/env bash
# Instructions per small download: the gateway under valgrind's callgrind, serving a 1 KiB
# signed link to wrk, counted after a warm-up. Instruction counts do not depend on what else
# the machine is doing, so two builds compare in one run even on a noisy shared host, where
# req/s and CPU seconds per request drift by ±30 % between runs. Not a test: it prints
# figures.
#
#   scripts/instructions-download.sh [WORKDIR]
#
# Environment:
#   GATEWAY_BIN=<binary>  the build to count (default: this checkout's release binary,
#                         built first unless NO_BUILD=1)
#   BEFORE_BIN=<binary>   also count this build (an older one), and print the ratio
#   QUEUED=true           links.danger_queued_download_audit (true: the request does not wait
#                         for its entry's sync, so waiting does not shape the load; false:
#                         every download durable before its first byte, the default)
#   SECS=15 WARM=5        counted and warm-up seconds of wrk load (1 thread, CONNS connections)
#   CONNS=4
#   TOP=15                functions listed, by their own instructions
#
# What it counts: every instruction of the gateway process in user space (all threads: the
# request path, the audit writer, the indexer, the blob cache), from the end of the warm-up
# to the end of the load, divided by the requests wrk completed in that time. The kernel's
# share (socket, fsync, scheduling) is not counted: see `perf` for that.
#
# Caveat: under valgrind, SHA-256 runs its portable code (valgrind does not offer SHA-NI),
# which costs about five times as many instructions as on the real CPU, so hashing looks
# bigger here than it is. Compare builds with it; do not read the absolute split as time.
#
# Needs valgrind (installed from Debian if missing), wrk, curl, openssl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d /tmp/sallyport-instr.XXXXXX)}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
QUEUED=${QUEUED:-true}; SECS=${SECS:-15}; WARM=${WARM:-5}; CONNS=${CONNS:-4}; TOP=${TOP:-15}
case "$QUEUED" in true|false) ;; *) echo "QUEUED must be true or false" >&2; exit 2 ;; esac
for v in SECS WARM CONNS TOP; do
  case "${!v}" in ''|*[!0-9]*|0) echo "$v must be a positive integer" >&2; exit 2 ;; esac
done
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v valgrind >/dev/null || ! command -v wrk >/dev/null; then
  echo "# installing valgrind and wrk from Debian"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq valgrind wrk >/dev/null
fi
if [ -n "${GATEWAY_BIN:-}" ]; then
  BIN=$GATEWAY_BIN
else
  TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  BIN=$TARGET/release/sallyport
  [ -n "${NO_BUILD:-}" ] || (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
for b in "$BIN" ${BEFORE_BIN:+"$BEFORE_BIN"}; do
  [ -x "$b" ] || { echo "no gateway binary at $b" >&2; exit 2; }
done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT TRIES(0.2 s each)
  for _ in $(seq "$2"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  return 1
}

# count NAME BINARY: prints "NAME requests Ir Ir_per_request" and keeps the dump.
count() {
  local name=$1 bin=$2 dir=$WORK/$1 port token hash url pid n out dump ir
  rm -rf "$dir"; mkdir -p "$dir/data/import"; chmod 700 "$dir" "$dir/data"
  port=$(free_port)
  token=$(openssl rand -hex 32); hash=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
  ( umask 077; printf '%s' "$token" > "$dir/publisher.token" )
  cat > "$dir/sallyport.toml" <<CONF
data_dir = "$dir/data"
[links]
danger_queued_download_audit = $QUEUED
[server]
listen = "127.0.0.1:$port"
[log]
level = "warn"
[[clients]]
name = "bench-publisher"
token_sha256 = "$hash"
roles = ["publisher"]
CONF
  # Set up natively (registering under valgrind would take minutes), then restart.
  "$bin" --config "$dir/sallyport.toml" serve > "$dir/setup.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" 100 || { echo "$name: the gateway did not start" >&2; cat "$dir/setup.log" >&2; exit 1; }
  head -c 1024 /dev/urandom > "$dir/data/import/small.bin"
  sp() { SALLYPORT_URL="https://127.0.0.1:$port" SALLYPORT_TOKEN_FILE="$dir/publisher.token" \
    "$bin" --config "$dir/sallyport.toml" "$@"; }
  local artifact
  artifact=$(sp artifact register --import small.bin --content-type application/octet-stream)
  url=$(sp link issue --artifact "$artifact" --partner bench --ttl 6h 2>/dev/null)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$bin" --config "$dir/sallyport.toml" serve > "$dir/valgrind.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" 900 || { echo "$name: the gateway did not start under valgrind" >&2; cat "$dir/valgrind.log" >&2; exit 1; }
  code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 60 "$url")
  [ "$code" = 200 ] || { echo "$name: the link answered $code, not 200" >&2; exit 1; }
  timeout $((WARM + 60)) wrk -t1 -c"$CONNS" -d"${WARM}s" "$url" > /dev/null
  callgrind_control -z "$pid" > /dev/null 2>&1
  out=$(timeout $((SECS + 60)) wrk -t1 -c"$CONNS" -d"${SECS}s" "$url")
  callgrind_control -d "$pid" > /dev/null 2>&1
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  bad=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  [ -z "$bad" ] || { echo "$name: $bad answers were not 2xx" >&2; exit 1; }
  dump=
  for _ in $(seq 50); do
    dump=$(ls -t "$dir"/callgrind.out.* 2>/dev/null | head -1 || true)
    [ -n "$dump" ] && grep -q '^totals:\|^summary:' "$dump" && break
    sleep 0.2
  done
  [ -n "$dump" ] || { echo "$name: callgrind wrote no dump" >&2; exit 1; }
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "$name: wrk completed no request" >&2; exit 1; }
  echo "$name $n $ir $((ir / n))" >> "$WORK/counts.txt"
  printf '%-7s %8s requests  %14s instructions  %9s per request\n' "$name" "$n" "$ir" "$((ir / n))"
  callgrind_annotate --auto=no --threshold=100 "$dump" 2>/dev/null \
    | awk '/^-+$/ {d++} d >= 6 && /\(/ && !/__rust_begin_short_backtrace/' | sed -n "5,$((TOP + 4))p" \
    | cut -c1-150 | sed 's/^/    /'
  kill "$pid" 2>/dev/null || true
}

: > "$WORK/counts.txt"
echo "# instructions per 1 KiB signed-link download (queued audit: $QUEUED; wrk -t1 -c$CONNS, ${WARM} s warm-up, ${SECS} s counted)"
echo "# below each count: the functions with the most instructions of their own (callgrind_annotate;"
echo "# the thread-start frames, which everything inlined into them shares, are left out)"
count after "$BIN"
if [ -n "${BEFORE_BIN:-}" ]; then
  count before "$BEFORE_BIN"
  awk '$1 == "after" {a = $4} $1 == "before" {b = $4}
    END {printf "ratio after/before: %.3f (instructions per request)\n", a / b}' "$WORK/counts.txt"
fi
echo "# dumps in $WORK/*/callgrind.out.*; command: QUEUED=$QUEUED SECS=$SECS WARM=$WARM CONNS=$CONNS${BEFORE_BIN:+ BEFORE_BIN=<binary>}${GATEWAY_BIN:+ GATEWAY_BIN=<binary>} scripts/instructions-download.sh"
