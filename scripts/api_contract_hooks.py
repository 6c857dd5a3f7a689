"""Schemathesis hooks for scripts/api-contract.sh (loaded through SCHEMATHESIS_HOOKS).

* tus request bodies are `application/offset+octet-stream`: raw bytes, serialized the way
  Schemathesis serializes `application/octet-stream`.
* A signed link is verified byte for byte, parameters in the order proto/signed-link-v1.md
  §3 gives them; a client sends the link as it was handed out. Schemathesis draws the query
  parameters in any order, so the order (not the values) is put back to the link's before
  each download request, and the values are written as a link writes them (a `,` in
  `m=GET,HEAD` stays a comma) — otherwise no generated download could ever be a valid link.
"""

from urllib.parse import quote

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

LINK_ORDER = ["v", "k", "g", "m", "nb", "exp", "ip", "fp", "sig"]


@schemathesis.hook
def before_call(context, case, **kwargs):
    if case.operation.path != "/d/{link}" or not isinstance(case.query, dict):
        return
    known = [(k, case.query[k]) for k in LINK_ORDER if k in case.query]
    other = [(k, v) for k, v in case.query.items() if k not in LINK_ORDER]
    # A string is sent as it is: the link's own characters stay, anything else is encoded.
    case.query = "&".join(
        f"{quote(str(k), safe='')}={quote(str(v), safe=',:/')}" for k, v in known + other
    )
