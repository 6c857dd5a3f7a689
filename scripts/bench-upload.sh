#!/usr/bin/env bash
# Upload benchmark (issues 4, 14, 16): a 1 GiB file uploaded over TLS on loopback by several
# clients, INTERLEAVED: every round runs each client once, in a freshly shuffled order, so
# the machine's drift (other people's builds) hits all clients alike. Reports each
# client's MB/s and the per-round RATIOS (median, min–max, n), which are what to quote.
# Not a test: it prints figures.
#
# Usage: scripts/bench-upload.sh [WORKDIR]          (default WORKDIR: <target dir>/bench-upload)
#   env: ROUNDS=5                rounds (each client once per round, order shuffled)
#        CLIENTS="sallyport curl js node-curl node-js rustus-curl nginx"   which clients, any of:
#          sallyport  this binary's `sallyport client upload` to the gateway (8 MiB chunks,
#                     sha256 per chunk, one file; timed as the whole process: start-up, the
#                     file's fingerprint, the fsynced resume record, every PATCH and the
#                     final ledger check against its own whole-file SHA-256)
#          js         tus-js-client (node) to the gateway, sha256 per chunk (tus_bench.sh)
#          curl       the lean curl tus client to the gateway, sha256 per chunk (tus_bench.sh)
#          before     `sallyport client upload` (this build's client) to a second gateway run
#                     from BEFORE_BIN=<binary> (an older build, for a before/after ratio
#                     measured interleaved: `ratio sallyport/before`); its own data directory
#          nginx      one curl PUT of the file to nginx's WebDAV location over TLS 1.3
#                     (put_upload.sh): the "TLS receive + write to disk" anchor; skipped,
#                     with a note, when nginx is not installed or does not start
#          node-curl, node-js       the peer @tus/server (@tus/file-store) behind nginx's TLS
#                     proxy, with the curl client or tus-js-client: what a user would deploy
#                     instead (needs nginx; server CPU counts the tus server only, not nginx)
#          rustus-curl, rustus-js   the peer rustus (file storage, checksum extension on) behind
#                     nginx's TLS proxy; the first run builds rustus into WORKDIR (~10 min)
#        CHUNK=8388608  CHECKSUM=sha256  CURL_HTTP=1.1 (2: let the curl client negotiate h2)
#        NO_BUILD=1     use the release binary already built (no cargo build)
#        GATEWAY_BIN=<binary>  measure this binary instead (implies NO_BUILD; for before/after)
#        BENCH_DIR=<repo>/../shared/bench  (the shared harness: lib.sh, tus_bench.sh, …)
#
# The binary is found in the build's own target directory (`cargo metadata`, so
# CARGO_TARGET_DIR and .cargo/config are honoured), not in a fixed path.
#
# What it does:
#   1. cargo build --release --locked (unless NO_BUILD/GATEWAY_BIN); `tus_setup.sh WORKDIR`
#      (npm deps for tus-js-client and @tus/server, a 1 GiB random file WORKDIR/upload.bin,
#      and rustus only when a rustus client is asked for);
#   2. copies the shared scripts to WORKDIR/bench and adds the gateway's bearer token to
#      their requests (they were written for peers without authentication); every patch
#      is checked, the copies are otherwise unchanged (the peers ignore the header); the
#      nginx copy listens on free ports, its TLS proxies too, in front of peers on free ports;
#   3. one release gateway (embedded store, fresh data directory, a random uploader token);
#      for `nginx` or a peer client, one nginx; each peer server asked for; a 128 MiB warm-up
#      upload per client (a peer's stored warm-up file is compared with its source, cmp);
#   4. ROUNDS rounds; in each, every client uploads the 1 GiB file once, in shuffled order,
#      each run after `wait_quiet` (the machine below 15 % busy, or 60 s). After every
#      upload the server's data is emptied and synced, untimed, so one run's writeback does
#      not land in the next. Per run: MB/s (1e6 B/s), client CPU s, server CPU s;
#   4b. with strace installed, one more (untimed) sallyport upload of the 128 MiB file with
#      `strace -f -c` attached to the gateway: its fsync/fdatasync/sync_file_range/msync calls
#      per PATCH (see also scripts/upload-syncs.sh);
#   5. prints per client: MB/s median (min–max, n), server CPU s/GiB median, the client's
#      peak RSS (sallyport: at most two chunks in memory per file); then the per-round
#      ratios, each as median (min–max, n): the same client against the gateway and each
#      peer (curl/node-curl, curl/rustus-curl, js/node-js, js/rustus-js), sallyport/js,
#      sallyport/curl, sallyport/nginx, js/nginx, sallyport/before; and the exact command.
#
# Everything goes to 127.0.0.1; the shared scripts refuse any other address and bound
# their loops. Needs node/npm (tus-js-client), curl, openssl, bc, python3; nginx for the
# `nginx` and peer clients (they are left out, with a note, when nginx is not installed);
# cargo for rustus.
set -euo pipefail
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_SRC=$(cd "${BENCH_DIR:-$ROOT/../shared/bench}" 2>/dev/null && pwd) \
  || { echo "no shared bench harness at ${BENCH_DIR:-$ROOT/../shared/bench} (set BENCH_DIR)" >&2; exit 2; }
