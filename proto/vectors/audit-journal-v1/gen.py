#!/usr/bin/env python3
"""Writes the golden segments of proto/audit-journal-v1.md: three records, first seq 1, and
the same segment followed by a zero fill (an open segment as the writer leaves it).

    python3 proto/vectors/audit-journal-v1/gen.py   # rewrites the .seg and vectors.json

Checked by src/audit/journal/record/tests.rs (test the_golden_segment_decodes)."""

import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOADS = [b'{"seq":1}', b'{"seq":2,"x":"two"}', b""]


def header(first_seq):
    return b"SPAUDJNL" + struct.pack(">IIQ", 1, 0, first_seq)


def record(seq, payload):
    body = struct.pack(">IQ", len(payload), seq) + payload
    return body + hashlib.sha256(body).digest()


seg = header(1)
records = []
for i, p in enumerate(PAYLOADS):
    seq = 1 + i
    rec = record(seq, p)
    records.append(
        {"seq": seq, "offset": len(seg), "len": len(rec), "payload_hex": p.hex(), "record_hex": rec.hex()}
    )
    seg += rec
with open(os.path.join(HERE, "00000000000000000001.seg"), "wb") as f:
    f.write(seg)
ZERO_FILL = 200
with open(os.path.join(HERE, "zero-fill.seg"), "wb") as f:
    f.write(seg + bytes(ZERO_FILL))
with open(os.path.join(HERE, "vectors.json"), "w") as f:
    json.dump(
        {
            "_comment": "Golden segment for proto/audit-journal-v1.md, written by gen.py; checked by src/audit/journal/record/tests.rs.",
            "file": "00000000000000000001.seg",
            "header_hex": header(1).hex(),
            "size": len(seg),
            "records": records,
            "zero_fill": {
                "_comment": "The same segment with a zero fill after its last record: the records end at records_end, a clean end.",
                "file": "zero-fill.seg",
                "size": len(seg) + ZERO_FILL,
                "records_end": len(seg),
            },
        },
        f,
        indent=2,
    )
    f.write("\n")
