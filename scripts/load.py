"""Load generator for scripts/load.sh: concurrent tus uploads and ranged signed-link
downloads against one gateway address (one instance, or a TCP balancer in front of
several), every byte checked. Not a test on its own: scripts/load.sh starts the gateways
and calls this.

    load.py run --base https://127.0.0.1:PORT --ca CA.pem --uploader-tokens-file F \
        --publisher-token-file F --out RESULT.json [--label L] [--pid NAME=PID ...] [knobs]
    load.py compare RESULT.json [RESULT.json ...]

`run` does, against --base:
  setup   (not timed) one artifact of --dl-mib MiB is uploaded by tus, registered by the
          publisher (POST /v1/artifacts {"upload": id}) and linked (POST /v1/links);
  load    --uploads tus uploads of --upload-mib MiB, spread over the uploader clients of
          --uploader-tokens-file (upload i is client i mod n's): POST create, PATCH chunks of
          --chunk-kib KiB with a per-chunk Upload-Checksum sha256, then HEAD: Upload-Offset
          must be the length and Repr-Digest the client's own SHA-256 of the file; and
          --downloads GETs of the link (every --full-every th whole, the others one random
          byte range; each body's SHA-256 must be that of the expected slice, and
          Content-Range / Repr-Digest must match), ALL started at once. Every
          --abort-every th upload aborts its connection in the middle of one PATCH (sent
          without a checksum, so the bytes that arrived are kept), then HEADs for the
          offset and resumes from there on a new connection (behind a balancer, likely
          another instance);
  readback (not timed) every --readback-every th completed upload is registered as an
          artifact, linked and downloaded whole; its SHA-256 must be the file's: the
          bytes were stored, not only received.
Each request has a timeout (--request-timeout); the load phase has a deadline
(--deadline), after which unfinished operations count as errors. Server RSS and CPU are
read from /proc for every --pid. The result (counts, errors by kind, latency percentiles,
throughput, RSS) goes to --out as JSON and is printed.

`compare` prints the results side by side with ratios (last / first) and exits 1 if any
result has an error or a lost or corrupted byte.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import re
import ssl
import sys
import time

import aiohttp

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


class Abort(Exception):
    """Raised inside a PATCH body on purpose: the client drops the connection."""


class OpError(Exception):
    """An operation failed; `kind` is the error's name in the report."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(f"{kind} {detail}".strip())
        self.kind = kind


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of `values`, None if empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": None if not values else round(pct(values, 50) * 1000, 1),
        "p99_ms": None if not values else round(pct(values, 99) * 1000, 1),
        "max_ms": None if not values else round(max(values) * 1000, 1),
    }