[ -x "$BENCH_SRC/tus_bench.sh" ] || { echo "no tus_bench.sh in $BENCH_SRC (set BENCH_DIR)" >&2; exit 2; }
ROUNDS=${ROUNDS:-5}; CLIENTS=${CLIENTS:-sallyport curl js node-curl node-js rustus-curl nginx}
CHUNK=${CHUNK:-8388608}; CHECKSUM=${CHECKSUM:-sha256}; CURL_HTTP=${CURL_HTTP:-1.1}
case "$CURL_HTTP" in 1.1|2) ;; *) echo "CURL_HTTP must be 1.1 or 2" >&2; exit 2 ;; esac
case "$ROUNDS" in ''|*[!0-9]*|0) echo "ROUNDS must be a positive integer" >&2; exit 2 ;; esac
for c in $CLIENTS; do
  case "$c" in sallyport|js|curl|nginx|before|node-js|node-curl|rustus-js|rustus-curl) ;;
    *) echo "unknown client $c (sallyport js curl nginx before node-js node-curl rustus-js rustus-curl)" >&2; exit 2 ;;
  esac
done
if [[ " $CLIENTS " == *" before "* ]]; then
  [ -n "${BEFORE_BIN:-}" ] && [ -x "$BEFORE_BIN" ] \
    || { echo "client 'before' needs BEFORE_BIN=<an executable gateway binary>" >&2; exit 2; }
fi

# The build's own target directory.
TARGET=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps --locked 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])') \
  || { echo "cargo metadata failed: cannot find the target directory" >&2; exit 2; }
WORK=$(mkdir -p "${1:-$TARGET/bench-upload}" && cd "${1:-$TARGET/bench-upload}" && pwd)
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
echo "# gateway and client: $BIN"

has_client() { [[ " $CLIENTS " == *" $1 "* ]]; }
wants_peer() { [[ " $CLIENTS " == *" $1-"* ]]; }   # node | rustus
if wants_peer rustus; then
  [ -x "$WORK/rustus/bin/rustus" ] || echo "# building rustus into $WORK/rustus (once; about 10 minutes)"
  SKIP_RUSTUS=0
else
  SKIP_RUSTUS=1
fi
echo "# setting up tus-js-client, @tus/server and the 1 GiB file in $WORK"
"$BENCH_SRC/tus_setup.sh" "$WORK" "$SKIP_RUSTUS" > "$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; exit 1; }
FILE=$WORK/upload.bin; SIZE=$(stat -c %s "$FILE")
head -c $((128 << 20)) "$FILE" > "$WORK/warmup.bin"

# The bench scripts' copies, with the bearer token added to every request.
rm -rf "$WORK/bench"; cp -r "$BENCH_SRC" "$WORK/bench"
patch_file() { # FILE SED-EXPR EXPECTED-MATCHES
  sed -i "$2" "$1"
  local n; n=$(grep -ci 'authorization' "$1" || true)
  [ "$n" -ge "$3" ] || { echo "could not add the token to $1 (the script changed?)" >&2; exit 1; }
}
# tus-js-client: a headers option on the upload (sent with every request).
patch_file "$WORK/node/tus_upload.mjs" \
  's|endpoint, chunkSize, uploadSize: size,|endpoint, chunkSize, uploadSize: size, headers: { Authorization: process.env.TUS_AUTHORIZATION },|' 1
