#!/usr/bin/env bash
# Hostile-load check, loopback only and bounded: does one abusive client stall everyone?
# Not a test (tests/abuse_stalled_bodies.rs and tests/gateway_edge.rs hold the
# assertions); it prints the gateway's resident memory, open file descriptors and
# /readyz latency before, during and after:
#
#   stalled  STALLED tus creations-with-upload (HTTP/1.1, one connection each) whose bodies
#            never come (issue: blocking-pool exhaustion). They must end with 408 after
#            uploads.body_timeout, and /readyz must stay fast meanwhile.
#   idle-h2  IDLE_H2 HTTP/2 connections that send the preface and then only answer the
#            server's pings (issue: pings kept idle connections open). They must be closed
#            after server.idle_timeout.
#   chunks   one client uploads CHUNK_ATTEMPT bytes one byte per PATCH (issue: storage
#            amplification, unbounded ledgers). Every chunk past uploads.max_chunks_per_upload
#            (MAX_CHUNKS) must be refused 413 upload.too_many_chunks, the ledger must stay at
#            the cap and stream (no Content-Length), and the chunk that completes the upload
#            must still be taken.
#
# Usage: scripts/abuse.sh [WORKDIR]
#   env: PHASES="stalled idle-h2 chunks" (any of them)
#        STALLED=300  IDLE_H2=100  BODY_TIMEOUT=6  IDLE_TIMEOUT=10 (seconds; the idle
#        timeout longer than the body timeout, so that stalled bodies end with their 408)
#        CHUNK_ATTEMPT=100000 (one-byte PATCHes tried, at most) MAX_CHUNKS=1000
#        REFUSALS=100 (refused PATCHes past the cap before the client gives up)
#        GATEWAY_BIN=<binary> (else cargo build --release)
#        BENCH_DIR=<repo>/../shared/bench (the shared helpers: lib.sh)
# Needs curl, openssl, python3.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mkdir -p "${1:-$ROOT/target/abuse}" && cd "${1:-$ROOT/target/abuse}" && pwd)
BENCH_SRC=${BENCH_DIR:-$ROOT/../shared/bench}
PHASES=${PHASES:-stalled idle-h2 chunks}
STALLED=${STALLED:-300}; IDLE_H2=${IDLE_H2:-100}
case " $PHASES " in *" stalled "*) ;; *) STALLED=0 ;; esac
case " $PHASES " in *" idle-h2 "*) ;; *) IDLE_H2=0 ;; esac
CHUNK_ATTEMPT=${CHUNK_ATTEMPT:-100000}; MAX_CHUNKS=${MAX_CHUNKS:-1000}; REFUSALS=${REFUSALS:-100}
case " $PHASES " in *" chunks "*) ;; *) CHUNK_ATTEMPT=0 ;; esac
BODY_TIMEOUT=${BODY_TIMEOUT:-6}; IDLE_TIMEOUT=${IDLE_TIMEOUT:-10}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$TARGET/release/sallyport}
[ -f "$BENCH_SRC/lib.sh" ] || { echo "no lib.sh in $BENCH_SRC (set BENCH_DIR)" >&2; exit 2; }
. "$BENCH_SRC/lib.sh"
for tool in curl openssl python3; do
  command -v "$tool" > /dev/null || { echo "$tool is required" >&2; exit 2; }
done
[ "$STALLED" -le 2000 ] && [ "$IDLE_H2" -le 2000 ] || { echo "at most 2000 of each" >&2; exit 2; }
[ "$CHUNK_ATTEMPT" -le 1000000 ] && [ "$MAX_CHUNKS" -ge 2 ] && [ "$MAX_CHUNKS" -le 1000000 ] \
  || { echo "CHUNK_ATTEMPT at most 1000000, MAX_CHUNKS 2..1000000" >&2; exit 2; }
if [ -z "${GATEWAY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin sallyport)
fi

UP_TOKEN=$(openssl rand -hex 32)
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
max_connections = 4096
max_connections_per_address = 4096
idle_timeout = "${IDLE_TIMEOUT}s"
header_read_timeout = "${IDLE_TIMEOUT}s"
[uploads]
body_timeout = "${BODY_TIMEOUT}s"
max_open_per_principal = 10000
max_chunks_per_upload = $MAX_CHUNKS
[log]
format = "text"
level = "warn"
[[clients]]
name = "abuse-clinic"
token_sha256 = "$(sha "$UP_TOKEN")"
roles = ["uploader"]
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
CA=$DATA/dev-ca/ca.pem

# One sample: phase, RSS (KiB), open fds, /readyz status and seconds.
sample() {
  local rss fds out
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status")
  fds=$(ls "/proc/$GW_PID/fd" | wc -l)
  out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --cacert "$CA" \
        "https://127.0.0.1:$PORT/readyz" || echo "000 10")
  printf '%-8s %9s KiB %6s fds   readyz %s\n' "$1" "$rss" "$fds" "$out"
}

echo "# gateway $BIN on 127.0.0.1:$PORT; phases: $PHASES"
if [ "$STALLED" -gt 0 ] || [ "$IDLE_H2" -gt 0 ]; then
echo "# $STALLED stalled bodies, $IDLE_H2 idle h2 connections"
echo "# body_timeout ${BODY_TIMEOUT}s, idle_timeout ${IDLE_TIMEOUT}s"
sample before
python3 - "$PORT" "$CA" "$UP_TOKEN" "$STALLED" "$IDLE_H2" "$BODY_TIMEOUT" "$IDLE_TIMEOUT" \
  > "$WORK/clients.out" 2>&1 <<'PY' &
