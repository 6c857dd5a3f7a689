#!/bin/sh
# Starts Garage as a single-node cluster (`--single-node` assigns and applies the layout) with
# the gateways' bucket and key (`--default-bucket`, Garage 2.3 or later, from the
# GARAGE_DEFAULT_* variables), the key being the one `init` wrote for the gateways.
set -eu
creds=/run/sallyport/s3/credentials
value() {
  sed -n "s/^$1[[:space:]]*=[[:space:]]*//p" "$creds"
}
GARAGE_DEFAULT_ACCESS_KEY=$(value access_key_id)
GARAGE_DEFAULT_SECRET_KEY=$(value secret_access_key)
GARAGE_DEFAULT_BUCKET=${GARAGE_DEFAULT_BUCKET:-sallyport}
export GARAGE_DEFAULT_ACCESS_KEY GARAGE_DEFAULT_SECRET_KEY GARAGE_DEFAULT_BUCKET
exec garage server --single-node --default-bucket
