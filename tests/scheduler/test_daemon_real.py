"""`leaksentry run` with the REAL crawl (`leaksentry crawl`, Scrapy, the matcher, the
local store, the alert outbox) against a local Pastebin-scraping-API site and a
real signature-verifying webhook receiver (both from leaksentry.demo.sites).

The register, key and fingerprints are made with the CLI from fictional patients
(leaksentry.synth); no planted identifier may appear in the daemon's output.
"""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from leaksentry.demo.scenario import Paste
from leaksentry.demo.sites import PasteFeedSite, WebhookReceiver
from leaksentry.synth import patients, written_hkid

pytestmark = pytest.mark.slow

SECRET = "daemon-test-webhook-secret"


class StallingReceiver(WebhookReceiver):
    """The signed-webhook receiver; with ``stall_next()`` it holds the next POST
    unanswered until ``release`` is set (a receiver hung mid-delivery)."""

    def __init__(self, secret: str) -> None:
        super().__init__(secret)
        self.stall = False
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.stalled_key = ""

    def handler(self):
        base, site = super().handler(), self

        class Handler(base):
            def do_POST(self) -> None:
                if site.stall and not site.stalled.is_set():
                    site.stalled_key = self.headers.get("Idempotency-Key", "")
                    site.stalled.set()
                    site.release.wait(120)
                    self.close_connection = True
                    return
                super().do_POST()

        return Handler


