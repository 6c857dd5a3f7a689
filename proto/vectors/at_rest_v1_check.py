#!/usr/bin/env python3
"""Independent check of proto/vectors/at-rest-v1.json against proto/at-rest-v1.md.

Written from the specification, not from the Rust code, with the `cryptography` package
(pip install cryptography). Recomputes every derived value from the vector's inputs and
decrypts every stored byte string. Exits non-zero on the first mismatch.
"""
import hashlib
import json
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

v = json.loads((Path(__file__).parent / "at-rest-v1.json").read_text())
h = bytes.fromhex


def check(name, got, want):
    if got != want:
        sys.exit(f"MISMATCH {name}:\n got  {got.hex() if isinstance(got, bytes) else got}\n want {want.hex() if isinstance(want, bytes) else want}")
    print(f"ok  {name}")


kek, dek, dek_id, obj = h(v["kek"]["key_hex"]), h(v["dek_hex"]), h(v["dek_id_hex"]), h(v["object_id_hex"])
kek_id, kek_version = v["kek"]["id"].encode(), v["kek"]["version"]

# Key wrapping (section "Key wrapping").
wrap_aad = b"sallyport/dek-wrap/v1" + bytes([v["purpose"]]) + obj + dek_id + bytes([len(kek_id)]) + kek_id + struct.pack(">I", kek_version)
check("wrap AAD", wrap_aad, h(v["wrap_aad_hex"]))
sealed = AESGCM(kek).encrypt(h(v["wrap_nonce_hex"]), dek, wrap_aad)
record = b"SPDK" + bytes([1, v["purpose"]]) + dek_id + bytes([len(kek_id)]) + kek_id + struct.pack(">I", kek_version) + h(v["wrap_nonce_hex"]) + sealed
check("wrapped-DEK record", record, h(v["dek_record_hex"]))

# Header and key derivation (sections "Header", "Keys").
s = v["segment_size"]
bound = b"SPAR" + bytes([1, 1, 0, 0]) + struct.pack(">I", s) + obj + dek_id + h(v["salt_hex"])
assert len(bound) == 76


def hkdf(label):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=h(v["salt_hex"]), info=label + bound).derive(dek)


commitment = hkdf(b"sallyport/at-rest/v1/commitment")
seg_key = hkdf(b"sallyport/at-rest/v1/segment-key")
tail_key = hkdf(b"sallyport/at-rest/v1/tail-key")
check("commitment", commitment, h(v["commitment_hex"]))
check("segment key", seg_key, h(v["segment_key_hex"]))
check("tail key", tail_key, h(v["tail_key_hex"]))
header = bound + commitment
check("header", header, h(v["header_hex"]))

# Segments and the length rule (sections "Segments", "Length rule").
blob = h(v["data_blob_hex"])
check("header in blob", blob[:108], header)
body = blob[108:]
stride = s + 28
full, rest = divmod(len(body), stride)
assert rest >= 28, "length rule"
plain = b""
for i in range(full + 1):
    final = i == full
    seg = body[i * stride:] if final else body[i * stride:(i + 1) * stride]
    aad = obj + struct.pack(">Q", i) + bytes([1 if final else 0])
    check(f"segment {i} AAD", aad, h(v["segments"][i]["aad_hex"]))
    check(f"segment {i} bytes", seg, h(v["segments"][i]["stored_hex"]))
    check(f"segment {i} nonce", seg[:12], h(v["segment_nonces_hex"][i]))
    plain += AESGCM(seg_key).decrypt(seg[:12], seg[12:], aad)
check("plaintext", plain, h(v["plaintext_hex"]))
check("plaintext length", len(plain), full * s + rest - 28)
check("sha256", hashlib.sha256(plain).digest(), h(v["plaintext_sha256_hex"]))

# Tail record (section "Tail record").
t = v["tail"]
tail = h(t["blob_hex"])
check("tail magic", tail[:5], b"SPAT\x01")
check("tail nonce", tail[5:17], h(t["nonce_hex"]))
tp = AESGCM(tail_key).decrypt(tail[5:17], tail[17:], b"sallyport/at-rest/v1/tail" + obj)
state, gen, nfull, plen = struct.unpack(">BQQQ", tp[:25])
check("tail state", state, 1)
check("tail generation", gen, t["generation"])
check("tail full segments", nfull, t["full_segments"])
check("tail plaintext length", plen, t["plaintext_len"])
check("tail last nonce", tp[25:37], h(v["segment_nonces_hex"][nfull - 1]))
mid = tp[37:141]
check("tail midstate", mid, h(t["midstate_hex"]))
blocks, = struct.unpack("<Q", mid[32:40])
check("midstate byte count", blocks * 64 + mid[40], plen)
check("midstate buffered bytes", mid[41:41 + mid[40]], plain[blocks * 64:plen])
plen2, = struct.unpack(">I", tp[141:145])
check("tail partial", tp[145:], h(t["partial_hex"]))
check("tail partial length", plen2, plen - nfull * s)

# Tail record with a commit note (section "Commit note"): version 2, the same plaintext
# followed by the note's length and bytes.
n = v["tail_noted"]
noted = h(n["blob_hex"])
check("noted tail magic", noted[:5], b"SPAT\x02")
check("noted tail nonce", noted[5:17], h(n["nonce_hex"]))
np_ = AESGCM(tail_key).decrypt(noted[5:17], noted[17:], b"sallyport/at-rest/v1/tail" + obj)
end = 145 + plen2
check("noted tail fields", np_[:end], tp)
mlen, = struct.unpack(">I", np_[end:end + 4])
check("noted tail note", np_[end + 4:], h(n["note_hex"]))
check("noted tail note length", mlen, len(h(n["note_hex"])))
print("all at-rest v1 vector checks passed")
