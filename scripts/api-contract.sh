#!/usr/bin/env bash
# The API contract against a live gateway: Schemathesis (pinned, installed from PyPI into a
# venv under the user's cache) generates requests from proto/openapi.yaml and checks every
# answer — no server error, the status documented for the operation, the body and headers
# matching the documented schema and content type. The gateway is the real binary on a
# loopback port the OS picks, with embedded state in a temporary directory, its development
# CA, and real tokens made by `sallyport token generate` for every role, and seeded with
# real resources through the API (scripts/api_contract_seed.py) whose ids the generated
# requests use half of the time. Schemathesis runs once per role that owns operations
# (uploader, publisher, auditor) over that role's operations, then once with the `metrics`
# role (a scraper token that grants no API operation) over every operation without a
# request body, so the refusals of a missing role are checked too. Why not every role over every operation: a
# refusal is answered before the request body is read, and over HTTP/1.1 a client still
# sending a large body then sees the connection closed instead of the answer (see
# tests/gateway_edge.rs) — a network error for Schemathesis, not a contract question.
#
# Usage: scripts/api-contract.sh
#   env: GATEWAY_BIN=<binary>          (else target/debug/sallyport, built if missing: in CI
#                                      the one `cargo test` just built; locally, rebuild it
#                                      after changing the gateway)
#        API_CONTRACT_EXAMPLES=<n>     examples per operation and phase (default 20)
#        API_CONTRACT_SEED=<n>         Hypothesis seed (default: fixed, for a reproducible CI)
#        SCHEMATHESIS_VENV=<dir>       (default: ~/.cache/sallyport/schemathesis-<version>)
#        API_CONTRACT_ROLES="uploader publisher auditor metrics"   the roles to run as
#        API_CONTRACT_ST_ARGS="..."    more `st run` arguments (e.g. --include-path /v1/batches)
#        KEEP=1                        keep the temporary directory (config, logs, reports)
# Exit: 0 every check passed, 1 a check failed, 2 setup error.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${API_CONTRACT_EXAMPLES:-20}
SEED=${API_CONTRACT_SEED:-20261205}
VENV=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sallyport/schemathesis-$SCHEMATHESIS_VERSION}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${GATEWAY_BIN:-$TARGET/debug/sallyport}

command -v python3 > /dev/null || { echo "api-contract: python3 is required" >&2; exit 2; }
if [ ! -x "$VENV/bin/st" ] || ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "api-contract: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || { echo "api-contract: python3 -m venv failed (python3-venv?)" >&2; exit 2; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || { echo "api-contract: pip install schemathesis failed" >&2; exit 2; }
fi
if [ -z "${GATEWAY_BIN:-}" ] && [ ! -x "$BIN" ]; then
  (cd "$ROOT" && cargo build --locked --bin sallyport)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sallyport-api-contract.XXXXXX")