# curl: the creation POST and the final HEAD, and every PATCH in the generated config.
patch_file "$WORK/bench/tus_upload_curl.sh" \
  "s|-H 'Tus-Resumable: 1.0.0'|-H 'Tus-Resumable: 1.0.0' -H \"\$TUS_AUTHORIZATION_HEADER\"|g; s|^hdr='header = \"Tus-Resumable: 1.0.0\"|hdr='header = \"Tus-Resumable: 1.0.0\"\nheader = \"@AUTH@\"|" 2
patch_file "$WORK/bench/tus_upload_curl.sh" \
  "s|^done > \"\$TMP/cfg.tmpl\"|done \| sed \"s#@AUTH@#\$TUS_AUTHORIZATION_HEADER#\" > \"\$TMP/cfg.tmpl\"|" 2
grep -q '@AUTH@#' "$WORK/bench/tus_upload_curl.sh" || { echo "could not patch the curl config" >&2; exit 1; }
if [ "$CURL_HTTP" = 1.1 ]; then
  sed -i "s|echo 'insecure'|echo 'insecure'; echo 'http1.1'|" "$WORK/bench/tus_upload_curl.sh"
  grep -q "echo 'http1.1'" "$WORK/bench/tus_upload_curl.sh" || { echo "could not set HTTP/1.1 for curl" >&2; exit 1; }
fi

. "$WORK/bench/lib.sh"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# nginx: its TLS proxies in front of the peer tus servers listen on free ports and point at
# peers on free ports (another bench on the machine may hold the fixed 8444/8445/1080/1081).
declare -A PEER_PORT PEER_TLS PEER_PID PEER_DATA
for peer in node rustus; do PEER_PORT[$peer]=$(free_port); PEER_TLS[$peer]=$(free_port); done
sed -i "s|listen 127.0.0.1:8444 ssl; location / { proxy_pass http://127.0.0.1:1080; }|listen 127.0.0.1:${PEER_TLS[node]} ssl; location / { proxy_pass http://127.0.0.1:${PEER_PORT[node]}; }|;
        s|listen 127.0.0.1:8445 ssl; location / { proxy_pass http://127.0.0.1:1081; }|listen 127.0.0.1:${PEER_TLS[rustus]} ssl; location / { proxy_pass http://127.0.0.1:${PEER_PORT[rustus]}; }|" \
  "$WORK/bench/nginx_peer.sh"
! grep -q 'listen 127.0.0.1:844[45]' "$WORK/bench/nginx_peer.sh" \
  && grep -q "proxy_pass http://127.0.0.1:${PEER_PORT[rustus]};" "$WORK/bench/nginx_peer.sh" \
  || { echo "could not patch nginx_peer.sh (the script changed?)" >&2; exit 1; }

TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
export TUS_AUTHORIZATION="Bearer $TOKEN" TUS_AUTHORIZATION_HEADER="Authorization: Bearer $TOKEN"
printf '%s\n' "$TOKEN" > "$WORK/bench.token"; chmod 600 "$WORK/bench.token"

GW_PID=; B_PID=; NGINX_DIR=; RESULTS=$(mktemp)
cleanup() {
  for pid in $GW_PID $B_PID; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PEER_PID[@]}"; do
    kill -0 "$pid" 2>/dev/null && "$WORK/bench/tus_server.sh" stop "$pid" > /dev/null 2>&1 || true
  done
  [ -n "$NGINX_DIR" ] && "$WORK/bench/nginx_peer.sh" stop "$NGINX_DIR" >/dev/null 2>&1 || true
  rm -f "$RESULTS"
}
trap cleanup EXIT

# --- the gateway: one for the whole run, every client uploads to it ---
start_gateway() { # DIR BINARY: starts a gateway on DIR, sets STARTED_PID and STARTED_PORT
  local dir=$1 bin=$2 port=
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
  "$bin" --config "$dir.toml" serve > "$dir.out" 2> "$dir.err" &
  STARTED_PID=$!
  for _ in $(seq 1 100); do
    port=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir.out")
    [ -n "$port" ] && break
    kill -0 "$STARTED_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "the gateway did not start:" >&2; cat "$dir.out" "$dir.err" >&2; exit 1; }
  STARTED_PORT=$port
}
GW_DIR=$WORK/gateway
start_gateway "$GW_DIR" "$BIN"; GW_PID=$STARTED_PID; PORT=$STARTED_PORT
B_DIR=$WORK/gateway-before
if [[ " $CLIENTS " == *" before "* ]]; then
  start_gateway "$B_DIR" "$BEFORE_BIN"; B_PID=$STARTED_PID; B_PORT=$STARTED_PORT
  echo "# before: $BEFORE_BIN on port $B_PORT"
