#!/usr/bin/env bash
# Load test (issue 15): many concurrent resumable uploads and ranged downloads at once,
# against one gateway instance and against three behind a local TCP balancer, every byte
# checked. Not a unit test: it prints figures, and exits non-zero when anything failed.
#
#   scripts/load.sh [GATEWAY_BIN] [WORKDIR]
#
# GATEWAY_BIN defaults to target/release/sallyport (cargo build --release --locked --bin
# sallyport); WORKDIR to target/load (a venv, logs and results/ stay there; gateway data
# directories are removed on exit).
#
# Environment (defaults are the issue's figures; SMOKE=1 sets small ones for a quick try):
#   MODES="1 3"        gateway instances per mode: 1 = clients talk to the one gateway;
#                      N > 1 = N gateways behind HAProxy (mode tcp, round robin,
#                      send-proxy-v2; TLS passes through and every gateway terminates it)
#   UPLOADS=500        concurrent tus uploads of UPLOAD_MIB=4 MiB each, in PATCHes of
#                      CHUNK_KIB=1024 KiB, each with Upload-Checksum sha256
#   UPLOADERS=UPLOADS  uploader clients (tokens) the uploads are spread over; by default
#                      one each, like that many senders at once. One client's creations
#                      wait for each other only for a count and a record insert (its
#                      creation slot; the new upload's objects are made before it); a
#                      creation that waits over 10 s is refused 423 tus.locked. Until
#                      the objects moved out of the slot, UPLOADERS=1 with 100 uploads
#                      saw 56-64 of them refused; now none (docs/architecture.md)
#   CREATE_RETRIES=0   a creation answered 423 is retried after its Retry-After, as tus
#                      clients do, at most this many times; every retry is counted and
#                      shown ("create 423 retried"); 0: the first 423 is an error
#   ABORT_EVERY=10     every N-th upload drops its connection in the middle of a PATCH
#                      (sent without a checksum, so the bytes that arrived are kept), HEADs
#                      for the offset and resumes on a new connection (0: none)
#   DOWNLOADS=200      concurrent GETs of a signed link to a DL_MIB=16 MiB artifact; every
#                      FULL_EVERY=10 th whole, the others one random range of at most
#                      RANGE_MAX_KIB=2048 KiB
#   READBACK_EVERY=1   after the timed phase, every N-th completed upload is registered as
#                      an artifact and downloaded whole through a link (0: none)
#   REQUEST_TIMEOUT=180  seconds per HTTP request;  DEADLINE=900  seconds for the timed
#                      phase of one mode;  TIME_LIMIT=3600  seconds for the whole script
#   REDIS_URL          default redis://127.0.0.1:6379 (each mode uses its own key prefix,
#                      and its keys are deleted at the end)
#   S3_ENDPOINT, S3_BUCKET, S3_CREDENTIALS  an S3-compatible server as in
#                      scripts/bench-s3.sh; unset: the tests' pinned moto server
#                      (tests/servers/), a fresh one per mode
#   BENCH_DIR          the shared bench harness (default <repo>/../shared/bench): when
#                      present, each mode first waits (bounded) for the machine to be quiet
#
# What it measures, per mode, over TLS on 127.0.0.1 with uploads and downloads started at
# the same moment: operations completed; errors by kind; p50/p99 latency of a whole upload
# (POST to the verifying HEAD), of each PATCH, HEAD and POST, of ranged and whole GETs;
# throughput; each gateway's RSS (sampled peak and VmHWM) and CPU seconds. Then a side-by-
# side table of the modes with ratios (last mode / first mode).
#
# What is checked (every check can fail the run): each upload's final HEAD has
# Upload-Offset = its length and Repr-Digest = the client's own SHA-256 of the file; each
# GET's status, Content-Range, Repr-Digest and the SHA-256 of its bytes against the
# expected slice; each read-back upload's SHA-256. Any error other than the deliberate
# aborts (and the 409/423 answers the protocol gives right after one), any unfinished
# operation, or a panic in a gateway log makes the script exit 1.
#
# Gateway settings the script changes from the defaults (and why): all instances share
# Redis (state, leases, audit chain), one S3 bucket+prefix, one static KEK file, one link
# HMAC key file and one TLS certificate (made here with openssl for 127.0.0.1/localhost,
# so the client trusts one CA); uploads.max_open_per_principal is raised to what one
# uploader client holds open at once plus 10 when that passes the default 100;
# server.max_connections and server.max_connections_per_address are raised to at least
# UPLOADS + DOWNLOADS + 128 (defaults 1024 / 256: every client connection comes from
# 127.0.0.1); server.idle_timeout is IDLE_TIMEOUT=5m (default 1m: the gateway also closes a
# connection on which no byte moved for that long WITH a request in flight, and behind
# moto a PATCH waits over a minute for its S3 writes: its connection was reset, unanswered);
# with a balancer, server.proxy_protocol_from = ["127.0.0.1"].
#
# What the figures mean: everything shares this machine's cores, the load generator
# (Python asyncio + aiohttp, pinned in scripts/load-requirements.txt) included. Moto is a
# single Python process keeping every object in memory, so with it the upload and
# download figures measure moto as much as the gateways; quote the S3 server with them.
#
# Needs: curl, openssl, python3 (venv), redis-cli, a Redis, and for MODES with N > 1
# HAProxy (`apt-get install haproxy`; the script says so and exits when it is missing).
# Traffic goes to 127.0.0.1 only (and to S3_ENDPOINT when given); counts are fixed, every
# request has a timeout and the run a time limit. On exit (also on error or Ctrl-C) every
# process it started is stopped, its Redis keys deleted and the gateway data removed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$ROOT/target/release/sallyport}
WORK=$(mkdir -p "${2:-$ROOT/target/load}" && cd "${2:-$ROOT/target/load}" && pwd)
if [ "${SMOKE:-0}" = 1 ]; then
  : "${UPLOADS:=20}" "${DOWNLOADS:=10}" "${DL_MIB:=8}" "${DEADLINE:=120}" "${TIME_LIMIT:=600}"
