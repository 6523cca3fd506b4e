"""PostgreSQL unreachable during crawls (issue 19): the run is recorded as an error once
the store is back (kept meanwhile in the state directory's journal), the crawl is not
started (nothing could be recorded), and its items stay unseen, so the next run fetches
them: nothing is lost. A real PostgreSQL, stopped and started again; the real
`leaksentry crawl` subprocess, run by the daemon's runner."""

from __future__ import annotations

import os
import sys

from conftest import CrawlWorkspace
from fixtures_postgres import PASSWORD

from leaksentry.store import Store
from leaksentry.store.unrecorded import DEFERRED_FILE, deferred_count
from scheduler.crawls import run_crawl


def test_postgres_down_keeps_the_run_and_the_items_for_later(tmp_path, http_server_dir,
                                                             postgres_outage, monkeypatch):
    monkeypatch.setenv("LEAKSENTRY_STATE_PASSWORD", PASSWORD)
    url = postgres_outage.database()
    Store(url, upgrade=True).close()
    ws = CrawlWorkspace(tmp_path, pg_url=url, pg_dump=postgres_outage.dump)
    root, site = http_server_dir
    for name in ("a.txt", "b.txt"):
        (root / name).write_text(f"{name}\n")
    ws.write([{"name": "dir", "kind": "directory", "url": site, "allow_private": True,
               "delay": 0, "obey_robots": False}])
    env = {**os.environ, "LEAKSENTRY_HOME": str(tmp_path / "state")}
    command = [sys.executable, "-m", "leaksentry", "crawl", *ws.hooks()]  # metadata only
    store = ws.store()

    def crawl():  # as the daemon runs a due crawl
        return run_crawl(store, "dir", ws.config, timeout=120, env=env, base_command=command)

    first = crawl()
    assert (first.outcome, first.fetched) == ("ok", 2), first.error
    (root / "c.txt").write_text("c.txt\n")

    postgres_outage.stop()
    down = crawl()
    assert down.outcome == "error" and "crawl not started" in (down.error or "")
    assert "postgresql://" in (down.error or "")  # names the store, never a password
    state = tmp_path / "state"
    assert deferred_count(state) == 1
    assert (state / DEFERRED_FILE).stat().st_mode & 0o777 == 0o600
    assert len(ws.docs()) == 2  # nothing fetched while the store was down

    postgres_outage.start()
    back = crawl()  # the kept run is recorded first, then the crawl runs
    assert (back.outcome, back.fetched) == ("ok", 1), back.error
    assert sorted(d["item_id"] for d in ws.docs()) == ["/a.txt", "/b.txt", "/c.txt"]
    assert deferred_count(state) == 0
    runs = ws.runs("dir")
    assert [r["outcome"] for r in runs] == ["ok", "error", "ok"]
    assert "crawl not started" in runs[1]["error"]
    assert PASSWORD not in runs[1]["error"]
    health = ws.query("SELECT consecutive_errors, healthy FROM source_health")[0]
    assert (health["consecutive_errors"], health["healthy"]) == (0, 1)
    store.close()
