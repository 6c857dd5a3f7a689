"""Seed data for scripts/api-contract.sh: real resources on the gateway under test, and a
Schemathesis config that offers their ids to the generated requests (each with a
probability, so random ids are still tried too).

Made through the API itself, as a client would, with the run's real tokens:
* two complete uploads (creation-with-upload) and an unfinished one (uploader);
* an artifact registered from each complete upload, and a signed link for each
  (publisher): one artifact and grant are offered to the links API (which may revoke
  them), the other only to downloads, so that its link stays valid through the run;
* two batches: one left open, one sealed with its member missing, so it is quarantined
  (uploader).

Usage: api_contract_seed.py BASE_URL CA_PEM TOKEN_DIR OUT_TOML
"""

import json
import sys
import time
import urllib.parse

import requests

BASE, CA, TOKENS, OUT = sys.argv[1:5]


def token(role):
    with open(f"{TOKENS}/{role}.token") as f:
        return f.read().strip()


def call(role, method, path, expect, **kw):
    headers = {"Authorization": f"Bearer {token(role)}", **kw.pop("headers", {})}
    r = requests.request(method, BASE + path, headers=headers, verify=CA, timeout=10, **kw)
    if r.status_code != expect:
        sys.exit(f"seed: {method} {path} answered {r.status_code}, not {expect}: {r.text[:300]}")
    return r


TUS = {"Tus-Resumable": "1.0.0"}
body = b"hello world"


def complete_upload():
    r = call(
        "uploader", "POST", "/files/", 201, data=body,
        headers={**TUS, "Upload-Length": str(len(body)),
                 "Content-Type": "application/offset+octet-stream"},
    )
    return r.headers["Location"].rsplit("/", 1)[-1]


upload_done = complete_upload()
upload_download = complete_upload()
open_ = call("uploader", "POST", "/files/", 201, headers={**TUS, "Upload-Length": "100"})
upload_open = open_.headers["Location"].rsplit("/", 1)[-1]

def artifact_and_link(upload, partner):
    artifact = call(
        "publisher", "POST", "/v1/artifacts", 201,
        json={"upload": upload, "content_type": "text/plain", "file_name": "hello.txt"},
    ).json()["artifact"]
    link = call(
        "publisher", "POST", "/v1/links", 201,
        json={"artifact": artifact, "partner": partner, "ttl": "1h"},
    ).json()
    return artifact, link


artifact, link = artifact_and_link(upload_done, "contract-partner")
grant = link["grant"]
dl_artifact, dl_link = artifact_and_link(upload_download, "contract-downloads")
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(dl_link["path"]).query))
etag = call("publisher", "GET", f"/v1/artifacts/{dl_artifact}", 200).json()["etag"]

manifest = {
    "version": "sallyport.manifest/1",
    "members": [{
        "name": "Condition.ndjson", "size": 0,
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "media_type": "application/fhir+ndjson",
        "ndjson": {"resource_type": "Condition", "records": 0},
    }],
    "total_members": 1,
    "total_bytes": 0,
}
batch_open = call("uploader", "POST", "/v1/batches", 201, json={"manifest": manifest}).json()["id"]
batch_q = call("uploader", "POST", "/v1/batches", 201, json={"manifest": manifest}).json()["id"]
call("uploader", "POST", f"/v1/batches/{batch_q}/seal", 202)
for _ in range(100):
    state = call("uploader", "GET", f"/v1/batches/{batch_q}", 200).json()["state"]
    if state != "sealing":
        break
    time.sleep(0.1)
if state != "quarantined":
    sys.exit(f"seed: the sealed batch with its member missing is {state}, not quarantined")


def toml_list(values):
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


dictionaries = {
    "uploads": [upload_done, upload_open],
    "artifacts": [artifact],
    "grants": [grant],
    "batches": [batch_open, batch_q],
    "download_artifact": [dl_artifact],
    # Ranges of the 11-byte file: one, open-ended, suffix, several (multipart), and none
    # that overlaps (416).
    "ranges": ["bytes=0-4", "bytes=6-", "bytes=-3", "bytes=0-1,4-5", "bytes=20-30"],
    "if_range": [etag, '"not-the-etag"'],
    # The SMART client scripts/api-contract.sh registers, and the Bulk Data levels.
    "smart_clients": ["contract-smart"],
    "levels": ["system", "patient", "group"],
}
# The link's own values, each offered often, so that many downloads present the whole
# valid link (a link is verified byte for byte) and reach ranges and metering.
for name in ("v", "k", "g", "m", "nb", "exp", "sig"):
    dictionaries[f"link_{name}"] = [query[name]]
bindings = {
    "path.upload_id": ("uploads", 0.5),
    "path.artifact_id": ("artifacts", 0.5),
    "path.grant_id": ("grants", 0.5),
    "path.batch_id": ("batches", 0.5),
    "path.link": ("download_artifact", 0.9),
    "query.artifact": ("artifacts", 0.5),
    "body.upload": ("uploads", 0.5),
    "body.artifact": ("artifacts", 0.5),
    "body.batch": ("batches", 0.5),
    "body.client_id": ("smart_clients", 0.5),
    "body.level": ("levels", 0.5),
    "header.Range": ("ranges", 0.5),
    "header.If-Range": ("if_range", 0.5),
}
bindings.update({f"query.{n}": (f"link_{n}", 0.9) for n in ("v", "k", "g", "m", "nb", "exp", "sig")})

with open(OUT, "w") as f:
    for name, values in dictionaries.items():
        f.write(f"[dictionaries.{name}]\nvalues = {toml_list(values)}\n\n")
    f.write("[parameters]\n")
    for key, (name, p) in bindings.items():
        f.write(f'"{key}" = {{ dictionary = "{name}", probability = {p} }}\n')
print(f"seed: uploads {upload_done} {upload_download} (complete) {upload_open} (open); "
      f"artifacts {artifact} {dl_artifact}; grants {grant} {dl_link['grant']}; "
      f"batches {batch_open} (open) {batch_q} (quarantined)")
