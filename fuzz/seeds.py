#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) from the golden vectors in proto/vectors
and a few unit-test inputs. Run from anywhere; it rewrites only files it names, so seeds the
fuzzer found and someone committed on purpose stay."""
import hashlib
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "proto", "vectors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def load(path):
    with open(os.path.join(VECTORS, path), "rb") as f:
        return f.read()


def main():
    headers = json.loads(load("upload-v1/headers.json"))
    by_header = {}
    for case in headers["cases"]:
        by_header.setdefault(case["header"], []).append(case["value"])
    for v in by_header.get("Upload-Metadata", []):
        put("tus_metadata", v)
    for v in by_header.get("Upload-Checksum", []):
        put("tus_checksum", v)
    for v in by_header.get("Upload-Concat", []):
        put("tus_concat", v)
    for name, values in by_header.items():
        for v in values:
            put("tus_request", f"Tus-Resumable: 1.0.0\n{name}: {v}\n")
    put("tus_request", "Tus-Resumable: 1.0.0\nUpload-Length: 100\n"
        "Upload-Metadata: filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==\n")
    put("tus_request", "Tus-Resumable: 1.0.0\nContent-Type: application/offset+octet-stream\n"
        "Upload-Offset: 0\nContent-Length: 5\nUpload-Checksum: sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=\n")
    put("tus_request", "Tus-Resumable: 1.0.0\nUpload-Concat: final;/files/a /files/b\n")
    put("tus_request", "Tus-Resumable: 1.0.0\nUpload-Defer-Length: 1\nUpload-Concat: partial\n"
        "Content-Type: application/offset+octet-stream\nTrailer: Upload-Checksum\n")

    for i, value in enumerate([b"bytes=0-499", b"bytes=-500", b"bytes=500-", b"bytes=0-0,-1",
                               b"bytes=1-2,4-5,3-3", b"bytes=0-1,3-4,6-7,9-", b"BYTES = 5-9",
                               b"bytes=0-499\n\"sha256-abc\"", b"bytes=0-4\nW/\"sha256-abc\""]):
        # Even length prefixes halve, odd ones fold into 0..4096 (see fuzz_targets/range.rs).
        for length in (0, 1, 1000):
            put("range", struct.pack(">Q", length << 1) + value)
        put("range", struct.pack(">Q", (i * 37 << 1) | 1) + value)

    links = json.loads(load("signed-link-v1.json"))
    for case in links["invalid"]:
        if "url" in case:
            put("signed_link", case["url"])
    for case in links["valid"]:
        if "url" in case:
            put("signed_link", case["url"])

    rest = json.loads(load("at-rest-v1.json"))
    put("at_rest_header", bytes.fromhex(rest["header_hex"]))
    put("at_rest_header", bytes.fromhex(rest["data_blob_hex"])[:200])
    tail = rest["tail"]
    state = {"open": 1, "finished": 2}[tail["state"]]
    partial = bytes.fromhex(tail["partial_hex"])
    plain = (bytes([state]) + struct.pack(">QQQ", tail["generation"], tail["full_segments"],
                                          tail["plaintext_len"])
             + bytes.fromhex(rest["segment_nonces_hex"][0]) + bytes.fromhex(tail["midstate_hex"])
             + struct.pack(">I", len(partial)) + partial)
    put("at_rest_tail", struct.pack(">I", rest["segment_size"]) + plain)
    put("at_rest_tail", struct.pack(">I", rest["segment_size"]) + bytes.fromhex(tail["blob_hex"]))

    genesis = "0" * 64
    body = (f'{{"v":1,"seq":1,"time":"2026-01-01T00:00:00Z","instance":"i","action":"upload.created",'
            f'"outcome":"success","actor":{{"kind":"system"}},"request_id":null,"client_addr":null,'
            f'"subject":"u1","details":{{}},"prev":"{genesis}"}}')
    h = hashlib.sha256(b"sallyport-audit-v1\n" + body.encode()).hexdigest()
    line1 = body[:-1] + f',"hash":"{h}"}}'
    put("audit_chain", line1)
    put("audit_chain", line1 + "\n" + line1.replace('"seq":1', '"seq":2'))
    put("audit_chain", '{"seq":1,"prev":"00","hash":"zz"}')

    cp = json.loads(load("audit-checkpoint-v1.json"))
    put("audit_checkpoint", cp["note"])
    for case in cp["invalid"]:
        put("audit_checkpoint", case["note"])

    put("config", load("../../config/sallyport.example.toml"))
    put("config", "[server]\nlisten = \"127.0.0.1:8443\"\n")
    put("config", "data_dir = \"d\"\n\0SALLYPORT_SERVER__LISTEN=127.0.0.1:9000\n")

    for sub, target in (("manifest-v1", "manifest"), ("provenance-v1", "provenance")):
        for name in sorted(os.listdir(os.path.join(VECTORS, sub))):
            if name.endswith(".json"):
                put(target, load(os.path.join(sub, name)))

    p = '{"resourceType":"Patient","id":"p1","name":[{"family":"Doe"}]}'
    for seed, text in ((3, f"{p}\n{p}\n"), (0, f"{p}\n\n{{\"resourceType\":\"Observation\"}}\n[1]\n"),
                       (7, f"{p}\n\xff\xfe\n{p}"), (1, "x" * 80 + f"\n{p}\n")):
        put("batch_ndjson", bytes([seed]) + text.encode("utf-8", "surrogateescape"))


if __name__ == "__main__":
    main()
