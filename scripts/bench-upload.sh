#!/usr/bin/env bash
# Upload benchmark (issue 4): a 1 GiB file through the release gateway over TLS on
# loopback, 8 MiB tus chunks, each with `Upload-Checksum: sha256`, so every byte goes
# through TLS decrypt, the per-chunk SHA-256 (verification + ledger), the whole-file
# SHA-256, AES-256-GCM at rest and an fsync per chunk. Not a test: it prints figures.
#
# Usage: scripts/bench-upload.sh [WORKDIR]
#   env: REPS=5  CLIENTS="js curl"  CHUNK=8388608  CHECKSUM=sha256
#        CLIENTS may also name `sallyport`: this binary's own `sallyport client upload`
#        (sha256 per chunk always; one file, so one connection at a time, like the others;
#        its whole-file check against the server's ledger is inside the timed run)
#        CURL_HTTP=1.1 (the curl client's PATCHes over HTTP/1.1, as tus-js-client under node,
#        tuspy and the peer measurements in BASELINE.md all are; CURL_HTTP=2 lets curl
#        negotiate h2, which costs curl itself about 3x the CPU: nghttp2's framing)
#        BENCH_DIR=<repo>/../shared/bench (the shared peer scripts: tus_bench.sh & co.)
#        CARGO_TARGET_DIR (where the release build goes; default <repo>/target)
#        GATEWAY_BIN=<binary> (measure this binary instead of building; for before/after;
#        not SALLYPORT_*: the gateway reads those as configuration overrides)
#
# What it does:
#   1. cargo build --release; `tus_setup.sh WORKDIR 1` (npm deps for tus-js-client, a 1 GiB
#      random file WORKDIR/upload.bin; rustus is skipped);
#   2. copies the shared bench scripts to WORKDIR/bench and adds the gateway's bearer token
#      to their requests (they were written for peers without authentication); every
#      patch is checked, the copies are otherwise unchanged;
#   3. per client (tus-js-client, then the lean curl client): a fresh gateway with its own
#      data directory and a random uploader token; a warm-up upload of 128 MiB and its peak
#      RSS; then `tus_bench.sh` with REPS uploads of the 1 GiB file and SERVER_PID set, and
#      the peak RSS again (equal peaks = memory flat in file size). After every upload
#      tus_bench.sh empties the gateway's blob directory and syncs, untimed (CLEAN_DIR, as
#      in the peer baseline): the finished uploads' ciphertext is not read again, the disk
#      holds one upload at a time, and one run's writeback does not land in the next;
#   4. prints MB/s (median, min, max), the server's CPU seconds per GiB (median) and peak
#      RSS per client, and the exact commands.
#
# Everything goes to 127.0.0.1; the shared scripts refuse any other address and bound
# their loops. Needs node/npm (for tus-js-client), curl, openssl, bc.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-$ROOT/target/bench-upload}" && cd "${1:-$ROOT/target/bench-upload}" && pwd)
BENCH_SRC=${BENCH_DIR:-$ROOT/../shared/bench}
REPS=${REPS:-5}; CLIENTS=${CLIENTS:-js curl}; CHUNK=${CHUNK:-8388608}; CHECKSUM=${CHECKSUM:-sha256}
CURL_HTTP=${CURL_HTTP:-1.1}
case "$CURL_HTTP" in 1.1|2) ;; *) echo "CURL_HTTP must be 1.1 or 2" >&2; exit 2 ;; esac
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$TARGET/release/sallyport}
[ -x "$BENCH_SRC/tus_bench.sh" ] || { echo "no tus_bench.sh in $BENCH_SRC (set BENCH_DIR)" >&2; exit 2; }

if [ -z "${GATEWAY_BIN:-}" ]; then
  echo "# building the release binary"
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
echo "# gateway: $BIN"

echo "# setting up the clients and the 1 GiB file in $WORK"
"$BENCH_SRC/tus_setup.sh" "$WORK" 1 > "$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log"; exit 1; }

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

TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
export TUS_AUTHORIZATION="Bearer $TOKEN" TUS_AUTHORIZATION_HEADER="Authorization: Bearer $TOKEN"

GW_PID=
stop_gateway() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  fi
  GW_PID=
}
trap 'stop_gateway' EXIT

start_gateway() { # DATADIR -> sets GW_PID, PORT
  local dir=$1
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
  "$BIN" --config "$dir.toml" serve > "$dir.out" 2> "$dir.err" &
  GW_PID=$!
  local i
  for i in $(seq 1 100); do
    PORT=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir.out")
    [ -n "$PORT" ] && return 0
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the gateway did not start:" >&2; cat "$dir.out" "$dir.err" >&2; exit 1
}

. "$WORK/bench/lib.sh"

