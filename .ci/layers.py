#!/usr/bin/env python3
"""The layering check: fails (exit 1) when a source file imports across a layer boundary
the architecture forbids, or when two source files import each other in a circle.

    python3 .ci/layers.py            # check ./src
    python3 .ci/layers.py DIR        # check another source tree
    python3 .ci/layers.py --selftest # prove the check catches what it claims to

Layers, dependencies pointing down only (docs/architecture.md):

    cli / main / app      may import anything
    http                  the accept loop, edge, handlers
    services              upload, links, artifact, grant, download, batch
    ports and adapters    state, blob, keys
    pure protocol cores   CORES below: no I/O, nothing above them

Rules (each violation is printed as `src/file.rs:LINE: RULE: ...`):

  core-external   a pure core uses an I/O or server crate (CORE_FORBIDDEN_EXTERNAL)
  core-internal   a pure core imports a crate module above it (CORE_FORBIDDEN_INTERNAL,
                  SERVICES); a file that is itself a core is never "above" (a core file
                  under a service's path, `batch/ndjson.rs`, may be imported by a sibling)
  adapter-up      a port/adapter (ADAPTERS) imports crate::http, crate::cli, crate::app or
                  a service (SERVICES)
  cli-only        anything but cli, main.rs and app imports crate::cli
  http-down       anything but http, cli, main.rs and app imports crate::http
  cycle           source files that import each other in a circle, found twice: by the
                  logic of import_cycles.py, and on code only with paths through a
                  parent's `pub use` followed to the defining file (which the first
                  cannot see: `crate::tus::TusError` stops at tus.rs)

What counts as an import. Layer rules read code only: `//` comments are dropped (a doc
link creates no dependency, and prose may say "tokio"), and so is test code (inline
`#[cfg(test)] mod x { … }` blocks, and files declared `#[cfg(test)] mod x;`). References are
`use` trees (groups expanded), and `crate::…`, `super::…` paths anywhere in code, resolved
to the longest module path that is a file; an external crate counts when a path starts
with its name (`tokio::…`, `use std::{fs, io}`), never when it follows `::`
(`crate::state::redis` is ours). The first cycle pass is the exact logic of the
repository's shared `import_cycles.py` (which the acceptance of issue 9 runs): it reads
`crate::` and `super::` paths in the whole file, comments included, minus the trailing test
block. The second reads code as the layer rules do and follows re-exports. In both, a
module file and its own submodules are not counted against each other. `main.rs` is the
binary's crate root (its `crate::` is not the library's) and is left out of the graph.

The tables below must stay true: a CORES or ADAPTERS entry that names no file is an error,
and so is an ALLOW entry that no longer matches a violation. Stdlib only; no network.
"""

import os
import re
import shutil
import sys
import tempfile

# === the tables ===

# Pure protocol cores: bytes or typed values in, typed decisions out; no I/O. An entry is a
# module path (`tus` = src/tus.rs and everything under src/tus/) or one file (`audit/chain.rs`).
CORES = {
    "tus": "tus 1.0.0 headers, metadata, checksums, the upload state machine, ledger format",
    "range": "RFC 9110 range parsing and planning",
    "signed_link": "signed-link canonical form, signing and verification",
    "rfc9110": "shared RFC 9110 field syntax: tokens, OWS, lists, parameters",
    "ids": "opaque server-generated ids",
    "audit/chain.rs": "the audit hash chain (audit.rs around it does I/O)",
    "audit/checkpoint.rs": "signed checkpoint notes: format, signing, verification",
    "audit/verify.rs": "chain against checkpoints: truncation, rewrite, consistency",
    "audit/journal/record.rs": "audit journal segment header and record codec, torn-tail scan",
    "audit/siem.rs": "SIEM formats: JSON lines, RFC 5424 syslog + CEF, escaping, framing",
    "audit/query": "audit queries: filters, cursor, mentioned ids, trace assembly and rendering",
    "at_rest/format.rs": "at-rest v1 header, key derivation, segment sealing",
    "at_rest/encoder.rs": "the writer's hot path: seals segments into a buffer, no I/O",
    "at_rest/tail.rs": "the tail-record codec (the writer decides when it is written)",
    "at_rest/settings.rs": "validates the configured segment size",
    "batch/ndjson.rs": "streaming FHIR NDJSON checker: lines, resourceType, record count",
    "batch/verdict.rs": "batch verdict: manifest facts against observed facts, findings out",
    "batch/verdict/finding.rs": "the verdict's findings: codes, member names, readable lines",
    "batch/verdict/report.rs": "the verification report JSON and its SHA-256",
    "batch/profile.rs": "release profiles: a profile and the batch's documents in, broken rules out",
    "manifest": "batch manifest and provenance parsing (proto/manifest-v1.md)",
    "proxy": "PROXY protocol v2 header, Forwarded / X-Forwarded-For, the client address",
    "smart/scope.rs": "SMART v1/v2 system scopes and the granted intersection",
    "bulk/request.rs": "Bulk Data kick-off: level, Accept/Prefer, _outputFormat, _type, _since",
    "bulk/manifest.rs": "Bulk Data complete-status manifest and OperationOutcome documents",
    "cli/client/wire.rs": "client: Repr-Digest, Content-Range, file names, NDJSON record counts",
    "cli/client/bulk.rs": "client: the Bulk Data manifest's download list",
    "cli/client/resume.rs": "client: resume records, retry schedule, chunk planning",
    "cli/client/outcome.rs": "client: per-file reports and exit codes",
}