fi
EP="https://127.0.0.1:$PORT/files/"

# --- nginx, when asked for (as a client or as the peers' TLS proxy) and available ---
NGINX_URL=; NGINX_PID=
if has_client nginx || wants_peer node || wants_peer rustus; then
  if command -v nginx >/dev/null; then
    NGINX_DIR=$WORK/nginx; mkdir -p "$NGINX_DIR/files"
    # nginx_peer.sh makes a 1 GiB file to serve; the upload file will do (a hard link).
    [ -e "$NGINX_DIR/files/big.bin" ] || ln "$FILE" "$NGINX_DIR/files/big.bin" 2>/dev/null || true
    NPORT=$(free_port); NHTTP=$(free_port)
    if "$WORK/bench/nginx_peer.sh" start "$NGINX_DIR" "$NPORT" "$NHTTP" > "$WORK/nginx.log" 2>&1; then
      NGINX_PID=$(cat "$NGINX_DIR/nginx.pid"); NGINX_URL="https://127.0.0.1:$NPORT/dav/upload.bin"
    else
      echo "# nginx did not start (see $WORK/nginx.log): no nginx runs" >&2; NGINX_DIR=
    fi
  else
    echo "# nginx is not installed: no nginx runs" >&2
  fi
  [ -n "$NGINX_URL" ] || CLIENTS=$(printf '%s\n' $CLIENTS | grep -vxE 'nginx|(node|rustus)-(js|curl)' | tr '\n' ' ')
fi

# --- the peer tus servers, behind nginx's TLS proxies ---
for peer in node rustus; do
  wants_peer "$peer" || continue
  read -r PEER_PID[$peer] _ PEER_DATA[$peer] \
    < <("$WORK/bench/tus_server.sh" start "$peer" "$WORK" "${PEER_PORT[$peer]}") \
    || { echo "the peer $peer did not start (see $WORK/$peer.log)" >&2; exit 1; }
  echo "# peer $peer: pid ${PEER_PID[$peer]}, https://127.0.0.1:${PEER_TLS[$peer]}/files (nginx TLS) -> 127.0.0.1:${PEER_PORT[$peer]}"
done

