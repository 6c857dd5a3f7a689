#!/bin/sh
# Checks the development cluster's files without Docker (docs/deployment.md): runs
# config/cluster-init.sh into a scratch directory (every file owned by the current user),
# then `sallyport check-config` on config/cluster.toml with its paths pointed there, `haproxy
# -c` on config/haproxy.cfg and config/haproxy-s3.cfg, and parses both compose files as
# YAML. It does not start anything.
#
#   scripts/check-cluster.sh                          # sallyport from PATH
#   scripts/check-cluster.sh target/debug/sallyport   # or this binary
#
# (Not a SALLYPORT_* variable: the gateway reads every one as a configuration override.)
#
# Needs openssl, haproxy and python3 with PyYAML. Exit 0 when every check passed.
set -eu
cd "$(dirname "$0")/.."
bin=${1:-sallyport}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
uid=$(id -u)

OUT="$tmp/run" GATEWAY_UID="$uid" HAPROXY_UID="$uid" ROOT_UID="$uid" \
  CONFIG_SRC=config/cluster.toml sh config/cluster-init.sh > /dev/null
sed -e "s#/run/sallyport#$tmp/run#g" -e "s#/var/lib/sallyport#$tmp/data#" \
  config/cluster.toml > "$tmp/cluster.toml"
mkdir "$tmp/data"
SALLYPORT_SERVER__INSTANCE_ID=gateway-1 "$bin" check-config "$tmp/cluster.toml" > /dev/null
echo "check-cluster: config/cluster.toml: ok"

for f in haproxy haproxy-s3; do
  sed "s#/run/sallyport#$tmp/run#g" "config/$f.cfg" > "$tmp/$f.cfg"
  # The service names do not resolve outside Docker: haproxy warns and still exits 0.
  haproxy -c -q -f "$tmp/$f.cfg" 2> "$tmp/$f.log" || { cat "$tmp/$f.log" >&2; exit 1; }
  echo "check-cluster: config/$f.cfg: ok"
done

python3 - docker-compose.yml docker-compose.single.yml <<'PY'
import sys
import yaml
for name in sys.argv[1:]:
    with open(name) as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc.get("services"), dict), name
    print(f"check-cluster: {name}: ok ({len(doc['services'])} services)")
PY