# External crates (and std modules) a pure core must not use, with why.
CORE_FORBIDDEN_EXTERNAL = {
    "tokio": "async runtime and I/O",
    "tokio_rustls": "TLS over sockets",
    "hyper": "HTTP server/client",
    "hyper_util": "HTTP server plumbing",
    "axum": "HTTP framework",
    "tower": "HTTP middleware",
    "redis": "the Redis client",
    "redb": "the embedded database",
    "rustix": "raw syscalls (files)",
    "std::fs": "the filesystem",
}

# Crate modules above the cores (besides SERVICES), with why a core must not import them.
CORE_FORBIDDEN_INTERNAL = {
    "state": "the StateStore port and adapters (storage)",
    "blob": "the BlobStore port and adapters (storage)",
    "http": "the HTTP layer",
    "cli": "the command line",
    "app": "the composition root",
    "config": "configuration loading (cores get validated values passed in)",
    "tls": "TLS termination",
    "metrics": "the metrics registry",
}

# Ports and their adapters: may import cores and cross-cutting modules, never the layers
# that use them.
ADAPTERS = {
    "state": "StateStore port; embedded (redb) and Redis adapters",
    "blob": "BlobStore port; local filesystem and S3 adapters",
    "keys": "KeyProvider port; keyring and static providers",
}

# Services: own a flow, called by handlers. Listed so nothing below imports them; a name
# with no module yet (download, batch) is fine: these are names to refuse, not claims.
SERVICES = {
    "upload": "the upload engine",
    "links": "the signed-link service",
    "artifact": "artifact records and registration",
    "grant": "grant records and download meters",
    "download": "reserved: the download flow lives in links::download",
    "batch": "batch delivery (planned)",
    "smart": "SMART Backend Services: the token endpoint flow",
    "invite": "upload invitations: issue, admit, holder view and seal, revoke",
    "bulk": "FHIR Bulk Data delivery: publications, kick-off, status, cancel",
}

# Modules allowed to import crate::cli and crate::http: the top of the stack. `main.rs`
# is the binary crate and is never checked.
TOP = {"cli", "app"}

# Violations that remain, each with who removes it and why it is tolerated until then:
# (file under src/, rule, imported top-level module), or for a cycle (its files under src/,
# sorted and joined by ", ", "cycle", ""). An entry that matches nothing is an error.
ALLOW = {
    # (file or cycle, rule, target): reason. Empty: every rule holds everywhere.
}

# === the check ===

TEST_BLOCK = re.compile(r"#\[cfg\(test\)\]\s*mod tests")
TEST_MOD_DECL = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;")


def load_modules(root):
    """Module path tuple -> file, like import_cycles.py (main.rs left out)."""
    mods = {}
    for d, _, fs in os.walk(root):
        for f in sorted(fs):
            if not f.endswith(".rs"):
                continue
            full = os.path.join(d, f)
            p = os.path.relpath(full, root)[:-3].split(os.sep)
            if p[-1] == "mod":
                p = p[:-1]
            if p == ["main"]:
                continue
            if p == ["lib"]:
                p = []
            mods[tuple(p)] = full
    return mods


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def resolve(mods, path):
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return tuple(path[:n])
    return None


def absolute_super(module, parts):
    """A `super::…` path (segments, the first one `super`) seen in `module`, as segments
    from the crate root: the first `super` is this file's parent module, each further one
    goes up one more."""
    base, parts = list(module[:-1]), list(parts[1:])
    while parts and parts[0] == "super":
        base, parts = base[:-1], parts[1:]
    return base + parts