# --- one upload by one client: prints "MB/s client_cpu_s server_cpu_s client_peak_rss_mib" ---
clean_gateway() { # [DIR]
  find "${1:-$GW_DIR}/blobs" -mindepth 1 -delete 2>/dev/null || true; sync
}
run_sallyport() { # FILE [GATEWAY_DIR PID PORT]: this build's client to this build's gateway or another
  local f=$1 dir=${2:-$GW_DIR} pid=${3:-$GW_PID} port=${4:-$PORT} t0 t1 s0 s1 cu cs rss ep
  ep="https://localhost:$port/files/"   # the dev certificate names localhost
  must_be_loopback "$ep"
  rm -rf "$WORK/client-state"
  wait_quiet 60 2>/dev/null
  s0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
  timeout 600 /usr/bin/time -f '%U %S %M' -o "$WORK/client.time" "$BIN" client upload --json \
    --to "$ep" --cacert "$dir/dev-ca/ca.pem" --token-file "$WORK/bench.token" \
    --state-dir "$WORK/client-state" --chunk-size "$CHUNK" "$f" > "$WORK/client.json"
  t1=$(date +%s.%N); s1=$(cpu_ticks "$pid")
  grep -q '"type":"summary".*"verified":1' "$WORK/client.json" \
    || { echo "sallyport client upload did not verify:" >&2; cat "$WORK/client.json" >&2; exit 1; }
  read -r cu cs rss < "$WORK/client.time"
  clean_gateway "$dir"
  awk -v b="$(stat -c %s "$f")" -v t0="$t0" -v t1="$t1" -v c="$(echo "$cu + $cs" | bc)" \
    -v st=$((s1 - s0)) -v hz="$TICKS_PER_S" -v rss="$rss" \
    'BEGIN {printf "%.1f %.2f %.2f %.1f\n", b / (t1 - t0) / 1e6, c, st/hz, rss/1024}'
}
run_tus() { # CLIENT FILE   (tus_bench.sh, one run; it waits for a quiet machine itself)
  local line
  line=$(CLEAN_DIR=$GW_DIR/blobs SERVER_PID=$GW_PID CLIENT=$1 REPS=1 CHUNK=$CHUNK CHECKSUM=$CHECKSUM \
    "$WORK/bench/tus_bench.sh" "$EP" "$2" "$WORK/node" | grep -E '^1 ') \
    || { echo "tus_bench.sh ($1) failed" >&2; exit 1; }
  echo "$line" | awk '{print $2, $3, $4, "NA"}'
}
run_peer() { # PEER CLIENT FILE [CHECK]: tus_bench.sh against a peer through its TLS proxy; with
  # CHECK, the stored file is compared with FILE before the peer's data is emptied
  local peer=$1 line big clean=${PEER_DATA[$1]}
  [ -z "${4:-}" ] || clean=   # kept for the comparison below
  line=$(CLEAN_DIR=$clean SERVER_PID=${PEER_PID[$peer]} \
    CLIENT=$2 REPS=1 CHUNK=$CHUNK CHECKSUM=$CHECKSUM \
    "$WORK/bench/tus_bench.sh" "https://127.0.0.1:${PEER_TLS[$peer]}/files" "$3" "$WORK/node" | grep -E '^1 ') \
    || { echo "tus_bench.sh ($peer, $2) failed" >&2; exit 1; }
  if [ -n "${4:-}" ]; then
    big=$(ls -S "${PEER_DATA[$peer]}" | head -1)
    cmp -s "${PEER_DATA[$peer]}/$big" "$3" \
      || { echo "peer $peer ($2): the stored file differs from the upload" >&2; exit 1; }
    find "${PEER_DATA[$peer]}" -mindepth 1 -delete; sync
  fi
  echo "$line" | awk '{print $2, $3, $4, "NA"}'
}
run_nginx() { # FILE
  local line
  line=$("$WORK/bench/put_upload.sh" "$NGINX_URL" "$1" 1 "$NGINX_PID" | grep -E '^1 ') \
    || { echo "put_upload.sh failed" >&2; exit 1; }
  echo "$line" | awk '$5 !~ /^20[14]$/ {print "nginx PUT answered " $5 > "/dev/stderr"; exit 1} {print $2, $3, $4, "NA"}'
  curl -sk -o /dev/null -X DELETE "$NGINX_URL" || true; sync
}
run_client() { # CLIENT FILE
  case "$1" in
    sallyport) run_sallyport "$2" ;;
    before) run_sallyport "$2" "$B_DIR" "$B_PID" "$B_PORT" ;;
    js|curl) run_tus "$1" "$2" ;;
    nginx) run_nginx "$2" ;;
    node-*|rustus-*) run_peer "${1%-*}" "${1#*-}" "$2" "${3:-}" ;;
  esac
}

echo "# warm-up: 128 MiB per client"
for c in $CLIENTS; do run_client "$c" "$WORK/warmup.bin" check > /dev/null; done
RSS_WARM=$(peak_rss_mib "$GW_PID")

