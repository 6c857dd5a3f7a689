"""A moto S3 server for the tests (tests/support/s3.rs): listens on 127.0.0.1 on a free
port, creates the bucket named by --bucket, prints {"port": N} as one JSON line, and runs
until its standard input closes, so it never outlives the test process that started it.
Requests are logged to standard error."""

import argparse
import json
import sys

import boto3
from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bucket", required=True)
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
    print(json.dumps({"port": port}), flush=True)
    sys.stdin.read()  # until the test process exits (or closes the pipe)
    server.stop()


if __name__ == "__main__":
    main()
