"""Bulk-indexing throughput of hit documents into a local osmem-server.

Starts osmem-server (from the osmem-server wheel) on a free loopback port,
installs the leaksentry templates, and measures:

1. baseline: one ``create`` request per hit document (a small sample);
2. ``streaming_bulk`` of pre-built hit documents (opensearch-py backend),
   the sink's delivery path without SQLite;
3. the full spool path: ``record_finding`` (SQLite store + spool) for every
   finding, then ``spool.drain`` (read spool, bulk, delete delivered rows);
4. the client-side ceiling: the same drain against a null bulk receiver
   (a local HTTP server answering every item 201 without indexing), which
   separates our cost (SQLite, JSON, client) from the server's;
5. the server's own ceiling: the same hit documents bulk-indexed into an
   osmem index that maps no field (``dynamic: false``: parsed and stored,
   nothing indexed), and one-field documents into a one-keyword index. No
   client can index faster into this server than these rates.

Hit documents are built from leaksentry.synth's fictional patients, each hit
with 1-20 matched records (masked identifiers only). Prints figures only, never
identifiers.

    .venv/bin/python bench/bench_index.py [--hits 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leaksentry.config import Settings
from leaksentry.redaction import mask
from leaksentry.store import Store
from leaksentry.synth import patients
from pipelines.flow import record_finding
from pipelines.model import Finding, Match, ScanResult
from pipelines.sinks import ecs, spool
from pipelines.sinks.client import connect, dumps
from pipelines.sinks.setup import setup


def start_osmem() -> tuple[subprocess.Popen, str]:
    from osmem_server import resolve_binary

    proc = subprocess.Popen([resolve_binary(), "-addr", "127.0.0.1:0", "-no-stdin-watch",
                             "-no-ja"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc, json.loads(line)["url"]


def findings(n: int) -> list[Finding]:
    people = list(patients(400, seed=3))
    base = datetime(2026, 11, 20, tzinfo=UTC)
    out = []
    for i in range(n):
        k = 1 + i % 20
        group = [people[(i * 7 + j) % len(people)] for j in range(k)]
        matches = [Match("hkid", mask("hkid", p.hkid), p.ref, 1, f"Sheet1!C{j + 2}",
                         hashlib.sha256(p.ref.encode()).hexdigest()[:32])
                   for j, p in enumerate(group)]
        sev = "critical" if k >= 15 else "high" if k >= 8 else "medium" if k >= 3 else "low"
        result = ScanResult(severity=sev, risk_score=5 * k, matched_records=k,
                            record_refs=[p.ref for p in group], matches=matches, parts=1,
                            snippets=[f"... {m.masked} ..." for m in matches[:2]])
        url = f"https://site{i % 13}.example/paste/{i}"
        out.append(Finding(url=url, source=f"source{i % 5}",
                           sha256=hashlib.sha256(url.encode()).hexdigest(), size=1000 + i,
                           fetched_at=base - timedelta(minutes=i), result=result,
                           filename="export.csv", content_type="text/csv"))
    return out


class NullBulk:
    """Answers /_bulk with 201 for every item and setup requests like an empty server:
