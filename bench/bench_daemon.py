"""Daemon overheads: what the scheduler adds around a crawl, and what a scrape of
/metrics or `leaksentry status` costs on a state store with a long history; then,
with the real daemon and the real crawl against a loopback Pastebin-style feed and a
real signature-verifying webhook receiver, the time from a paste appearing to its
hit being stored and to its alert being received (target for both: worst <= the
source's interval + 5 s).

    .venv/bin/python bench/bench_daemon.py [--crawls 20] [--sources 50] [--runs 400]
                                           [--every 10] [--pastes 3] [--no-latency]

Prints figures only (no identifiers: the store holds run records, no hits).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import generate_latest

from leaksentry.config import load_config
from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.model import RunSummary
from scheduler.crawls import RunningCrawls, run_crawl
from scheduler.metrics import DaemonMetrics
from scheduler.status import collect_status

#: a stand-in crawl that records one run, like `leaksentry crawl` does, minus the crawling
STANDIN = """
import sys
from datetime import UTC, datetime
from leaksentry.config import load_config
from leaksentry.store import Store
from leaksentry.store.runs import record_run
from pipelines.model import RunSummary
name, cfg = sys.argv[1], sys.argv[3]
s = load_config(cfg)
st = Store(s.state.db)
now = datetime.now(UTC)
with st.transaction() as tx:
    record_run(tx, RunSummary(name, now, now, "ok", discovered=1, fetched=1))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crawls", type=int, default=20)
    ap.add_argument("--sources", type=int, default=50)
    ap.add_argument("--runs", type=int, default=400, help="runs per source in the history")
    ap.add_argument("--every", type=float, default=10.0, help="feed source interval (s)")
    ap.add_argument("--pastes", type=int, default=5)
    ap.add_argument("--no-latency", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        script = root / "standin.py"
        script.write_text(STANDIN)
        cfg = root / "leaksentry.toml"
        srcs = "".join(f'\n[[sources]]\nname = "s{i}"\nkind = "watch"\n'
                       f'url = "http://127.0.0.1:9/"\nevery = "5m"\n' for i in range(a.sources))
        cfg.write_text(f'[state]\ndir = "{root / "state"}"\n[daemon]\nmetrics_port = 0\n' + srcs)
        settings = load_config(cfg)
        store = Store(settings.state.db)
        base = [sys.executable, str(script)]

        # 1. the runner around a crawl vs the bare subprocess, same command, interleaved
        #    so machine load drifts affect both alike
        running = RunningCrawls(root / "state" / "crawls")
        bare = runner = 0.0
        for _ in range(a.crawls):
            t0 = time.perf_counter()
            subprocess.run([*base, "s0", "--config", str(cfg)], check=True)
            t1 = time.perf_counter()
            run_crawl(store, "s0", cfg, timeout=60, base_command=base, running=running,
                      on_output=lambda s, ln: None)
            t2 = time.perf_counter()
            bare += t1 - t0
            runner += t2 - t1
        bare /= a.crawls
        runner /= a.crawls
        print(f"crawl subprocess: bare {bare * 1000:.1f} ms, through run_crawl"
              f" {runner * 1000:.1f} ms (ratio {runner / bare:.2f}, overhead"
              f" {(runner - bare) * 1000:+.1f} ms per crawl)")

        # 2. a long history: sources x runs
        now = datetime.now(UTC)
        with store.transaction() as tx:
            for i in range(a.sources):
                for j in range(a.runs):
                    t = now - timedelta(minutes=5 * (a.runs - j))
                    record_run(tx, RunSummary(f"s{i}", t, t + timedelta(seconds=3),
                                              "ok" if j % 7 else "error", discovered=3,
                                              fetched=3, error=None if j % 7 else "HTTP 500"))
        total = a.sources * a.runs
        metrics = DaemonMetrics(settings.state, running.names)
        n = 20
        t0 = time.perf_counter()
        for _ in range(n):
            body = generate_latest(metrics.registry)
        scrape = (time.perf_counter() - t0) / n
        print(f"/metrics scrape: {scrape * 1000:.1f} ms ({len(body)} bytes) with"
              f" {a.sources} sources, {total} recorded runs")
        t0 = time.perf_counter()
        for _ in range(n):
            st = collect_status(settings)
        status = (time.perf_counter() - t0) / n
        print(f"status collection: {status * 1000:.1f} ms for {len(st.sources)} sources,"
              f" {total} recorded runs")


    if not a.no_latency:
        latency(a.every, a.pastes)


def latency(every: float, n: int) -> None:
    import csv
    import os
    import signal
    import sqlite3

    from leaksentry.demo.scenario import Paste
    from leaksentry.demo.sites import PasteFeedSite, WebhookReceiver
    from leaksentry.synth import patients

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        people = list(patients(max(20, 3 * n), seed=3))  # 3 per paste
        reg = root / "register.csv"
        with reg.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ref", "hkid", "hn"])
            w.writerows([p.ref, p.hkid, p.hn] for p in people)
        key, fp = root / "key", root / "fp"
        cli = [sys.executable, "-m", "leaksentry"]
        subprocess.run([*cli, "keygen", "--out", str(key)], check=True, capture_output=True)
        subprocess.run([*cli, "fingerprints", "build", "--key", str(key), "--out", str(fp),
                        "--hkid-column", "hkid", "--hn-column", "hn", "--ref-column", "ref",
                        str(reg)], check=True, capture_output=True)
        reg.unlink()
        feed = PasteFeedSite([]).start()
        receiver = WebhookReceiver("bench-secret").start()
        cfg = root / "leaksentry.toml"
        # [daemon] outbox_interval is left at its default (15 s)
        cfg.write_text(
            f'[state]\ndir = "{root / "state"}"\n[matching]\nkey = "{key}"\n'
            f'fingerprints = "{fp}"\n[daemon]\nmetrics = false\n'
            f'[alerts]\nmin_severity = "low"\ndigest_severities = []\n'
            f'[[alerts.channels]]\nname = "soc"\ntype = "webhook"\n'
            f'url = "{receiver.hook_url}"\nsecret = "bench-secret"\n[[sources]]\n'
            f'name = "pastes"\nkind = "feed"\npreset = "pastebin"\n'
            f'url = "{feed.url}/api_scraping.php?limit=100"\nallow_private = true\n'
            f'every = {every}\ndelay = 0\n')
        daemon = subprocess.Popen([*cli, "run", "--config", str(cfg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  cwd=root)
        db = root / "state" / "state.db"

        def hits() -> int:
            try:
                with sqlite3.connect(db, timeout=10) as conn:
                    return conn.execute("SELECT count(*) FROM hits").fetchone()[0]
            except sqlite3.Error:
                return 0

        def alerts() -> int:
            return len([d for d in receiver.unique() if d.event != "test"])

        try:
            to_hit, to_alert = [], []
            for i in range(n):
                time.sleep(every * 0.37)  # publish at an arbitrary point of the cycle
                body = "\n".join(f"{p.name}, {p.hkid}" for p in people[i * 3:i * 3 + 3])
                feed.pastes = [Paste(f"BENCH{i:03d}", "list", body.encode(),
                                     int(time.time())), *feed.pastes]
                t0 = time.monotonic()
                while hits() < i + 1 or alerts() < i + 1:
                    if hits() >= i + 1 and len(to_hit) == i:
                        to_hit.append(time.monotonic() - t0)
                    if time.monotonic() - t0 > every + 300:
                        raise SystemExit("no hit and alert within interval + 300 s")
                    time.sleep(0.02)
                if len(to_hit) == i:
                    to_hit.append(time.monotonic() - t0)
                to_alert.append(time.monotonic() - t0)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=120)
            feed.stop()
            receiver.stop()
        load = os.getloadavg()[0]
        for what, waits in (("hit stored", to_hit), ("alert received", to_alert)):
            worst = max(waits)
            print(f"paste published -> {what}, real daemon (every {every:g}s, load"
                  f" {load:.1f}): mean {sum(waits) / n:.1f} s, worst {worst:.1f} s"
                  f" = interval {worst - every:+.1f} s, over {n} pastes")
        gaps = [a - h for a, h in zip(to_alert, to_hit, strict=True)]
        print(f"hit stored -> alert received: mean {sum(gaps) / n:.2f} s, worst"
              f" {max(gaps):.2f} s")


if __name__ == "__main__":
    main()
