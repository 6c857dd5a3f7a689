#!/usr/bin/env bash
# The S3 blob store next to the local one, in one interleaved run: the same gateway binary
# twice, A on the local blob store and B on an S3-compatible server, through
# scripts/bench-ab.sh (whole-file download, 1 KiB durably audited downloads, a tus upload in
# 8 MiB PATCHes with SHA-256). Prints each figure's medians and the B/A (S3 / local) ratios.
# Not a test: it prints figures.
#
#   scripts/bench-s3.sh GATEWAY_BIN [WORKDIR]
#
# Environment:
#   S3_ENDPOINT     an S3-compatible server to use (http://127.0.0.1:PORT or https://…);
#                   unset: the tests' moto server (tests/servers/, pinned) is installed into
#                   WORKDIR/venv and started on a free 127.0.0.1 port for the run
#   S3_BUCKET       with S3_ENDPOINT: the bucket (default sallyport-bench, must exist)
#   S3_CREDENTIALS  with S3_ENDPOINT: a 0600 file of access_key_id / secret_access_key
#   ROUNDS, DL_MIB, UP_MIB, RPS_SECONDS as bench-ab.sh (defaults here: 4, 256, 128, 6)
#
# What the ratio means depends on the server: moto is a single Python process keeping
# objects in memory, so against it the figures measure moto as much as the adapter. Quote
# the server with the figures. Everything goes to 127.0.0.1 unless S3_ENDPOINT says
# otherwise; loops are bounded.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:?GATEWAY_BIN}
WORK=$(mkdir -p "${2:-$ROOT/target/bench-s3}" && cd "${2:-$ROOT/target/bench-s3}" && pwd)
export ROUNDS=${ROUNDS:-4} DL_MIB=${DL_MIB:-256} UP_MIB=${UP_MIB:-128} RPS_SECONDS=${RPS_SECONDS:-6}

MOTO_PID=
stop_moto() { [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap stop_moto EXIT

if [ -z "${S3_ENDPOINT:-}" ]; then
  echo "# installing the pinned moto into $WORK/venv"
  [ -x "$WORK/venv/bin/python" ] || python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q -r "$ROOT/tests/servers/moto-requirements.txt"
  S3_BUCKET=sallyport-bench
  # The launcher runs until its standard input closes: a FIFO held open by this script.
  mkfifo "$WORK/moto.stdin" 2>/dev/null || true
  "$WORK/venv/bin/python" "$ROOT/tests/servers/moto_s3.py" --bucket "$S3_BUCKET" \
    < "$WORK/moto.stdin" > "$WORK/moto.out" 2> "$WORK/moto.err" &
  MOTO_PID=$!
  exec 9> "$WORK/moto.stdin"
  port=
  for _ in $(seq 1 100); do
    port=$(sed -n 's/.*"port": *\([0-9]*\).*/\1/p' "$WORK/moto.out")
    [ -n "$port" ] && break
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$port" ] || { echo "moto did not start" >&2; cat "$WORK/moto.err" >&2; exit 1; }
  S3_ENDPOINT="http://127.0.0.1:$port"
  S3_CREDENTIALS=$WORK/s3.credentials
  printf 'access_key_id = bench\nsecret_access_key = bench-secret\n' > "$S3_CREDENTIALS"
  chmod 600 "$S3_CREDENTIALS"
  echo "# moto on $S3_ENDPOINT"
fi
: "${S3_CREDENTIALS:?S3_CREDENTIALS (a 0600 key file) goes with S3_ENDPOINT}"

export A_CONFIG=""
export B_CONFIG="[blob]
backend = \"s3\"
endpoint = \"$S3_ENDPOINT\"
bucket = \"${S3_BUCKET:-sallyport-bench}\"
prefix = \"bench-$(date +%s)/\"
credentials_file = \"$S3_CREDENTIALS\""
echo "# A = local blob store, B = S3 ($S3_ENDPOINT)"
"$ROOT/scripts/bench-ab.sh" "$BIN" "$BIN" "$WORK/ab"