# --- cycles: the logic of import_cycles.py, unchanged ---

def cycle_edges(mods):
    ref = re.compile(r"\b(crate|super)((?:::\w+)+)")
    grp = re.compile(r"\b(crate|super)((?:::\w+)*)::\{([^;]*?)\}", re.S)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        src = TEST_BLOCK.split(read(f))[0]
        found = [(k, t.strip("::").split("::")) for k, t in ref.findall(src)]
        for k, base, inner in grp.findall(src):
            for item in re.split(r",", re.sub(r"\{[^}]*\}", "", inner)):
                item = item.strip().split(" as ")[0]
                if item and item != "self":
                    found.append((k, (base.strip("::") + "::" + item).strip("::").split("::")))
        for k, parts in found:
            full = parts if k == "crate" else absolute_super(m, ["super"] + parts)
            t = resolve(mods, [p for p in full if p])
            if t is None or t == m:
                continue
            if t[: len(m)] == m or m[: len(t)] == t:
                continue  # parent <-> own submodule
            edges[m].add(t)
    return edges


def reexport_edges(mods):
    """The code-only references of the layer rules, with a path through a parent's `pub use`
    followed to the file that defines the item: `crate::tus::TusError`, where tus.rs has
    `pub use error::TusError`, is an edge to tus/error.rs. import_cycles.py stops at the
    facade (a parent and its children do not count against each other), so two sibling files
    that import each other, one of them through the facade, are a cycle it cannot see."""
    reexports = {}  # (facade module, name) -> module that defines it
    for m, f in mods.items():
        code = strip_comments(read(f))
        for u in re.finditer(r"\bpub\s+use\s+([^;]+);", code):
            for parts, _ in expand_use(u.group(1), 0):
                if parts[0] == "crate":
                    full = parts[1:]
                elif parts[0] == "super":
                    full = absolute_super(m, parts)
                else:
                    full = list(m) + (parts[1:] if parts[0] == "self" else parts)
                t = resolve(mods, full)
                if t is not None and t != m:
                    reexports[(m, parts[-1])] = t
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        for _, kind, parts in references(m, f, mods):
            t = resolve(mods, list(parts)) if kind == "crate" else None
            if t is None:
                continue
            rest = list(parts[len(t):])
            while rest and (t, rest[0]) in reexports:
                t, rest = reexports[(t, rest[0])], rest[1:]
            if t == m or t[: len(m)] == m or m[: len(t)] == t:
                continue
            edges[m].add(t)
    return edges


