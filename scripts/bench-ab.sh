#!/usr/bin/env bash
# A/B benchmark of two gateway binaries, interleaved, for before/after comparisons of a
# change (e.g. the previous commit's release build against this one's). Not a test: it
# prints figures.
#
#   scripts/bench-ab.sh A_BIN B_BIN [WORKDIR]
#
# Environment:
#   ROUNDS=6        rounds; each round measures every figure on both gateways, in the order
#                   A B on odd rounds and B A on even ones (drift hits both alike)
#   DL_MIB=1024     size of the ranged-less download artifact
#   UP_MIB=256      size of the tus upload (Upload-Checksum: sha256, curl)
#   UP_CHUNK=8388608  bytes per PATCH of that upload
#   RPS_SECONDS=8   wrk seconds per small-download run (1 KiB artifact, 16 connections)
#   BENCH_DIR       the shared bench harness (default <repo>/../shared/bench: lib.sh)
#   A_CONFIG, B_CONFIG  TOML appended to that gateway's configuration (e.g. a [blob] table:
#                   the same binary on two blob stores, as scripts/bench-s3.sh runs it)
#
# What it measures, per round and gateway, all over TLS on loopback:
#   dl   MB/s of a whole-file download of the DL_MIB artifact (curl, HTTP/1.1)
#   rps  requests/s of a 1 KiB signed-link download, every one durably audited (wrk)
#   up   MB/s of a UP_MIB tus upload in UP_CHUNK PATCHes with a SHA-256 each (one curl per
#        PATCH), and the gateway's CPU seconds over it
# and prints each figure's median for A and B, and the median and range of the per-round
# ratios B/A. Both gateways run at once on their own data directories with the embedded
# store (and the local blob store unless A_CONFIG or B_CONFIG say otherwise); only one is
# under load at any moment.
#
# For uploads with this build's own client (`sallyport client upload`, any chunk size)
# interleaved with the peers, scripts/bench-upload.sh has a `before` client instead.
#
# Everything goes to 127.0.0.1; loops are bounded. Needs curl, openssl, wrk (installed from
# Debian if missing).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A_BIN=${1:?A_BIN}; B_BIN=${2:?B_BIN}
WORK=$(mkdir -p "${3:-$ROOT/target/bench-ab}" && cd "${3:-$ROOT/target/bench-ab}" && pwd)
ROUNDS=${ROUNDS:-6}; DL_MIB=${DL_MIB:-1024}; UP_MIB=${UP_MIB:-256}; RPS_SECONDS=${RPS_SECONDS:-8}
UP_CHUNK=${UP_CHUNK:-8388608}
case "$UP_CHUNK" in ''|*[!0-9]*|0) echo "UP_CHUNK must be a positive integer" >&2; exit 2 ;; esac
[ $(( ((UP_MIB << 20) + UP_CHUNK - 1) / UP_CHUNK )) -le 10000 ] \
  || { echo "UP_MIB / UP_CHUNK must make at most 10000 PATCHes" >&2; exit 2; }
BENCH=${BENCH_DIR:-$ROOT/../shared/bench}
. "$BENCH/lib.sh"
for b in "$A_BIN" "$B_BIN"; do [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }; done
if ! command -v wrk >/dev/null; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null
fi

TOKEN=$(openssl rand -hex 32)
TOKEN_SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
AUTH="Authorization: Bearer $TOKEN"
echo "# preparing data in $WORK"
[ -f "$WORK/dl.bin" ] && [ "$(stat -c %s "$WORK/dl.bin")" = $((DL_MIB << 20)) ] \
  || head -c $((DL_MIB << 20)) /dev/urandom > "$WORK/dl.bin"
head -c 1024 /dev/urandom > "$WORK/small.bin"
[ -f "$WORK/up.bin" ] && [ "$(stat -c %s "$WORK/up.bin")" = $((UP_MIB << 20)) ] \
  || head -c $((UP_MIB << 20)) /dev/urandom > "$WORK/up.bin"
rm -rf "$WORK/chunks"; mkdir -p "$WORK/chunks"
split -b "$UP_CHUNK" -a 4 -d "$WORK/up.bin" "$WORK/chunks/c."
for c in "$WORK"/chunks/c.*; do openssl dgst -sha256 -binary "$c" | base64 -w0 > "$c.sum"; done

declare -A PID PORT DL_URL SMALL_URL
stop_all() { for g in A B; do [ -n "${PID[$g]:-}" ] && kill -TERM "${PID[$g]}" 2>/dev/null; done; wait 2>/dev/null || true; }
trap stop_all EXIT

start() { # NAME BIN
  local g=$1 bin=$2 dir=$WORK/gw-$1 i
  rm -rf "$dir"; mkdir -p "$dir/data/import"
  cat > "$dir/sallyport.toml" <<EOF
data_dir = "$dir/data"
[server]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn"
[[clients]]
name = "bench"
token_sha256 = "$TOKEN_SHA"
roles = ["admin"]
EOF
  local extra_var="${g}_CONFIG"
  printf '%s\n' "${!extra_var:-}" >> "$dir/sallyport.toml"
  "$bin" --config "$dir/sallyport.toml" serve > "$dir/out" 2> "$dir/err" &
  PID[$g]=$!
  for i in $(seq 1 100); do
    PORT[$g]=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$dir/out")
    [ -n "${PORT[$g]}" ] && break
    kill -0 "${PID[$g]}" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "${PORT[$g]}" ] || { echo "gateway $g did not start" >&2; cat "$dir/out" "$dir/err" >&2; exit 1; }
  cp "$WORK/dl.bin" "$dir/data/import/dl.bin"; cp "$WORK/small.bin" "$dir/data/import/small.bin"
  DL_URL[$g]=$(publish "$g" dl.bin); SMALL_URL[$g]=$(publish "$g" small.bin)
}

