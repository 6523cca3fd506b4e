"""A source crawled by several processes (``processes = N``, crawler/shard.py):
every item fetched by exactly one shard, one run recorded, failures named.

The crawls run as real ``leaksentry crawl`` subprocesses against nginx's
autoindex and Python's http.server; the shard bookkeeping is tested with real
forked children."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import CrawlWorkspace
from servers.loopback import QuietHandler

from crawler.shard import Shard, fork_shards, merge, summary_from_json, summary_to_json
from leaksentry.config import Settings
from leaksentry.errors import ConfigError
from leaksentry.synth import written_hkid
from pipelines.model import RunSummary


def _source(url: str, **kw: Any) -> dict[str, Any]:
    return {"name": "big", "kind": "directory", "url": url, "allow_private": True,
            "obey_robots": False, "delay": 0, "concurrency": 4, **kw}


# -- the partition -------------------------------------------------------------------------

def test_every_item_belongs_to_exactly_one_shard_and_the_split_is_even() -> None:
    ids = [f"/d{i % 7}/file-{i:05d}.txt" for i in range(6000)]
    for n in (2, 3, 5):
        owners = [[s for s in range(n) if Shard(s, n).owns(i)] for i in ids]
        assert all(len(o) == 1 for o in owners)
        per = Counter(o[0] for o in owners)
        assert min(per.values()) > 0.8 * len(ids) / n  # crc32 spreads paths evenly
    # stable across runs and processes: the same id always lands in the same shard
    assert [Shard(0, 2).owns(i) for i in ids[:50]] == [Shard(0, 2).owns(i) for i in ids[:50]]


def test_budget_shares_add_up() -> None:
    for total in (0, 1, 7, 100, 101):
        for n in (1, 2, 3, 8):
            assert sum(Shard(i, n).share(total) for i in range(n)) == total
    with pytest.raises(ValueError, match="does not exist"):
        Shard(2, 2)


def _run(outcome: str, n: int, error: str | None = None) -> RunSummary:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    return RunSummary("big", t, t + timedelta(seconds=3), outcome, discovered=n, fetched=n,
                      new=n, hits=1, errors=0 if error is None else 1,
                      statuses={"200": n}, error=error)


def test_merge_sums_counters_and_keeps_the_worst_outcome() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    m = merge("big", t0, t0 + timedelta(seconds=5), {0: _run("ok", 4), 1: _run("ok", 6)}, 2)
    assert (m.outcome, m.discovered, m.new, m.hits, m.errors) == ("ok", 10, 10, 2, 0)
    assert m.statuses == {"200": 10} and m.error is None and m.duration == 5

    m = merge("big", t0, t0, {0: _run("ok", 4), 1: _run("timeout", 2, "took too long")}, 2)
    assert m.outcome == "timeout" and m.error == "shard 2/2: took too long"

    m = merge("big", t0, t0, {1: _run("ok", 3)}, 3, {2: "killed by signal 9"})
    assert m.outcome == "error" and m.errors == 2 and m.new == 3
    assert m.error == ("shard 1/3: ended without reporting its run; "
                       "shard 3/3: killed by signal 9")

    back = summary_from_json(summary_to_json(_run("killed", 2, "stopped")))
    assert back == _run("killed", 2, "stopped")


def test_fork_shards_collects_reports_and_names_what_went_wrong() -> None:
    """Real forked children: one reports, one exits without a report, one hangs past
    the deadline and is killed."""

    def child(shard: Shard, report) -> None:
        if shard.index == 0:
            report(_run("ok", 5))
        elif shard.index == 1:
            os._exit(3)
        else:
            time.sleep(60)

    parts, problems = fork_shards(3, child, time.monotonic() + 3)
    assert list(parts) == [0] and parts[0].new == 5
    assert problems == {1: "ended without reporting its run (exit code 3)",
                        2: "still running past the crawl's timeout; killed"}


def test_a_shard_is_done_when_it_exits_even_if_a_process_it_forked_holds_the_pipe() -> None:
    """A scan worker left behind by a shard inherits the report pipe; the parent must
    not wait for that worker (up to the crawl's timeout) to see the shard's run."""

    def child(shard: Shard, report) -> None:
        if os.fork() == 0:  # the grandchild keeps the pipe's write end open
            time.sleep(30)
            os._exit(0)
        report(_run("ok", 7))

    parts, problems = fork_shards(1, child, time.monotonic() + 20)
    assert problems == {} and parts[0].new == 7  # else: "still running ...; killed"


def test_processes_only_for_directory_and_bucket(tmp_path) -> None:
    Settings.model_validate({"sources": [_source("http://127.0.0.1/", processes=4)]})
    with pytest.raises((ConfigError, ValueError), match="processes"):
        Settings.model_validate({"sources": [{
            "name": "pb", "preset": "pastebin", "processes": 2,
            "url": "https://scrape.pastebin.com/api_scraping.php"}]})


# -- real crawls -----------------------------------------------------------------------------

def test_three_processes_fetch_each_file_once_and_record_one_run(crawl_ws: CrawlWorkspace,
                                                                  nginx_dir) -> None:
    root, url = nginx_dir
    for i in range(60):
        sub = root / f"d{i % 4}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:03d}.txt").write_text(f"file {i}\n")
    crawl_ws.write([_source(url, processes=3)])
    r = crawl_ws.crawl("big")
    assert r.proc.returncode == 0, r.output
    ids = [d["item_id"] for d in crawl_ws.docs()]
    assert len(ids) == 60 and len(set(ids)) == 60  # every file, none twice
    assert (r.run["discovered"], r.run["fetched"], r.run["new"]) == (60, 60, 60)
    assert len(crawl_ws.runs("big")) == 1  # the shards' runs are merged into one
    assert {row["status"] for row in crawl_ws.seen("big").values()} == {"done"}
    assert "shard 1/3" in r.output and "shard 3/3" in r.output  # each shard says who it is

    r2 = crawl_ws.crawl("big")  # nothing new: nothing fetched by any shard
    assert (r2.run["outcome"], r2.run["fetched"], r2.run["new"]) == ("ok", 0, 0), r2.output
    assert len(crawl_ws.runs("big")) == 2

    later = time.time() + 120  # an edit: only that file is fetched again, by its shard
    (root / "d1" / "f001.txt").write_text("file 1, edited\n")
    os.utime(root / "d1" / "f001.txt", (later, later))
    r3 = crawl_ws.crawl("big")
    assert (r3.run["fetched"], r3.run["new"]) == (1, 1), r3.output
    assert crawl_ws.docs()[-1]["item_id"] == "/d1/f001.txt"


def test_max_items_is_shared_between_the_processes(crawl_ws: CrawlWorkspace,
                                                   http_server_dir) -> None:
    root, url = http_server_dir
    for i in range(20):
        (root / f"f{i:02d}.txt").write_text(f"file {i}\n")
    crawl_ws.write([_source(url, processes=2, max_items=7)])
    r = crawl_ws.crawl("big")
    assert r.run["outcome"] == "ok", r.output
    # each shard fetches at most its share (4 + 3); whatever it leaves waits in the store
    assert r.run["new"] <= 7
    pending = sum(1 for row in crawl_ws.seen("big").values() if row["status"] == "pending")
    assert r.run["new"] + pending == 20
    for _ in range(5):
        if len({d["item_id"] for d in crawl_ws.docs()}) == 20:
            break
        crawl_ws.crawl("big")
    assert len({d["item_id"] for d in crawl_ws.docs()}) == 20


def test_sharded_scan_records_each_hit_once_and_no_identifier(crawl_ws: CrawlWorkspace,
                                                              nginx_dir, fingerprints) -> None:
    matching, people = fingerprints
    root, url = nginx_dir
    rng = random.Random(9)
    planted = {}
    for i in range(30):
        text = f"routine note {i}\n"
        if i % 5 == 0:
            p = people[i // 5]
            form = written_hkid(p.hkid, rng)
            planted[f"/n{i:02d}.txt"] = (p, form)
            text += f"patient {p.name} id {form}\n"
        (root / f"n{i:02d}.txt").write_text(text)
    crawl_ws.write([_source(url, processes=2)], matching=matching)
    r = crawl_ws.crawl("big", scan=True)
    assert r.proc.returncode == 0, r.output
    assert (r.run["new"], r.run["hits"]) == (30, len(planted)), r.run
    hits = crawl_ws.query("SELECT * FROM hits")
    assert len(hits) == len(planted)  # one per leaking file, whichever shard found it
    forms = {f for p, f in planted.values()} | {p.hkid for p, _ in planted.values()}
    blobs = [r.output]
    blobs.append(crawl_ws.stored_text())
    for blob in blobs:
        for form in forms:
            assert form not in blob


class _Directory(QuietHandler):
    """``/`` is an autoindex-like listing of ``names``; subclasses answer the files."""

    names: tuple[str, ...] = ()

    def do_GET(self) -> None:
        if self.path == "/":
            links = "".join(f'<a href="{n}">{n}</a>\n' for n in self.names)
            self.send_body(200, f"<html><body><pre>{links}</pre></body></html>".encode(),
                           "text/html")
            return
        self.send_file()

    def send_file(self) -> None:
        raise NotImplementedError


class _SlowDirectory(_Directory):
    """A listing of twelve files, each answered after 0.3 s; counts requests in flight."""

    names = tuple(f"f{i:02d}.txt" for i in range(12))

    def send_file(self) -> None:
        srv = self.server
        with srv.lock:
            srv.in_flight += 1
            srv.most = max(srv.most, srv.in_flight)
        time.sleep(0.3)
        with srv.lock:
            srv.in_flight -= 1
        self.send_body(200, b"slow file\n")


def test_the_sources_concurrency_holds_for_all_processes_together(crawl_ws: CrawlWorkspace,
                                                                   loopback) -> None:
    import threading

    srv = loopback(_SlowDirectory, lock=threading.Lock(), in_flight=0, most=0)
    crawl_ws.write([_source(srv.url + "/", processes=2, concurrency=4)])
    r = crawl_ws.crawl("big")
    assert (r.run["outcome"], r.run["new"]) == ("ok", 12), r.output
    # two shards, two requests each: never more than the source's 4 at the site
    assert 1 <= srv.httpd.most <= 4


class _StallingDirectory(_Directory):
    """A listing of ten files; every file sends half its body and then stalls."""

    names = tuple(f"s{i}.txt" for i in range(10))

    def send_file(self) -> None:
        self.server.started += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"x" * 500)
        self.wfile.flush()
        time.sleep(120)


@pytest.mark.parametrize("to", ["group", "parent"])
def test_sigterm_records_one_killed_run(crawl_ws: CrawlWorkspace, loopback, to: str) -> None:
    """As the daemon stops a crawl (its process group), or as a user would (the pid)."""
    srv = loopback(_StallingDirectory, started=0)
    crawl_ws.write([_source(srv.url + "/", processes=2, retry_max=0, download_timeout=120,
                            timeout=300, concurrency=32)])
    env = dict(os.environ, LEAKSENTRY_HOME=str(crawl_ws.root / "state"))
    # its own process group, as the daemon starts crawls: the signal reaches every shard
    log = crawl_ws.root / "crawl.log"  # a file: an unread pipe would fill and block the crawl
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "leaksentry", "crawl", "big",
                                 "--config", str(crawl_ws.config), *crawl_ws.hooks()],
                                env=env,
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while srv.httpd.started < 10:  # every file in flight, in both shards
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        if to == "group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:  # the parent forwards it to the shards
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=90) == 1  # well before the stalled downloads' 120 s
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    runs = crawl_ws.runs("big")
    assert len(runs) == 1, log.read_text()
    assert runs[0]["outcome"] == "killed" and "shard" in runs[0]["error"], runs[0]["error"]
    assert runs[0]["discovered"] == 10  # the counters of both shards are kept