import asyncio, ssl, sys, time
port, ca, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
stalled, idle_h2 = int(sys.argv[4]), int(sys.argv[5])
limit = max(int(sys.argv[6]), int(sys.argv[7])) + 20

def ctx(alpn):
    c = ssl.create_default_context(cafile=ca)
    c.check_hostname = False
    c.set_alpn_protocols([alpn])
    return c

async def stall(results):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx("http/1.1"))
        w.write((f"POST /files/ HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
                 "Tus-Resumable: 1.0.0\r\nUpload-Length: 1048576\r\n"
                 "Content-Type: application/offset+octet-stream\r\nContent-Length: 1048576\r\n\r\n"
                 ).encode())
        await w.drain()
        line = await asyncio.wait_for(r.readline(), limit)
        results.append((line.split(b" ")[1].decode() if line else "closed", time.monotonic() - t0))
        w.close()
    except Exception as e:
        results.append((type(e).__name__, time.monotonic() - t0))

async def idle(results):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx("h2"))
        w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
        await w.drain()
        while True:
            head = await asyncio.wait_for(r.readexactly(9), limit)
            n = int.from_bytes(head[:3], "big")
            payload = await r.readexactly(n)
            if head[3] == 4 and head[4] == 0:
                w.write(bytes([0, 0, 0, 4, 1, 0, 0, 0, 0]))
            elif head[3] == 6 and head[4] == 0:
                w.write(bytes([0, 0, 8, 6, 1, 0, 0, 0, 0]) + payload)
            elif head[3] == 7:
                break
            await w.drain()
        results.append(("goaway", time.monotonic() - t0))
    except asyncio.IncompleteReadError:
        results.append(("closed", time.monotonic() - t0))
    except Exception as e:
        results.append((type(e).__name__, time.monotonic() - t0))

async def main():
    s, i = [], []
    await asyncio.gather(*[stall(s) for _ in range(stalled)], *[idle(i) for _ in range(idle_h2)])
    for name, res in (("stalled", s), ("idle-h2", i)):
        kinds = {}
        for k, _ in res:
            kinds[k] = kinds.get(k, 0) + 1
        ends = sorted(t for _, t in res)
        med = ends[len(ends) // 2] if ends else 0
        print(f"{name:8} ended: {kinds}; seconds to end: median {med:.1f}, max {ends[-1] if ends else 0:.1f}")
asyncio.run(main())
PY
CLIENTS=$!
sleep 2
for _ in 1 2 3; do sample during; sleep 1; done
wait "$CLIENTS" || true
sample after
sleep 2
sample after
cat "$WORK/clients.out"
fi

if [ "$CHUNK_ATTEMPT" -gt 0 ]; then
echo "# chunks: up to $CHUNK_ATTEMPT one-byte PATCHes on one upload of $CHUNK_ATTEMPT bytes;"
echo "# max_chunks_per_upload $MAX_CHUNKS"
sample before
python3 - "$PORT" "$CA" "$UP_TOKEN" "$CHUNK_ATTEMPT" "$REFUSALS" > "$WORK/chunks.out" 2>&1 <<'PY' &
import http.client, json, ssl, sys, time
port, ca, token, attempt = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
refusals_wanted = int(sys.argv[5])
c = ssl.create_default_context(cafile=ca)
c.check_hostname = False
conn = None

def req(method, path, headers=None, body=None):
    global conn
    if conn is None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=c, timeout=30)
    h = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", **(headers or {})}
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    if r.will_close:
        conn.close()
        conn = None
    return r, data

t0 = time.monotonic()
r, _ = req("POST", "/files/", {"Upload-Length": str(attempt)})
path = r.getheader("Location")
offset, statuses, refusals = 0, {}, 0
octet = {"Content-Type": "application/offset+octet-stream"}
for i in range(attempt - 1):
    r, data = req("PATCH", path, {**octet, "Upload-Offset": str(offset)}, b"x")
    statuses[r.status] = statuses.get(r.status, 0) + 1
    if r.status == 204:
        offset += 1
    elif r.status == 413 and json.loads(data).get("code") == "upload.too_many_chunks":
        refusals += 1
        # Past the cap every refusal is the same (and closes the connection: it is answered
        # before the body is read); REFUSALS of them show it stays so.
        if refusals >= refusals_wanted:
            break
    else:
        break
patched = time.monotonic() - t0
r, data = req("GET", path + "/ledger")
ledger = json.loads(data)
streamed = r.getheader("Content-Length") is None
r2, _ = req("PATCH", path, {**octet, "Upload-Offset": str(offset)}, b"x" * (attempt - offset))
r3, data3 = req("GET", path + "/ledger")
after = json.loads(data3)
print(f"chunks   PATCH statuses {statuses} in {patched:.1f} s; offset at the cap {offset}")
print(f"chunks   ledger at the cap: {len(ledger['chunks'])} entries, {len(data)} bytes, "
      f"streamed (no Content-Length): {streamed}")
print(f"chunks   completing chunk of {attempt - offset} bytes: {r2.status}; ledger after: "
      f"{len(after['chunks'])} entries, complete {after['complete']}")
PY
CHUNKER=$!
sleep 1
while kill -0 "$CHUNKER" 2>/dev/null; do sample during; sleep 2; done
wait "$CHUNKER" || true
sample after
echo "chunks   data directory: $(du -sk "$DATA" | cut -f1) KiB"
cat "$WORK/chunks.out"
fi
