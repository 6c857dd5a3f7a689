#!/usr/bin/env bash
# Seal benchmark: how fast the gateway verifies a sealed batch (read every member from the
# at-rest store, decrypt segment by segment, SHA-256, check every NDJSON line) against
# `sha256sum` over the same plaintext files, and whether its memory stays flat in batch
# size. Not a test: it prints figures. Target: seal >= 0.7x sha256sum.
#
# Usage: scripts/bench-seal.sh [WORKDIR]
#   env: ROUNDS=3  SIZES="256 1024" (batch sizes in MiB)  CHUNK=67108864 (tus PATCH size)
#        BENCH_DIR=<repo>/../shared/bench (the shared helpers: lib.sh)
#        CARGO_TARGET_DIR (where the release build goes; default <repo>/target)
#        GATEWAY_BIN=<binary> (measure this binary instead of building)
#
# What it does:
#   1. cargo build --release (unless GATEWAY_BIN); generates, once, one batch per size of
#      synthetic FHIR R4 NDJSON (Patient, Encounter and two Observation members; about
#      1/8, 1/8, 3/8, 3/8 of the size) and its manifest, with a small Python generator;
#   2. starts the gateway (fresh data directory, an uploader and an auditor with random
#      tokens, loopback only);
#   3. ROUNDS times, per size, interleaved: opens a fresh batch (a batch seals once),
#      uploads its members with curl speaking tus (untimed), resets the gateway's peak RSS
#      (/proc/PID/clear_refs), seals, polls the batch until its verdict (wall clock from the
#      seal request to the verdict), reads the peak RSS of the seal (VmHWM), checks the
#      batch was released, purges it (untimed, frees the disk); then times `sha256sum` over
#      the same plaintext files;
#   4. prints per size the medians: seal MB/s, sha256sum MB/s, their ratio, the seal's
#      peak RSS (flat in batch size = memory bounded by the segment and line limits).
#
# Caveat, stated in the output: sha256sum reads plaintext the page cache probably holds;
# the seal reads ciphertext the gateway asked the kernel not to keep cached, so it may
# read from the disk. MB = 10^6 bytes. Needs curl, openssl, python3, sha256sum.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-$ROOT/target/bench-seal}" && cd "${1:-$ROOT/target/bench-seal}" && pwd)
BENCH_SRC=${BENCH_DIR:-$ROOT/../shared/bench}
ROUNDS=${ROUNDS:-3}; SIZES=${SIZES:-256 1024}; CHUNK=${CHUNK:-67108864}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$TARGET/release/sallyport}
[ -f "$BENCH_SRC/lib.sh" ] || { echo "no lib.sh in $BENCH_SRC (set BENCH_DIR)" >&2; exit 2; }
. "$BENCH_SRC/lib.sh"
for tool in curl openssl python3 sha256sum; do
  command -v "$tool" > /dev/null || { echo "$tool is required" >&2; exit 2; }
done

if [ -z "${GATEWAY_BIN:-}" ]; then
  echo "# building the release binary"
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi
echo "# gateway: $BIN"