publish() { # NAME FILE -> a signed link
  local base="https://127.0.0.1:${PORT[$1]}" art
  art=$(curl -sk --fail -H "$AUTH" -H 'Content-Type: application/json' \
        -d "{\"import\":\"$2\",\"content_type\":\"application/octet-stream\"}" "$base/v1/artifacts" \
        | sed -n 's/.*"artifact":"\([^"]*\)".*/\1/p')
  [ -n "$art" ] || { echo "registering $2 on $1 failed" >&2; exit 1; }
  curl -sk --fail -H "$AUTH" -H 'Content-Type: application/json' \
    -d "{\"artifact\":\"$art\",\"partner\":\"bench\",\"ttl\":\"6h\"}" "$base/v1/links" \
    | sed -n 's/.*"url":"\([^"]*\)".*/\1/p'
}

dl() { # NAME -> MB/s
  curl -sk --http1.1 --fail --max-time 300 -o /dev/null -w '%{speed_download}\n' "${DL_URL[$1]}" \
    | awk '{printf "%.0f\n", $1/1e6}'
}

rps() { # NAME -> req/s
  timeout $((RPS_SECONDS + 15)) wrk -t2 -c16 -d"${RPS_SECONDS}s" "${SMALL_URL[$1]}" \
    | awk '/Requests\/sec/ {printf "%.0f\n", $2}'
}

up() { # NAME -> "MB/s server_cpu_s"
  local base="https://127.0.0.1:${PORT[$1]}" loc off=0 t0 t1 c0 c1 c
  c0=$(cpu_ticks "${PID[$1]}"); t0=$(date +%s.%N)
  loc=$(curl -sk --fail -X POST -H "$AUTH" -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $((UP_MIB << 20))" -D - -o /dev/null "$base/files/" \
        | awk -F': ' 'tolower($1)=="location" {gsub("\r",""); print $2}')
  case "$loc" in http*) ;; *) loc="$base$loc" ;; esac
  for c in "$WORK"/chunks/c.????; do
    curl -sk --http1.1 --fail -X PATCH -H "$AUTH" -H 'Tus-Resumable: 1.0.0' -H 'Expect:' \
      -H 'Content-Type: application/offset+octet-stream' -H "Upload-Offset: $off" \
      -H "Upload-Checksum: sha256 $(cat "$c.sum")" --data-binary "@$c" -o /dev/null "$loc"
    off=$((off + $(stat -c %s "$c")))
  done
  t1=$(date +%s.%N); c1=$(cpu_ticks "${PID[$1]}")
  # The finished upload is not read again; drop it so the disk holds one at a time.
  curl -sk -X DELETE -H "$AUTH" -H 'Tus-Resumable: 1.0.0' -o /dev/null "$loc" || true
  awk -v b=$((UP_MIB << 20)) -v t0="$t0" -v t1="$t1" -v c=$((c1 - c0)) -v hz="$TICKS_PER_S" \
    'BEGIN {printf "%.0f %.2f\n", b/(t1-t0)/1e6, c/hz}'
}

echo "# starting A=$A_BIN and B=$B_BIN"
start A "$A_BIN"; start B "$B_BIN"
# Warm-up, untimed: each artifact read once, one small upload path exercised.
for g in A B; do dl "$g" >/dev/null; rps "$g" >/dev/null; done

R=$WORK/rounds.txt; : > "$R"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
  for g in $order; do
    wait_quiet 60 >/dev/null 2>&1 || true
    d=$(dl "$g"); q=$(rps "$g"); u=$(up "$g")
    echo "$r $g $d $q $u" | tee -a "$R"
  done
done

echo
echo "# round gateway dl_MB/s rps up_MB/s up_server_cpu_s  (above); medians and B/A ratios:"
for col in 3:dl_MB/s 4:rps 5:up_MB/s 6:up_cpu_s; do
  n=${col%%:*}; name=${col#*:}
  a=$(awk -v n="$n" '$2=="A" {print $n}' "$R" | stats | awk '{print $1}')
  b=$(awk -v n="$n" '$2=="B" {print $n}' "$R" | stats | awk '{print $1}')
  ratios=$(awk -v n="$n" '{v[$1" "$2]=$n} END {for (r=1; ("" r " A") in v; r++) if (v[r" A"] > 0) printf "%.4f\n", v[r" B"]/v[r" A"]}' "$R" \
    | sort -g | awk '{v[NR]=$1} END {m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.3f %.3f %.3f %d\n", m, v[1], v[NR], NR}')
  printf '%-10s A %8s  B %8s  B/A median %s (min %s max %s, n=%s)\n' "$name" "$a" "$b" $ratios
done
echo "# command: ROUNDS=$ROUNDS DL_MIB=$DL_MIB UP_MIB=$UP_MIB UP_CHUNK=$UP_CHUNK RPS_SECONDS=$RPS_SECONDS scripts/bench-ab.sh <A binary> <B binary>"
