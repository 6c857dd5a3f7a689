#!/usr/bin/env bash
# SMART token-endpoint benchmark: POST /auth/token requests per second with ES384 and with
# RS384 client assertions, and Bulk Data status polls per second (GET /fhir/bulk/{job} of
# completed jobs), against a real gateway over TLS on this machine.
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
#   JOBS=4000              completed Bulk jobs the status-poll runs cycle through
#   NO_TOKEN=1             skip the token-endpoint runs (status polls only)
#   BENCH_DIR              the shared bench harness (default <repo>/../shared/bench)
#
# What it does: makes an ES384 and an RS384 client key (python3 `cryptography`), registers
# both clients with their public JWKS, starts the gateway (embedded state, audit on as
# always: every issued token is a durable audit entry and a jti insert), signs ASSERTIONS
# assertions per algorithm ahead of time (client-side cost, not measured), then has wrk
# send each exactly once as a token request and prints requests/s, p50/p99 latency and the
# non-2xx count per run, then the median.
#
# Status polls: a batch of one synthetic Patient NDJSON file is opened, uploaded, sealed,
# released and published for the ES384 client; that client (one access token) kicks off
# JOBS jobs and polls each once (each answers 200, complete). Then wrk polls those jobs,
# 16 connections and 2 threads, each thread cycling through its half of them. The
# Retry-After throttle is respected, not bypassed: bulk.retry_after is at its 1 s minimum
# (0 is not allowed), so a job may be polled once a second, and a thread comes back to a
# job only after its other JOBS/2 - 1 polls. A thread faster than JOBS/2 polls per second
# would be throttled: 429s show up as non-2xx (raise JOBS then). Every counted poll is a
# complete answer, so each issues a new grant of fresh signed links (link.issued and
# bulk.status audit entries): the full cost of a manifest.
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
# The ES384 key again for the status-poll setup, which signs its own assertion later.
from cryptography.hazmat.primitives import serialization
fd = os.open(os.path.join(work, "es.key.pem"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, es.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
os.close(fd)
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

# API tokens of the uploader and the publisher of the status-poll setup (bench-only).
UPLOADER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
PUBLISHER_TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

cat > "$WORK/sallyport.toml" <<EOF
data_dir = "$WORK/data"
[server]
listen = "127.0.0.1:$PORT"
[log]
format = "text"
level = "warn"
[bulk]
retry_after = "1s"
link_ttl = "5m"
[[clients]]
name = "bench-clinic"
token_sha256 = "$(sha "$UPLOADER_TOKEN")"
roles = ["uploader"]
[[clients]]
name = "bench-exporter"
token_sha256 = "$(sha "$PUBLISHER_TOKEN")"
roles = ["publisher"]
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

for name in $([ -n "${NO_TOKEN:-}" ] || echo es rs); do
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
  awk '$5 > 0 {bad=1} END {exit !bad}' "$R" && echo "WARNING: $ALG runs had non-2xx answers (assertions used up?): these figures count refusals; raise ASSERTIONS"
  rm -f "$R"
done

# === Status polls of completed Bulk jobs ===
JOBS=${JOBS:-4000}
echo "== setup: one released batch published for bench-es, $JOBS jobs kicked off and completed"
python3 - "$WORK" "$PORT" "$JOBS" "$UPLOADER_TOKEN" "$PUBLISHER_TOKEN" <<'PY'
import base64, hashlib, http.client, json, os, ssl, sys, time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
work, port, jobs, uploader, publisher = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
base = f"https://localhost:{port}"
# Loopback only (checked above); the gateway's own generated certificate is not verified.
ctx = ssl._create_unverified_context()
def connect():
    return http.client.HTTPSConnection("localhost", port, context=ctx, timeout=60)
def call(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
def bearer(t):
    return {"Authorization": f"Bearer {t}"}
def need(want, answer, what):
    if answer[0] != want:
        sys.exit(f"{what}: {answer[0]} {answer[2][:300]!r}")
    return answer
c = connect()
# One synthetic Patient file (nobody real), its batch manifest and provenance record.
lines = [json.dumps({"resourceType": "Patient", "id": f"pat-{i:06}", "active": True,
                     "meta": {"tag": [{"system": "urn:sallyport:test", "code": "synthetic"}]}},
                    separators=(",", ":")) for i in range(1, 51)]
data = ("\n".join(lines) + "\n").encode()
manifest = {"version": "sallyport.manifest/1", "members": [{
    "name": "Patient.ndjson", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
    "media_type": "application/fhir+ndjson",
    "ndjson": {"resource_type": "Patient", "records": len(lines)}}],
    "total_members": 1, "total_bytes": len(data)}
provenance = {"version": "sallyport.provenance/1", "source_system": "urn:oid:2.16.840.1.113883.3.7204.99",
              "job_id": "bench-1", "exported_at": "2026-11-30T23:15:02.481Z",
              "requester": "smart-client:bench", "scopes": ["system/Patient.rs"],
              "purpose_of_use": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"},
              "filters": ["_type=Patient"], "schema_version": "FHIR R4 4.0.1", "transformations": []}
json_headers = {**bearer(uploader), "Content-Type": "application/json"}
a = need(201, call(c, "POST", "/v1/batches", json.dumps({"manifest": manifest, "provenance": provenance}), json_headers), "open batch")
batch = json.loads(a[2])["id"]
b64 = lambda s: base64.b64encode(s.encode()).decode()
need(201, call(c, "POST", "/files/", data, {**bearer(uploader), "Tus-Resumable": "1.0.0",
     "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream",
     "Upload-Metadata": f"batch {b64(batch)},member {b64('Patient.ndjson')}"}), "upload")
need(202, call(c, "POST", f"/v1/batches/{batch}/seal", None, bearer(uploader)), "seal")
deadline = time.time() + 60
while True:
    state = json.loads(need(200, call(c, "GET", f"/v1/batches/{batch}", None, bearer(uploader)), "batch")[2])["state"]
    if state == "released":
        break
    if state not in ("open", "sealing") or time.time() > deadline:
        sys.exit(f"batch {batch}: {state}")
    time.sleep(0.2)
need(201, call(c, "POST", "/v1/exports", json.dumps({"batch": batch, "client_id": "bench-es", "level": "system"}),
               {**bearer(publisher), "Content-Type": "application/json"}), "publish")
# An access token for bench-es (an assertion signed now with its key).
key = serialization.load_pem_private_key(open(os.path.join(work, "es.key.pem"), "rb").read(), None)
b64u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64u(json.dumps({"alg": "ES384", "kid": "es", "typ": "JWT"}).encode())
claims = b64u(json.dumps({"iss": "bench-es", "sub": "bench-es", "aud": f"{base}/auth/token",
                          "exp": int(time.time()) + 240, "jti": os.urandom(12).hex()}).encode())
r, s = decode_dss_signature(key.sign(f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA384())))
jwt = f"{head}.{claims}.{b64u(r.to_bytes(48, 'big') + s.to_bytes(48, 'big'))}"
form = urlencode({"grant_type": "client_credentials",
                  "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                  "client_assertion": jwt, "scope": "system/*.read"})
a = need(200, call(c, "POST", "/auth/token", form, {"Content-Type": "application/x-www-form-urlencoded"}), "token")
token = json.loads(a[2])["access_token"]
fd = os.open(os.path.join(work, "poll.token"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, (token + "\n").encode())
os.close(fd)
# Kick off the jobs and poll each once (complete): one alone first (its poll registers the
# publication's files), then the rest on 4 connections.
def worker(count, c=None):
    c, paths = c or connect(), []
    for _ in range(count):
        a = need(202, call(c, "GET", "/fhir/$export", None, {**bearer(token), "Accept": "application/fhir+json",
                 "Prefer": "respond-async"}), "kick-off")
        path = urlsplit(a[1]["content-location"]).path
        a = need(200, call(c, "GET", path, None, bearer(token)), "first poll")
        assert json.loads(a[2])["output"][0]["type"] == "Patient"
        paths.append(path)
    return paths
parts = [worker(1, c)]
with ThreadPoolExecutor(4) as pool:
    parts += list(pool.map(worker, [(jobs - 1) // 4 + (i < (jobs - 1) % 4) for i in range(4)]))
with open(os.path.join(work, "poll.paths"), "w") as out:
    for part in parts:
        out.write("".join(p + "\n" for p in part))
print(f"batch {batch} released and published; {jobs} jobs complete")
PY

cat > "$WORK/poll.lua" <<'LUA'
-- Each thread cycles through its own half of the status URLs, with the client's token.
local paths, n, i, auth = {}, 0, 0, nil
function setup(thread) thread:set("tid", #threads_seen + 1); table.insert(threads_seen, thread) end
threads_seen = {}
function init(args)
  local f = io.open(args[2]); auth = "Bearer " .. f:read("*l"); f:close()
  local k = 0
  for line in io.lines(args[1]) do
    k = k + 1
    if k % 2 == (tid - 1) then n = n + 1; paths[n] = line end
  end
end
function request()
  i = i % n + 1
  return wrk.format("GET", paths[i], {["Authorization"] = auth})
end
LUA

echo "== status polls: GET /fhir/bulk/{job} (complete), ${DURATION}s x $RUNS, 16 connections, 2 threads, $JOBS jobs"
R=$(mktemp)
for r in $(seq "$RUNS"); do
  wait_quiet 30 || true
  timeout $((DURATION + 30)) wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/poll.lua" \
    "$BASE/fhir/bulk/" -- "$WORK/poll.paths" "$WORK/poll.token" | awk -v r="$r" '
    /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    /Non-2xx/ {bad=$NF} END {printf "%d %.0f %s %s %d\n", r, rps, p50, p99, bad}'
done > "$R"
echo "run req/s p50 p99 non2xx"; cat "$R"
awk '{print $2}' "$R" | stats | { read -r m lo hi n; echo "status poll req/s median $m  min $lo  max $hi  n=$n"; }
awk '$5 > 0 {bad=1} END {exit !bad}' "$R" && echo "WARNING: status-poll runs had non-2xx answers (429: raise JOBS): these figures count refusals"
ms() { awk '{v=$1; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
  print (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v}'; }
awk '{print $3}' "$R" | ms | stats | { read -r m _; echo "status poll p50 median ${m} ms"; }
awk '{print $4}' "$R" | ms | stats | { read -r m _; echo "status poll p99 median ${m} ms"; }
rm -f "$R"