# --- 1. the batches: NDJSON members and a manifest per size ---------------------------
gen_batch() { # DIR MIB
  python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
out, mib = sys.argv[1], int(sys.argv[2])
total = mib << 20
os.makedirs(out, exist_ok=True)
FAM = ["Testwood", "Brightfield", "Synthby", "Mockridge", "Placeholm", "Sampleton"]
GIV = ["Ada", "Birk", "Cato", "Dalia", "Eero", "Fenna", "Gus", "Hedda"]
OBS = [("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
       ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL"),
       ("8867-4", "Heart rate", "/min"), ("8480-6", "Systolic blood pressure", "mm[Hg]")]
META = '"meta":{"tag":[{"system":"urn:sallyport:test","code":"synthetic"}]}'
def patient(i):
    return ('{"resourceType":"Patient","id":"pat-%08d",%s,"identifier":[{"system":'
            '"urn:oid:2.16.840.1.113883.3.7204.99.1","value":"SYN-%08d"}],"name":[{"family":"%s",'
            '"given":["%s"]}],"gender":"%s","birthDate":"%d-%02d-%02d"}\n'
            % (i, META, i, FAM[i % 6], GIV[i % 8], ("female", "male")[i % 2],
               1930 + i % 90, 1 + i % 12, 1 + i % 28))
def encounter(i):
    return ('{"resourceType":"Encounter","id":"enc-%08d",%s,"status":"finished","class":'
            '{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},'
            '"subject":{"reference":"Patient/pat-%08d"},"period":{"start":"2026-%02d-%02dT08:00:00Z",'
            '"end":"2026-%02d-%02dT08:30:00Z"}}\n'
            % (i, META, i % 100000, 1 + i % 11, 1 + i % 28, 1 + i % 11, 1 + i % 28))
def observation(i):
    code, display, unit = OBS[i % 4]
    return ('{"resourceType":"Observation","id":"obs-%08d",%s,"status":"final","code":{"coding":'
            '[{"system":"http://loinc.org","code":"%s","display":"%s"}]},"subject":{"reference":'
            '"Patient/pat-%08d"},"effectiveDateTime":"2026-%02d-%02dT%02d:%02d:00Z","valueQuantity":'
            '{"value":%d.%d,"unit":"%s","system":"http://unitsofmeasure.org","code":"%s"}}\n'
            % (i, META, code, display, i % 100000, 1 + i % 11, 1 + i % 28, i % 24, i % 60,
               40 + i % 150, i % 10, unit, unit))
members = []
for name, rt, make, share, base in [("Patient.ndjson", "Patient", patient, 1, 0),
                                    ("Encounter.ndjson", "Encounter", encounter, 1, 0),
                                    ("Observation-1.ndjson", "Observation", observation, 3, 0),
                                    ("Observation-2.ndjson", "Observation", observation, 3,
                                     50000000)]:
    want, size, records, h = total * share // 8, 0, 0, hashlib.sha256()
    with open(os.path.join(out, name), "wb") as f:
        buf = []
        while size < want:
            line = make(base + records + 1).encode()
            buf.append(line); size += len(line); records += 1
            if len(buf) == 4096:
                block = b"".join(buf); f.write(block); h.update(block); buf = []
        block = b"".join(buf); f.write(block); h.update(block)
    members.append({"name": name, "size": size, "sha256": h.hexdigest(),
                    "media_type": "application/fhir+ndjson",
                    "ndjson": {"resource_type": rt, "records": records}})
manifest = {"version": "sallyport.manifest/1", "members": members,
            "total_members": len(members), "total_bytes": sum(m["size"] for m in members)}
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2)
PY
}
for size in $SIZES; do
  dir=$WORK/batch-$size
  if [ ! -f "$dir/manifest.json" ]; then
    echo "# generating a $size MiB batch in $dir"
    rm -rf "$dir"; gen_batch "$dir" "$size"
  fi
done

