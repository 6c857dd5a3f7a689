#!/usr/bin/env bash
# TLS scan of the gateway with testssl.sh (Debian package `testssl.sh`, installed if
# missing): protocols, cipher suites, vulnerabilities, certificate and headers. Starts a
# release build on loopback with its development CA, scans it, and fails if anything is
# rated above LOW except what the self-signed development CA causes (listed as such, with
# how a production certificate clears it: see docs/configuration.md, "TLS").
#
# Usage: scripts/tls-scan.sh [WORKDIR]
#   env: GATEWAY_BIN=<binary> (else cargo build --release)
#        BENCH_DIR=<repo>/../shared/bench (the shared helpers: lib.sh)
#        TESTSSL=<testssl.sh command> (default: testssl, else testssl.sh)
# Exit: 0 clean (apart from the development CA's findings), 1 findings, 2 setup error.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-$ROOT/target/tls-scan}" && cd "${1:-$ROOT/target/tls-scan}" && pwd)
BENCH_SRC=${BENCH_DIR:-$ROOT/../shared/bench}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$TARGET/release/sallyport}
[ -f "$BENCH_SRC/lib.sh" ] || { echo "no lib.sh in $BENCH_SRC (set BENCH_DIR)" >&2; exit 2; }
. "$BENCH_SRC/lib.sh"
TESTSSL=${TESTSSL:-$(command -v testssl || command -v testssl.sh || true)}
if [ -z "$TESTSSL" ]; then
  echo "# installing testssl.sh from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q testssl.sh > "$WORK/apt.log" 2>&1 \
    || { echo "could not install testssl.sh (see $WORK/apt.log)" >&2; exit 2; }
  TESTSSL=$(command -v testssl || command -v testssl.sh)
fi
for tool in openssl python3; do
  command -v "$tool" > /dev/null || { echo "$tool is required" >&2; exit 2; }
done
if [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi

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
EOF
chmod 600 "$DATA.toml"
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
must_be_loopback "https://127.0.0.1:$PORT/"

echo "# scanning 127.0.0.1:$PORT with $("$TESTSSL" --version 2>/dev/null | grep -m1 -o 'testssl.sh [^ ]*' || echo testssl.sh)"
rm -f "$WORK/scan.json"
# --ip one: no DNS; --warnings batch: no prompts; the development CA is not in any trust
# store, and that is exactly what the allowlist below names.
"$TESTSSL" --quiet --color 0 --warnings batch --ip one --severity LOW \
  --jsonfile "$WORK/scan.json" "127.0.0.1:$PORT" > "$WORK/scan.txt" 2>&1 || true
[ -s "$WORK/scan.json" ] || { echo "testssl.sh wrote no results:" >&2; tail -20 "$WORK/scan.txt" >&2; exit 2; }

python3 - "$WORK/scan.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
if isinstance(findings, dict):
    findings = findings.get("scanResult", [findings])
rank = {"OK": 0, "INFO": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4, "WARN": 2}
# Findings the self-signed development CA causes, and what clears them in production.
DEV_CA = {
    "cert_chain_of_trust": "a certificate from a CA the clients trust ([tls] cert_file/key_file)",
    "cert_trust": "a certificate whose SAN names the host the clients use",
    "cert_ocspURL": "a CA that publishes OCSP (or accept CRL-only)",
    "cert_crlDistributionPoints": "a CA that publishes a CRL",
    "OCSP_stapling": "OCSP stapling needs an OCSP responder: not offered with the dev CA",
    "cert_certificateTransparency": "a publicly logged certificate (public CAs do this)",
    "DNS_CAArecord": "a CAA record for the host's domain",
    "cert_expirationStatus": "a certificate renewed before expiry",
    "cert_caIssuers": "a CA certificate that names its issuer's URL",
    "cert_revocation": "a certificate whose CA publishes a CRL or OCSP URI in it",
}
worst, failing, dev = 0, [], []
for f in findings:
    sev = f.get("severity", "INFO")
    r = rank.get(sev, 0)
    if r <= 1:
        continue
    fid = f.get("id", "?")
    base = next((k for k in DEV_CA if fid.startswith(k)), None)
    line = f"{sev:8} {fid}: {f.get('finding', '')}"
    if base:
        dev.append(f"{line}\n           (development CA; in production: {DEV_CA[base]})")
    else:
        failing.append(line)
        worst = max(worst, r)
print(f"# {len(findings)} results at LOW or above; above LOW: {len(failing)} findings, "
      f"{len(dev)} caused by the development CA")
for line in dev:
    print("dev-ca  ", line)
for line in failing:
    print("FINDING ", line)
sys.exit(1 if failing else 0)
PY
