"""A 3,000-file directory crawl through 1 and 2 cluster workers on one Redis,
side by side with ``processes = 2`` on this host (bench/bench_crawl.py's helpers),
and the cluster's scheduling overhead (enqueued -> taken by an idle worker).

Each cluster crawl is enqueued as the daemon does it (scheduler.cluster.enqueue);
real ``leaksentry worker`` processes (concurrency 1 each) run the listing job and
the item batches, each batch in a fresh ``leaksentry crawl`` process; the run is
recorded once when its last part reports. State: the local SQLite store (PostgreSQL's
commit cost is bench/bench_store.py's). Figures printed:

- docs/s = new documents / the run's duration (first part started -> last part
  finished), and including the wait from enqueue to the run being recorded;
- the ratio 2 workers / 1 worker, and 2 workers / ``processes = 2``;
- scheduling overhead: seconds from a job being enqueued to a worker taking it
  (idle workers), from the workers' logs;
- per-item costs for the model in docs/cluster.md: Redis commands per item
  (INFO commandstats before/after) and the cost of one store commit.

Usage: .venv/bin/python bench/bench_cluster.py [--files 3000] [--batch 750]
Everything is fictional (leaksentry.synth); nothing printed is an identifier.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_crawl import _config, _crawl, _dir_source, _fingerprints, _serve, _tree  # noqa: E402


def _load_redis_fixture():  # type: ignore[no-untyped-def]
    """tests/fixtures_redis.py by path (tests/ on sys.path would shadow ``pipelines``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixtures_redis",
                                                  REPO / "tests" / "fixtures_redis.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fixtures_redis"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


_fx = _load_redis_fixture()
REDIS_SERVER, RedisProcess = _fx.REDIS_SERVER, _fx.RedisProcess


def _cluster_config(cfg: Path, state: Path, url: str, matching: dict[str, str], broker: str,
                    batch: int, concurrency: int) -> None:
    _config(cfg, state, _dir_source(url, concurrency, 1), matching)
    with cfg.open("a") as f:
        f.write(f'\n[cluster]\nbroker = "{broker}"\nitem_batch = {batch}\n'
                'visibility_timeout = "2h"\nworker_health_port = 0\n')


def _redis_commands(r) -> int:  # type: ignore[no-untyped-def]
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def _cluster_run(tmp: Path, tag: str, url: str, matching: dict[str, str], redis: Any,
                 workers: int, batch: int, concurrency: int, files: int) -> dict:
    import redis as redis_py

    from leaksentry.config import load_config
    from leaksentry.store import Store
    from scheduler.cluster.enqueue import enqueue_crawl

    state = tmp / f"state-{tag}"
    cfg = tmp / f"{tag}.toml"
    _cluster_config(cfg, state, url, matching, redis.url, batch, concurrency)
    env = dict(os.environ, LEAKSENTRY_HOME=str(state), PYTHONUNBUFFERED="1")
    logs = [tmp / f"{tag}-w{i}.log" for i in range(workers)]
    procs = [subprocess.Popen([sys.executable, "-m", "leaksentry", "worker", "--config", str(cfg),
                               "--concurrency", "1", "--health-port", "0", "--queues", "http",
                               "--name", f"bench{i}@{tag}"], stdout=log.open("w"),
                              stderr=subprocess.STDOUT, env=env) for i, log in enumerate(logs)]
    r = redis_py.Redis.from_url(redis.url)
    try:
        deadline = time.monotonic() + 60
        while not all("ready." in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                raise SystemExit(f"workers did not start: {logs[0].read_text()[-2000:]}")
            time.sleep(0.2)
        settings = load_config(cfg)
        store = Store(settings.state.db)
        before = _redis_commands(r)
        t0 = time.perf_counter()
        if enqueue_crawl(settings, "dir", store) is None:
            raise SystemExit("could not enqueue")
        run = None
        while run is None:
            if time.perf_counter() - t0 > 1800:
                raise SystemExit("the cluster run did not finish")
            time.sleep(0.2)
            row = store.conn.execute("SELECT * FROM source_runs WHERE source = 'dir'"
                                     " ORDER BY id DESC LIMIT 1").fetchone()
            run = dict(row) if row else None
        wall = time.perf_counter() - t0
        commands = _redis_commands(r) - before
        store.close()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    if run["outcome"] != "ok" or run["new"] != files:
        raise SystemExit(f"cluster run ({workers} worker(s)): {run['outcome']}, {run['new']}"
                         f" of {files} new: {run['error']}")
    waits = [float(m) for log in logs
             for m in re.findall(r"taken (\d+\.\d+) s after it was enqueued", log.read_text())]
    parts = len(waits)
    return {"run": run, "wall": wall, "commands": commands, "waits": waits, "parts": parts}


def _commit_cost(tmp: Path) -> float:
    """Milliseconds per store commit of one processed document (the seen-store update the
    crawl makes per document, in its own transaction, as the scan pipeline does)."""
    from leaksentry.store import Store, seen

    store = Store(tmp / "commit-bench" / "state.db")
    n = 500
    with store.transaction() as tx:
        seen.discovered_many(tx, "b", [(f"/i{i}", None) for i in range(n)])
    t = time.perf_counter()
    for i in range(n):
        with store.transaction() as tx:
            seen.processed(tx, "b", f"/i{i}", f"{i:064x}")
    ms = (time.perf_counter() - t) * 1000 / n
    store.close()
    return ms


def _limiter_cost(url: str) -> tuple[float, float]:
    """Redis server CPU per item for the limiter (acquire script + release), in µs,
    from INFO commandstats; and the round trip of one acquire+release seen by a client."""
    import redis as redis_py

    from crawler.middlewares.limiter import ClusterLimiterMiddleware

    mw = ClusterLimiterMiddleware({"url": url, "key": "bench:limit", "concurrency": 1000,
                                   "delay": 0, "lease": 60})
    r = redis_py.Redis.from_url(url)
    r.config_resetstat()
    n = 3000
    t = time.perf_counter()
    for i in range(n):
        mw._acquire(keys=[mw.leases_key, mw.next_key], args=[f"l{i}", 1000, 0, 60000])
        r.zrem(mw.leases_key, f"l{i}")
    rtt = (time.perf_counter() - t) * 1e6 / n
    stats = r.info("commandstats")
    usec = sum(float(v["usec"]) for k, v in stats.items()
               if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_zrem"))
    return usec / n, rtt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=750, help="[cluster] item_batch")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    if not Path(REDIS_SERVER).exists():
        raise SystemExit("redis-server is not installed (Debian package redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as d:
        tmp = Path(d)
        (tmp / "fp").mkdir()
        (tmp / "redis").mkdir()
        (tmp / "commit-bench").mkdir()
        matching = _fingerprints(tmp / "fp")
        root = tmp / "tree"
        root.mkdir()
        planted = _tree(root, args.files)
        redis = RedisProcess(REDIS_SERVER, tmp / "redis").start()
        try:
            with _serve(root, tmp) as (url, server):
                print(f"directory: {args.files} small text files ({planted} with identifiers),"
                      f" served by {server}; source concurrency {args.concurrency};"
                      f" item_batch {args.batch}; one local redis-server; SQLite state")
                state = tmp / "state-local"
                cfg = tmp / "local.toml"
                _config(cfg, state, _dir_source(url, args.concurrency, 2), matching)
                local, local_wall = _crawl(cfg, state, "dir", scan=True,
                                           doclog=tmp / "local.jsonl")
                local_rate = local["new"] / local["duration"]
                print(f"  processes = 2 (one host, no cluster): {local['new']} docs in"
                      f" {local['duration']:.2f} s: {local_rate:.1f} docs/s"
                      f" ({local['new'] / local_wall:.1f} incl. start-up)")
                rates = {}
                for workers in (1, 2):
                    res = _cluster_run(tmp, f"w{workers}", url, matching, redis, workers,
                                       args.batch, args.concurrency, args.files)
                    run = res["run"]
                    rates[workers] = run["new"] / run["duration"]
                    print(f"  {workers} worker(s): {run['new']} docs in {run['duration']:.2f} s"
                          f" (listing + {res['parts'] - 1} batches):"
                          f" {rates[workers]:.1f} docs/s ({run['new'] / res['wall']:.1f} incl."
                          f" enqueue and start-up); hits {run['hits']};"
                          f" Redis commands {res['commands']}"
                          f" ({res['commands'] / run['new']:.2f} per item)")
                    waits = sorted(res["waits"])
                    if waits:
                        first = res["waits"][0]
                        print(f"    enqueued -> taken by a worker: first job {first:.3f} s"
                              f" (idle workers); all jobs median {waits[len(waits) // 2]:.3f} s,"
                              f" max {waits[-1]:.3f} s (batches wait for a free worker)")
                print(f"  2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
                print(f"  2 workers / processes = 2: {rates[2] / local_rate:.2f}")
                print(f"  store: {_commit_cost(tmp):.3f} ms per document commit (SQLite, WAL)")
                server_us, rtt_us = _limiter_cost(redis.url)
                print(f"  limiter: {server_us:.1f} µs of Redis CPU per item (acquire + release),"
                      f" {rtt_us:.0f} µs per item seen by the crawl (two round trips)")
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
