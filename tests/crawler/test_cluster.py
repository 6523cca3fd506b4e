"""Crawls on a cluster (scheduler/cluster, docs/cluster.md): a real redis-server, a
real `leaksentry run` leader and real `leaksentry worker` processes, against
directory sites on loopback.

Schedules are short and sites small: the whole module stays within a couple of
minutes on a 2-core CI machine. Nothing asserts on wall time: waits poll the
state store with generous deadlines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import CrawlWorkspace
from servers.loopback import QuietHandler

from leaksentry.config import Settings
from leaksentry.errors import ConfigError

pytestmark = pytest.mark.timeout(300)


def _cluster(url: str, **kw: Any) -> dict[str, Any]:
    return {"broker": url, "visibility_timeout": "12s", "item_batch": 5,
            "worker_health_port": 0, **kw}


def _daemon(**kw: Any) -> dict[str, Any]:
    return {"metrics_port": 0, "timeout_margin": "2s", "kill_after": "1s",
            "outbox_interval": "1h", "spool_interval": "1h", "health_interval": "1h",
            "grace_period": "5s", "log_level": "INFO", **kw}


def _dir_source(name: str, url: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": "directory", "url": url, "allow_private": True,
            "obey_robots": False, "delay": 0, "concurrency": 2, "timeout": "8s",
            "every": "3s", **kw}


@dataclass
class Cluster:
    """A leader and workers over one workspace (shared SQLite state on this host)."""

    ws: CrawlWorkspace
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def env(self, scan: bool) -> dict[str, str]:
        e = dict(os.environ)
        e.update({"LEAKSENTRY_HOME": str(self.ws.root / "state"), "PYTHONUNBUFFERED": "1"})
        e.pop("LEAKSENTRY_CONFIG", None)
        return e

    def _start(self, name: str, args: list[str], scan: bool) -> subprocess.Popen:
        if not scan and "crawl_command" not in self.ws.data.get("daemon", {}):
            self.ws.doclog_daemon()  # the crawls it starts: documents to the metadata log
        log = self.ws.root / f"{name}.log"
        self.logs[name] = log
        proc = subprocess.Popen([sys.executable, "-m", "leaksentry", *args, "--config",
                                 str(self.ws.config)], stdin=subprocess.DEVNULL,
                                stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                env=self.env(scan), cwd=self.ws.root)
        self.procs[name] = proc
        return proc

    def worker(self, name: str, *, scan: bool = False, concurrency: int = 1,
               queues: str = "http") -> subprocess.Popen:
        return self._start(name, ["worker", "--name", f"{name}@test", "--queues", queues,
                                  "--concurrency", str(concurrency), "--health-port", "0"],
                           scan)

    def leader(self, *, scan: bool = False) -> subprocess.Popen:
        return self._start("leader", ["run"], scan)

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace") if name in self.logs else ""

    def all_output(self) -> str:
        return "\n".join(f"--- {n}\n{self.output(n)}" for n in self.logs)

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 30) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                proc.kill()  # its crawls stop with it (they watch their parent)
                proc.wait()

    def close(self) -> None:
        """The leader first (no new jobs), then the workers: the test is over, so their
        running crawls are not waited for long."""
        if "leader" in self.procs:
            self.stop("leader")
        for name in list(self.procs):
            self.stop(name, wait=3)

    def runs(self, source: str) -> list[dict[str, Any]]:
        if not self.ws.has_store:
            return []
        try:
            return [dict(r) for r in self.ws.runs(source)]
        except Exception:  # not migrated yet
            return []

    def wait_for(self, what: str, cond: Callable[[], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None and name != "victim":
                    pytest.fail(f"{name} exited ({proc.returncode}) while waiting for {what}:"
                                f"\n{self.all_output()[-6000:]}")
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}:\n{self.all_output()[-8000:]}")


@pytest.fixture
def cluster(crawl_ws: CrawlWorkspace):
    c = Cluster(crawl_ws)
    yield c
    c.close()


def _files(root: Path, n: int, prefix: str = "f", text: Callable[[int], str] | None = None
           ) -> None:
    for i in range(n):
        sub = root / f"d{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"{prefix}{i:03d}.txt").write_text(text(i) if text else f"note {i}\n")


# -- configuration -------------------------------------------------------------------------

def test_without_a_broker_nothing_changes_and_the_visibility_timeout_is_checked() -> None:
    s = Settings()
    assert not s.cluster.enabled
    with pytest.raises((ConfigError, ValueError), match="visibility_timeout"):
        Settings.model_validate({"cluster": {"broker": "redis://127.0.0.1:6379/0",
                                             "visibility_timeout": "10m"},
                                 "crawler": {"timeout": "15m"}})
    with pytest.raises((ConfigError, ValueError), match="redis://"):
        Settings.model_validate({"cluster": {"broker": "amqp://127.0.0.1/"}})
    ok = Settings.model_validate({"cluster": {"broker": "redis://10.0.0.5:6379/0",
                                              "password_env": "TEST_LS_REDIS_PW"}})
    os.environ["TEST_LS_REDIS_PW"] = "s3cr/et"
    try:
        assert ok.cluster.broker_url() == "redis://:s3cr%2Fet@10.0.0.5:6379/0"
        assert "s3cr" not in ok.cluster.public_broker()
    finally:
        del os.environ["TEST_LS_REDIS_PW"]


def test_the_example_cluster_section_is_valid() -> None:
    import tomllib

    text = (Path(__file__).parents[2] / "examples" / "leaksentry.toml").read_text()
    block = text[text.index("# [cluster]"):]
    data = tomllib.loads("\n".join(line.removeprefix("# ") for line in block.splitlines()
                                    if line.startswith("# ")))
    s = Settings.model_validate(data)
    assert s.cluster.enabled and s.cluster.item_batch == 500


def test_the_worker_unit_runs_workers_and_does_not_restart_a_refusing_one() -> None:
    unit = (Path(__file__).parents[2] / "deploy" / "leaksentry-worker.service").read_text()
    d = dict(line.split("=", 1) for line in unit.splitlines()
             if line and not line.startswith(("#", "[")) and "=" in line)
    assert d["ExecStart"].split()[1:2] == ["worker"] and "--queues" in d["ExecStart"]
    assert d["RestartPreventExitStatus"] == "2" and d["KillMode"] == "mixed"


def test_a_runs_parts_are_recorded_once_in_any_order(crawl_ws: CrawlWorkspace,
                                                       redis_server) -> None:
    """scheduler.cluster.runs on a real Redis: parts report in any order, a re-run part
    overwrites its own report, the run is recorded exactly once, by whichever report
    completes it; a listing that died is closed with the parts it had sent."""
    from datetime import UTC, datetime, timedelta

    from leaksentry.config import load_config
    from pipelines.model import RunSummary
    from scheduler.cluster.runs import LISTING, note_sent, report_part, reported

    crawl_ws.write([_dir_source("big", "http://127.0.0.1:9/")], daemon=_daemon(),
                   cluster=_cluster(redis_server.url))
    settings = load_config(crawl_ws.config)
    t = datetime(2026, 12, 1, tzinfo=UTC)

    def part(n: int, outcome: str = "ok", error: str | None = None) -> RunSummary:
        return RunSummary("big", t + timedelta(seconds=n), t + timedelta(seconds=n + 5),
                          outcome, discovered=10 if n == 0 else 0, fetched=n, new=n,
                          hits=1, errors=0 if error is None else 1, error=error)

    assert report_part(settings, "big", "r1", 2, part(2)) is None
    assert report_part(settings, "big", "r1", 2, part(2)) is None  # a re-run: same field
    assert report_part(settings, "big", "r1", LISTING, part(0), total=3) is None
    merged = report_part(settings, "big", "r1", 1, part(1, "timeout", "took long"))
    assert merged is not None
    assert (merged.outcome, merged.discovered, merged.new, merged.hits) == ("timeout", 10, 3, 3)
    assert merged.error == "part 2/3: took long"
    assert reported(settings, "r1", 1)
    assert report_part(settings, "big", "r1", 1, part(1)) is None  # late: already recorded
    assert len(crawl_ws.runs("big")) == 1

    note_sent(settings, "r2", 1)  # the listing sent one part, then died without reporting
    assert report_part(settings, "big", "r2", 1, part(1)) is None
    merged = report_part(settings, "big", "r2", LISTING, part(0, "killed", "worker died"),
                         total="sent")
    assert merged is not None and merged.outcome == "killed" and merged.new == 1
    assert len(crawl_ws.runs("big")) == 2


def test_a_worker_without_the_key_files_refuses_to_start(crawl_ws: CrawlWorkspace,
                                                         redis_server) -> None:
    crawl_ws.write([], cluster=_cluster(redis_server.url), crawler={"timeout": "5s"},
                   daemon=_daemon(), matching={"key": str(crawl_ws.root / "nokey"),
                             "fingerprints": str(crawl_ws.root / "nofp")})
    env = Cluster(crawl_ws).env(scan=True)
    proc = subprocess.run([sys.executable, "-m", "leaksentry", "worker", "--config",
                           str(crawl_ws.config), "--health-port", "0"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "matching.key" in proc.stderr and "missing or unreadable" in proc.stderr


def test_a_worker_gives_back_a_job_it_cannot_scan_and_stops(cluster: Cluster, redis_server,
                                                             fingerprints) -> None:
    """The worker's own config has the key files; the job's (the leader's snapshot) names
    files this host does not have: the job goes back to the queue, the worker exits 2."""
    import redis

    from leaksentry.config import load_config
    from leaksentry.store import Store
    from scheduler.cluster.enqueue import enqueue_crawl

    matching, _ = fingerprints
    common = {"cluster": _cluster(redis_server.url), "daemon": _daemon()}
    cluster.ws.write([], matching=matching, crawler={"timeout": "5s"}, **common)
    cluster.worker("w1", scan=True)
    cluster.wait_for("the worker", lambda: "ready." in cluster.output("w1"), timeout=60)
    leader_cfg = cluster.ws.root / "leader.toml"
    leader_cfg.write_text(cluster.ws.config.read_text().replace(
        matching["key"], str(cluster.ws.root / "elsewhere" / "key")))
    cluster.ws.root.joinpath("state").mkdir(exist_ok=True)
    settings = load_config(leader_cfg)
    settings.sources.append(Settings.model_validate(
        {"sources": [_dir_source("s", "http://127.0.0.1:9/", timeout="5s")]}).sources[0])
    store = Store(settings.state)
    try:
        job = enqueue_crawl(settings, "s", store)
    finally:
        store.close()
    assert job is not None
    proc = cluster.procs["w1"]
    proc.wait(timeout=60)
    assert proc.returncode == 2, cluster.output("w1")
    out = cluster.output("w1")
    assert "refuses jobs" in out and "matching.key" in out and "missing or unreadable" in out
    r = redis.Redis.from_url(redis_server.url)
    assert r.llen("http") == 1  # given back: another worker will run it


# -- leader + workers ------------------------------------------------------------------------

def test_leader_and_two_workers_crawl_every_source_once_per_item_and_record_hits_once(
        cluster: Cluster, redis_server, nginx_dir, http_server_dir, fingerprints) -> None:
    import random

    from leaksentry.synth import written_hkid

    matching, people = fingerprints
    rng = random.Random(5)
    root_a, url_a = nginx_dir
    root_b, url_b = http_server_dir
    planted = {}

    def text(i: int) -> str:
        if i % 7 == 0:
            p = people[i // 7]
            planted[i] = p
            return f"ward list {i}\npatient {p.name} id {written_hkid(p.hkid, rng)}\n"
        return f"note {i}\n"

    _files(root_a, 30, "a", text)
    _files(root_b, 12, "b")
    cluster.ws.write([_dir_source("big", url_a), _dir_source("small", url_b)],
                     matching=matching, daemon=_daemon(),
                     cluster=_cluster(redis_server.url, item_batch=10, visibility_timeout="90s"))
    cluster.worker("w1", scan=True)
    cluster.worker("w2", scan=True)
    cluster.leader(scan=True)
    # every source crawled on schedule, again and again (nothing new the second time)
    cluster.wait_for("two runs of each source", lambda: all(
        len([r for r in cluster.runs(s) if r["outcome"] == "ok"]) >= 2
        for s in ("big", "small")))
    big = cluster.runs("big")
    first = next(r for r in big if r["outcome"] == "ok")
    assert (first["discovered"], first["fetched"], first["new"]) == (30, 30, 30), big
    assert first["hits"] == len(planted)
    later = [r for r in big if r["id"] > first["id"] and r["outcome"] == "ok"]
    assert later and all(r["new"] == 0 for r in later)
    # the items of the big source were spread over both workers (batches of 10)
    out = cluster.output("w1") + cluster.output("w2")
    hits = cluster.ws.query("SELECT count(*) AS n FROM hits")[0]
    assert hits["n"] == len(planted), cluster.all_output()[-4000:]
    seen = cluster.ws.seen("big")
    assert len(seen) == 30 and {r["status"] for r in seen.values()} == {"done"}
    for w in ("w1", "w2"):
        assert "crawl of big started" in cluster.output(w), w  # each took some of big
    # status shows the cluster
    st = subprocess.run([sys.executable, "-m", "leaksentry", "status", "--json", "--config",
                         str(cluster.ws.config)], capture_output=True, text=True,
                        env=cluster.env(False), timeout=60)
    data = json.loads(st.stdout)
    names = sorted(w["name"] for w in data["cluster"]["workers"])
    assert names == ["w1@test", "w2@test"], data["cluster"]
    assert {q["name"] for q in data["cluster"]["queues"]} == {"http", "browser"}
    text_status = subprocess.run([sys.executable, "-m", "leaksentry", "status", "--config",
                                  str(cluster.ws.config)], capture_output=True, text=True,
                                 env=cluster.env(False), timeout=60).stdout
    assert "2 worker(s)" in text_status and "w1@test" in text_status
    # the leader's metrics: queue depth, workers, job age
    info = json.loads((cluster.ws.root / "state" / "daemon.json").read_text())
    with urllib.request.urlopen(info["metrics_url"] + "/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'leaksentry_queue_depth{queue="http"}' in metrics
    assert 'leaksentry_workers{queue="http"} 2.0' in metrics
    assert "leaksentry_job_age_seconds" in metrics
    # no identifier in any output
    forms = {p.hkid for p in planted.values()} | {p.name for p in planted.values()}
    for form in forms:
        assert form not in out and form not in st.stdout


class _SlowDirectory(QuietHandler):
    """A listing of ``n`` files answered slowly; counts requests in flight and fetches."""

    def do_GET(self) -> None:
        srv = self.server
        names = [f"f{i:02d}.txt" for i in range(srv.n)]
        if self.path == "/":
            links = "".join(f'<a href="{n}">{n}</a>\n' for n in names)
            self.send_body(200, f"<html><body><pre>{links}</pre></body></html>".encode(),
                           "text/html")
            return
        with srv.lock:
            srv.in_flight += 1
            srv.most = max(srv.most, srv.in_flight)
            srv.fetches[self.path] += 1
        time.sleep(srv.pause)
        with srv.lock:
            srv.in_flight -= 1
        self.send_body(200, f"slow file {self.path}\n".encode())


def test_politeness_holds_across_workers(cluster: Cluster, redis_server, loopback) -> None:
    srv = loopback(_SlowDirectory, lock=threading.Lock(), in_flight=0, most=0, n=24,
                   pause=0.25, fetches=Counter())
    cluster.ws.write([_dir_source("slow", srv.url + "/", concurrency=2, every="2s",
                                  timeout="40s")],
                     cluster=_cluster(redis_server.url, item_batch=3, visibility_timeout="60s"),
                     daemon=_daemon())
    cluster.worker("w1", concurrency=3)
    cluster.worker("w2", concurrency=3)
    cluster.leader()
    cluster.wait_for("the run", lambda: any(r["outcome"] == "ok" for r in cluster.runs("slow")))
    run = next(r for r in cluster.runs("slow") if r["outcome"] == "ok")
    assert run["new"] == 24, cluster.runs("slow")
    # 8 batches on 6 slots at once, each process allowed 2: never more than 2 at the site
    assert srv.httpd.most <= 2, srv.httpd.most
    assert set(srv.httpd.fetches.values()) == {1}  # each file fetched once


def test_a_worker_killed_mid_crawl_means_the_job_runs_again_elsewhere(
        cluster: Cluster, redis_server, loopback) -> None:
    srv = loopback(_SlowDirectory, lock=threading.Lock(), in_flight=0, most=0, n=6,
                   pause=1.0, fetches=Counter())
    cluster.ws.write([_dir_source("slow", srv.url + "/", concurrency=1, every="2s",
                                  timeout="8s")],
                     cluster=_cluster(redis_server.url, item_batch=10), daemon=_daemon())
    cluster.worker("victim")
    cluster.leader()
    # the victim takes the listing and then the batch; kill it while the batch runs
    cluster.wait_for("the batch to start", lambda: sum(srv.httpd.fetches.values()) >= 1)
    cluster.stop("victim", signal.SIGKILL)
    cluster.worker("w2")
    cluster.wait_for("the re-run", lambda: any(r["outcome"] == "ok"
                                               for r in cluster.runs("slow")), timeout=120)
    assert "crawl of slow started" in cluster.output("w2")
    seen = cluster.ws.seen("slow")
    assert len(seen) == 6 and {r["status"] for r in seen.values()} == {"done"}, seen
    docs = Counter(d["item_id"] for d in cluster.ws.docs())
    assert set(docs) == {f"/f{i:02d}.txt" for i in range(6)}
    assert max(docs.values()) == 1  # each document processed once (no duplicate hits)
    first = next(r for r in cluster.runs("slow") if r["outcome"] == "ok")
    assert first["discovered"] == 6, cluster.runs("slow")


def test_workers_reconnect_after_redis_restarts(cluster: Cluster, redis_server,
                                               http_server_dir) -> None:
    root, url = http_server_dir
    _files(root, 4)
    cluster.ws.write([_dir_source("small", url, every="2s")],
                     cluster=_cluster(redis_server.url), daemon=_daemon())
    cluster.worker("w1")
    cluster.leader()
    cluster.wait_for("a first run", lambda: len(cluster.runs("small")) >= 1)
    redis_server.restart(down_for=2.0)
    n = len(cluster.runs("small"))
    (root / "late.txt").write_text("added after the restart\n")
    cluster.wait_for("runs after the restart", lambda: any(
        r["outcome"] == "ok" and r["new"] >= 1 for r in cluster.runs("small")[n:]), timeout=120)
    assert any(d["item_id"] == "/late.txt" for d in cluster.ws.docs())


def test_worker_healthz(cluster: Cluster, redis_server) -> None:
    cluster.ws.write([], cluster=_cluster(redis_server.url), daemon=_daemon(),
                     crawler={"timeout": "5s"})
    cluster.worker("w1")
    url = None

    def found() -> bool:
        nonlocal url
        for line in cluster.output("w1").splitlines():
            if "/healthz" in line:
                url = line[line.index("http://"):].split()[0]
                return True
        return False

    cluster.wait_for("the health endpoint", found, timeout=60)
    assert url is not None
    with urllib.request.urlopen(url, timeout=5) as resp:
        health = json.loads(resp.read())
    assert health["status"] == "ok" and health["queues"] == ["http"]
