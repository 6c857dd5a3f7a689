#!/usr/bin/env python3
"""Generate proto/vectors/signed-link-v1.json from proto/signed-link-v1.md.

This is an independent implementation of the v1 canonical string, written from the spec
with nothing but the Python standard library, so the Rust tests that read the vectors
check the Rust code against a second implementation rather than against itself.

Run from the repository root:  python3 proto/vectors/signed-link-v1-gen.py
The output is deterministic; commit it.
"""

import base64
import hashlib
import hmac
import json
import os

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def opaque_id(raw16: bytes) -> str:
    """26 lowercase Crockford base32 characters, most significant bits first."""
    assert len(raw16) == 16
    v = int.from_bytes(raw16, "big")
    return "".join(CROCKFORD[(v >> (5 * (25 - i))) & 31] for i in range(26))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


KEYS = [
    {"id": "k2025a", "state": "current", "secret": bytes(range(0x00, 0x20))},
    {"id": "k2024b", "state": "verify-only", "secret": bytes(range(0x40, 0x70))},
    {"id": "k2023", "state": "retired", "secret": None},
]
SECRETS = {k["id"]: k["secret"] for k in KEYS if k["secret"]}
# A key the gateway has never heard of, for the unknown-key vector.
SECRETS["k9"] = b"\x99" * 32
CLOCK_SKEW = 60

ARTIFACT = opaque_id(hashlib.sha256(b"artifact").digest()[:16])
GRANT = opaque_id(hashlib.sha256(b"grant").digest()[:16])
FP = b64url(hashlib.sha256(b"client certificate DER").digest())
OTHER_FP = b64url(hashlib.sha256(b"another certificate").digest())


def canonical(c: dict) -> bytes:
    fields = [
        ("v", "1"),
        ("k", c["k"]),
        ("a", c["a"]),
        ("g", c["g"]),
        ("m", c["m"]),
        ("nb", str(c["nb"])),
        ("exp", str(c["exp"])),
        ("ip", c.get("ip") or ""),
        ("fp", c.get("fp") or ""),
    ]
    out = b"sallyport-link-v1\n"
    for name, value in fields:
        v = value.encode("ascii")
        out += name.encode() + b":" + str(len(v)).encode() + b":" + v + b"\n"
    return out


def sign(c: dict) -> bytes:
    return hmac.new(SECRETS[c["k"]], canonical(c), hashlib.sha256).digest()


def url(c: dict, sig: bytes) -> str:
    u = f"/d/{c['a']}?v=1&k={c['k']}&g={c['g']}&m={c['m']}&nb={c['nb']}&exp={c['exp']}"
    if c.get("ip"):
        u += f"&ip={c['ip']}"
    if c.get("fp"):
        u += f"&fp={c['fp']}"
    return u + "&sig=" + b64url(sig)


def claims(**kw) -> dict:
    c = {"k": "k2025a", "a": ARTIFACT, "g": GRANT, "m": "GET,HEAD",
         "nb": 1767225600, "exp": 1767229200, "ip": None, "fp": None}
    c.update(kw)
    return c


def req(now, method="GET", addr="192.0.2.10", cert=None) -> dict:
    return {"now": now, "method": method, "client_addr": addr, "client_cert": cert}


def valid(name, c, r):
    sig = sign(c)
    return {
        "name": name,
        "claims": {"key_id": c["k"], "artifact": c["a"], "grant": c["g"], "methods": c["m"],
                   "not_before": c["nb"], "expires": c["exp"],
                   "client_net": c.get("ip"), "client_cert": c.get("fp")},
        "canonical_hex": canonical(c).hex(),
        "signature": b64url(sig),
        "url": url(c, sig),
        "request": r,
    }


VALID = [
    valid("get-only, no bindings", claims(m="GET"), req(1767225600)),
    valid("get+head, ipv4 network, HEAD request",
          claims(ip="192.0.2.0/24"), req(1767229199, "HEAD", "192.0.2.200")),
    valid("ipv4-mapped client inside an ipv4 network",
          claims(ip="192.0.2.0/24"), req(1767227000, "GET", "::ffff:192.0.2.1")),
    valid("ipv6 network and certificate, verify-only key",
          claims(k="k2024b", ip="2001:db8:a0::/44", fp=FP),
          req(1767227000, "GET", "2001:db8:af::1", FP)),
    valid("not-before within the clock-skew allowance",
          claims(), req(1767225600 - CLOCK_SKEW)),
    valid("widest window, head only", claims(m="HEAD", nb=0, exp=2**64 - 1),
          req(2**64 - 2, "HEAD", "::1")),
]

good = claims(ip="192.0.2.0/24", fp=FP)
good_url = url(good, sign(good))
in_window = req(1767227000, "GET", "192.0.2.10", FP)


def rejected(name, u, reason, r=in_window):
    return {"name": name, "url": u, "request": r, "reason": reason}


def signed(**kw):
    c = claims(**kw)
    return url(c, sign(c))