def proc_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Run:
    def __init__(self, args: argparse.Namespace):
        self.a = args
        self.base = args.base.rstrip("/")
        with open(args.uploader_tokens_file) as f:
            tokens = [t.strip() for t in f if t.strip()]
        if not tokens:
            raise SystemExit("no uploader token")
        # Upload i is sent by uploader client i % len(tokens) (its owner throughout).
        self.uploaders = [{"Authorization": "Bearer " + t} for t in tokens]
        self.publisher = {"Authorization": "Bearer " + read_token(args.publisher_token_file)}
        self.errors: collections.Counter[str] = collections.Counter()
        self.error_examples: dict[str, str] = {}
        self.lat: dict[str, list[float]] = collections.defaultdict(list)
        self.counts: collections.Counter[str] = collections.Counter()
        self.bytes_up = 0
        self.bytes_down = 0
        self.completed_uploads: list[tuple[str, bytes, int]] = []  # (URL, sha256, index)
        ctx = ssl.create_default_context(cafile=args.ca)
        self.ssl = ctx
        self.timeout = aiohttp.ClientTimeout(total=args.request_timeout)
        self.t_start = time.monotonic()

    def error(self, kind: str, detail: str = "") -> None:
        self.errors[kind] += 1
        examples = self.error_examples.setdefault(kind, [])
        if len(examples) < 3:
            examples.append(f"+{time.monotonic() - self.t_start:.1f}s {detail[:300]}")

    def session(self) -> aiohttp.ClientSession:
        # A kept-alive connection idle for header_read_timeout (default 10 s) is closed by
        # the gateway without an answer: never reuse one idle for more than 4 s.
        conn = aiohttp.TCPConnector(ssl=self.ssl, limit=0, limit_per_host=0,
                                    keepalive_timeout=4, enable_cleanup_closed=True)
        return aiohttp.ClientSession(connector=conn, timeout=self.timeout,
                                     auto_decompress=False)

    # ---- tus ---------------------------------------------------------------------------

    async def create(self, s: aiohttp.ClientSession, auth: dict, length: int) -> str:
        t0 = time.monotonic()
        for attempt in range(self.a.create_retries + 1):
            async with s.post(self.base + "/files/", headers={
                    **TUS, **auth, "Upload-Length": str(length)}) as r:
                body = await r.read()
                retry_after = r.headers.get("Retry-After", "1")
                status = r.status
                loc = r.headers.get("Location", "")
            if status == 423 and attempt < self.a.create_retries:
                # The client's creation slot was busy for 10 s: retry as tus clients do
                # (counted and reported, never hidden).
                self.counts["create_423_retried"] += 1
                await asyncio.sleep(min(float(retry_after) if retry_after.isdigit() else 1, 10))
                continue
            if status != 201:
                raise OpError(f"create:{status}", body.decode(errors="replace"))
            break
        self.lat["create"].append(time.monotonic() - t0)
        if not re.fullmatch(r"/files/[0-9a-z]{26}", loc):
            raise OpError("create:bad_location", loc)
        return self.base + loc

    async def head(self, s: aiohttp.ClientSession, auth: dict,
                   url: str) -> tuple[int, str | None]:
        t0 = time.monotonic()
        async with s.head(url, headers={**TUS, **auth}) as r:
            if r.status != 200:
                raise OpError(f"head:{r.status}")
            off = r.headers.get("Upload-Offset")
            digest = r.headers.get("Repr-Digest")
        self.lat["head"].append(time.monotonic() - t0)
        if off is None or not off.isdigit():
            raise OpError("head:no_offset", str(off))
        return int(off), digest

    async def patch(self, s: aiohttp.ClientSession, auth: dict, url: str, offset: int,
                    chunk: bytes, abort_after: int | None = None) -> tuple[int, int, dict]:
        """PATCH `chunk` at `offset`. Returns (status, new offset or -1, headers). With
        `abort_after`, the body stops after that many bytes and the connection is dropped
        (raises Abort)."""
        headers = {**TUS, **auth, "Content-Type": OCTETS,
                   "Upload-Offset": str(offset)}
        if abort_after is None:
            headers["Upload-Checksum"] = "sha256 " + b64(hashlib.sha256(chunk).digest())
            data: object = chunk
        else:
            headers["Content-Length"] = str(len(chunk))

            async def gen():
                step = 64 * 1024
                for i in range(0, abort_after, step):
                    yield chunk[i:min(i + step, abort_after)]
                await asyncio.sleep(0.2)  # let the bytes leave before the drop
                raise Abort()

            data = gen()
        t0 = time.monotonic()
        try:
            async with s.patch(url, headers=headers, data=data) as r:
                await r.read()
                new = r.headers.get("Upload-Offset", "")
                status, hdrs = r.status, dict(r.headers)
        except Abort:
            raise
        except aiohttp.ClientError as e:
            # aiohttp reports the body generator's exception as a client error caused by
            # it; any other failure of the aborting PATCH is an error like any other.
            if abort_after is not None and isinstance(e.__cause__, Abort):
                raise Abort() from e
            raise
        if abort_after is not None:
            raise OpError("patch:abort_not_dropped", f"status {status}")
        if status == 204:
            self.lat["patch"].append(time.monotonic() - t0)
        return status, int(new) if new.isdigit() else -1, hdrs

    async def upload(self, s: aiohttp.ClientSession, auth: dict, data: bytes, digest: bytes,
                     abort: bool) -> str:
        """One whole tus upload of `data` as `auth`'s client; returns its URL once
        verified."""
        t0 = time.monotonic()
        url = await self.create(s, auth, len(data))
        chunk = self.a.chunk_kib * 1024
        offset = 0
        n = 0
        aborted = False
        tolerate = 0  # 409/423 answers tolerated after the deliberate abort
        while offset < len(data):
            piece = data[offset:offset + chunk]
            if abort and not aborted and offset >= len(data) // 2 - chunk // 2:
                aborted = True
                self.counts["aborts"] += 1
                try:
                    # A fresh session: the dropped connection is its own.
                    async with self.session() as s2:
                        await self.patch(s2, auth, url, offset, piece,
                                         abort_after=len(piece) // 2)
                except Abort:
                    pass
                tolerate = 120  # bounded; each wait is about a second
                offset = await self.resume_offset(s, auth, url)
                continue
            try:
                status, new, hdrs = await self.patch(s, auth, url, offset, piece)
            except aiohttp.ClientError as e:
                raise OpError(f"patch:{type(e).__name__}",
                              f"{url.rsplit('/', 1)[1]} at {offset}: {e!r}") from e
            n += 1
            if status == 204:
                if new != offset + len(piece):
                    raise OpError("patch:offset_wrong", f"{new} != {offset + len(piece)}")
                offset = new
                self.bytes_up += len(piece)
            elif status in (409, 423) and tolerate > 0:
                # After the abort the old request may still hold the lease (423) or
                # commit after our HEAD (409): the protocol's answers; back off, re-HEAD.
                tolerate -= 1
                self.counts[f"resume_{status}"] += 1
                await asyncio.sleep(min(float(hdrs.get("Retry-After", "0") or 0), 1.0)
                                    if status == 423 else 0.05)
                await asyncio.sleep(0.1)
                offset = await self.resume_offset(s, auth, url)
            else:
                raise OpError(f"patch:{status}", str(hdrs.get("Content-Type", "")))
        if aborted:
            self.counts["resumed"] += 1
        off, repr_digest = await self.head(s, auth, url)
        if off != len(data):
            raise OpError("verify:lost_bytes", f"offset {off} of {len(data)}")
        want = f"sha-256=:{b64(digest)}:"
        if repr_digest != want:
            raise OpError("verify:digest_mismatch", f"{repr_digest} != {want}")
        self.lat["upload"].append(time.monotonic() - t0)
        return url

    async def resume_offset(self, s: aiohttp.ClientSession, auth: dict, url: str) -> int:
        off, _ = await self.head(s, auth, url)
        self.counts["resume_heads"] += 1
        return off

    # ---- artifacts and links -----------------------------------------------------------

    async def publish(self, s: aiohttp.ClientSession, upload_url: str) -> str:
        """Registers the upload as an artifact and issues a link; returns the link URL."""
        upload_id = upload_url.rsplit("/", 1)[1]
        async with s.post(self.base + "/v1/artifacts", headers=self.publisher,
                          json={"upload": upload_id,
                                "content_type": "application/octet-stream"}) as r:
            body = await r.json(content_type=None)
            if r.status != 201:
                raise OpError(f"register:{r.status}", json.dumps(body))
        async with s.post(self.base + "/v1/links", headers=self.publisher,
                          json={"artifact": body["artifact"], "partner": "load",
                                "ttl": "6h"}) as r:
            link = await r.json(content_type=None)
            if r.status != 201:
                raise OpError(f"link:{r.status}", json.dumps(link))
        return self.base + link["path"]

    async def get(self, s: aiohttp.ClientSession, url: str, data: bytes | None,
                  whole_digest: bytes, rng: tuple[int, int] | None, kind: str) -> None:
        """GET the link (a range [start, end] inclusive, or whole) and check every byte:
        against `data` when given, else the whole-file digest."""
        headers = {} if rng is None else {"Range": f"bytes={rng[0]}-{rng[1]}"}
        t0 = time.monotonic()
        h = hashlib.sha256()
        got = 0
        async with s.get(url, headers=headers) as r:
            want_status = 200 if rng is None else 206
            if r.status != want_status:
                await r.read()
                raise OpError(f"{kind}:{r.status}")
            async for block in r.content.iter_chunked(256 * 1024):
                h.update(block)
                got += len(block)
            cr = r.headers.get("Content-Range")
            rd = r.headers.get("Repr-Digest")
        self.lat[kind].append(time.monotonic() - t0)
        self.bytes_down += got
        if rd != f"sha-256=:{b64(whole_digest)}:":
            raise OpError(f"{kind}:repr_digest_mismatch", str(rd))
        if rng is None:
            if h.digest() != whole_digest:
                raise OpError(f"{kind}:corrupted", f"{got} bytes")
        else:
            start, end = rng
            total = len(data) if data is not None else -1
            if cr != f"bytes {start}-{end}/{total}":
                raise OpError(f"{kind}:content_range", str(cr))
            if got != end - start + 1:
                raise OpError(f"{kind}:lost_bytes", f"{got} of {end - start + 1}")
            if data is not None and h.digest() != hashlib.sha256(data[start:end + 1]).digest():
                raise OpError(f"{kind}:corrupted", f"range {start}-{end}")

    # ---- phases ------------------------------------------------------------------------

    async def guarded(self, name: str, coro) -> bool:
        try:
            await coro
            self.counts[f"{name}_ok"] += 1
            return True
        except OpError as e:
            self.error(e.kind, str(e))
        except asyncio.TimeoutError as e:
            self.error(f"{name}:timeout", repr(e))
        except aiohttp.ClientError as e:
            self.error(f"{name}:{type(e).__name__}", repr(e))
        except Abort as e:
            self.error(f"{name}:abort_leaked", repr(e))
        except asyncio.CancelledError:
            self.error(f"{name}:deadline")
        except Exception as e:  # anything else is an error too, never lost
            self.error(f"{name}:{type(e).__name__}", repr(e))
        return False

    async def sample(self, pids: dict[str, int], peak: dict[str, int], stop: asyncio.Event):
        while not stop.is_set():
            for name, pid in pids.items():
                rss = proc_status(pid).get("VmRSS", 0)
                peak[name] = max(peak.get(name, 0), rss)
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def main(self) -> dict:
        a = self.a
        pids = dict(p.split("=", 1) for p in a.pid)
        pids = {k: int(v) for k, v in pids.items()}
        pids["client"] = os.getpid()  # the load generator itself shares the machine
        size = a.upload_mib << 20
        print(f"# preparing {a.uploads} files of {a.upload_mib} MiB and a "
              f"{a.dl_mib} MiB artifact", flush=True)
        files = [os.urandom(size) for _ in range(a.uploads)]
        digests = [hashlib.sha256(f).digest() for f in files]
        dl_data = os.urandom(a.dl_mib << 20)
        dl_digest = hashlib.sha256(dl_data).digest()
        rnd = random.Random(a.seed)
        ranges: list[tuple[int, int] | None] = []
        for i in range(a.downloads):
            if a.full_every and i % a.full_every == 0:
                ranges.append(None)
            else:
                n = rnd.randint(1, min(len(dl_data), a.range_max_kib * 1024))
                start = rnd.randint(0, len(dl_data) - n)
                ranges.append((start, start + n - 1))

        async with self.session() as s:
            # Setup, not timed: the download artifact, by tus, registered and linked.
            print("# setup: download artifact", flush=True)
            dl_upload = await self.upload(s, self.uploaders[0], dl_data, dl_digest, False)
            dl_url = await self.publish(s, dl_upload)
            await self.get(s, dl_url, dl_data, dl_digest, None, "setup_get")
            self.lat.clear()
            self.bytes_up = self.bytes_down = 0
            self.counts.clear()

        before = {n: proc_status(p) for n, p in pids.items()}
        cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        peak: dict[str, int] = {}
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sample(pids, peak, stop))
        print(f"# load: {a.uploads} uploads x {a.upload_mib} MiB "
              f"({a.chunk_kib} KiB PATCHes, every {a.abort_every}th aborted and resumed) "
              f"+ {a.downloads} downloads, all at once", flush=True)
        t0 = self.t_start = time.monotonic()
        async with self.session() as s:
            async def one_upload(i: int):
                abort = bool(a.abort_every) and i % a.abort_every == a.abort_every - 1
                auth = self.uploaders[i % len(self.uploaders)]
                url = await self.upload(s, auth, files[i], digests[i], abort)
                self.completed_uploads.append((url, digests[i], i))

            async def one_download(i: int):
                kind = "get_full" if ranges[i] is None else "get_range"
                await self.get(s, dl_url, dl_data, dl_digest, ranges[i], kind)

            tasks = [asyncio.create_task(self.guarded("upload", one_upload(i)))
                     for i in range(a.uploads)]
            tasks += [asyncio.create_task(self.guarded("download", one_download(i)))
                      for i in range(a.downloads)]
            done, pending = await asyncio.wait(tasks, timeout=a.deadline)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=30)
        elapsed = time.monotonic() - t0
        stop.set()
        await sampler
        cpu1 = {n: cpu_seconds(p) for n, p in pids.items()}
        after = {n: proc_status(p) for n, p in pids.items()}
        print(f"# load phase done in {elapsed:.1f} s", flush=True)

        # Readback, not timed: the stored bytes of the uploads, read whole.
        readback = collections.Counter()
        if a.readback_every:
            picks = [c for c in self.completed_uploads if c[2] % a.readback_every == 0]
            print(f"# readback: {len(picks)} uploads registered, linked, downloaded whole",
                  flush=True)
            sem = asyncio.Semaphore(a.readback_concurrency)
            async with self.session() as s:
                async def back(url: str, digest: bytes):
                    async with sem:
                        link = await self.publish(s, url)
                        await self.get(s, link, None, digest, None, "readback")

                for ok in await asyncio.gather(*[
                        self.guarded("readback", back(u, d)) for u, d, _ in picks]):
                    readback["ok" if ok else "failed"] += 1
        up_ok = self.counts["upload_ok"]
        dl_ok = self.counts["download_ok"]
        result = {
            "label": a.label,
            "base": "loopback",
            "uploaders": len(self.uploaders),
            "config": {k: getattr(a, k) for k in (
                "uploads", "upload_mib", "chunk_kib", "abort_every", "downloads", "dl_mib",
                "range_max_kib", "full_every", "create_retries", "request_timeout", "deadline",
                "readback_every")},
            "elapsed_s": round(elapsed, 2),
            "uploads": {"started": a.uploads, "completed": up_ok,
                        "aborted_and_resumed": self.counts["resumed"],
                        "aborts": self.counts["aborts"],
                        "resume_heads": self.counts["resume_heads"],
                        "resume_409": self.counts["resume_409"],
                        "resume_423": self.counts["resume_423"],
                        "create_423_retried": self.counts["create_423_retried"]},
            "downloads": {"started": a.downloads, "completed": dl_ok},
            "readback": {"checked": readback["ok"], "failed": readback["failed"]},
            "errors": dict(self.errors),
            "error_examples": self.error_examples,
            "latency": {k: summary(v) for k, v in sorted(self.lat.items())
                        if k != "readback"},
            "throughput": {
                "upload_MBps": round(self.bytes_up / elapsed / 1e6, 1),
                "download_MBps": round(self.bytes_down / elapsed / 1e6, 1),
                "uploads_per_s": round(up_ok / elapsed, 2),
            },
            "servers": {n: {"rss_before_MiB": mib(before[n].get("VmRSS")),
                            "rss_after_MiB": mib(after[n].get("VmRSS")),
                            "rss_peak_sampled_MiB": mib(peak.get(n)),
                            "vm_hwm_MiB": mib(after[n].get("VmHWM")),
                            "cpu_s": None if cpu0[n] is None or cpu1[n] is None
                            else round(cpu1[n] - cpu0[n], 1)}
                        for n in pids},
        }
        result["ok"] = (not self.errors and up_ok == a.uploads and dl_ok == a.downloads
                        and readback["failed"] == 0)
        return result