fi
MODES=${MODES:-1 3}
UPLOADS=${UPLOADS:-500}; UPLOAD_MIB=${UPLOAD_MIB:-4}; CHUNK_KIB=${CHUNK_KIB:-1024}
UPLOADERS=${UPLOADERS:-$UPLOADS}; CREATE_RETRIES=${CREATE_RETRIES:-0}; ABORT_EVERY=${ABORT_EVERY:-10}; DOWNLOADS=${DOWNLOADS:-200}; DL_MIB=${DL_MIB:-16}
RANGE_MAX_KIB=${RANGE_MAX_KIB:-2048}; FULL_EVERY=${FULL_EVERY:-10}
READBACK_EVERY=${READBACK_EVERY:-1}
REQUEST_TIMEOUT=${REQUEST_TIMEOUT:-180}; DEADLINE=${DEADLINE:-900}; TIME_LIMIT=${TIME_LIMIT:-3600}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-5m}
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}

[ -x "$BIN" ] || { echo "not an executable: $BIN (cargo build --release --locked --bin sallyport)" >&2; exit 2; }
case "$UPLOADERS" in ''|*[!0-9]*|0) echo "UPLOADERS: a positive count" >&2; exit 2 ;; esac
for m in $MODES; do
  case "$m" in ''|*[!0-9]*|0) echo "MODES: '$m' is not a positive instance count" >&2; exit 2 ;; esac
  if [ "$m" -gt 1 ] && ! command -v haproxy >/dev/null; then
    echo "mode $m needs HAProxy: apt-get install -y haproxy (or MODES=1)" >&2; exit 2
  fi
done
for c in curl openssl redis-cli python3; do
  command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 2; }
done
redis-cli -u "$REDIS_URL" ping 2>/dev/null | grep -q PONG \
  || { echo "no Redis at the REDIS_URL given (default redis://127.0.0.1:6379)" >&2; exit 2; }
# shellcheck source=/dev/null
if [ -r "$BENCH/lib.sh" ]; then . "$BENCH/lib.sh"; else wait_quiet() { :; }; fi