# `sallyport client upload` REPS times: the same output lines as tus_bench.sh
# ("run MB/s client_cpu_s server_cpu_s", then "MB/s median min max n").
sallyport_bench() { # EP FILE REPS
  local ep=$1 file=$2 reps=$3 r size t0 t1 s0 s1 cu cs R
  must_be_loopback "$ep"
  size=$(stat -c %s "$file"); R=$(mktemp)
  printf '%s\n' "$TOKEN" > "$WORK/bench.token"; chmod 600 "$WORK/bench.token"
  cat "$file" > /dev/null
  for r in $(seq "$reps"); do
    wait_quiet 60 2>/dev/null
    rm -rf "$WORK/client-state"
    s0=$(cpu_ticks "$GW_PID"); t0=$(date +%s.%N)
    timeout 600 /usr/bin/time -f '%U %S' -o "$WORK/client.time" "$BIN" client upload --json \
      --to "$ep" --cacert "$GW_DIR/dev-ca/ca.pem" --token-file "$WORK/bench.token" \
      --state-dir "$WORK/client-state" --chunk-size "$CHUNK" "$file" > "$WORK/client.json"
    t1=$(date +%s.%N); s1=$(cpu_ticks "$GW_PID")
    grep -q '"type":"summary".*"verified":1' "$WORK/client.json" \
      || { echo "sallyport client upload did not verify:" >&2; cat "$WORK/client.json" >&2; exit 1; }
    read -r cu cs < "$WORK/client.time"
    awk -v r="$r" -v b="$size" -v t0="$t0" -v t1="$t1" -v c="$(echo "$cu + $cs" | bc)" \
      -v st=$((s1 - s0)) -v hz="$TICKS_PER_S" \
      'BEGIN {printf "%d %.1f %.2f %.2f\n", r, b / (t1 - t0) / 1e6, c, st/hz}'
    find "$GW_DIR/blobs" -mindepth 1 -delete; sync
  done > "$R"
  cat "$R"; awk '{print $2}' "$R" | stats | { read -r m lo hi n; echo "MB/s median $m  min $lo  max $hi  n=$n"; }
  rm -f "$R"
}
head -c $((128 << 20)) "$WORK/upload.bin" > "$WORK/warmup.bin"
SUMMARY=$(mktemp); trap 'stop_gateway; rm -f "$SUMMARY"' EXIT
for client in $CLIENTS; do
  echo "# client: $client"
  start_gateway "$WORK/data-$client"
  GW_DIR=$WORK/data-$client
  EP="https://127.0.0.1:$PORT/files/"
  if [ "$client" = sallyport ]; then
    EP="https://localhost:$PORT/files/"   # the dev certificate names localhost
    sallyport_bench "$EP" "$WORK/warmup.bin" 1 > "$WORK/warmup-$client.log"
    rss_small=$(peak_rss_mib "$GW_PID")
    echo "\$ sallyport_bench $EP $WORK/upload.bin $REPS   # $BIN client upload --chunk-size $CHUNK"
    sallyport_bench "$EP" "$WORK/upload.bin" "$REPS" | tee "$WORK/bench-$client.log"
    rss_big=$(peak_rss_mib "$GW_PID")
    cpu=$(grep -E '^[0-9]+ ' "$WORK/bench-$client.log" | awk '{print $4}' | stats | awk '{print $1}')
    mbps=$(grep '^MB/s' "$WORK/bench-$client.log")
    printf '%-4s  %s  server CPU s/GiB median %s  peak RSS %s MiB (after a 128 MiB upload: %s MiB)\n' \
      "$client" "$mbps" "$cpu" "$rss_big" "$rss_small" >> "$SUMMARY"
    stop_gateway; rm -rf "$WORK/data-$client"
    continue
  fi
  CLEAN_DIR=$WORK/data-$client/blobs CLIENT=$client REPS=1 CHUNK=$CHUNK CHECKSUM=$CHECKSUM \
    "$WORK/bench/tus_bench.sh" \
    "$EP" "$WORK/warmup.bin" "$WORK/node" > "$WORK/warmup-$client.log" 2>&1 \
    || { cat "$WORK/warmup-$client.log"; exit 1; }
  rss_small=$(peak_rss_mib "$GW_PID")
  cmd="CLEAN_DIR=$WORK/data-$client/blobs SERVER_PID=$GW_PID CLIENT=$client REPS=$REPS CHUNK=$CHUNK CHECKSUM=$CHECKSUM $WORK/bench/tus_bench.sh $EP $WORK/upload.bin $WORK/node"
  echo "\$ $cmd"
  CLEAN_DIR=$WORK/data-$client/blobs SERVER_PID=$GW_PID CLIENT=$client REPS=$REPS \
    CHUNK=$CHUNK CHECKSUM=$CHECKSUM "$WORK/bench/tus_bench.sh" "$EP" "$WORK/upload.bin" "$WORK/node" | tee "$WORK/bench-$client.log"
  rss_big=$(peak_rss_mib "$GW_PID")
  cpu=$(grep -E '^[0-9]+ ' "$WORK/bench-$client.log" | awk '{print $4}' | stats | awk '{print $1}')
  mbps=$(grep '^MB/s' "$WORK/bench-$client.log")
  printf '%-4s  %s  server CPU s/GiB median %s  peak RSS %s MiB (after a 128 MiB upload: %s MiB)\n' \
    "$client" "$mbps" "$cpu" "$rss_big" "$rss_small" >> "$SUMMARY"
  stop_gateway
  rm -rf "$WORK/data-$client"
done
echo
echo "# summary: 1 GiB, chunk $CHUNK, checksum $CHECKSUM, TLS on loopback, $(nproc) cores, curl over HTTP/$CURL_HTTP"
cat "$SUMMARY"