def mib(v: int | None) -> float | None:
    return None if v is None else round(v / 2**20, 1)


def read_token(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cmd_run(a: argparse.Namespace) -> int:
    result = asyncio.run(Run(a).main())
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return 0 if result["ok"] else 1


def cmd_compare(a: argparse.Namespace) -> int:
    rs = []
    for p in a.results:
        with open(p) as f:
            rs.append(json.load(f))
    rows: list[tuple[str, list]] = []

    def row(name, get):
        vals = []
        for r in rs:
            try:
                vals.append(get(r))
            except (KeyError, TypeError):
                vals.append(None)
        rows.append((name, vals))

    row("elapsed s", lambda r: r["elapsed_s"])
    row("uploads completed", lambda r: f'{r["uploads"]["completed"]}/{r["uploads"]["started"]}')
    row("  aborted+resumed", lambda r: r["uploads"]["aborted_and_resumed"])
    row("  create 423 retried", lambda r: r["uploads"]["create_423_retried"])
    row("  resume 409/423 answers", lambda r: r["uploads"]["resume_409"]
        + r["uploads"]["resume_423"])
    row("downloads completed",
        lambda r: f'{r["downloads"]["completed"]}/{r["downloads"]["started"]}')
    row("readback checked", lambda r: r["readback"]["checked"])
    row("errors", lambda r: sum(r["errors"].values()) + r["readback"]["failed"])
    ops = sorted({k for r in rs for k in r["latency"]})
    for op in ops:
        row(f"{op} p50 ms", lambda r, op=op: r["latency"][op]["p50_ms"])
        row(f"{op} p99 ms", lambda r, op=op: r["latency"][op]["p99_ms"])
    for k in ("upload_MBps", "download_MBps", "uploads_per_s"):
        row(k, lambda r, k=k: r["throughput"][k])
    row("gateway RSS peak MiB (sum)", lambda r: round(sum(
        v["rss_peak_sampled_MiB"] for n, v in r["servers"].items() if n.startswith("gw")), 1))
    row("gateway RSS peak MiB (max)", lambda r: max(
        v["rss_peak_sampled_MiB"] for n, v in r["servers"].items() if n.startswith("gw")))
    row("gateway CPU s (sum)", lambda r: round(sum(
        v["cpu_s"] for n, v in r["servers"].items() if n.startswith("gw")), 1))
    names = sorted({n for r in rs for n in r["servers"]})
    for n in names:
        row(f"{n} RSS peak/VmHWM MiB", lambda r, n=n: "{}/{}".format(
            r["servers"][n]["rss_peak_sampled_MiB"], r["servers"][n]["vm_hwm_MiB"]))
    for n in names:
        row(f"{n} CPU s", lambda r, n=n: r["servers"][n]["cpu_s"])

    head = ["figure"] + [r["label"] for r in rs] + (["ratio"] if len(rs) > 1 else [])
    table = [head]
    for name, vals in rows:
        line = [name] + ["-" if v is None else str(v) for v in vals]
        if len(rs) > 1:
            x, y = vals[0], vals[-1]
            line.append(f"{y / x:.2f}" if isinstance(x, (int, float)) and isinstance(
                y, (int, float)) and x else "")
        table.append(line)
    widths = [max(len(t[i]) for t in table) for i in range(len(head))]
    for t in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(t, widths))))
    bad = [r["label"] for r in rs if not r.get("ok")]
    for r in rs:
        if r["errors"]:
            print(f"# {r['label']}: errors {json.dumps(r['errors'])}")
            for k, v in r["error_examples"].items():
                for e in v:
                    print(f"#   {k}: {e}")
    if bad:
        print(f"# FAILED: {', '.join(bad)} (errors, unfinished operations or bytes that "
              "did not check)")
        return 1
    print("# every upload's Repr-Digest, every download's and readback's SHA-256 checked: "
          "no byte lost or corrupted")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--base", required=True)
    r.add_argument("--ca", required=True)
    r.add_argument("--uploader-tokens-file", required=True,
                   help="uploader clients' tokens, one a line")
    r.add_argument("--publisher-token-file", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--label", default="run")
    r.add_argument("--pid", action="append", default=[], help="NAME=PID to watch")
    r.add_argument("--uploads", type=int, default=500)
    r.add_argument("--upload-mib", type=int, default=4)
    r.add_argument("--chunk-kib", type=int, default=1024)
    r.add_argument("--abort-every", type=int, default=10)
    r.add_argument("--downloads", type=int, default=200)
    r.add_argument("--dl-mib", type=int, default=16)
    r.add_argument("--range-max-kib", type=int, default=2048)
    r.add_argument("--full-every", type=int, default=10)
    r.add_argument("--readback-every", type=int, default=1)
    r.add_argument("--readback-concurrency", type=int, default=16)
    r.add_argument("--create-retries", type=int, default=0)
    r.add_argument("--request-timeout", type=float, default=180)
    r.add_argument("--deadline", type=float, default=900)
    r.add_argument("--seed", type=int, default=15)
    c = sub.add_parser("compare")
    c.add_argument("results", nargs="+")
    a = p.parse_args()
    if a.cmd == "run":
        for k in ("uploads", "upload_mib", "chunk_kib", "downloads", "dl_mib"):
            if getattr(a, k) < (0 if k in ("uploads", "downloads") else 1):
                p.error(f"--{k.replace('_', '-')} out of range")
        return cmd_run(a)
    return cmd_compare(a)


if __name__ == "__main__":
    sys.exit(main())