class World:
    """Register + key + fingerprints on disk, the feed and the receiver running."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.people = list(patients(40, seed=77))
        reg = root / "register.csv"
        with reg.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["ref", "hkid", "hn"])
            for p in self.people:
                w.writerow([p.ref, p.hkid, p.hn])
        self.key, self.fp = root / "key", root / "fingerprints.lsfp"
        for args in (["keygen", "--out", str(self.key)],
                     ["fingerprints", "build", "--key", str(self.key), "--out", str(self.fp),
                      "--hkid-column", "hkid", "--hn-column", "hn", "--ref-column", "ref",
                      str(reg)]):
            r = subprocess.run([sys.executable, "-m", "leaksentry", *args],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        reg.unlink()  # the trusted side keeps the register; the crawler never sees it
        self.feed = PasteFeedSite([]).start()
        self.receiver = StallingReceiver(SECRET).start()
        self.rng = random.Random(5)
        self.planted: list[str] = []
        self._n = 0

    def paste(self, refs: list[int]) -> str:
        """Publish a paste leaking the given register refs; returns its key."""
        self._n += 1
        key = f"LEAK{self._n:04d}"
        lines = []
        for i in refs:
            p = self.people[i - 1]
            lines.append(f"{p.name}, {written_hkid(p.hkid, self.rng)}, {p.procedure}")
            self.planted.append(p.hkid)
        body = ("ward list\n" + "\n".join(lines) + "\n").encode()
        self.feed.pastes = [Paste(key, f"list {self._n}", body, int(time.time()) + self._n),
                            *self.feed.pastes]
        return key

    def sections(self) -> dict[str, dict]:
        return {
            "matching": {"key": str(self.key), "fingerprints": str(self.fp)},
            "alerts": {"min_severity": "low", "digest_severities": [], "backoff_base": "1s"},
        }

    def raw(self, extra: str = "") -> str:
        return ("\n[[alerts.channels]]\nname = \"team\"\ntype = \"webhook\"\n"
                f"url = \"{self.receiver.hook_url}\"\nsecret = \"{SECRET}\"\n{extra}")

    def source(self, **kw) -> dict:
        return {"name": "pastes", "kind": "feed", "preset": "pastebin",
                "url": f"{self.feed.url}/api_scraping.php?limit=100", "allow_private": True,
                "every": "1s", "delay": 0, "retry_max": 0, "timeout": "2m", **kw}

    def stop(self) -> None:
        self.feed.stop()
        self.receiver.stop()


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.stop()


def hit_urls(harness) -> list[str]:
    return [r["url"] for r in harness.query("SELECT url FROM hits ORDER BY id")]


def alert_keys(world) -> list[str]:
    return [d.idempotency_key for d in world.receiver.unique() if d.event != "test"]


def es_count(url: str, index: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/{index}/_count", timeout=10) as r:
            return json.loads(r.read())["count"]
    except urllib.error.HTTPError:
        return 0


def test_real_crawls_on_schedule_hits_alerts_and_index_arrive(harness, world, osmem_session):
    """...and the daemon's spool job indexes the hits in a real Elasticsearch-API server
    (osmem-server), its retention job runs against it."""
    es = {"url": osmem_session.url, "backend": "opensearch", "index_prefix": "schedtest"}
    harness.write_config([world.source()], sections={**world.sections(), "elasticsearch": es},
                         raw=world.raw(), fake_crawl=False,
                         daemon={"retention": "3650d", "retention_interval": "1s"})
    world.paste([1, 2, 3])
    proc = harness.start_ready()
    harness.wait_for(lambda: len(hit_urls(harness)) == 1, 120, "the first hit")
    harness.wait_for(lambda: len(alert_keys(world)) >= 1, 60, "the first alert")
    m1 = harness.scrape()
    # a new paste appears: the next scheduled crawl finds it
    world.paste([10, 11])
    harness.wait_for(lambda: len(hit_urls(harness)) == 2, 120, "the second hit")
    harness.wait_for(lambda: len(alert_keys(world)) >= 2, 60, "the second alert")
    ok = ("leaksentry_crawls_total", (("outcome", "ok"), ("source", "pastes")))
    docs = ("leaksentry_documents_scanned_total", (("source", "pastes"),))
    # hits are stored while their crawl runs; the counters move when the crawl ends
    m2 = harness.wait_for(lambda: (m := harness.scrape()).get(docs, 0) >= 2 and m, 60,
                          "both crawls' documents to be counted")
    assert m2[ok] >= 2 and m2[ok] > m1.get(ok, 0)
    runs = harness.runs("pastes")
    assert len(runs) >= 2 and {r["outcome"] for r in runs} == {"ok"}
    assert sum(v for k, v in m2.items() if k[0] == "leaksentry_hits") == 2
    assert m2[("leaksentry_alert_deliveries_total", (("result", "delivered"),))] >= 2
    assert world.receiver.duplicates() == 0
    # the spool job sent both hits to the cluster; the spool is empty
    harness.wait_for(lambda: es_count(osmem_session.url, "schedtest-hits") == 2, 60,
                     "both hits indexed by the spool job")
    harness.wait_for(lambda: harness.scrape().get(("leaksentry_spool_depth", ())) == 0, 60,
                     "an empty spool")
    assert "retention job failed" not in harness.log_text()
    assert "spool job failed" not in harness.log_text()
    with urllib.request.urlopen(harness.metrics_url() + "/metrics", timeout=10) as r:
        metrics_text = r.read().decode()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    # no planted identifier in any form in the daemon's log, its metrics or the alerts
    out = harness.log_text() + metrics_text + "".join(
        d.raw.decode("utf-8", "replace") for d in world.receiver.deliveries)
    norm = unicodedata.normalize("NFKC", out).upper()
    assert world.planted and all(ident[:-1] not in norm for ident in world.planted)


def test_kill9_mid_real_crawl_loses_no_hit_and_duplicates_no_alert(harness, world):
    harness.write_config([world.source()], sections=world.sections(), raw=world.raw(),
                         fake_crawl=False)
    for refs in ([1, 2], [3, 4], [5, 6, 7], [8], [9, 12]):
        world.paste(refs)
    proc = harness.start_ready()
    crawls = harness.state / "crawls"
    # kill -9 the daemon while a crawl subprocess is running
    harness.wait_for(lambda: list(crawls.glob("*.json")), 120, "a crawl to be running")
    proc.kill()
    proc.wait()
    restarted = harness.start_ready()
    harness.wait_for(lambda: len(hit_urls(harness)) == 5, 180, "all five hits")
    harness.wait_for(lambda: len(alert_keys(world)) == 5, 60, "five alerts")
    # schedule resumed: more runs after the restart, and no double processing
    n = len(harness.runs("pastes"))
    harness.wait_for(lambda: len(harness.runs("pastes")) >= n + 1, 120, "the schedule to resume")
    assert len(set(hit_urls(harness))) == 5
    assert world.receiver.duplicates() == 0 and len(alert_keys(world)) == 5
    assert restarted.poll() is None


def _limits(world) -> list[str]:
    """The `limit` of every listing request the feed has seen, in order."""
    return [p.split("limit=")[1] for p in list(world.feed.requests) if "limit=" in p]


def test_rejected_reload_and_unsignalled_edit_change_nothing(harness, world):
    """Crawls run the daemon's validated snapshot: a broken file + SIGHUP is rejected and
    the crawls keep fetching (and finding) with the old config; an edit saved without
    SIGHUP is not picked up; a good edit + SIGHUP is."""
    harness.write_config([world.source()], sections=world.sections(), raw=world.raw(),
                         fake_crawl=False)
    good = harness.config.read_text()
    world.paste([1, 2])
    proc = harness.start_ready()
    harness.wait_for(lambda: len(hit_urls(harness)) == 1, 120, "the first hit")
    snaps = list((harness.state / "config").glob("*.toml"))
    assert len(snaps) == 1 and snaps[0].stat().st_mode & 0o777 == 0o600
    assert snaps[0].read_text() == good

    # a typo, then SIGHUP: rejected
    harness.config.write_text(good + "\n[crawler\nconcurrency = 2\n")
    proc.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: "config reload failed" in harness.log_text(), 30, "the rejection")
    # an edit saved without SIGHUP (valid, but never signalled)
    harness.config.write_text(good.replace("limit=100", "limit=77"))
    n = len(harness.runs("pastes"))
    world.paste([3, 4])
    harness.wait_for(lambda: len(hit_urls(harness)) == 2, 120, "a hit after the rejection")
    harness.wait_for(lambda: len(harness.runs("pastes")) >= n + 2, 120, "two more crawls")
    after = harness.runs("pastes")[n:]
    assert {r["outcome"] for r in after} == {"ok"}, [r["error"] for r in after]
    assert "77" not in _limits(world) and "100" in _limits(world)

    # the same edit, signalled: picked up by the next crawl
    proc.send_signal(signal.SIGHUP)
    harness.wait_for(lambda: "config reloaded" in harness.log_text(), 30, "the reload")
    harness.wait_for(lambda: "77" in _limits(world), 120, "a crawl with the new config")
    snaps = list((harness.state / "config").glob("*.toml"))
    assert any(s.read_text() == good.replace("limit=100", "limit=77") for s in snaps)
    assert {r["outcome"] for r in harness.runs("pastes")} == {"ok"}
    assert proc.poll() is None


def _outbox_job_next_run(harness) -> float | None:
    """When the job store has the interval `outbox` job due next (epoch seconds)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(harness.state / "scheduler.db", timeout=10)) as conn:
        row = conn.execute("SELECT next_run_time FROM apscheduler_jobs WHERE id = 'outbox'"
                           ).fetchone()
    return row[0] if row else None


