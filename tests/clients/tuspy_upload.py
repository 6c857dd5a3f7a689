#!/usr/bin/env python3
"""Upload one file to a tus endpoint with tuspy (the Python tus client), resumably.

Driven by tests/tus_real_client.rs and tests/batches_e2e.rs. The upload URL is kept in tuspy's own URL storage
(a TinyDB JSON file keyed by the file's fingerprint), so a second run with the same
--storage resumes the upload where the server says it stands (tuspy sends HEAD first).
Every PATCH carries `Upload-Checksum: sha1 ...` (tuspy's `upload_checksum=True`).

Upload-Metadata always carries `filename` (the file's base name); each
`--metadata key=value` (repeatable) adds a pair, e.g. `--metadata batch=b-... --metadata
member=Patient.ndjson` to upload a batch member.

Prints one JSON object per line on stdout:
  {"event": "start", "url": URL or null, "offset": N}   before the first PATCH
  {"event": "chunk", "offset": N}                        after every acknowledged PATCH
  {"event": "done", "url": URL, "offset": N}             when the upload is complete
  {"event": "refused", "status": N, "body": TEXT}         the server refused a request
                                                         (exit status 3)
Exits 0 when done, non-zero on any other failure (tuspy's exception is printed on stderr).

TLS: the server certificate is checked against --cacert (through requests'
REQUESTS_CA_BUNDLE, which tuspy's `verify_tls_cert=True` honours).
"""

import argparse
import json
import os
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True, help="the tus creation URL")
    p.add_argument("--file", required=True)
    p.add_argument("--token", required=True, help="bearer token")
    p.add_argument("--cacert", required=True, help="PEM CA bundle for the server")
    p.add_argument("--storage", required=True, help="tuspy URL storage file")
    p.add_argument("--chunk-size", type=int, default=8 * 1024 * 1024)
    p.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an Upload-Metadata pair (repeatable)",
    )
    args = p.parse_args()
    metadata = {"filename": os.path.basename(args.file)}
    for pair in args.metadata:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            p.error(f"--metadata wants KEY=VALUE, got {pair!r}")
        metadata[key] = value

    os.environ["REQUESTS_CA_BUNDLE"] = args.cacert
    # Imported after the environment is set up; tuspy reads nothing at import time, but
    # keeping the order explicit makes the TLS trust obvious.
    from tusclient import client
    from tusclient.exceptions import TusCommunicationError
    from tusclient.storage import filestorage

    storage = filestorage.FileStorage(args.storage)
    tus = client.TusClient(
        args.endpoint, headers={"Authorization": "Bearer " + args.token}
    )
    uploader = tus.uploader(
        file_path=args.file,
        chunk_size=args.chunk_size,
        metadata=metadata,
        store_url=True,
        url_storage=storage,
        upload_checksum=True,
        # A PATCH refused while the server still finishes an interrupted one (423), or a
        # dropped connection: ask the server for the offset and try again.
        retries=5,
        retry_delay=1,
    )
    size = uploader.get_file_size()
    emit({"event": "start", "url": uploader.url, "offset": uploader.offset})
    try:
        if not uploader.url:
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
        while uploader.offset < size:
            uploader.upload_chunk()
            emit({"event": "chunk", "offset": uploader.offset})
    except TusCommunicationError as e:
        body = e.response_content
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        emit({"event": "refused", "status": e.status_code, "body": body})
        storage.close()
        return 3
    emit({"event": "done", "url": uploader.url, "offset": uploader.offset})
    storage.close()
    return 0


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