# --- 2. the gateway -----------------------------------------------------------------------
UP_TOKEN=$(openssl rand -hex 32); AUD_TOKEN=$(openssl rand -hex 32)
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
GW_PID=
stop_gateway() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  fi
  GW_PID=
}
trap 'stop_gateway' EXIT
DATA=$WORK/data
rm -rf "$DATA"; mkdir -p "$DATA"
cat > "$DATA.toml" <<EOF
data_dir = "$DATA"
[server]
listen = "127.0.0.1:0"
[log]
format = "text"
level = "warn"
[[clients]]
name = "bench-clinic"
token_sha256 = "$(sha "$UP_TOKEN")"
roles = ["uploader"]
[[clients]]
name = "bench-auditor"
token_sha256 = "$(sha "$AUD_TOKEN")"
roles = ["auditor"]
EOF
"$BIN" --config "$DATA.toml" serve > "$DATA.out" 2> "$DATA.err" &
GW_PID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$DATA.out")
  [ -n "$PORT" ] && break
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "the gateway did not start:" >&2; cat "$DATA.out" "$DATA.err" >&2; exit 1; }
BASE=https://127.0.0.1:$PORT
must_be_loopback "$BASE/"
CA=$DATA/dev-ca/ca.pem
api() { # METHOD PATH TOKEN [BODYFILE] -> body on stdout; fails on a non-2xx status
  local args=(-sS --fail-with-body --cacert "$CA" --max-time 600 -X "$1" -H "Authorization: Bearer $3")
  [ -n "${4:-}" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$4")
  curl "${args[@]}" "$BASE$2"
}
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1"; }
b64() { printf %s "$1" | base64 -w0; }

open_and_upload() { # DIR -> prints the batch id
  local dir=$1 body id name size loc off n
  body=$(mktemp)
  { printf '{"manifest": '; cat "$dir/manifest.json"; printf '}'; } > "$body"
  id=$(api POST /v1/batches "$UP_TOKEN" "$body" | json_field id)
  rm -f "$body"
  for f in "$dir"/*.ndjson; do
    name=$(basename "$f"); size=$(stat -c %s "$f")
    loc=$(curl -sS --fail-with-body --cacert "$CA" -o /dev/null -D - -X POST \
      -H "Authorization: Bearer $UP_TOKEN" -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $size" \
      -H "Upload-Metadata: filename $(b64 "$name"),batch $(b64 "$id"),member $(b64 "$name")" \
      "$BASE/files/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$loc" ] || { echo "creation of $name refused" >&2; exit 1; }
    case "$loc" in http*) ;; *) loc=$BASE$loc ;; esac
    off=0; n=0
    while [ "$off" -lt "$size" ]; do
      dd if="$f" bs="$CHUNK" skip="$n" count=1 status=none |
        curl -sS --fail-with-body --cacert "$CA" -o /dev/null -X PATCH \
          -H "Authorization: Bearer $UP_TOKEN" -H 'Tus-Resumable: 1.0.0' \
          -H "Upload-Offset: $off" -H 'Content-Type: application/offset+octet-stream' \
          --data-binary @- "$loc"
      n=$((n + 1)); off=$((n * CHUNK)); [ "$off" -gt "$size" ] && off=$size
    done
  done
  echo "$id"
}

now() { date +%s.%N; }

# --- 3. the rounds ------------------------------------------------------------------------
RESULTS=$WORK/results.txt; : > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    dir=$WORK/batch-$size
    bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_bytes"])' "$dir/manifest.json")
    id=$(open_and_upload "$dir")
    wait_quiet 60 15
    # Reset the peak RSS, so VmHWM afterwards is the seal's own peak.
    reset=yes; echo 5 > "/proc/$GW_PID/clear_refs" 2>/dev/null || reset=no
    t0=$(now)
    api POST "/v1/batches/$id/seal" "$UP_TOKEN" > /dev/null
    while :; do
      state=$(api GET "/v1/batches/$id" "$UP_TOKEN" | json_field state)
      [ "$state" != sealing ] && break
      sleep 0.05
    done
    t1=$(now)
    rss=$(peak_rss_mib "$GW_PID")
    [ "$state" = released ] || {
      echo "batch $id: $state, not released:" >&2
      api GET "/v1/batches/$id/report" "$UP_TOKEN" >&2; exit 1; }
    body=$(mktemp); printf '{"reason": "bench round %s"}' "$round" > "$body"
    api POST "/v1/batches/$id/purge" "$AUD_TOKEN" "$body" > /dev/null; rm -f "$body"
    t2=$(now)
    sha256sum "$dir"/*.ndjson > /dev/null
    t3=$(now)
    seal_mbps=$(echo "$bytes $t0 $t1" | awk '{printf "%.1f", $1/($3-$2)/1e6}')
    sum_mbps=$(echo "$bytes $t2 $t3" | awk '{printf "%.1f", $1/($3-$2)/1e6}')
    echo "$size $seal_mbps $sum_mbps $rss" >> "$RESULTS"
    printf 'round %s  %5s MiB  seal %7s MB/s  sha256sum %7s MB/s  seal peak RSS %s MiB (reset: %s)\n' \
      "$round" "$size" "$seal_mbps" "$sum_mbps" "$rss" "$reset"
  done
done
stop_gateway

# --- 4. medians ---------------------------------------------------------------------------
echo
echo "# summary: $ROUNDS rounds, $(nproc) cores, TLS on loopback, MB = 10^6 bytes"
echo "# (sha256sum reads plaintext that is probably in the page cache; the seal reads and"
echo "#  decrypts the stored ciphertext, which the gateway keeps out of the cache)"
for size in $SIZES; do
  seal=$(awk -v s="$size" '$1 == s {print $2}' "$RESULTS" | stats | awk '{print $1}')
  sum=$(awk -v s="$size" '$1 == s {print $3}' "$RESULTS" | stats | awk '{print $1}')
  rss=$(awk -v s="$size" '$1 == s {print $4}' "$RESULTS" | stats | awk '{print $1}')
  ratio=$(echo "$seal $sum" | awk '{printf "%.2f", $1/$2}')
  printf '%5s MiB batch: seal median %s MB/s, sha256sum median %s MB/s, ratio %sx (target >= 0.7x), seal peak RSS median %s MiB\n' \
    "$size" "$seal" "$sum" "$ratio" "$rss"
done
echo "# command: ROUNDS=$ROUNDS SIZES=\"$SIZES\" CHUNK=$CHUNK scripts/bench-seal.sh $WORK"