def _problem_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines()
            if any(f" {lvl} " in ln for lvl in ("WARNING", "ERROR", "CRITICAL"))]


def test_alert_follows_the_hit_not_the_outbox_interval_and_clean_crawls_log_no_warning(
        harness, world):
    """With the outbox job due only every 10 minutes, each hit's alert still arrives
    while that job has not run once: the crawl wakes the daemon when it commits the hit.
    A clean crawl of the local feed leaves no WARNING (or worse) line in the log."""
    harness.write_config([world.source()], sections=world.sections(), raw=world.raw(),
                         fake_crawl=False, daemon={"outbox_interval": "600s"})
    proc = harness.start_ready()
    first_due = harness.wait_for(lambda: _outbox_job_next_run(harness), 30, "the outbox job")
    for n, refs in enumerate(([1, 2, 3], [10, 11]), start=1):
        world.paste(refs)
        harness.wait_for(lambda n=n: len(alert_keys(world)) >= n, 120, f"alert {n}")
        # the interval job has not run yet: still due at its first time, in the future
        assert _outbox_job_next_run(harness) == first_due > time.time()
    assert len(hit_urls(harness)) == 2 and world.receiver.duplicates() == 0
    n = len(harness.runs("pastes"))
    harness.wait_for(lambda: len(harness.runs("pastes")) >= n + 1, 60, "one more crawl")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert {r["outcome"] for r in harness.runs("pastes")} == {"ok"}
    assert _problem_lines(harness.log_text()) == []
    # and the crawl command's own output, run by hand on the same config
    r = subprocess.run([str(harness.exe), "crawl", "pastes", "--config", str(harness.config)],
                       capture_output=True, text=True, timeout=300, cwd=harness.root)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "'log_count/WARNING'" not in out and " WARNING: " not in out, out[-3000:]
    assert "RefererMiddleware" not in out


def test_delivery_leased_by_a_killed_daemon_goes_out_at_restart(harness, world):
    """The daemon is killed while the receiver holds its alert unanswered. The delivery's
    lease (1 h here) would keep it waiting; the restarted daemon, which holds the
    exclusive lock, releases it at start and delivers it at once, with the same key."""
    harness.write_config([world.source()], sections={**world.sections(), "alerts": {
        **world.sections()["alerts"], "lease": "1h"}}, raw=world.raw('timeout = "5m"\n'),
        fake_crawl=False, daemon={"outbox_interval": "600s"})
    world.receiver.stall = True
    proc = harness.start_ready()
    world.paste([4, 5])
    harness.wait_for(world.receiver.stalled.is_set, 120, "the alert to reach the receiver")
    proc.kill()
    proc.wait()
    world.receiver.release.set()
    leased = harness.query("SELECT claimed_until, attempts FROM deliveries")
    assert len(leased) == 1 and leased[0]["claimed_until"] and leased[0]["attempts"] == 1
    assert alert_keys(world) == []
    harness.start_ready()
    harness.wait_for(lambda: alert_keys(world), 120, "the alert after the restart")
    assert alert_keys(world) == [world.receiver.stalled_key]
    assert "released 1 alert delivery lease" in harness.log_text()
    assert world.receiver.duplicates() == 0
