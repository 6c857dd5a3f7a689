"""A moto S3 server for the tests (tests/support/s3.rs): listens on 127.0.0.1 on a free
port, creates the bucket named by --bucket, prints {"port": N} as one JSON line, and runs
until its standard input closes, so it never outlives the test process that started it.
Requests are logged to standard error.

With --tls-cert and --tls-key (PEM files) it also serves the same buckets over TLS on a
second free port, printed as "tls_port", for the tests of the store's TLS and its
`ca_file`."""

import argparse
import json
import sys

import threading

import boto3
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server


def tls_server(cert: str, key: str):
    """A second listener over TLS; moto's backends are process-wide, so it serves the
    same buckets and objects as the plain one."""
    server = make_server(
        "127.0.0.1",
        0,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
        ssl_context=(cert, key),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id="moto",
        aws_secret_access_key="moto",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=args.bucket)
    ports = {"port": port}
    tls = None
    if args.tls_cert and args.tls_key:
        tls = tls_server(args.tls_cert, args.tls_key)
        ports["tls_port"] = tls.server_address[1]
    print(json.dumps(ports), flush=True)
    sys.stdin.read()  # until the test process exits (or closes the pipe)
    if tls is not None:
        tls.shutdown()
    server.stop()


if __name__ == "__main__":
    main()