def cycles(mods, edges):
    index, low, stack, on, out, i = {}, {}, [], set(), [], [0]

    def sc(v):
        index[v] = low[v] = i[0]
        i[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                sc(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(mods[x] for x in comp))

    sys.setrecursionlimit(10000)
    for v in sorted(mods):
        if v not in index:
            sc(v)
    return sorted(out)


# --- references for the layer rules: code only, with line numbers ---

RAW_START = re.compile(r'r(#*)"')
WORD = re.compile(r"\w")
CHAR_LITERAL = re.compile(r"'(\\'|\\[^']{1,10}|[^\\'\n])'")


def strip_comments(src):
    """Blanks `//` and `/* */` comments (keeping newlines, so lines still count) and the
    contents of string literals (so a URL's `//` or a `"tokio::x"` is not read as code)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif c == '"' or (c == "r" and RAW_START.match(src, i) and not WORD.match(src, i - 1)):
            if c == "r":
                hashes = RAW_START.match(src, i).group(1)
                end = '"' + hashes
                j = src.find(end, i + 2 + len(hashes))
                j = n if j < 0 else j + len(end)
            else:
                j = i + 1
                while j < n and src[j] != '"':
                    j += 2 if src[j] == "\\" else 1
                j = min(j + 1, n)
            out.append('"' + re.sub(r"[^\n]", " ", src[i + 1:j - 1]) + '"' if j - i >= 2 else src[i:j])
            i = j
        elif c == "'" and CHAR_LITERAL.match(src, i):
            # a char literal such as '"' or '/'; lifetimes ('a) are left alone
            j = CHAR_LITERAL.match(src, i).end()
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_blocks(code):
    """Blanks every inline `#[cfg(test)] mod name { … }` (brace-matched, on code whose
    comments and strings are already blanked), keeping newlines; code after it still counts."""
    out, pos = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        if m.start() < pos:
            continue
        depth, j = 0, m.end() - 1
        while j < len(code):
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
            if depth == 0:
                break
        out.append(code[pos:m.start()])
        out.append(re.sub(r"[^\n]", " ", code[m.start():j]))
        pos = j
    out.append(code[pos:])
    return "".join(out)


def expand_use(tree, offset):
    """`a::b::{c, d::{e as f}, self}` -> [(path segments, offset of the leaf)]."""
    results = []

    def walk(prefix, s, base):
        s_stripped = s.strip()
        lead = len(s) - len(s.lstrip())
        s, base = s_stripped, base + lead
        brace = s.find("{")
        if brace < 0:
            leaf = s.split(" as ")[0].strip()
            parts = [p for p in leaf.split("::") if p]
            if parts == ["self"]:
                parts = []
            if prefix + parts:
                results.append((prefix + parts, base))
            return
        head = [p for p in s[:brace].strip().rstrip(":").split("::") if p]
        inner = s[brace + 1: s.rfind("}")]
        depth, start = 0, 0
        for k, ch in enumerate(inner + ","):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                item = inner[start:k]
                if item.strip():
                    walk(prefix + head, item, base + brace + 1 + start)
                start = k + 1

    walk([], tree, offset)
    return results


def references(module, path, mods, src=None):
    """[(line, kind, segments)] for the layer rules; kind is `crate` (segments from the crate
    root) or `extern` (segments as written, first one a crate name)."""
    src = strip_test_blocks(strip_comments(src if src is not None else read(path)))
    line_of = lambda off: src.count("\n", 0, off) + 1
    refs = set()
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        for parts, off in expand_use(m.group(1), m.start(1)):
            refs.add(classify(module, parts, line_of(off)))
    for m in re.finditer(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", src):
        refs.add(classify(module, m.group(1).split("::"), line_of(m.start())))
    for m in re.finditer(r"(?<![\w:])(\w+)::(\w+)", src):
        if m.group(1) not in ("crate", "super", "self", "Self"):
            refs.add(classify(module, [m.group(1), m.group(2)], line_of(m.start())))
    return sorted(r for r in refs if r is not None)


def classify(module, parts, line):
    parts = [p for p in parts if p]
    if not parts:
        return None
    if parts[0] == "crate":
        return (line, "crate", tuple(parts[1:]))
    if parts[0] == "super":
        return (line, "crate", tuple(absolute_super(module, parts)))
    if parts[0] == "self":
        return (line, "crate", tuple(module) + tuple(parts[1:]))
    return (line, "extern", tuple(parts))


def test_only(mods):
    """Modules declared `#[cfg(test)] mod x;` in their parent file, and all below them."""
    out = set()
    for m, f in mods.items():
        for name in TEST_MOD_DECL.findall(read(f)):
            out.add(m + (name,))
    return {m for m in mods if any(m[: len(t)] == t for t in out)}


def entry_matches(entry, module, path, root):
    """Whether a CORES/ADAPTERS entry covers this module (entry: `a/b` or `a/b.rs`)."""
    if entry.endswith(".rs"):
        return os.path.relpath(path, root) == entry.replace("/", os.sep)
    want = tuple(entry.split("/"))
    return module[: len(want)] == want


def entry_exists(entry, mods, root):
    if entry.endswith(".rs"):
        return os.path.isfile(os.path.join(root, entry))
    return tuple(entry.split("/")) in mods


def check(root, cores=None, adapters=None, allow=None):
    """Every problem, as printable lines (empty: the tree keeps the rules)."""
    cores = CORES if cores is None else cores
    adapters = ADAPTERS if adapters is None else adapters
    allow = ALLOW if allow is None else allow
    mods = load_modules(root)
    problems, used_allow = [], set()
    for table, name in ((cores, "CORES"), (adapters, "ADAPTERS")):
        for entry in table:
            if not entry_exists(entry, mods, root):
                problems.append(f".ci/layers.py: {name} lists `{entry}`, which is not in {root}")
    skip = test_only(mods)
    for module, path in sorted(mods.items()):
        if module in skip:
            continue
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        top = module[0] if module else ""
        core = next((e for e in cores if entry_matches(e, module, path, root)), None)
        adapter = top in adapters
        for line, kind, parts in references(module, path, mods):
            found = []  # (rule, target, message)
            if kind == "extern":
                name = parts[0]
                if core and name == "std" and len(parts) > 1:
                    name = "std::" + parts[1]
                if core and name in CORE_FORBIDDEN_EXTERNAL:
                    found.append(("core-external", name,
                                  f"pure core `{core}` uses `{name}` ({CORE_FORBIDDEN_EXTERNAL[name]})"))
            else:
                target = resolve(mods, list(parts))
                if target is None or not target:
                    continue
                t = target[0]
                target_is_core = any(entry_matches(e, target, mods[target], root) for e in cores)
                if core and not target_is_core and (t in CORE_FORBIDDEN_INTERNAL or t in SERVICES):
                    why = CORE_FORBIDDEN_INTERNAL.get(t) or SERVICES[t]
                    found.append(("core-internal", t, f"pure core `{core}` imports crate::{t} ({why})"))
                if adapter and (t in ("http", "cli", "app") or t in SERVICES):
                    found.append(("adapter-up", t,
                                  f"port/adapter `{top}` imports crate::{t}, a layer above it"))
                if t == "cli" and top not in TOP:
                    found.append(("cli-only", t, "only cli, main.rs and app may import crate::cli"))
                if t == "http" and top not in TOP and top != "http":
                    found.append(("http-down", t, f"`{top or 'lib'}` is below http and imports crate::http"))
            for rule, target, message in found:
                key = (rel, rule, target)
                if key in allow:
                    used_allow.add(key)
                    continue
                problems.append(f"{os.path.join(root, rel)}:{line}: {rule}: {message}")
    seen = []
    for label, edges in (("cycle", cycle_edges(mods)),
                         ("cycle through a re-export", reexport_edges(mods))):
        for c in cycles(mods, edges):
            if c in seen:
                continue
            seen.append(c)
            key = (", ".join(os.path.relpath(f, root).replace(os.sep, "/") for f in c), "cycle", "")
            if key in allow:
                used_allow.add(key)
            else:
                problems.append(f"{label}: " + ", ".join(c))
    for key in sorted(set(allow) - used_allow):
        problems.append(f".ci/layers.py: ALLOW entry {key} matches no violation any more; delete it")
    # One line per (file, line, rule): a `use` and an inline path can name the same thing.
    return sorted(set(problems))


# === the self-test ===

def selftest():
    """Builds small trees with known violations and asserts each is reported, that a clean
    tree passes, and that the table and allow-list checks fire. The trees are removed
    whether or not it passes."""
    made = []
    try:
        _selftest(made)
    finally:
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


def _selftest(made):

    def tree(files):
        d = tempfile.mkdtemp(prefix="layers-selftest-")
        made.append(d)
        for rel, text in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        return d

    # Every module the real tables name exists, so the real tables are what is tested.
    base = {"lib.rs": "pub mod tus;\n", "main.rs": "use sallyport::cli;\n"}
    for entry in CORES:
        base[entry if entry.endswith(".rs") else entry + ".rs"] = "//! stub\n"
    for entry in ADAPTERS:
        base[entry + ".rs"] = "//! stub\n"
    for extra in ("http.rs", "http/handlers.rs", "cli.rs", "upload.rs", "links.rs",
                  "config.rs", "at_rest.rs", "audit.rs"):
        base[extra] = "//! stub\n"

    clean = dict(base)
    clean["tus.rs"] = (
        "//! A core. Mentions tokio::spawn and crate::http in docs only.\n"
        "use std::fmt;\nuse crate::ids::OpaqueId;\n"
        "const U: &str = \"redis://x\"; // crate::state in a comment\n"
        "#[cfg(test)]\nmod tests {\n    use tokio::sync::Mutex;\n    use crate::state::X;\n}\n"
    )
    clean["tus/proptests.rs"] = "use tokio::runtime::Runtime;\nuse crate::blob::B;\n"
    clean["tus.rs"] += "#[cfg(test)]\nmod proptests;\n"
    clean["state.rs"] = "pub mod redis;\nuse crate::state::redis::RedisStore;\nuse crate::ids::OpaqueId;\n"
    clean["state/redis.rs"] = "use redis::Client;\nuse tokio::sync::Mutex;\n"
    clean["http.rs"] = "use crate::upload::Uploads;\nuse crate::state::StateStore;\n"
    clean["cli.rs"] = "use crate::http::serve;\nuse crate::config::Config;\n"
    clean["batch.rs"] = "pub mod ndjson;\npub mod verdict;\n"
    clean["batch/verdict.rs"] = "use super::ndjson::NdjsonReport;\nuse crate::batch::ndjson::X;\n"
    d = tree(clean)
    got = check(d, allow={})
    assert got == [], "a clean tree is reported:\n" + "\n".join(got)

    bad = dict(base)
    bad["tus.rs"] = "use tokio::sync::Mutex;\nuse crate::state::{Namespace, StateStore};\n"
    bad["range.rs"] = "use std::{\n    fmt,\n    fs::File,\n};\nfn f() { let _ = std::fs::read(\"x\"); }\n"
    bad["range/plan.rs"] = "use super::super::upload::Uploads;\n"
    bad["audit/chain.rs"] = "use crate::{http::body::read_capped, ids};\n"
    bad["state.rs"] = "pub fn f() { crate::links::issue(); }\n"
    bad["keys.rs"] = "use crate::cli::Args;\n"
    bad["upload.rs"] = "use crate::http::body::read_capped;\n"
    bad["config.rs"] = "use crate::cli::Args;\n"
    bad["a.rs"] = "use crate::b::B;\npub struct A;\n"
    bad["b.rs"] = "use crate::a::A;\npub struct B;\n"
    # c.rs <-> c/x.rs is parent/child; c/x.rs <-> c/y.rs only through c.rs's re-export.
    bad["c.rs"] = "pub mod x;\npub mod y;\npub use y::Why;\n"
    bad["c/x.rs"] = "use crate::c::Why;\npub struct Ex;\n"
    bad["c/y.rs"] = "use crate::c::x::Ex;\npub struct Why;\n"
    bad["batch.rs"] = "pub mod ndjson;\npub mod verdict;\npub struct Service;\n"
    bad["batch/ndjson.rs"] = "use crate::batch::Service;\n"
    bad["signed_link.rs"] = ("#[cfg(test)]\nmod tests {\n    use tokio::x;\n}\n"
                             "fn after_tests() { crate::blob::f(\"}\"); }\n")
    d = tree(bad)
    got = "\n".join(check(d, allow={}))
    expect = [
        ("tus.rs:1: core-external", "tokio"),
        ("tus.rs:2: core-internal", "crate::state"),
        ("range.rs:3: core-external", "std::fs"),
        ("range.rs:5: core-external", "std::fs"),
        ("range/plan.rs:1: core-internal", "crate::upload"),
        ("audit/chain.rs:1: core-internal", "crate::http"),
        ("audit/chain.rs:1: http-down", "crate::http"),
        ("state.rs:1: adapter-up", "crate::links"),
        ("keys.rs:1: adapter-up", "crate::cli"),
        ("keys.rs:1: cli-only", "crate::cli"),
        ("upload.rs:1: http-down", "crate::http"),
        ("config.rs:1: cli-only", "crate::cli"),
        ("cycle:", "a.rs"),
        ("signed_link.rs:5: core-internal", "crate::blob"),
        ("batch/ndjson.rs:1: core-internal", "crate::batch"),
        ("cycle through a re-export:", "c/x.rs"),
    ]
    for where, what in expect:
        hit = [l for l in got.splitlines() if where in l and what in l]
        assert hit, f"not caught: {where} {what}\n--- report ---\n{got}"
    assert "/main.rs:" not in got, got
    assert "signed_link.rs:3" not in got, got  # tokio inside the test block

    # The tables must stay true: a listed core that does not exist is an error …
    missing = dict(clean)
    del missing["rfc9110.rs"]
    got = "\n".join(check(tree(missing), allow={}))
    assert "CORES lists `rfc9110`" in got, got
    # … an ALLOW entry that matches nothing is an error, and one that matches silences.
    got = "\n".join(check(d, allow={("upload.rs", "http-down", "http"): "x",
                                     ("nowhere.rs", "http-down", "http"): "y"}))
    assert "upload.rs:1: http-down" not in got, got
    assert "'nowhere.rs'" in got and "delete it" in got, got
    got = "\n".join(check(d, allow={("a.rs, b.rs", "cycle", ""): "x"}))
    assert "cycle:" not in got and "delete it" not in got, got

    print("layers selftest: ok (clean tree passes; %d planted violations caught; "
          "table and allow checks fire)" % len(expect))


def main(argv):
    if argv[1:2] == ["--selftest"]:
        selftest()
        return 0
    root = argv[1] if len(argv) > 1 else "src"
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"layers: {len(problems)} problem(s); see the rules at the top of .ci/layers.py")
        return 1
    for key, reason in sorted(ALLOW.items()):
        print(f"layers: allowed for now: {key}: {reason}")
    print(f"layers: ok ({len(load_modules(root))} files; no cycle or cross-layer import "
          f"beyond the {len(ALLOW)} allowed above)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