# --- sync calls per PATCH (issue 14): one more sallyport upload of the warm-up file with
# strace -f -c attached to the gateway; untimed, and only when strace is installed ---
SYNCS_LINE=
if command -v strace >/dev/null; then
  SYNC_CALLS=fsync,fdatasync,sync_file_range,msync
  strace -f -c -e trace=$SYNC_CALLS,fadvise64 -o "$WORK/strace.txt" -p "$GW_PID" 2> "$WORK/strace.err" &
  ST_PID=$!; sleep 1
  run_sallyport "$WORK/warmup.bin" > /dev/null
  kill -INT "$ST_PID"; wait "$ST_PID" 2>/dev/null || true
  SYNCS_LINE=$(awk -v n=$(( ($(stat -c %s "$WORK/warmup.bin") + CHUNK - 1) / CHUNK )) '
    $NF ~ /^(fsync|fdatasync|sync_file_range|msync)$/ && $4 ~ /^[0-9]+$/ { s += $4; d = d " " $NF "=" $4 }
    $NF == "fadvise64" && $4 ~ /^[0-9]+$/ { f = $4 }
    END { printf "gateway sync calls per PATCH: %.2f (%s over %d PATCHes of a 128 MiB sallyport upload; fadvise64 %.2f per PATCH)", s / n, substr(d, 2), n, f / n }' \
    "$WORK/strace.txt")
  echo "# $SYNCS_LINE"
else
  echo "# strace is not installed: no sync count"
fi

echo "# $ROUNDS rounds of: $CLIENTS (1 GiB each, shuffled order per round)"
echo "# round client MB/s client_cpu_s server_cpu_s client_peak_rss_mib"
for r in $(seq 1 "$ROUNDS"); do
  for c in $(printf '%s\n' $CLIENTS | shuf); do
    line=$(run_client "$c" "$FILE")
    echo "$r $c $line" | tee -a "$RESULTS"
  done
done
RSS_END=$(peak_rss_mib "$GW_PID")
PEER_RSS=
for peer in node rustus; do
  [ -n "${PEER_PID[$peer]:-}" ] && PEER_RSS="$PEER_RSS, $peer $(peak_rss_mib "${PEER_PID[$peer]}") MiB"
done

gib=$(echo "$SIZE / 1073741824" | bc -l)
echo
echo "# summary: $(stat -c %s "$FILE") bytes, chunk $CHUNK, checksum $CHECKSUM, TLS on loopback, $(nproc) cores, $ROUNDS rounds interleaved"
for c in $CLIENTS; do
  m=$(awk -v c="$c" '$2 == c {print $3}' "$RESULTS" | stats)
  cpu=$(awk -v c="$c" -v g="$gib" '$2 == c {print $5 / g}' "$RESULTS" | stats | cut -d' ' -f1)
  ccpu=$(awk -v c="$c" -v g="$gib" '$2 == c {print $4 / g}' "$RESULTS" | stats | cut -d' ' -f1)
  rss=$(awk -v c="$c" '$2 == c && $6 != "NA" {print $6}' "$RESULTS" | stats | cut -d' ' -f3)
  read -r med lo hi n <<<"$m"
  printf '%-9s MB/s median %s (min %s, max %s, n=%s)  client CPU s/GiB %s  server CPU s/GiB %s%s\n' \
    "$c" "$med" "$lo" "$hi" "$n" "$ccpu" "$cpu" "$([ "$rss" != NA ] && echo "  client peak RSS ${rss} MiB")"
done
echo "gateway peak RSS: ${RSS_WARM} MiB after the warm-ups, ${RSS_END} MiB after every 1 GiB run${PEER_RSS:+; peak RSS of the peers$PEER_RSS}"
[ -n "$SYNCS_LINE" ] && echo "$SYNCS_LINE"
ratio() { # A B: per-round MB/s ratio A/B
  local a=$1 b=$2
  [[ " $CLIENTS " == *" $a "* && " $CLIENTS " == *" $b "* ]] || return 0
  awk -v a="$a" -v b="$b" '$2 == a {x[$1] = $3} $2 == b {y[$1] = $3}
    END {for (r in x) if ((r in y) && y[r] > 0) printf "%d %.3f\n", r, x[r] / y[r]}' "$RESULTS" \
    | sort -n > "$RESULTS.ratio"
  printf 'ratio %s/%s per round: %s\n' "$a" "$b" "$(awk '{printf "%s ", $2}' "$RESULTS.ratio")"
  awk '{print $2}' "$RESULTS.ratio" | sort -g | awk -v a="$a" -v b="$b" '{v[NR]=$1} END {
      m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2
      printf "ratio %s/%s median %.2f (min %.2f, max %.2f, n=%d)\n", a, b, m, v[1], v[NR], NR }'
  rm -f "$RESULTS.ratio"
}
ratio curl node-curl
ratio curl rustus-curl
ratio js node-js
ratio js rustus-js
ratio sallyport js
ratio sallyport nginx
ratio js nginx
ratio sallyport curl
ratio sallyport before
echo "# command: ROUNDS=$ROUNDS CLIENTS=\"$CLIENTS\" CHUNK=$CHUNK CHECKSUM=$CHECKSUM${NO_BUILD:+ NO_BUILD=1}${BEFORE_BIN:+ BEFORE_BIN=<binary>} scripts/bench-upload.sh${1:+ $1}"
