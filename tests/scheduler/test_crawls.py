"""The crawl subprocess runner: outcomes, timeouts (SIGTERM, then SIGKILL), orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

from leaksentry.store import Store
from scheduler.crawls import RunningCrawls, crawl_command, run_crawl

FAKE = os.path.join(os.path.dirname(__file__), "fake_crawl.py")


def setup(tmp_path, **modes):
    cfg = tmp_path / "leaksentry.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n')
    (tmp_path / "fake_crawl.json").write_text(json.dumps(modes))
    return cfg, Store(tmp_path / "state" / "state.db")


def rows(store, source):
    return store.conn.execute("SELECT * FROM source_runs WHERE source = ? ORDER BY id",
                              (source,)).fetchall()


def test_default_command_is_leaksentry_crawl():
    assert crawl_command("paste", "/etc/ls.toml") == [
        sys.executable, "-m", "leaksentry", "crawl", "paste", "--config", "/etc/ls.toml"]
    assert crawl_command("paste", None, ["nice", "leaksentry", "crawl"]) == [
        "nice", "leaksentry", "crawl", "paste"]


def test_ok_crawl_uses_the_childs_summary(tmp_path):
    cfg, store = setup(tmp_path)
    lines = []
    res = run_crawl(store, "a", cfg, timeout=60, base_command=[sys.executable, FAKE],
                    on_output=lambda s, ln: lines.append((s, ln)))
    assert (res.outcome, res.returncode, res.fetched) == ("ok", 0, 2)
    assert len(rows(store, "a")) == 1 and res.run_id == rows(store, "a")[0]["id"]
    assert ("a", "fake crawl of a: ok") in lines


def test_crash_without_summary_records_error_with_last_line(tmp_path):
    cfg, store = setup(tmp_path, b={"mode": "crash"})
    res = run_crawl(store, "b", cfg, timeout=60, base_command=[sys.executable, FAKE],
                    on_output=lambda s, ln: None)
    assert res.outcome == "error" and res.returncode == 3
    (row,) = rows(store, "b")
    assert row["outcome"] == "error" and "status 3" in row["error"]
    assert "something broke badly" in row["error"]


def test_stubborn_crawl_is_killed_after_sigterm_grace(tmp_path):
    cfg, store = setup(tmp_path, s={"mode": "stubborn"})
    running = RunningCrawls(tmp_path / "crawls")
    res = run_crawl(store, "s", cfg, timeout=1, kill_after=0.5, running=running,
                    base_command=[sys.executable, FAKE], on_output=lambda s, ln: None)
    assert res.outcome == "timeout" and res.returncode == -signal.SIGKILL
    (row,) = rows(store, "s")
    assert row["outcome"] == "timeout" and "daemon's 1s limit" in row["error"]
    assert running.names() == [] and list((tmp_path / "crawls").iterdir()) == []


def test_missing_program_is_a_recorded_error(tmp_path):
    cfg, store = setup(tmp_path)
    res = run_crawl(store, "m", cfg, timeout=5, base_command=[str(tmp_path / "nope")])
    assert res.outcome == "error" and res.returncode is None
    assert "cannot start crawl command" in rows(store, "m")[0]["error"]


def test_orphans_of_a_dead_daemon_are_stopped_and_recorded(tmp_path):
    _, store = setup(tmp_path)
    orphan = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    running = RunningCrawls(tmp_path / "crawls")
    running.add("o", orphan, datetime.now(UTC))  # as the dead daemon left it
    fresh = RunningCrawls(tmp_path / "crawls")  # the restarted daemon
    assert fresh.reap_orphans(store, kill_after=1) == ["o"]
    deadline = time.monotonic() + 10
    while orphan.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert orphan.returncode == -signal.SIGTERM
    (row,) = rows(store, "o")
    assert row["outcome"] == "killed" and "daemon stopped" in row["error"]
    assert list((tmp_path / "crawls").iterdir()) == []
    # a second restart finds nothing left to do
    assert fresh.reap_orphans(store) == []


def test_pid_reused_after_reboot_is_not_killed(tmp_path):
    """A pid file whose pid now belongs to another process (start time differs) is
    recorded as an interrupted crawl, and that process is left alone."""
    _, store = setup(tmp_path)
    other = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        crawls = tmp_path / "crawls"
        crawls.mkdir()
        (crawls / "o.json").write_text(json.dumps({
            "source": "o", "pid": other.pid, "proc_start": 1,
            "started_at": datetime.now(UTC).isoformat()}))
        assert RunningCrawls(crawls).reap_orphans(store, kill_after=1) == ["o"]
        assert other.poll() is None
        assert rows(store, "o")[0]["outcome"] == "killed"
    finally:
        other.kill()
        other.wait()
