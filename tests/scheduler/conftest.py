"""Fixtures for the daemon tests: a real `leaksentry run` process in a temp dir.

Every wait is bounded and polls; nothing asserts on wall time.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from leaksentry.config.toml import value as toml_value

FAKE_CRAWL = Path(__file__).with_name("fake_crawl.py")
LEAKSENTRY = Path(sys.executable).with_name("leaksentry")


def toml_doc(sections: dict[str, dict], sources: list[dict], raw: str = "") -> str:
    out = []
    for name, body in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {toml_value(v)}" for k, v in body.items()]
        out.append("")
    for src in sources:
        out.append("[[sources]]")
        out += [f"{k} = {toml_value(v)}" for k, v in src.items()]
        out.append("")
    return "\n".join(out) + raw


def fake_source(name: str, every: str = "1s", **extra: Any) -> dict:
    """A source for the stand-in crawl (a `watch` source; the fake never fetches it)."""
    return {
        "name": name,
        "kind": "watch",
        "url": "http://127.0.0.1:9/",
        "every": every,
        "allow_private": True,
        **extra,
    }


def wait_for(
    cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.1
) -> Any:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is not alive
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class DaemonHarness:
    """One state dir + config; starts and stops real daemon processes on it."""

    exe = LEAKSENTRY
    wait_for = staticmethod(wait_for)
    fake_source = staticmethod(fake_source)
    pid_alive = staticmethod(pid_alive)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "leaksentry.toml"
        self.state = root / "state"
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    # -- config ----------------------------------------------------------------
    def write_config(
        self,
        sources: list[dict],
        daemon: dict | None = None,
        fake: dict | None = None,
        sections: dict[str, dict] | None = None,
        raw: str = "",
        fake_crawl: bool = True,
    ) -> Path:
        d = {
            "metrics_port": 0,
            "grace_period": "5s",
            "kill_after": "2s",
            "timeout_margin": "0s",
            "misfire_grace_time": "30s",
            "outbox_interval": "1s",
            "spool_interval": "1s",
            "health_interval": "1s",
        }
        if fake_crawl:
            d["crawl_command"] = [sys.executable, str(FAKE_CRAWL)]
        d.update(daemon or {})
        secs = {"state": {"dir": str(self.state)}, **(sections or {}), "daemon": d}
        self.config.write_text(toml_doc(secs, sources, raw))
        if fake is not None:
            (self.root / "fake_crawl.json").write_text(json.dumps(fake))
        return self.config

    # -- processes -----------------------------------------------------------------
    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self.root / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        e = {**os.environ, "FAKE_CRAWL_HOME": str(self.root), **(env or {})}
        e.pop("LEAKSENTRY_CONFIG", None)
        proc = subprocess.Popen(
            [str(LEAKSENTRY), "run", "--config", str(self.config), *args],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            env=e,
        )
        self.procs.append(proc)
        return proc

    def start_ready(self, **kw: Any) -> subprocess.Popen:
        proc = self.start(**kw)
        wait_for(lambda: self.info(proc) or proc.poll() is not None, 60, "daemon to start")
        assert proc.poll() is None, self.log_text()
        return proc

    def info(self, proc: subprocess.Popen | None = None) -> dict | None:
        try:
            info = json.loads((self.state / "daemon.json").read_text())
        except (OSError, ValueError):
            return None
        if proc is not None and info.get("pid") != proc.pid:
            return None
        return info

    def log_text(self, i: int = -1) -> str:
        return self.logs[i].read_text(errors="replace") if self.logs else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # crawls left by a kill -9 in a test
        crawls = self.state / "crawls"
        for pidfile in crawls.glob("*.json") if crawls.exists() else []:
            with suppress(OSError, ValueError, KeyError):
                os.killpg(json.loads(pidfile.read_text())["pid"], signal.SIGKILL)

    # -- observations ----------------------------------------------------------------
    def crawl_events(self, event: str, source: str) -> list[str]:
        log = self.root / "crawls.log"
        if not log.exists():
            return []
        return [ln for ln in log.read_text().splitlines() if ln.split(" ")[:2] == [event, source]]

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        db = self.state / "state.db"
        if not db.exists():
            return []
        with closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            try:
                return conn.execute(sql, params).fetchall()
            except sqlite3.OperationalError:
                return []

    def runs(self, source: str) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM source_runs WHERE source = ? ORDER BY id", source)

    def metrics_url(self) -> str:
        info = wait_for(self.info, 30, "daemon.json")
        return info["metrics_url"]

    def scrape(self) -> dict[tuple[str, tuple], float]:
        """{(sample name, sorted labels): value} from /metrics, via prometheus' parser."""
        with urllib.request.urlopen(self.metrics_url() + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[DaemonHarness]:
    h = DaemonHarness(tmp_path)
    yield h
    h.stop_all()
