"""Documents per second end to end (discover, fetch, extract, match, store) for a
loopback open directory of small text files (target: >= 300 documents/s), and
the time from an item appearing in a feed to its hit being stored.

Each crawl is a real ``leaksentry crawl`` subprocess, as the daemon runs it.
The directory is served by nginx (Debian package) when installed, else by
Python's http.server. Figures printed:

- end to end: new documents / crawl duration (the run record's duration: spider
  open to close), and including process start-up (wall time of the command);
- baseline: the same crawl with the metadata-only processor (fetch and seen
  store, no extract/match/record), and the end-to-end/baseline ratio;
- the same two crawls with ``processes = 2`` (crawler/shard.py: two Scrapy
  processes, the files split by a hash of their path, one run recorded), the
  configuration the 300 docs/s target is measured with on this 2-core machine;
- second crawl: documents per second for a re-crawl that finds nothing new;
- feed latency: a paste with planted identifiers is added to a loopback
  Pastebin scraping API, a crawl is started at once; seconds from the paste
  appearing to its hit being in the store (the scheduled path adds at most the
  source's interval: the daemon engineer measures that).

Usage: .venv/bin/python bench/bench_crawl.py [--files 3000] [--concurrency 16] [--processes 2]
Everything is fictional (leaksentry.synth); nothing printed is an identifier.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "crawler"))

from leaksentry.synth import patients, register_rows, written_hkid  # noqa: E402


def _fingerprints(d: Path) -> dict[str, str]:
    from pipelines.match import build_fingerprints, generate_key, read_key

    with (d / "register.csv").open("w", newline="") as f:
        csv.writer(f).writerows(register_rows(2000, seed=7))
    generate_key(d / "key")
    build_fingerprints(d / "register.csv", read_key(d / "key"), d / "fp", hkid_column="hkid",
                       hn_column="hn", ref_column="ref")
    (d / "register.csv").unlink()
    return {"key": str(d / "key"), "fingerprints": str(d / "fp")}


def _tree(root: Path, n: int) -> int:
    """``n`` small text files in 10 subdirectories; one in 50 carries identifiers."""
    rng = random.Random(3)
    people = list(patients(200, seed=7))
    planted = 0
    for i in range(n):
        sub = root / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        text = f"note {i}: routine log line, nothing sensitive here.\n" * 8
        if i % 50 == 0:
            p = rng.choice(people)
            text += f"patient {p.name} id {written_hkid(p.hkid, rng)} hn {p.hn}\n"
            planted += 1
        (sub / f"f{i:05d}.txt").write_text(text)
    return planted


@contextmanager
def _serve(root: Path, tmp: Path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    import socket

    if nginx:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        run = tmp / "nginx"
        run.mkdir()
        user = "user root root;" if os.geteuid() == 0 else ""
        (run / "nginx.conf").write_text(
            f"{user}\ndaemon off;\nworker_processes 1;\npid {run}/pid;\n"
            f"error_log {run}/error.log warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{ access_log off; client_body_temp_path {run}/b; proxy_temp_path {run}/p;"
            f" fastcgi_temp_path {run}/f; uwsgi_temp_path {run}/u; scgi_temp_path {run}/s;"
            f" types {{ text/plain txt; }}"
            f" server {{ listen 127.0.0.1:{port}; location / {{ root {root};"
            f" autoindex on; }} }} }}\n")
        proc = subprocess.Popen([nginx, "-p", str(run), "-c", str(run / "nginx.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}/", "nginx"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    else:
        import functools
        import http.server
        import threading

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/", "python http.server"
        finally:
            httpd.shutdown()


def _config(path: Path, state: Path, sources: list[str], matching: dict[str, str]) -> None:
    lines = ["[state]", f"dir = {json.dumps(str(state))}", "", "[matching]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in matching.items()]
    lines += ["", "[crawler]", "scan_workers = 2", ""]
    lines += sources
    path.write_text("\n".join(lines) + "\n")


def _crawl(cfg: Path, state: Path, name: str, *, scan: bool, doclog: Path) -> tuple[dict, float]:
    env = dict(os.environ, LEAKSENTRY_HOME=str(state))
    hooks = [] if scan else ["-s", "LEAKSENTRY_PROCESSOR=crawler.pipelines.DocLogProcessor",
                             "-s", f"LEAKSENTRY_DOCLOG={doclog}"]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "crawl", name, "--config",
                           str(cfg), "--json", *hooks], capture_output=True, text=True,
                          env=env, timeout=1800)
    wall = time.perf_counter() - t
    runs = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    if not runs or runs[-1]["outcome"] != "ok":
        raise SystemExit(f"crawl {name} failed: {proc.stderr[-2000:]}")
    return runs[-1], wall


def _dir_source(url: str, concurrency: int, processes: int = 1) -> list[str]:
    return ['[[sources]]', 'name = "dir"', 'kind = "directory"', f'url = "{url}"',
            "allow_private = true", "obey_robots = false", f"concurrency = {concurrency}",
            "delay = 0", "max_items = 100000", "max_files = 100000", 'timeout = "30m"',
            f"processes = {processes}", ""]


def bench_directory(tmp: Path, files: int, concurrency: int, matching: dict[str, str],
                    processes: int) -> None:
    root = tmp / "tree"
    root.mkdir()
    planted = _tree(root, files)
    with _serve(root, tmp) as (url, server):
        print(f"directory: {files} small text files ({planted} with identifiers), served by"
              f" {server}, source concurrency {concurrency} (shared by its processes)")
        figures = {}
        for procs in sorted({1, processes}):
            for label, scan in (("baseline (fetch only)", False), ("end to end", True)):
                state = tmp / f"state-{procs}-{scan}"
                cfg = tmp / f"dir-{procs}-{scan}.toml"
                _config(cfg, state, _dir_source(url, concurrency, procs), matching)
                run, wall = _crawl(cfg, state, "dir", scan=scan,
                                   doclog=tmp / f"docs-{procs}-{scan}.jsonl")
                if run["new"] != files:
                    raise SystemExit(f"{label}, processes = {procs}: {run['new']} of {files}"
                                     " files processed")
                rate, rate_wall = run["new"] / run["duration"], run["new"] / wall
                figures[procs, scan] = rate
                print(f"  processes = {procs}, {label:22s} {run['new']:6d} docs in"
                      f" {run['duration']:6.2f} s crawl ({wall:6.2f} s with process start):"
                      f" {rate:7.1f} docs/s ({rate_wall:7.1f} docs/s incl. start-up);"
                      f" hits {run['hits']}")
                if scan and procs == processes:
                    again, _ = _crawl(cfg, state, "dir", scan=True, doclog=tmp / "d2.jsonl")
                    print(f"  processes = {procs}, {'second crawl':22s} {again['discovered']:6d}"
                          f" listed, {again['fetched']} fetched, {again['new']} new in"
                          f" {again['duration']:.2f} s")
            ratio = figures[procs, True] / figures[procs, False]
            print(f"  processes = {procs}: end to end / baseline: {ratio:.2f}")
        best = figures[processes, True]
        print(f"  end to end, processes = {processes} / processes = 1:"
              f" {best / figures[1, True]:.2f}x")
        print(f"  target >= 300 docs/s end to end (processes = {processes}):"
              f" {'met' if best >= 300 else 'NOT met'}")


def bench_feed_latency(tmp: Path, matching: dict[str, str]) -> None:
    from servers import pastebin_api

    srv, pb = pastebin_api.start()
    try:
        for i in range(50):
            pb.add(f"OLD{i:05d}", f"old paste {i}\n")
        state = tmp / "state-feed"
        cfg = tmp / "feed.toml"
        _config(cfg, state, ['[[sources]]', 'name = "pb"', 'preset = "pastebin"',
                             f'url = "{pb.base}/api_scraping.php?limit=250"',
                             "allow_private = true", "delay = 0", "concurrency = 4",
                             'every = "1m"', ""], matching)
        _crawl(cfg, state, "pb", scan=True, doclog=tmp / "f.jsonl")  # the backlog
        rng = random.Random(9)
        people = list(patients(30, seed=7))
        body = "\n".join(f"{p.name}\t{written_hkid(p.hkid, rng)}\t{p.hn}" for p in people)
        appeared = time.time()
        pb.add("NEWLEAK1", body + "\n")
        run, _ = _crawl(cfg, state, "pb", scan=True, doclog=tmp / "f.jsonl")
        conn = sqlite3.connect(state / "state.db")
        row = conn.execute("SELECT first_seen FROM hits WHERE item_id = 'NEWLEAK1'").fetchone()
        conn.close()
        if row is None:
            raise SystemExit("feed latency: the planted paste produced no hit")
        stored = datetime.fromisoformat(row[0]).timestamp()
        print(f"feed: item appeared -> hit stored: {stored - appeared:.2f} s with the crawl started"
              f" at once (process start-up included; crawl {run['duration']:.2f} s,"
              f" {run['new']} new); scheduled worst case = interval + this")
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--processes", type=int, default=2,
                    help="processes for the sharded crawl (the 1-process crawl always runs)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as d:
        tmp = Path(d)
        fp = tmp / "fp"
        fp.mkdir()
        matching = _fingerprints(fp)
        bench_directory(tmp, args.files, args.concurrency, matching, args.processes)
        bench_feed_latency(tmp, matching)


if __name__ == "__main__":
    main()
