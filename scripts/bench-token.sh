#!/usr/bin/env bash
# SMART token-endpoint benchmark: POST /auth/token requests per second with ES384 and with
# RS384 client assertions, against a real gateway over TLS on this machine.
#
#   scripts/bench-token.sh [WORKDIR]
#
# Environment:
#   DURATION=10 RUNS=3     wrk seconds per run and runs per algorithm (16 connections,
#                          2 threads, keep-alive)
#   PORT=9444              the gateway's port
#   NO_BUILD=1             use the existing target/release/sallyport
#   GATEWAY_BIN=<binary>   measure this binary (implies no build)
#   ASSERTIONS=40000       assertions signed per algorithm before the runs (each jti is
#                          used once; a run that exhausts them shows non-2xx answers)
#   BENCH_DIR              the shared bench harness (default <repo>/../shared/bench)
#
# What it does: makes an ES384 and an RS384 client key (python3 `cryptography`), registers
# both clients with their public JWKS, starts the gateway (embedded state, audit on as
# always: every issued token is a durable audit entry and a jti insert), signs ASSERTIONS
# assertions per algorithm ahead of time (client-side cost, not measured), then has wrk
# send each exactly once as a token request and prints requests/s, p50/p99 latency and the
# non-2xx count per run, then the median. The status-poll figure of issue 13 waits for the
# Bulk status endpoint (item 2).
#
# Nothing here is committed; WORKDIR (default: a new /tmp directory) holds keys and data.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$HERE/../shared/bench}
WORK=${1:-$(mktemp -d /tmp/sallyport-token.XXXXXX)}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
DURATION=${DURATION:-10}; RUNS=${RUNS:-3}; PORT=${PORT:-9444}; N=${ASSERTIONS:-40000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
BIN=${GATEWAY_BIN:-$CARGO_TARGET_DIR/release/sallyport}
. "$BENCH/lib.sh"
BASE="https://localhost:$PORT"
must_be_loopback "$BASE"

SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
command -v wrk >/dev/null || { echo "installing wrk from Debian"; $SUDO apt-get update -qq && $SUDO apt-get install -y -qq wrk >/dev/null; }
python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography
if [ -z "${NO_BUILD:-}" ] && [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$HERE" && cargo build --release --bin sallyport)
fi

GW_PID=
cleanup() { [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null || true; }
trap cleanup EXIT

# Keys, JWKS and ahead-of-time assertions (one form body per line).
python3 - "$WORK" "$BASE/auth/token" "$N" <<'PY'
import base64, json, os, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from urllib.parse import urlencode
work, aud, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
uint = lambda i, l=None: i.to_bytes(l or (i.bit_length() + 7) // 8, "big")
es, rs = ec.generate_private_key(ec.SECP384R1()), rsa.generate_private_key(65537, 2048)
e_pub, r_pub = es.public_key().public_numbers(), rs.public_key().public_numbers()
jwks = {
    "es": {"keys": [{"kty": "EC", "crv": "P-384", "alg": "ES384", "kid": "es", "x": b64(uint(e_pub.x, 48)), "y": b64(uint(e_pub.y, 48))}]},
    "rs": {"keys": [{"kty": "RSA", "alg": "RS384", "kid": "rs", "n": b64(uint(r_pub.n)), "e": b64(uint(r_pub.e))}]},
}
for name, doc in jwks.items():
    open(os.path.join(work, f"{name}.jwks.json"), "w").write(json.dumps(doc))
def sign(name, data):
    if name == "es":
        r, s = decode_dss_signature(es.sign(data, ec.ECDSA(hashes.SHA384())))
        return uint(r, 48) + uint(s, 48)
    return rs.sign(data, padding.PKCS1v15(), hashes.SHA384())
exp = int(time.time()) + 290
for name, alg in (("es", "ES384"), ("rs", "RS384")):
    client = f"bench-{name}"
    head = b64(json.dumps({"alg": alg, "kid": name, "typ": "JWT"}).encode())
    with open(os.path.join(work, f"{name}.bodies"), "w") as out:
        for i in range(n):
            claims = b64(json.dumps({"iss": client, "sub": client, "aud": aud, "exp": exp, "jti": f"{name}-{i}-{os.urandom(8).hex()}"}).encode())
            jwt = f"{head}.{claims}.{b64(sign(name, f'{head}.{claims}'.encode()))}"
            out.write(urlencode({"grant_type": "client_credentials",
                                 "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                                 "client_assertion": jwt, "scope": "system/*.read"}) + "\n")
PY

cat > "$WORK/sallyport.toml" <<EOF
data_dir = "$WORK/data"
[server]
listen = "127.0.0.1:$PORT"
[log]
format = "text"
level = "warn"
[smart]
public_base_url = "$BASE"
[[smart.clients]]
client_id = "bench-es"
jwks_file = "$WORK/es.jwks.json"
scopes = ["system/*.read"]
principal = "bench-es"
[[smart.clients]]
client_id = "bench-rs"
jwks_file = "$WORK/rs.jwks.json"
scopes = ["system/*.read"]
principal = "bench-rs"
EOF
chmod 600 "$WORK/sallyport.toml"
"$BIN" --config "$WORK/sallyport.toml" serve >"$WORK/gateway.out" 2>"$WORK/gateway.log" &
GW_PID=$!
wait_port 127.0.0.1 "$PORT" 300

cat > "$WORK/token.lua" <<'LUA'
-- Each thread sends its own share of the pre-signed bodies, each exactly once.
local bodies, i = {}, 0
function setup(thread) thread:set("tid", #threads_seen + 1); table.insert(threads_seen, thread) end
threads_seen = {}
function init(args)
  local n, k = 0, 0
  for line in io.lines(args[1]) do
    n = n + 1
    if n % 2 == (tid - 1) then k = k + 1; bodies[k] = line end
  end
end
function request()
  i = i + 1
  return wrk.format("POST", "/auth/token",
    {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
end
LUA

for name in es rs; do
  ALG=$( [ "$name" = es ] && echo ES384 || echo RS384 )
  echo "== $ALG: POST /auth/token, ${DURATION}s x $RUNS, 16 connections, 2 threads"
  wait_quiet 30 || true
  R=$(mktemp)
  for r in $(seq "$RUNS"); do
    # Each run gets its own slice of the assertions: no jti is sent twice.
    sed -n "$(( (r - 1) * N / RUNS + 1 )),$(( r * N / RUNS ))p" "$WORK/$name.bodies" > "$WORK/$name.run"
    timeout $((DURATION + 30)) wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/token.lua" \
      "$BASE/auth/token" -- "$WORK/$name.run" | awk -v r="$r" '
      /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
      /Non-2xx/ {bad=$NF} END {printf "%d %.0f %s %s %d\n", r, rps, p50, p99, bad}'
  done > "$R"
  echo "run req/s p50 p99 non2xx"; cat "$R"
  awk '{print $2}' "$R" | stats | { read -r m lo hi n; echo "$ALG req/s median $m  min $lo  max $hi  n=$n"; }
  rm -f "$R"
done