B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def set_trailing_bit(u: str) -> str:
    """The last of 43 characters carries 4 bits and 2 zero bits: set one of the zeros."""
    i = B64URL.index(u[-1])
    assert i & 3 == 0
    return u[:-1] + B64URL[i | 1]


sig_at = good_url.index("&sig=") + 5
flipped = bytearray(sign(good))
flipped[0] ^= 1

INVALID = [
    rejected("expired at exp", good_url, "expired", dict(in_window, now=1767229200)),
    rejected("one second before the skew allowance", good_url, "not_yet_valid",
             dict(in_window, now=1767225600 - CLOCK_SKEW - 1)),
    rejected("one flipped signature bit", url(good, bytes(flipped)), "bad_signature"),
    rejected("claims changed after signing", good_url.replace("exp=1767229200", "exp=1767229201"),
             "bad_signature"),
    rejected("signed by a key the gateway never had", signed(k="k9"), "unknown_key"),
    rejected("signed by a retired key",
             url(claims(k="k2023"), b"\x00" * 32), "retired_key"),
    rejected("HEAD on a GET-only link", signed(m="GET"), "method_not_allowed",
             dict(in_window, method="HEAD")),
    rejected("client outside the network", good_url, "client_address_mismatch",
             dict(in_window, client_addr="198.51.100.1")),
    rejected("no client certificate", good_url, "client_cert_missing",
             dict(in_window, client_cert=None)),
    rejected("another client certificate", good_url, "client_cert_mismatch",
             dict(in_window, client_cert=OTHER_FP)),
    rejected("percent-encoded parameter name", good_url.replace("&k=", "&%6B="), "percent_encoded"),
    rejected("percent-encoded comma", good_url.replace("GET,HEAD", "GET%2CHEAD"), "percent_encoded"),
    rejected("NUL byte, encoded", good_url.replace("&k=k2025a", "&k=k2025a%00"), "percent_encoded"),
    rejected("plus sign in the signature", good_url[:sig_at] + "+" + good_url[sig_at + 1:],
             "forbidden_character"),
    rejected("non-ASCII character", good_url.replace("k2025a", "k2025\u00e4"), "forbidden_character"),
    rejected("base64 padding", good_url + "=", "malformed_signature"),
    rejected("non-canonical trailing bits", set_trailing_bit(good_url), "malformed_signature"),
    rejected("duplicated parameter", good_url.replace("&m=", "&k=k2025a&m="), "duplicate_parameter"),
    rejected("unknown parameter (a file name)", good_url.replace("&sig=", "&name=a.ndjson&sig="),
             "unknown_parameter"),
    rejected("parameters reordered", good_url.replace("v=1&k=k2025a", "k=k2025a&v=1"),
             "parameter_order"),
    rejected("signature missing", good_url[:sig_at - 5], "missing_parameter"),
    rejected("empty parameter", good_url.replace("&k=", "&&k="), "malformed_parameter"),
    rejected("leading zero in a time", good_url.replace("nb=1767225600", "nb=01767225600"),
             "malformed_time"),
    rejected("empty window", signed(exp=1767225600), "empty_window"),
    rejected("network with host bits", good_url.replace("192.0.2.0/24", "192.0.2.1/24"),
             "malformed_client_net"),
    rejected("fingerprint too short", good_url.replace(FP, FP[:-1]), "malformed_cert_fingerprint"),
    rejected("version 2", good_url.replace("v=1", "v=2"), "unsupported_version"),
    rejected("version with a leading zero", good_url.replace("v=1", "v=01"), "malformed_version"),
    rejected("uppercase key id", good_url.replace("k=k2025a", "k=K2025a"), "malformed_key_id"),
    rejected("lowercase method", good_url.replace("GET,HEAD", "get,head"), "malformed_methods"),
    rejected("grant id too short", good_url.replace(GRANT, GRANT[:-1]), "malformed_grant"),
    rejected("artifact id with an excluded letter", good_url.replace(ARTIFACT, "u" + ARTIFACT[1:]),
             "malformed_artifact"),
    rejected("wrong path", good_url.replace("/d/", "/download/"), "malformed_path"),
    rejected("overlong", good_url + "&x=" + "a" * 600, "link_too_long"),
]

doc = {
    "description": "Golden vectors for proto/signed-link-v1.md. Generated by "
                   "proto/vectors/signed-link-v1-gen.py (independent of the Rust code).",
    "clock_skew_seconds": CLOCK_SKEW,
    "keys": [{"id": k["id"], "state": k["state"],
              "secret_hex": k["secret"].hex() if k["secret"] else None} for k in KEYS],
    "valid": VALID,
    "invalid": INVALID,
}

for v in INVALID:
    assert v["url"] != good_url or v["reason"] in (
        "expired", "not_yet_valid", "client_address_mismatch",
        "client_cert_missing", "client_cert_mismatch"), v["name"]

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "signed-link-v1.json"), "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
