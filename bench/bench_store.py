"""One commit per document: the state store's cost on SQLite and on PostgreSQL.

A crawl records each document in one transaction (crawler/pipelines.py): the document
row (pipelines.flow.record_finding: the local store, the spool and, for a hit, its alerts)
and the seen item marked done. This bench runs exactly those calls, the same code on both
engines, for N documents (2 % hits), with 1 and with 4 writers (threads, one connection
each: the workers of a cluster). PostgreSQL is a local server from Debian's package with
its default durability (fsync, synchronous commit), started and stopped by the bench;
SQLite is the default WAL file (synchronous = NORMAL). Loopback only: a network round
trip adds its latency per statement on a real cluster.

Usage: .venv/bin/python bench/bench_store.py [--docs 2000] [--async-commit]
Everything is fictional; nothing printed is an identifier.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from leaksentry.config import Settings  # noqa: E402
from leaksentry.store import Store, seen  # noqa: E402
from pipelines.flow import record_finding  # noqa: E402
from pipelines.model import Finding, Match, ScanResult  # noqa: E402


def _load_pg_fixture() -> Any:
    """tests/fixtures_postgres.py by path (tests/ on sys.path would shadow ``pipelines``)."""
    spec = importlib.util.spec_from_file_location("fixtures_postgres",
                                                  REPO / "tests" / "fixtures_postgres.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fixtures_postgres"] = mod
    spec.loader.exec_module(mod)
    return mod


def _finding(i: int, writer: int, hit: bool) -> Finding:
    url = f"https://files.example/w{writer}/doc{i}.txt"
    if hit:
        matches = [Match("hkid", "Z12****(3)", f"R{i}", 1, "line 1")]
        result = ScanResult(severity="high", risk_score=60, matched_records=1,
                            record_refs=[f"R{i}"], record_level_refs=[f"R{i}"],
                            matches=matches, parts=1)
    else:
        result = ScanResult()
    return Finding(url=url, source="bench", sha256=hashlib.sha256(url.encode()).hexdigest(),
                   size=2048, fetched_at=datetime.now(UTC), result=result,
                   filename=f"doc{i}.txt", content_type="text/plain")


def _writer(store: Store, settings: Settings, writer: int, docs: int) -> None:
    for i in range(docs):
        f = _finding(i, writer, hit=(i % 50 == 7))
        with store.transaction(serial=False) as tx:  # as crawler/pipelines.py records one
            record_finding(store, f, settings)
            seen.processed(tx, "bench", f"w{writer}-{i}", f.sha256, url=f.url)


def _run(settings: Settings, writers: int, docs: int) -> float:
    store = Store(settings.state)
    threads = [threading.Thread(target=_writer, args=(store, settings, w, docs // writers))
               for w in range(writers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    n = store.conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    store.close()
    assert n == docs // writers * writers, n
    return n / elapsed


def _async_commit(url: str, password: str) -> None:
    import psycopg

    with psycopg.connect(url, password=password, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {url.rsplit('/', 1)[1]} SET synchronous_commit = off")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--async-commit", action="store_true",
                    help="PostgreSQL: synchronous_commit = off on the bench's database")
    args = ap.parse_args()
    fx = _load_pg_fixture()
    bindir = fx._bin_dir()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (Debian package postgresql)")
    tmp = Path(tempfile.mkdtemp(prefix="leaksentry-bench-store-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="leaksentry-bench-pg-"))
    server = fx.PgServer(bindir, pg_dir).init(durable=True).start()
    os.environ["LEAKSENTRY_STATE_PASSWORD"] = fx.PASSWORD
    rows = []
    try:
        for writers in (1, 4):
            for engine in ("sqlite", "postgresql"):
                state: dict[str, Any] = {"dir": str(tmp / f"{engine}{writers}")}
                if engine == "postgresql":
                    state["url"] = server.database()
                    if args.async_commit:
                        _async_commit(state["url"], fx.PASSWORD)
                settings = Settings.model_validate({"state": state})
                Store(settings.state, upgrade=True).close()
                rate = _run(settings, writers, args.docs)
                rows.append((engine, writers, rate))
                print(f"{engine:<10} writers={writers}  {rate:8.0f} docs/s"
                      f"  {1000 / rate:6.3f} ms per document commit", flush=True)
    finally:
        server.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