no indexing."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: object) -> None:
                pass

            def _reply(self, body: bytes, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                lines = data.split(b"\n")
                items = []
                for meta in lines[0::2]:
                    if meta.strip():
                        op = json.loads(meta)["create"]
                        items.append({"create": {"_index": op["_index"], "_id": op["_id"],
                                                 "status": 201, "result": "created"}})
                self._reply(json.dumps({"took": 0, "errors": False, "items": items}).encode())

            def do_GET(self) -> None:
                # a server version (setup checks it), no ILM/ISM, no templates or aliases
                # yet: the drain installs the templates once, as on a fresh cluster
                if self.path.split("?")[0] == "/":
                    self._reply(b'{"version":{"number":"3.0.0","distribution":"opensearch"}}')
                elif "/_plugins/" in self.path:
                    self._reply(b'{"error":"no handler found for uri"}', 400)
                else:
                    self._reply(b'{"error":{"type":"resource_not_found_exception"}}', 404)

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._reply(b'{"acknowledged":true}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count(cluster, alias: str) -> int:
    cluster.request("POST", f"/{alias}/_refresh")
    return int(cluster.request("GET", f"/{alias}/_count")["count"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hits", type=int, default=3_000)
    ap.add_argument("--baseline", type=int, default=200)
    args = ap.parse_args()
    proc, url = start_osmem()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(url, Path(tmp), args.hits, args.baseline, proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def run(url: str, tmp: Path, n: int, n_base: int, pid: int) -> None:
    fs = findings(n)
    print(f"osmem-server at {url}; {n} hit documents, 1-20 records each")

    # 1. baseline: one request per document
    s1 = Settings.model_validate({"elasticsearch": {"url": url, "backend": "opensearch",
                                                    "index_prefix": "base"}})
    c1 = connect(s1.elasticsearch)
    setup(c1)
    docs = [(ecs.hit_id(f), dumps(ecs.hit_document(f, None))) for f in fs]
    t = time.perf_counter()
    for doc_id, body in docs[:n_base]:
        c1.client.create(index="base-hits-2026.11", id=doc_id, body=body)
    base_rate = n_base / (time.perf_counter() - t)
    print(f"baseline, one create request per doc: {base_rate:,.0f} docs/s ({n_base} docs)")

    # 2. streaming_bulk of pre-built documents
    s2 = Settings.model_validate({"elasticsearch": {"url": url, "backend": "opensearch",
                                                    "index_prefix": "bulk"}})
    c2 = connect(s2.elasticsearch)
    setup(c2)
    cfg = s2.elasticsearch
    actions = ({"_op_type": "create", "_index": "bulk-hits-2026.11", "_id": i, "_source": b}
               for i, b in docs)
    cpu0 = cpu_seconds(pid)
    t = time.perf_counter()
    ok = sum(1 for good, _ in c2.streaming_bulk(
        actions, chunk_size=cfg.chunk_size, max_retries=cfg.max_retries,
        initial_backoff=cfg.initial_backoff, max_backoff=cfg.max_backoff) if good)
    bulk_rate = n / (time.perf_counter() - t)
    cpu1 = cpu_seconds(pid)
    assert ok == n == count(c2, "bulk-hits"), "not every document was indexed"
    print(f"streaming_bulk, create ops, chunk {cfg.chunk_size}: {bulk_rate:,.0f} hit docs/s"
          f"  ({bulk_rate / base_rate:.1f}x baseline)")
    if cpu0 is not None and cpu1 is not None and cpu1 > cpu0:
        per_doc = (cpu1 - cpu0) / n
        print(f"  osmem-server CPU per hit document: {per_doc * 1000:.2f} ms"
              f" ({1 / per_doc:,.0f} hit docs per server CPU-second; load-independent)")

    # 3. full path: SQLite store + spool, then drain
    s3 = Settings.model_validate({"state": {"dir": str(tmp)}, "elasticsearch": {
        "url": url, "backend": "opensearch", "index_prefix": "spool"}})
    store = Store(s3.state.db)
    c3 = connect(s3.elasticsearch)
    setup(c3)
    t = time.perf_counter()
    for f in fs:
        record_finding(store, f, s3)
    rec = n / (time.perf_counter() - t)
    depth = spool.spool_depth(store.conn)
    t = time.perf_counter()
    report = spool.drain(store, s3, cluster=c3)
    dt = time.perf_counter() - t
    assert report.delivered == depth == 2 * n and report.pending == 0, report
    assert count(c3, "spool-hits") == n
    print(f"record_finding (SQLite store + spool, 1 tx each): {rec:,.0f} findings/s")
    print(f"spool drain (hits + documents docs): {depth / dt:,.0f} docs/s,"
          f" {n / dt:,.0f} hit docs/s with their coverage docs")
    # a re-sent batch: all 409, nothing duplicated
    with store.transaction() as tx:
        for f in fs[:1000]:
            spool._enqueue(tx, ecs.HITS, f.fetched_at, ecs.hit_id(f), {})
    again = spool.drain(store, s3, cluster=c3)
    assert again.duplicates == 1000 and count(c3, "spool-hits") == n
    print("re-sent 1000 hit docs: 1000 answered 409, index count unchanged")

    # 4. client-side ceiling: same spool and drain, server that does not index
    null = NullBulk()
    s4 = Settings.model_validate({"state": {"dir": str(tmp / "null")}, "elasticsearch": {
        "url": null.url, "backend": "opensearch", "index_prefix": "null"}})
    store4 = Store(s4.state.db)
    for f in fs:
        record_finding(store4, f, s4)
    t = time.perf_counter()
    r4 = spool.drain(store4, s4)
    dt4 = time.perf_counter() - t
    assert r4.delivered == 2 * n, r4
    print(f"client-side ceiling (spool drain into a null bulk receiver): {2 * n / dt4:,.0f}"
          f" docs/s, {n / dt4:,.0f} hit docs/s with their coverage docs"
          f"  ({dt / dt4:.1f}x the osmem figure)")
    null.server.shutdown()

    # 5. the server's ceiling, with our client out of the way: raw NDJSON bodies
    ceiling(c2, docs, pid)


def _raw_bulk(cluster, index: str, bodies: list[bytes]) -> None:
    transport = cluster.client.transport  # opensearch-py: the body is sent as it is
    for body in bodies:
        out = transport.perform_request("POST", "/_bulk", body=body,
                                        headers={"content-type": "application/x-ndjson"})
        assert not out.get("errors"), "bulk errors in the ceiling measurement"


def _bodies(index: str, sources: list[bytes], per: int = 500) -> list[bytes]:
    out = []
    for i in range(0, len(sources), per):
        lines = []
        for j, src in enumerate(sources[i:i + per]):
            lines.append(json.dumps({"create": {"_index": index, "_id": str(i + j)}}).encode())
            lines.append(src)
        out.append(b"\n".join(lines) + b"\n")
    return out


def ceiling(cluster, docs: list[tuple[str, bytes]], pid: int) -> None:
    sources = [body.encode() if isinstance(body, str) else body for _, body in docs]
    cases = [
        ("the hit documents, leaksentry's mapping", "ceil-full", None, sources),
        ("the hit documents, no field mapped or indexed", "ceil-none",
         {"dynamic": False, "properties": {}}, sources),
        ("a one-keyword document", "ceil-one", {"properties": {"k": {"type": "keyword"}}},
         [json.dumps({"k": f"v{i}"}).encode() for i in range(len(sources))]),
    ]
    print("osmem-server's own ceiling (pre-built bulk bodies, one connection):")
    for label, index, mapping, srcs in cases:
        if mapping is None:
            index = "bulk-hits-2026.12"  # created by leaksentry's template
        else:
            cluster.request("PUT", f"/{index}", body={"mappings": mapping})
        bodies = _bodies(index, srcs)
        cpu0 = cpu_seconds(pid)
        t = time.perf_counter()
        _raw_bulk(cluster, index, bodies)
        dt = time.perf_counter() - t
        cpu1 = cpu_seconds(pid)
        per_doc = f", {(cpu1 - cpu0) / len(srcs) * 1000:.2f} ms server CPU per doc" \
            if cpu0 is not None and cpu1 is not None else ""
        print(f"  {label}: {len(srcs) / dt:,.0f} docs/s{per_doc}")


if __name__ == "__main__":
    main()