GW_PID=
cleanup() {
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "api-contract: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

CONFIG=$WORK/sallyport.toml
cat > "$CONFIG" <<EOF
data_dir = "$WORK/data"
[server]
listen = "127.0.0.1:0"
# The default body limits: a generated body declared over them gets its 413 (the gateway
# lingers on close, so the answer is not lost to a reset while the body still arrives).
# Every generated download comes from one address; a roomier bad-link limiter lets valid
# links through between the forged ones (429 is still documented and may still occur).
[links]
bad_signature_burst = 200
bad_signature_window = "1s"
[log]
format = "text"
level = "warn"
EOF
for role in uploader publisher metrics auditor admin; do
  "$BIN" token generate --name "contract-$role" --role "$role" --token-out "$WORK/$role.token" \
    >> "$CONFIG" 2> "$WORK/token.err" \
    || { echo "api-contract: token generate --role $role failed:" >&2; cat "$WORK/token.err" >&2; exit 2; }
done
# One SMART client (a fresh P-384 key; its public JWK in the config), so that the Bulk
# Data service exists: POST /v1/exports reaches its checks, and /fhir/ refuses the role
# tokens (none is a SMART access token) with its OperationOutcomes.
openssl ecparam -name secp384r1 -genkey -noout -out "$WORK/smart-client.pem" 2> /dev/null \
  || { echo "api-contract: openssl could not generate the SMART client key" >&2; exit 2; }
JWKS=$(openssl ec -in "$WORK/smart-client.pem" -pubout -outform DER 2> /dev/null | tail -c 97 | python3 -c '
import base64, json, sys
p = sys.stdin.buffer.read()
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
print(json.dumps({"keys": [{"kty": "EC", "crv": "P-384", "kid": "contract", "alg": "ES384", "x": b(p[1:49]), "y": b(p[49:97])}]}))')
cat >> "$CONFIG" <<EOF
[smart]
public_base_url = "https://localhost:8443"
[[smart.clients]]
client_id = "contract-smart"
jwks = '$JWKS'
scopes = ["system/*.read"]
principal = "contract-partner"
EOF
chmod 600 "$CONFIG"

: > "$WORK/gateway.out"
"$BIN" --config "$CONFIG" serve > "$WORK/gateway.out" 2> "$WORK/gateway.err" &
GW_PID=$!
PORT=
for _ in $(seq 1 300); do
  PORT=$(sed -n 's|^sallyport serving https://127.0.0.1:\([0-9]*\)/$|\1|p' "$WORK/gateway.out")
  [ -n "$PORT" ] && break
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "api-contract: the gateway did not start:" >&2
  cat "$WORK/gateway.out" "$WORK/gateway.err" >&2
  exit 2
fi
CA=$WORK/data/dev-ca/ca.pem
echo "api-contract: gateway on 127.0.0.1:$PORT; schemathesis $SCHEMATHESIS_VERSION, $EXAMPLES examples per operation, seed $SEED"

"$VENV/bin/python" "$ROOT/scripts/api_contract_seed.py" "https://localhost:$PORT" "$CA" "$WORK" \
  "$WORK/schemathesis.toml" || { echo "api-contract: seeding failed" >&2; exit 2; }
# tus answers a missing or wrong Tus-Resumable with 412 (tus 1.0.0 core), not 400: a
# refusal like any other for the checks that send invalid or incomplete requests.
cat >> "$WORK/schemathesis.toml" <<'EOF'

[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429, 431, "5xx"]

[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 412, 415, 422]
EOF

# Each role's operations (by operationId in proto/openapi.yaml), the operator endpoints
# for all.
OPS='healthz|healthzHead|readyz|readyzHead|metrics|whoami'
declare -A FILTER=(
  [uploader]="--include-operation-id-regex ^($OPS|tus.*|batchList|batchOpen|batchGet|batchManifest|batchProvenance|batchReport|batchSeal)\$"
  [publisher]="--include-operation-id-regex ^($OPS|download|downloadHead|artifact.*|link.*|exportPublish|bulk.*|invitationIssue|invitationList|invitationGet|invitationRevoke)\$"
  [auditor]="--include-operation-id-regex ^($OPS|auditVerify|batchList|batchGet|batchManifest|batchProvenance|batchReport|batchRelease|batchPurge)\$"
  [metrics]="--include-method-regex ^(GET|HEAD|OPTIONS)\$"
)

# Every answer: no server error; a documented status, content type, headers and body.
# Refusals: a request without (or with a broken) token is refused wherever one is needed;
# an invalid or incomplete request is refused; an undocumented method is 405 with an
# `Allow` naming the documented ones. (Not run: positive_data_acceptance — a well-formed
# request for an id that does not exist is rightly a 404 — and the stateful checks that
# need resources the generator cannot make, such as a completed upload.)
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance
CHECKS=$CHECKS,response_headers_conformance,response_schema_conformance
CHECKS=$CHECKS,ignored_auth,negative_data_rejection,missing_required_header
CHECKS=$CHECKS,unsupported_method,allow_header_conformance

status=0
# The filters and extra arguments are split into words unquoted; never glob them.
set -f
for role in ${API_CONTRACT_ROLES:-uploader publisher auditor metrics}; do
  echo "api-contract: === as $role ==="
  # The development certificate names localhost; the CA is the gateway's own.
  set +e
  (cd "$WORK" && SCHEMATHESIS_HOOKS=api_contract_hooks PYTHONPATH="$ROOT/scripts" \
    "$VENV/bin/st" --no-color --config-file "$WORK/schemathesis.toml" run "$ROOT/proto/openapi.yaml" \
      --url "https://localhost:$PORT" \
      --tls-verify "$CA" \
      --header "Authorization: Bearer $(cat "$WORK/$role.token")" \
      --checks "$CHECKS" \
      --max-examples "$EXAMPLES" \
      --seed "$SEED" \
      --workers 1 \
      --request-timeout 10 \
      --generation-database none \
      --report junit,har --report-dir "$WORK/report-$role" \
      ${FILTER[$role]} \
      ${API_CONTRACT_ST_ARGS:-}) > "$WORK/st-$role.log" 2>&1
  rc=$?
  set -e
  # The summary (operations, test cases, failures) and any failure's details.
  sed -n '/FAILURES\|SUMMARY\|Summary/,$p' "$WORK/st-$role.log" | head -200
  [ "$rc" -eq 0 ] || { status=1; [ -s "$WORK/st-$role.log" ] && tail -5 "$WORK/st-$role.log"; }
done

if kill -0 "$GW_PID" 2>/dev/null; then
  echo "api-contract: the gateway is still serving"
else
  echo "api-contract: the gateway died during the run:" >&2
  tail -20 "$WORK/gateway.err" >&2
  status=1
fi
if grep -qi "panicked" "$WORK/gateway.err"; then
  echo "api-contract: the gateway panicked:" >&2
  grep -i -m5 "panicked" "$WORK/gateway.err" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "api-contract: ok" || echo "api-contract: FAILED" >&2
exit "$status"
