#!/bin/sh
# One-shot set-up of the development cluster's shared material (docker-compose.yml, service
# `init`; docs/deployment.md). Runs as root in an alpine container with the `cluster-secrets`
# volume at $OUT. Makes once, and keeps on later runs:
#
#   tls/ca.pem, tls/ca-key.pem       the cluster's development CA (the key: root, 0600)
#   tls/server.pem, server-key.pem   the gateways' certificate (chain: leaf, CA) and key,
#                                    for localhost, 127.0.0.1, gateway-1..3 and lb
#   tls/s3.pem                       the S3 TLS front's certificate and key (name: s3),
#                                    for haproxy (uid 99)
#   keys/kek-v1                      the static KEK: base64 of 32 random bytes
#   keys/link-k1                     the link HMAC key: base64 of 32 random bytes
#   s3/credentials                   the gateways' S3 keys (Garage creates that key)
#   garage/rpc_secret, admin_token   Garage's own secrets (root, 0600)
#   clients/ops.token, .sha256       an admin API token and its hash
#
# Every secret is mode 0600 and owned by the user that reads it: uid 10001 (the gateway
# image's user), 99 (haproxy) or root (Garage). Copies config/cluster.toml to
# config/cluster.toml on every run, owned by root, so edits reach the gateways.
# Never for production: the CA key sits on the same volume as everything else.
set -eu

OUT=${OUT:-/run/sallyport}
GATEWAY_UID=${GATEWAY_UID:-10001}
HAPROXY_UID=${HAPROXY_UID:-99}
# The owner of what only init and Garage read (scripts/check-cluster.sh runs this as
# itself, with every owner its own uid).
ROOT_UID=${ROOT_UID:-0}
SANS=${SANS:-DNS:localhost,IP:127.0.0.1,DNS:gateway-1,DNS:gateway-2,DNS:gateway-3,DNS:lb}

umask 077
mkdir -p "$OUT/tls" "$OUT/keys" "$OUT/s3" "$OUT/garage" "$OUT/clients" "$OUT/config"
chmod 755 "$OUT" "$OUT/tls" "$OUT/keys" "$OUT/s3" "$OUT/garage" "$OUT/clients" "$OUT/config"

# install SRC DEST OWNER MODE: moves a finished file into place, so a half-written one is
# never seen under its real name.
install_file() {
  chown "$3" "$1"
  chmod "$4" "$1"
  mv "$1" "$2"
}

# random_b64 FILE: base64 of 32 random bytes, for the gateway's key files.
random_b64() {
  openssl rand -base64 32 > "$1.tmp"
  install_file "$1.tmp" "$1" "$GATEWAY_UID" 600
}

if ! command -v openssl >/dev/null 2>&1; then
  apk add --no-cache openssl >/dev/null
fi

tls="$OUT/tls"
if [ ! -s "$tls/ca.pem" ] || [ ! -s "$tls/ca-key.pem" ]; then
  rm -f "$tls/server.pem" "$tls/server-key.pem" "$tls/s3.pem"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tls/ca-key.pem.tmp" -out "$tls/ca.pem.tmp" -days 3650 \
    -subj "/O=Sallyport (development only)/CN=Sallyport cluster development CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  install_file "$tls/ca-key.pem.tmp" "$tls/ca-key.pem" "$ROOT_UID" 600
  install_file "$tls/ca.pem.tmp" "$tls/ca.pem" "$ROOT_UID" 644
  echo "init: made the cluster's development CA"
fi

# issue NAME SANS: a server certificate and key signed by the CA, as NAME.crt / NAME.key.
issue() {
  printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' "$2" > "$tls/$1.ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tls/$1.key" -out "$tls/$1.csr" -subj "/CN=$1" 2>/dev/null
  openssl x509 -req -in "$tls/$1.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days 397 -extfile "$tls/$1.ext" \
    -out "$tls/$1.crt" 2>/dev/null
  rm -f "$tls/$1.csr" "$tls/$1.ext"
}

if [ ! -s "$tls/server.pem" ] || [ ! -s "$tls/server-key.pem" ]; then
  issue gateway "$SANS"
  cat "$tls/gateway.crt" "$tls/ca.pem" > "$tls/server.pem.tmp"
  rm -f "$tls/gateway.crt"
  install_file "$tls/gateway.key" "$tls/server-key.pem" "$GATEWAY_UID" 600
  install_file "$tls/server.pem.tmp" "$tls/server.pem" "$GATEWAY_UID" 644
  echo "init: issued the gateways' certificate ($SANS)"
fi

if [ ! -s "$tls/s3.pem" ]; then
  issue s3 "DNS:s3"
  cat "$tls/s3.crt" "$tls/ca.pem" "$tls/s3.key" > "$tls/s3.pem.tmp"
  rm -f "$tls/s3.crt" "$tls/s3.key"
  install_file "$tls/s3.pem.tmp" "$tls/s3.pem" "$HAPROXY_UID" 600
  echo "init: issued the S3 front's certificate (s3)"
fi

[ -s "$OUT/keys/kek-v1" ] || { random_b64 "$OUT/keys/kek-v1"; echo "init: made the static KEK"; }
[ -s "$OUT/keys/link-k1" ] || { random_b64 "$OUT/keys/link-k1"; echo "init: made the link key"; }

if [ ! -s "$OUT/s3/credentials" ]; then
  # Garage's key format: GK and 24 hex digits; the secret: 64 hex digits.
  printf 'access_key_id = GK%s\nsecret_access_key = %s\n' \
    "$(openssl rand -hex 12)" "$(openssl rand -hex 32)" > "$OUT/s3/credentials.tmp"
  install_file "$OUT/s3/credentials.tmp" "$OUT/s3/credentials" "$GATEWAY_UID" 600
  echo "init: made the S3 keys"
fi

for f in rpc_secret admin_token; do
  if [ ! -s "$OUT/garage/$f" ]; then
    openssl rand -hex 32 > "$OUT/garage/$f.tmp"
    install_file "$OUT/garage/$f.tmp" "$OUT/garage/$f" "$ROOT_UID" 600
  fi
done

if [ ! -s "$OUT/clients/ops.token" ] || [ ! -s "$OUT/clients/ops.token.sha256" ]; then
  # Like `sallyport token generate`: 32 random bytes, base64url without padding; the
  # configuration holds only its SHA-256.
  token=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')
  printf '%s\n' "$token" > "$OUT/clients/ops.token.tmp"
  printf '%s' "$token" | openssl dgst -sha256 -r | cut -c1-64 > "$OUT/clients/ops.token.sha256.tmp"
  install_file "$OUT/clients/ops.token.tmp" "$OUT/clients/ops.token" "$GATEWAY_UID" 600
  install_file "$OUT/clients/ops.token.sha256.tmp" "$OUT/clients/ops.token.sha256" "$GATEWAY_UID" 600
  echo "init: made the ops admin token"
fi

if [ -n "${CONFIG_SRC:-}" ]; then
  cp "$CONFIG_SRC" "$OUT/config/cluster.toml.tmp"
  install_file "$OUT/config/cluster.toml.tmp" "$OUT/config/cluster.toml" "$ROOT_UID" 644
fi
echo "init: done"