RUN=$(date +%s)-$$
DATA=$WORK/run-$RUN        # everything of this run but the results and the venv
RESULTS=$WORK/results/$RUN
mkdir -p "$DATA" "$RESULTS"
GW_PIDS=(); HAPROXY_PID=; MOTO_PID=; PREFIXES=(); STATUS=0

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  local p prefix n
  trap - EXIT INT TERM
  for p in "${GW_PIDS[@]}" $HAPROXY_PID; do kill -TERM "$p" 2>/dev/null || true; done
  stop_moto
  for p in "${GW_PIDS[@]}" $HAPROXY_PID; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  for prefix in "${PREFIXES[@]}"; do
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" 2>/dev/null \
      | xargs -r -n 500 redis-cli -u "$REDIS_URL" UNLINK >/dev/null 2>&1 || true
    n=$(redis-cli -u "$REDIS_URL" --scan --pattern "$prefix*" 2>/dev/null | wc -l)
    echo "# redis keys under $prefix deleted ($n left)"
  done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DATA"
}
stop_moto() {
  [ -n "$MOTO_PID" ] || return 0
  exec 9>&- || true
  kill -TERM "$MOTO_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$MOTO_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$MOTO_PID" 2>/dev/null || true
  MOTO_PID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

left() { # seconds left of TIME_LIMIT, or fail
  local l=$((TIME_LIMIT - SECONDS))
  [ "$l" -gt 0 ] || { echo "TIME_LIMIT ($TIME_LIMIT s) reached" >&2; exit 1; }
  echo "$l"
}
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
private() { umask 077; cat > "$1"; }   # a 0600 file from stdin

echo "# venv with the pinned client (and moto) in $WORK/venv"
[ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
PY=$WORK/venv/bin/python
"$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/scripts/load-requirements.txt"
[ -n "${S3_ENDPOINT:-}" ] \
  || "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/tests/servers/moto-requirements.txt"

# Shared secrets and the one TLS certificate, all 0600 where secret; never printed.
S=$DATA/secrets; mkdir -p "$S"; chmod 700 "$S"
head -c 32 /dev/urandom | base64 | private "$S/kek-v1"
head -c 32 /dev/urandom | base64 | private "$S/link-load1"
printf '%s\n' "$REDIS_URL" | private "$S/redis-url"
for _ in $(seq 1 "$UPLOADERS"); do openssl rand -hex 32; done | private "$S/uploader.tokens"
openssl rand -hex 32 | tr -d '\n' | private "$S/publisher.token"
PUB_SHA=$(sha256sum < "$S/publisher.token" | cut -d' ' -f1)
T=$DATA/tls; mkdir -p "$T"
(
  umask 077; cd "$T"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=sallyport load test CA" -keyout ca-key.pem -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server-key.pem -out server.csr 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nauthorityKeyIdentifier=keyid\n' > ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -extfile ext -out leaf.pem 2>/dev/null
  cat leaf.pem ca.pem > server.pem
  chmod 644 ca.pem server.pem
)

start_moto() {
  mkfifo "$DATA/moto.stdin"
  "$PY" "$ROOT/tests/servers/moto_s3.py" --bucket "$S3_BUCKET" \
    < "$DATA/moto.stdin" > "$DATA/moto.out" 2> "$DATA/moto.err" &
  MOTO_PID=$!
  exec 9> "$DATA/moto.stdin"
  local port=
  for _ in $(seq 1 150); do
    port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$DATA/moto.out" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$port" ] || { echo "moto did not start" >&2; tail -20 "$DATA/moto.err" >&2; exit 1; }
  rm -f "$DATA/moto.stdin"
  S3_URL="http://127.0.0.1:$port"
}

# start_gw MODE INDEX: one gateway; sets GW_PORT and appends to GW_PIDS.
start_gw() {
  local mode=$1 i=$2 dir=$DATA/m$1/gw$2 conns proxy=""
  mkdir -p "$dir/data"; chmod 700 "$dir/data"
  conns=$((UPLOADS + DOWNLOADS + 128)); [ "$conns" -ge 1024 ] || conns=1024
  open=$(((UPLOADS + UPLOADERS - 1) / UPLOADERS + 10)); [ "$open" -ge 100 ] || open=100
  [ "$mode" -gt 1 ] && proxy='proxy_protocol_from = ["127.0.0.1"]'
  private "$dir/sallyport.toml" <<EOF
data_dir = "$dir/data"
[server]
listen = "127.0.0.1:0"
instance_id = "load-m$mode-gw$i"
max_connections = $conns
max_connections_per_address = $conns
idle_timeout = "$IDLE_TIMEOUT"
$proxy
[tls]
cert_file = "$T/server.pem"
key_file = "$T/server-key.pem"
[log]
format = "text"
level = "warn"
[state]
backend = "redis"
redis_url_file = "$S/redis-url"
redis_prefix = "$PREFIX"
[blob]
backend = "s3"
endpoint = "$S3_URL"
bucket = "$S3_BUCKET"
prefix = "load-$RUN-m$mode"
credentials_file = "$S3_CRED"
[keys]
provider = "static"
static_kek_id = "load"
static_current_version = 1
[[keys.static_keks]]
version = 1
key_file = "$S/kek-v1"
[uploads]
max_open_per_principal = $open
[[links.keys]]
id = "load1"
secret_file = "$S/link-load1"
state = "current"
[[clients]]
name = "load-publisher"
token_sha256 = "$PUB_SHA"
roles = ["publisher"]
EOF
  local k=0 t
  while read -r t; do
    k=$((k + 1))
    printf '[[clients]]\nname = "load-uploader-%s"\ntoken_sha256 = "%s"\nroles = ["uploader"]\n' \
      "$k" "$(printf %s "$t" | sha256sum | cut -d' ' -f1)"
  done < "$S/uploader.tokens" >> "$dir/sallyport.toml"
  "$BIN" --config "$dir/sallyport.toml" serve > "$dir/out" 2> "$dir/err" &
  GW_PIDS+=("$!")
  local pid=$! port=
  for _ in $(seq 1 150); do
    port=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir/out" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "gateway $i of mode $mode did not start" >&2; cat "$dir/out" "$dir/err" >&2; exit 1; }
  GW_PORT=$port
  PIDARGS+=(--pid "gw$i=$pid")
}

run_mode() {
  local n=$1 i ports=() base hp hpconn
  echo; echo "## mode $n: $n gateway instance(s)"
  wait_quiet 120 || true
  PREFIX="sallyport-load-$RUN-m$n:"; PREFIXES+=("$PREFIX")
  PIDARGS=()
  if [ -z "${S3_ENDPOINT:-}" ]; then
    S3_BUCKET=sallyport-load
    start_moto
    S3_CRED=$S/s3.credentials
    printf 'access_key_id = load\nsecret_access_key = load-secret\n' | private "$S3_CRED"
    echo "# moto on $S3_URL (fresh for this mode)"
    PIDARGS+=(--pid "moto=$MOTO_PID")
  else
    S3_URL=$S3_ENDPOINT; S3_BUCKET=${S3_BUCKET:-sallyport-load}
    S3_CRED=${S3_CREDENTIALS:?S3_CREDENTIALS (a 0600 key file) goes with S3_ENDPOINT}
  fi
  for i in $(seq 1 "$n"); do start_gw "$n" "$i"; ports+=("$GW_PORT"); done
  if [ "$n" = 1 ]; then
    base="https://127.0.0.1:${ports[0]}"
  else
    hp=$(free_port)
    hpconn=$((2 * (UPLOADS + DOWNLOADS + 128)))
    [ $((2 * hpconn + 256)) -le "$(ulimit -n)" ] \
      || { echo "HAProxy needs $((2 * hpconn + 256)) open files; ulimit -n is $(ulimit -n)" >&2; exit 1; }
    {
      # Two descriptors a connection: stay within the open-files limit.
      printf 'global\n  maxconn %s\ndefaults\n  mode tcp\n  timeout connect 5s\n' "$hpconn"
      printf '  timeout client 10m\n  timeout server 10m\n'
      printf 'frontend load\n  bind 127.0.0.1:%s\n  maxconn %s\n  default_backend gateways\n' "$hp" "$hpconn"
      printf 'backend gateways\n  balance roundrobin\n'
      for i in "${!ports[@]}"; do
        printf '  server gw%s 127.0.0.1:%s send-proxy-v2\n' "$((i + 1))" "${ports[$i]}"
      done
    } > "$DATA/m$n/haproxy.cfg"
    haproxy -c -q -f "$DATA/m$n/haproxy.cfg"
    haproxy -db -f "$DATA/m$n/haproxy.cfg" > "$DATA/m$n/haproxy.log" 2>&1 &
    HAPROXY_PID=$!
    sleep 0.5
    kill -0 "$HAPROXY_PID" 2>/dev/null || { echo "HAProxy did not start" >&2; cat "$DATA/m$n/haproxy.log" >&2; exit 1; }
    PIDARGS+=(--pid "haproxy=$HAPROXY_PID")
    base="https://127.0.0.1:$hp"
    echo "# HAProxy on $base -> gateways on ports ${ports[*]}"
  fi
  # Ready: /readyz through the address the clients use (round robin: every instance).
  for i in $(seq 1 $((3 * n))); do
    for _ in $(seq 1 50); do
      curl -s --fail --max-time 5 --cacert "$T/ca.pem" "$base/readyz" >/dev/null && break
      sleep 0.2
    done
    curl -s --fail --max-time 5 --cacert "$T/ca.pem" "$base/readyz" >/dev/null \
      || { echo "not ready: $base/readyz" >&2; exit 1; }
  done
  local rc=0
  timeout --signal=TERM "$(left)" "$PY" "$ROOT/scripts/load.py" run --base "$base" \
    --ca "$T/ca.pem" --uploader-tokens-file "$S/uploader.tokens" \
    --publisher-token-file "$S/publisher.token" --out "$RESULTS/mode-$n.json" \
    --label "$n instance(s)" "${PIDARGS[@]}" \
    --uploads "$UPLOADS" --upload-mib "$UPLOAD_MIB" --chunk-kib "$CHUNK_KIB" \
    --abort-every "$ABORT_EVERY" --create-retries "$CREATE_RETRIES" --downloads "$DOWNLOADS" --dl-mib "$DL_MIB" \
    --range-max-kib "$RANGE_MAX_KIB" --full-every "$FULL_EVERY" \
    --readback-every "$READBACK_EVERY" --request-timeout "$REQUEST_TIMEOUT" \
    --deadline "$DEADLINE" > "$RESULTS/mode-$n.out" 2>&1 || rc=$?
  grep '^#' "$RESULTS/mode-$n.out" || true
  [ "$rc" = 0 ] || { echo "# mode $n: load.py exited $rc (see $RESULTS/mode-$n.out)"; STATUS=1; }
  [ -s "$RESULTS/mode-$n.json" ] || { tail -30 "$RESULTS/mode-$n.out" >&2; STATUS=1; }
  # Stop this mode's processes; keep their logs with the results.
  for p in "${GW_PIDS[@]}" $HAPROXY_PID; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${GW_PIDS[@]}" $HAPROXY_PID; do
    for _ in $(seq 1 400); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  wait "${GW_PIDS[@]}" 2>/dev/null || true
  GW_PIDS=(); HAPROXY_PID=
  stop_moto
  for i in $(seq 1 "$n"); do
    # The text log is coloured even into a file: strip the escapes before reading it.
    sed 's/\x1b\[[0-9;]*m//g' "$DATA/m$n/gw$i/err" > "$RESULTS/mode-$n-gw$i.log"
    if grep -qi 'panic' "$RESULTS/mode-$n-gw$i.log"; then
      echo "# mode $n gw$i: PANIC in the log:"; grep -i -m5 'panic' "$RESULTS/mode-$n-gw$i.log"; STATUS=1
    fi
    echo "# mode $n gw$i log: $(grep -c ' ERROR ' "$RESULTS/mode-$n-gw$i.log" || true) ERROR, $(grep -c ' WARN ' "$RESULTS/mode-$n-gw$i.log" || true) WARN lines"
    # Each distinct error, once, with its count (codes and causes; logs hold no secrets).
    grep -E ' (ERROR|WARN) ' "$RESULTS/mode-$n-gw$i.log" \
      | sed -E 's/^[^ ]+ +//; s/request_id="[0-9a-f]+" //; s/(blob|object) [0-9a-z]{26}[.a-z]*/\1 …/g; s/ in [0-9.]+m?s / in …s /g' \
      | sort | uniq -c | sort -rn | head -5 | sed 's/^/#     /' || true
  done
}

echo "# run $RUN: MODES='$MODES' UPLOADS=$UPLOADS x ${UPLOAD_MIB} MiB from $UPLOADERS clients (CHUNK_KIB=$CHUNK_KIB, ABORT_EVERY=$ABORT_EVERY) DOWNLOADS=$DOWNLOADS of ${DL_MIB} MiB"
for m in $MODES; do run_mode "$m"; done

echo; echo "## summary ($RESULTS)"
files=(); for m in $MODES; do [ -s "$RESULTS/mode-$m.json" ] && files+=("$RESULTS/mode-$m.json"); done
if [ "${#files[@]}" -gt 0 ]; then "$PY" "$ROOT/scripts/load.py" compare "${files[@]}" || STATUS=1; else STATUS=1; fi
[ "$STATUS" = 0 ] && echo "# load test passed" || echo "# load test FAILED"
exit "$STATUS"
