#!/usr/bin/env bash
# Vendors the clinic upload page's third-party files into assets/invite/ from the npm
# registry, at the pinned versions below: tus-js-client's browser bundle, and the
# @noble/hashes SHA-2 module with the three modules it imports. The packages are installed
# into a temporary directory (never into the source tree), the built files are copied
# byte for byte, and the SHA-256 of each is printed for assets/invite/README.md.
#
# Usage: scripts/vendor-page-assets.sh          (then update the README's table, rebuild)
#        scripts/vendor-page-assets.sh --check  (fails when a vendored file differs from
#                                                the pinned package's)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=$ROOT/assets/invite
TUS_JS_CLIENT=tus-js-client@4.3.1
NOBLE_HASHES=@noble/hashes@2.4.0

command -v npm > /dev/null || { echo "vendor-page-assets: npm is required" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sallyport-vendor.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
npm install --no-audit --no-fund --loglevel=error --ignore-scripts --prefix "$WORK" \
  "$TUS_JS_CLIENT" "$NOBLE_HASHES" > /dev/null

# source file in the package => name under assets/invite/
FILES=(
  "tus-js-client/dist/tus.min.js tus.min.js"
  "tus-js-client/LICENSE LICENSE.tus-js-client"
  "@noble/hashes/sha2.js sha2.js"
  "@noble/hashes/_md.js _md.js"
  "@noble/hashes/_u64.js _u64.js"
  "@noble/hashes/utils.js utils.js"
  "@noble/hashes/LICENSE LICENSE.noble-hashes"
)
status=0
for pair in "${FILES[@]}"; do
  read -r src name <<< "$pair"
  from=$WORK/node_modules/$src
  [ -f "$from" ] || { echo "vendor-page-assets: $src is missing from the package" >&2; exit 2; }
  if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$from" "$DEST/$name"; then
      echo "vendor-page-assets: assets/invite/$name differs from $src" >&2
      status=1
    fi
  else
    cp "$from" "$DEST/$name"
  fi
  printf '%s  %s\n' "$(sha256sum "$DEST/$name" | cut -d' ' -f1)" "$name"
done
# The SHA-2 module must import only its vendored siblings (a bare specifier would need
# an import map, which the page's CSP-only, no-inline design does not have).
if grep -hE '^import .* from "[^.]' "$DEST"/sha2.js "$DEST"/_md.js "$DEST"/_u64.js "$DEST"/utils.js; then
  echo "vendor-page-assets: a vendored module imports a bare specifier" >&2
  status=1
fi
exit "$status"
